"""``LoopLag``: how long the running event loop was held by something that did not yield.

A ticker sleeps ``interval_s`` again and again and keeps the largest overshoot. A blocking call on the loop
(a database query, a file write, a model call) shows up as an overshoot as long as the call; a loaded CI box
adds some tens of milliseconds, so tests assert bounds well above that (e.g. 0.5 s) but far below what the
blocked call would take (seconds).
"""

from __future__ import annotations

import asyncio
import time
from types import TracebackType
from typing import Self


class LoopLag:
    """``async with LoopLag() as lag: ...`` then ``lag.max_s``."""

    def __init__(self, interval_s: float = 0.01) -> None:
        self.interval_s = interval_s
        self.max_s = 0.0
        self._task: asyncio.Task[None] | None = None

    async def _tick(self) -> None:
        while True:
            before = time.monotonic()
            await asyncio.sleep(self.interval_s)
            self.max_s = max(self.max_s, time.monotonic() - before - self.interval_s)

    async def __aenter__(self) -> Self:
        self._task = asyncio.create_task(self._tick(), name="loop-lag-probe")
        await asyncio.sleep(0)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await asyncio.sleep(self.interval_s * 2)  # let a tick that was held see its overshoot
        assert self._task is not None
        self._task.cancel()
