"""Call churn against one node: many short calls, a few at a time, each a real aiortc call with one spoken
turn (connect, say a question, hear the start of the reply, hang up). After a warm-up the node's resident
memory, descriptors, asyncio tasks and threads are sampled when it is idle; after the churn they must come
back: what a call takes it must give back, or a node dies after a day of calls.

Used by ``tests/faults/test_churn.py`` (a few dozen calls, in CI) and ``bench/reliability.py`` (1,000)."""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tests.faults.node_stats import NodeStats, node_stats
from tests.server.caller import RTCCaller, ServerProcess, synthesize_speech

QUESTION = "Could you tell me something nice about the weather today?"


def churn_node(workdir: Path, extra_env: dict[str, str] | None = None, max_calls: int = 16) -> ServerProcess:
    """A node for churn: no greeting (each call goes straight to its turn), replies from the model itself
    (grounding off, so every turn runs STT, the LLM and TTS), short replies."""
    env = {
        "VOICE_AGENT__SERVER__CALL__GREETING": "false",
        "VOICE_AGENT__SERVER__MAX_CALLS": str(max_calls),
        "VOICE_AGENT__AGENT__GROUNDING__ENABLED": "false",
        "VOICE_AGENT__AGENT__LLM__MAX_TOKENS": "32",
        "VOICE_AGENT__AGENT__FIRST_TOKEN_TIMEOUT_S": "20",
        **(extra_env or {}),
    }
    return ServerProcess(workdir, env, log_level="WARNING")


@dataclass
class ChurnResult:
    calls: int
    failed: int = 0
    errors: list[str] = field(default_factory=list)
    baseline: dict[str, Any] = field(default_factory=dict)
    end: dict[str, Any] = field(default_factory=dict)
    warmup_calls: int = 0
    warmup_rss_mb_series: list[float] = field(default_factory=list)  # idle RSS after each warm-up round
    rss_growth_mb: float = 0.0
    # RSS after each fifth of the churn: a plateau or a slope
    rss_mb_series: list[float] = field(default_factory=list)
    fds_leaked: int = 0
    tasks_leaked: int = 0
    threads_leaked: int = 0
    reply_s_p50: float = 0.0
    seconds: float = 0.0
    loadavg: list[float] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["errors"] = self.errors[:10]
        return data


async def one_call(base_url: str, speech: np.ndarray, index: int) -> float:
    """One call with one spoken turn; returns seconds from the end of the question to the reply's start."""
    caller = RTCCaller(base_url, user_id=f"churn-{index}")
    try:
        await asyncio.wait_for(caller.connect(), 20)
        sent = await asyncio.wait_for(caller.say(speech), 30)
        reply = await caller.reply_start(after=sent, timeout=30)
        return reply - sent
    finally:
        await caller.hangup()


async def run_calls(
    base_url: str, speech: np.ndarray, count: int, concurrency: int, start: int, result: ChurnResult
) -> list[float]:
    replies: list[float] = []
    next_index = start
    lock = asyncio.Lock()

    async def worker() -> None:
        nonlocal next_index
        while True:
            async with lock:
                if next_index >= start + count:
                    return
                index = next_index
                next_index += 1
            try:
                replies.append(await one_call(base_url, speech, index))
            except Exception as exc:  # noqa: BLE001 - every failure is counted and reported
                result.failed += 1
                result.errors.append(f"call {index}: {type(exc).__name__}: {exc}")

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return replies


async def idle_stats(base_url: str, baseline: NodeStats | None = None, settle_s: float = 20.0) -> NodeStats:
    """The node's figures once no call is live and the heap is trimmed; with ``baseline``, waits (up to
    ``settle_s``) for descriptors, tasks and threads to come back to it (aiortc closes its transports a
    moment after a call)."""
    deadline = time.monotonic() + settle_s
    while True:
        stats = await node_stats(base_url)
        # Resident memory is read after the heap trim that follows the last call (at most
        # server.heap_trim_interval_s later): before it, the same node reads tens of MB higher.
        idle = stats.calls == 0 and not stats.heap_trim_pending
        settled = idle and (baseline is None or not any(stats.leaked_since(baseline).values()))
        if settled or time.monotonic() > deadline:
            return stats
        await asyncio.sleep(0.5)


