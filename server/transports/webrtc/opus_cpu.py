"""CPU seconds spent in aiortc's Opus encoder and decoder, for ``voice_agent_stage_cpu_seconds_total``.

aiortc runs ``OpusEncoder.encode`` on the loop's default executor and ``OpusDecoder.decode`` on each
receiver's decoder thread, both single-threaded libopus calls, so the calling thread's CPU clock around
each call is their cost. aiortc has no hook for this; ``count_opus_cpu`` wraps the two methods once per
process (the wrappers only add two clock reads per 20 ms frame). Unlike the other stages this cost runs for
every second of every call, silence included, not per turn.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable
from typing import Any

from aiortc.codecs import opus

ENCODE = "opus_encode"
DECODE = "opus_decode"

_lock = threading.Lock()
_cpu = {ENCODE: 0.0, DECODE: 0.0}
_installed = False


def opus_cpu_seconds() -> dict[str, float]:
    with _lock:
        return dict(_cpu)


def _timed(stage: str, method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = time.thread_time()
        try:
            return method(*args, **kwargs)
        finally:
            spent = time.thread_time() - started
            with _lock:
                _cpu[stage] += spent

    return wrapper


def count_opus_cpu() -> None:
    """Start counting (idempotent)."""
    global _installed
    with _lock:
        if _installed:
            return
        _installed = True
    opus.OpusEncoder.encode = _timed(ENCODE, opus.OpusEncoder.encode)  # type: ignore[method-assign]
    opus.OpusDecoder.decode = _timed(DECODE, opus.OpusDecoder.decode)  # type: ignore[method-assign]
