"""A small application on top of the SIP layer, for tests: answer, say a sentence, record the caller.

``RecordingApp`` is the ``on_call`` handler of a ``SipUserAgent``: for every call it plays ``reply`` (8 kHz
int16) once, then silence, and keeps everything the caller sent (audio and events) until the call ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from dataclasses import dataclass, field

import numpy as np

from server.transports.sip import CallEnded, DtmfReceived, SipCall, SipCallEvent
from speech.frames import AudioFrame

RATE = 8000
FRAME = 160


class SentencePlayer:
    """A ``read_frame`` source: ``pcm`` in 20 ms frames, then silence forever."""

    def __init__(self, pcm: np.ndarray | None) -> None:
        self._pcm = pcm if pcm is not None else np.zeros(0, np.int16)
        self._at = 0
        self.frames_pulled = 0

    def __call__(self) -> AudioFrame:
        self.frames_pulled += 1
        chunk = self._pcm[self._at : self._at + FRAME]
        self._at += FRAME
        if len(chunk) < FRAME:
            chunk = np.pad(chunk, (0, FRAME - len(chunk)))
        return AudioFrame(chunk.astype(np.int16), RATE)

    @property
    def done(self) -> bool:
        return self._at >= len(self._pcm)


@dataclass
class CallRecord:
    call: SipCall
    frames: list[AudioFrame] = field(default_factory=list)
    events: list[SipCallEvent] = field(default_factory=list)
    ended: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def audio(self) -> np.ndarray:
        return np.concatenate([f.pcm for f in self.frames]) if self.frames else np.zeros(0, np.int16)

    @property
    def digits(self) -> str:
        return "".join(e.digit for e in self.events if isinstance(e, DtmfReceived))

    @property
    def end(self) -> CallEnded | None:
        return next((e for e in self.events if isinstance(e, CallEnded)), None)


class RecordingApp:
    def __init__(self, reply: np.ndarray | None = None) -> None:
        self.reply = reply
        self.records: list[CallRecord] = []
        self._new_call = asyncio.Condition()

    async def __call__(self, call: SipCall) -> None:
        record = CallRecord(call)
        async with self._new_call:
            self.records.append(record)
            self._new_call.notify_all()
        await self.serve(call, record)

    async def serve(self, call: SipCall, record: CallRecord) -> None:
        call.play(SentencePlayer(self.reply))
        audio = asyncio.create_task(_collect(call.audio(), record.frames))
        try:
            async for event in call.events():
                record.events.append(event)
        finally:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(audio, 5)
            record.ended.set()

    async def call(self, index: int = 0, timeout: float = 20.0) -> CallRecord:
        async def has() -> None:
            async with self._new_call:
                await self._new_call.wait_for(lambda: len(self.records) > index)

        await asyncio.wait_for(has(), timeout)
        return self.records[index]


async def _collect(frames: object, into: list[AudioFrame]) -> None:
    async for frame in frames:  # type: ignore[attr-defined]
        into.append(frame)


def words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9']+", text.lower())


def recall(expected: str, heard: str) -> float:
    """Fraction of ``expected``'s words present in ``heard`` (order-free, tolerant of Whisper's slips)."""
    want, have = words(expected), set(words(heard))
    return sum(w in have for w in want) / max(1, len(want))
