"""``voice_agent_stage_cpu_seconds_total{stage=...}``: CPU seconds the node spent per pipeline stage.

On a 2-core node with many calls, wall time per stage says little (a stage waits for a core as much as it
computes); the CPU seconds each stage burns per turn say how many calls fit and which stage to make cheaper
next (``bench/capacity.py``). Where each figure comes from, read at every scrape:

- ``stt``, ``tts``: every thread whose OS name is ``speech.threads.STT_THREADS`` / ``TTS_THREADS`` — the
  speech worker pools and the native threads CTranslate2 and ONNX Runtime start from them — summed from
  ``/proc/self/task/*/schedstat`` (time on a CPU, in ns).
- ``retrieval``: the knowledge base's worker threads (Python names ``knowledge-*``: store queries and the
  MiniLM query embedding, one BLAS thread). Ingestion runs there too; during calls it is normally idle.
- ``vad``: Silero's own clock (``speech.vad.vad_cpu_seconds``); ``llm_prompt`` / ``llm_generation``: the
  llama.cpp worker's (``agent.llm.accounting``); ``opus_encode`` / ``opus_decode``: aiortc's codec calls
  (``server.transports.webrtc.opus_cpu``).

A thread's time counts once it has been seen by a scrape; a worker that ends between two scrapes loses
what it spent since the last one (the pools here live as long as the process).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path

from prometheus_client import REGISTRY
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from agent.llm import accounting
from server.transports.webrtc.opus_cpu import count_opus_cpu, opus_cpu_seconds
from speech.threads import STT_THREADS, TTS_THREADS
from speech.vad import vad_cpu_seconds

_TASKS = Path("/proc/self/task")
_BY_OS_NAME = {STT_THREADS: "stt", TTS_THREADS: "tts"}
_BY_PYTHON_PREFIX = (("knowledge-", "retrieval"),)
STAGES = (
    "vad",
    "stt",
    "retrieval",
    accounting.PROMPT,
    accounting.GENERATION,
    "tts",
    "opus_encode",
    "opus_decode",
)


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except OSError:  # the thread ended meanwhile
        return None


class ThreadGroupCpu:
    """CPU seconds of the process's threads, summed by stage (see the module docstring)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # Integer nanoseconds, as schedstat gives them: float sums taken in another order when a thread ends
        # came out 1e-15 lower, and a Prometheus counter that goes down at all reads as a reset.
        self._seen: dict[int, tuple[str, int]] = {}  # tid -> (stage, nanoseconds at the last read)
        self._ended: dict[str, int] = {}  # nanoseconds of threads that are gone

    def _stage(self, tid: int, python_names: dict[int | None, str]) -> str | None:
        name = python_names.get(tid)
        if name is not None:
            for prefix, stage in _BY_PYTHON_PREFIX:
                if name.startswith(prefix):
                    return stage
        comm = _read(_TASKS / str(tid) / "comm")
        return _BY_OS_NAME.get(comm.strip()) if comm else None

    def read(self) -> dict[str, float]:
        python_names = {t.native_id: t.name for t in threading.enumerate()}
        try:
            tids = [int(entry) for entry in os.listdir(_TASKS)]
        except OSError:
            return {}
        with self._lock:
            now: dict[int, tuple[str, int]] = {}
            for tid in tids:
                stat = _read(_TASKS / str(tid) / "schedstat")
                if not stat:
                    continue
                nanoseconds = int(stat.split()[0])
                seen = self._seen.get(tid)
                # a known thread keeps its stage (its name may change); less time than before: a new thread
                stage = seen[0] if seen and nanoseconds >= seen[1] else self._stage(tid, python_names)
                if stage:
                    now[tid] = (stage, nanoseconds)
            for tid, (stage, nanoseconds) in self._seen.items():
                if tid not in now or now[tid][1] < nanoseconds:  # ended (or its id was reused)
                    self._ended[stage] = self._ended.get(stage, 0) + nanoseconds
            self._seen = now
            totals = dict(self._ended)
            for stage, nanoseconds in now.values():
                totals[stage] = totals.get(stage, 0) + nanoseconds
            return {stage: nanoseconds / 1e9 for stage, nanoseconds in totals.items()}


def stage_cpu_seconds(threads: ThreadGroupCpu) -> dict[str, float]:
    """Every stage's CPU seconds so far (0 for a stage that has not run)."""
    totals = {stage: 0.0 for stage in STAGES}
    totals.update(threads.read())
    totals["vad"] = vad_cpu_seconds()
    totals.update(accounting.cpu_seconds())
    totals.update(opus_cpu_seconds())
    return totals


class StageCpuCollector(Collector):
    def __init__(self) -> None:
        self._threads = ThreadGroupCpu()

    def collect(self) -> Iterator[Metric]:
        cpu = CounterMetricFamily(
            "voice_agent_stage_cpu_seconds", "CPU seconds spent per pipeline stage", labels=["stage"]
        )
        for stage, seconds in stage_cpu_seconds(self._threads).items():
            cpu.add_metric([stage], seconds)
        yield cpu
        counts, total = accounting.prompt_token_histogram()
        buckets, running = [], 0
        for bound, count in zip([*map(str, accounting.TOKEN_BUCKETS), "+Inf"], counts, strict=True):
            running += count
            buckets.append((bound, running))
        yield HistogramMetricFamily(
            "voice_agent_llm_prompt_tokens_evaluated",
            "prompt tokens llama.cpp evaluated per generation (not served from the KV cache)",
            buckets=buckets,
            sum_value=total,
        )


_collector: StageCpuCollector | None = None
_install_lock = threading.Lock()


def export_stage_cpu() -> None:
    """Register the collector in the default registry and start counting Opus (idempotent)."""
    global _collector
    with _install_lock:
        if _collector is None:
            count_opus_cpu()
            _collector = StageCpuCollector()
            REGISTRY.register(_collector)
