"""``FramePacer``: one outbound audio frame per frame interval of wall clock, for every transport.

A transport pulls the agent's voice with ``CallSession.read_frame`` (always one frame: audio or silence) at
the pace of its own media clock: aiortc asks for frames as fast as it can, a WebSocket gateway and an RTP
session would too. A stalled sender makes the far end play catch-up bursts; sending faster than real time
fills its buffer. The pacer sleeps until each frame's slot and, after an event-loop stall, skips the missed
slots instead of sending them in a burst.
"""

from __future__ import annotations

import asyncio
import time

import numpy as np

# If the event loop stalls for longer than this, skip the missed frames instead of sending them in a burst.
MAX_LAG_SECONDS = 0.06


class FramePacer:
    """``await next_slot()`` returns when the next frame is due, with that frame's timestamp in samples."""

    def __init__(self, sample_rate: int, frame_ms: int = 20) -> None:
        self.sample_rate = sample_rate
        self.samples_per_frame = sample_rate * frame_ms // 1000
        self._start: float | None = None
        self._pts = 0

    async def next_slot(self) -> int:
        now = time.monotonic()
        if self._start is None:
            self._start = now
            return self._pts
        self._pts += self.samples_per_frame
        due = self._start + self._pts / self.sample_rate
        if now - due > MAX_LAG_SECONDS:
            self._start = now - self._pts / self.sample_rate
        elif due > now:
            await asyncio.sleep(due - now)
        return self._pts


def fit_frame(pcm: np.ndarray, samples: int) -> np.ndarray:
    """``pcm`` as int16 of exactly ``samples`` samples (padded with silence or truncated)."""
    if len(pcm) != samples:
        pcm = np.pad(pcm[:samples], (0, max(0, samples - len(pcm))))
    return pcm.astype(np.int16, copy=False)
