"""CPU seconds the embedded model spends per phase, and prompt tokens it evaluates per generation.

Process-wide tallies the llama.cpp worker thread adds to and the server exports in ``/metrics``
(``voice_agent_stage_cpu_seconds_total{stage="llm_prompt"|"llm_generation"}``). The worker measures its own
thread's CPU clock around each step: with ``n_threads: 1`` llama.cpp computes on that thread, so the clock
holds the whole cost, and on a busy machine CPU time (not wall time) is what says how many calls fit.
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Sequence

PROMPT = "llm_prompt"  # evaluating the prompt, up to the first token
GENERATION = "llm_generation"  # every token after the first
# Upper bounds of the prompt-token histogram (Prometheus "le"); the last bucket is +Inf.
TOKEN_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096)

_lock = threading.Lock()
_cpu = {PROMPT: 0.0, GENERATION: 0.0}
_token_counts = [0] * (len(TOKEN_BUCKETS) + 1)
_token_sum = 0


def count_cpu(phase: str, seconds: float) -> None:
    with _lock:
        _cpu[phase] += seconds


def count_prompt_tokens(evaluated: int) -> None:
    """One generation evaluated ``evaluated`` prompt tokens (the rest came from the KV cache)."""
    global _token_sum
    with _lock:
        _token_counts[bisect.bisect_left(TOKEN_BUCKETS, evaluated)] += 1
        _token_sum += evaluated


def cpu_seconds() -> dict[str, float]:
    with _lock:
        return dict(_cpu)


def prompt_token_histogram() -> tuple[list[int], int]:
    """(count per bucket of ``TOKEN_BUCKETS`` plus +Inf, not cumulative; sum of all evaluated tokens)."""
    with _lock:
        return list(_token_counts), _token_sum


def tokens_evaluated(cached: Sequence[int], now: Sequence[int]) -> int:
    """Tokens in the context ``now`` that were not already there (``cached``, the context before): llama-cpp-
    python keeps the longest common prefix and evaluates the rest. Read after the first token, so it also
    counts the few tokens sampled before the first spoken text (at most a handful)."""
    common = 0
    for a, b in zip(cached, now, strict=False):
        if a != b:
            break
        common += 1
    return max(0, len(now) - common)
