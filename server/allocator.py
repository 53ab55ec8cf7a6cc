"""glibc's allocator settings for a node that runs for weeks of calls: two knobs against resident-memory
creep, both off by default because neither is free or clearly worth it on the default 2-core node.

- *Arenas* (``server.heap_arena_max``): glibc makes up to 8 per core, one for each thread that meets
  contention; a call's work runs on many threads (aiortc's, PyAV's, the STT/TTS/LLM workers, asyncio's
  executor), and over a 240-call churn one thread arena alone grew by 64 MB (``/proc/PID/smaps``). Capping
  them at 2 gave no clear gain: 300-call churn +86 MB against +104 MB uncapped (measured before the churn
  read RSS after the trim), and a 40-call churn +60 MB against +37 MB; within run-to-run noise.
- *A fixed mmap threshold* (``server.heap_mmap_threshold_kb``): glibc raises its threshold (up to 32 MB)
  whenever a large block is freed, so later blocks of hundreds of kilobytes come from the heap, and each one
  freed out of order stays resident. Fixed at 128 KB, they stay on ``mmap`` and go back when freed: the
  300-call churn grew +50 MB (with two arenas) instead of +104 MB. The price: every Whisper transcription
  then maps its work tensors afresh, ~36,000 page faults (~140 MB of zeroed pages) and roughly +0.05 CPU s
  per ``transcribe`` (none with glibc's rising threshold; 512 KB to 16 MB thresholds still 35,000 to 6,000
  faults). For a node where memory is tighter than CPU.

Both must be set before the node starts its threads (``voice-agent serve`` does). Elsewhere than glibc
nothing is changed.
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
