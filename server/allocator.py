"""glibc's allocator, set for a node that runs for weeks of calls.

glibc's defaults suit short programs. Two of them make a voice node's resident memory creep:
- *Arenas*: up to 8 per core, one taken by each thread that meets contention. A call's work runs on many
  threads (aiortc's, PyAV's, the STT/TTS/LLM workers, asyncio's executor), each arena keeps its own free
  holes, and over a 240-call churn one thread arena alone grew by 64 MB (``/proc/PID/smaps``). Two arenas
  on 2 cores leave the threads little to contend for and fewer places for holes. On by default
  (``server.heap_arena_max``): no cost measured.
- *The mmap threshold is dynamic*: freeing a large block raises it (up to 32 MB), so later blocks of
  hundreds of kilobytes come from the heap, and each one freed out of order stays resident. A fixed
  threshold keeps such blocks on ``mmap``, handed back when freed. Off by default
  (``server.heap_mmap_threshold_kb`` = 0) because of its price: every Whisper transcription then maps its
  work tensors afresh, ~36,000 page faults (~140 MB of zeroed pages) and roughly +0.05 CPU s per call of
  ``transcribe``, where glibc's rising threshold has none. It is for a node where memory is tighter than CPU.

``bench/reliability.py``, 300-call churn on 2 cores, RSS growth after warm-up (``server.calls.memory_trim``
trimming in each): glibc's defaults 104 MB; two arenas 86 MB; two arenas and a 128 KB threshold 50 MB.
Elsewhere than glibc nothing is changed.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
from typing import Any

log = logging.getLogger(__name__)

_M_MMAP_THRESHOLD = -3  # glibc's mallopt parameters (malloc.h)
_M_ARENA_MAX = -8


def libc_function(name: str, argtypes: list[Any], restype: Any) -> Any:
    """``name`` from the C library, or None where it has none (musl, macOS, a missing libc)."""
    library = ctypes.util.find_library("c")
    if library is None:
        return None
    try:
        function = getattr(ctypes.CDLL(library), name)
    except (OSError, AttributeError):
        return None
    function.argtypes, function.restype = argtypes, restype
    return function


def tune_allocator(arena_max: int, mmap_threshold_kb: int) -> bool:
    """Cap the arenas at ``arena_max`` and fix the mmap threshold at ``mmap_threshold_kb`` (0 leaves either
    at glibc's default). Call it before the node starts its threads: an arena made earlier stays. False when
    the allocator is not glibc's or refused a value."""
    mallopt = libc_function("mallopt", [ctypes.c_int, ctypes.c_int], ctypes.c_int)
    if mallopt is None:
        log.info("not glibc: the allocator keeps its own settings")
        return False
    ok = True
    if arena_max > 0:
        ok = mallopt(_M_ARENA_MAX, arena_max) == 1 and ok
    if mmap_threshold_kb > 0:
        ok = mallopt(_M_MMAP_THRESHOLD, mmap_threshold_kb * 1024) == 1 and ok
    if not ok:
        log.warning(
            "glibc refused an allocator setting (arena_max=%d, mmap_threshold_kb=%d)",
            arena_max,
            mmap_threshold_kb,
        )
    return ok
