"""``HeapTrimmer``: hands the heap a finished call freed back to the operating system.

A call allocates and frees tens of megabytes (aiortc and PyAV buffers, numpy audio, Whisper and Piper work
areas) across several threads. glibc keeps freed memory in its per-thread arenas for reuse and returns the
tops of them only; the holes stay resident, so a node's RSS creeps up with every mix of calls until the
arenas happen to fit the load, and an operator cannot tell that creep from a leak. ``malloc_trim(0)``
releases every free page of every arena. It runs in a worker thread (it walks all arenas, a few
milliseconds, and must not stall audio), at most once per ``min_interval_s``, when a call ends. Elsewhere
than glibc it does nothing.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import time

from prometheus_client import Gauge

from server.allocator import libc_function
from server.calls.registry import RegisteredCall

log = logging.getLogger(__name__)

# 1 from a call's end until the trim after it has run: a reading of resident memory taken at 0 is after the
# trim (``tests/faults/churn.py`` waits for it, so its baseline and end are taken alike).
TRIM_PENDING = Gauge("voice_agent_heap_trim_pending", "1 while a heap trim after ended calls waits or runs")


class HeapTrimmer:
    """A ``server.calls.registry.RegistryObserver``: trims the heap after calls end."""

    def __init__(self, min_interval_s: float = 10.0) -> None:
        self.min_interval_s = min_interval_s
        self.trims = 0
        self._trim = libc_function("malloc_trim", [ctypes.c_size_t], ctypes.c_int)
        self._last = float("-inf")
        self._task: asyncio.Task[None] | None = None

    @property
    def available(self) -> bool:
        return self._trim is not None

    def call_registered(self, call: RegisteredCall) -> None:
        pass

    def call_unregistered(self, call: RegisteredCall) -> None:
        if self._trim is None or (self._task is not None and not self._task.done()):
            return  # one trim at a time; a call ending meanwhile is covered by the next one
        try:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="heap-trim")
        except RuntimeError:  # no loop (a synchronous test of the registry)
            return
        TRIM_PENDING.set(1)

    async def _run(self) -> None:
        try:
            wait = self._last + self.min_interval_s - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            self._last = time.monotonic()
            await asyncio.to_thread(self._trim, 0)
            self.trims += 1
        except Exception:
            log.exception("malloc_trim failed; the heap is not trimmed")
        finally:
            TRIM_PENDING.set(0)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