# The baseline is taken at steady state: warm-up rounds run until RSS stops setting new highs (two rounds in a
# row within ``WARMUP_FLAT_MB`` of the highest idle reading so far). What they must cover: every llama.cpp
# instance (``agent.llm.llamacpp.parallel``, 4) touches its KV cache pages lazily, by context position, the
# first time it serves (+14 MB per instance for a 300-token turn, measured with /proc/self/status around
# ``Llama.eval`` of 4 instances), and freed instances are reused last-in first-out, so at 3 calls at a time the
# fourth serves only now and then; the allocator's arenas fill up over the first few dozen calls too. A fixed
# warm-up of 10 calls, 3 at a time, left RSS rising in 15-45 MB steps for 150 calls; warmed 5 at a time, a
# 100-call probe added +35, +16, +4, +0.3, -0.2 MB per 20 calls. Since the heap is trimmed after calls
# (server.calls.memory_trim) idle RSS also falls now and then: one lower reading is not "steady" (stopping
# there took the baseline at a dip, 1156 -> 1127 MB, and the next rounds' climb back counted as growth).
WARMUP_ROUND = 10
WARMUP_CONCURRENCY = 5  # more than the instances, so each one serves a turn
WARMUP_FLAT_MB = 5.0
WARMUP_FLAT_ROUNDS = 2
WARMUP_MAX_CALLS = 100


async def warm_up(base_url: str, speech: np.ndarray, result: ChurnResult) -> None:
    """Rounds of calls until RSS stops rising (or ``WARMUP_MAX_CALLS``); recorded in ``result``."""
    highest = (await node_stats(base_url)).rss_mb
    flat = 0
    while result.warmup_calls < WARMUP_MAX_CALLS:
        await run_calls(base_url, speech, WARMUP_ROUND, WARMUP_CONCURRENCY, result.warmup_calls, result)
        result.warmup_calls += WARMUP_ROUND
        await asyncio.sleep(1)
        rss = (await idle_stats(base_url, settle_s=15.0)).rss_mb
        result.warmup_rss_mb_series.append(round(rss, 1))
        flat = flat + 1 if rss < highest + WARMUP_FLAT_MB else 0
        highest = max(highest, rss)
        if flat >= WARMUP_FLAT_ROUNDS:
            return


async def churn(base_url: str, calls: int, concurrency: int = 3) -> ChurnResult:
    speech = await synthesize_speech(QUESTION)
    result = ChurnResult(calls=calls)
    started = time.monotonic()
    await warm_up(base_url, speech, result)
    await asyncio.sleep(2)
    baseline = await idle_stats(base_url)
    replies: list[float] = []
    done = 0
    for part in range(5):  # RSS after each fifth tells warm-up (a plateau) from a leak (a slope)
        count = calls * (part + 1) // 5 - done
        replies += await run_calls(base_url, speech, count, concurrency, result.warmup_calls + done, result)
        done += count
        result.rss_mb_series.append(round((await node_stats(base_url)).rss_mb, 1))
    end = await idle_stats(base_url, baseline)
    leaked = end.leaked_since(baseline)
    result.baseline, result.end = asdict(baseline), asdict(end)
    result.rss_growth_mb = round(end.rss_mb - baseline.rss_mb, 1)
    result.fds_leaked = leaked["fds"]
    result.tasks_leaked = leaked["tasks"]
    result.threads_leaked = leaked["threads"]
    result.reply_s_p50 = round(float(np.median(replies)), 3) if replies else 0.0
    result.seconds = round(time.monotonic() - started, 1)
    result.loadavg = [round(x, 2) for x in os.getloadavg()]
    return result
