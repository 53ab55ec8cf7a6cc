"""What a node process holds, read from its ``/metrics``: resident memory, open file descriptors, asyncio
tasks, threads and live calls (``server.http.runtime_metrics`` and prometheus_client's process collector)."""

from __future__ import annotations

import re
from dataclasses import dataclass

import aiohttp

_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+([0-9.eE+-]+)$")


@dataclass(frozen=True)
class NodeStats:
    rss_mb: float
    fds: int
    tasks: int
    threads: int
    calls: int
    heap_trim_pending: int = 0  # a trim after ended calls still to run (server.calls.memory_trim)

    def leaked_since(self, baseline: NodeStats) -> dict[str, int]:
        """Descriptors, tasks and threads above ``baseline`` (0 each when nothing was left behind)."""
        return {
            "fds": max(0, self.fds - baseline.fds),
            "tasks": max(0, self.tasks - baseline.tasks),
            "threads": max(0, self.threads - baseline.threads),
        }


def parse_metrics(text: str) -> dict[str, float]:
    """Unlabelled samples (and the first sample of labelled ones) by metric name."""
    values: dict[str, float] = {}
    for line in text.splitlines():
        match = _SAMPLE.match(line.strip())
        if match and match.group(1) not in values:
            values[match.group(1)] = float(match.group(3))
    return values


async def node_stats(base_url: str) -> NodeStats:
    async with aiohttp.ClientSession() as http, http.get(f"{base_url}/metrics") as resp:
        values = parse_metrics(await resp.text())
    return NodeStats(
        rss_mb=values["process_resident_memory_bytes"] / (1 << 20),
        fds=int(values["process_open_fds"]),
        tasks=int(values["voice_agent_event_loop_tasks"]),
        threads=int(values["voice_agent_threads"]),
        calls=int(values["voice_agent_calls_active"]),
        heap_trim_pending=int(values.get("voice_agent_heap_trim_pending", 0)),
    )
