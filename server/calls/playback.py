"""``PlaybackOutput``: the agent's voice of one call, as the turn taker queues it and a transport pulls it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from speech.frames import AudioFrame
from speech.playback import PlaybackController


class PlaybackOutput:
    """``PlaybackController`` seen as the ``AudioOut`` of ``TurnTaker``: adds awaiting the end of speech."""

    def __init__(self, sample_rate: int) -> None:
        self.controller = PlaybackController(
            sample_rate, on_first_audio=self._first_audio, on_finished=self._ended, on_interrupted=self._cut
        )
        self._first_audio_callbacks: list[Callable[[float], None]] = []
        self._waiters: list[asyncio.Future[bool]] = []

    def read_frame(self) -> AudioFrame:
        return self.controller.read_frame()

    def enqueue(self, frame: AudioFrame) -> None:
        self.controller.enqueue(frame)

    def interrupt(self) -> str:
        return self.controller.interrupt()

    @property
    def has_audio(self) -> bool:
        return self.controller.has_audio

    def on_first_audio(self, callback: Callable[[float], None]) -> None:
        self._first_audio_callbacks.append(callback)

    async def wait_done(self) -> bool:
        if not self.controller.has_audio:
            return True
        waiter: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        return await waiter

    def _first_audio(self, t: float) -> None:
        callbacks, self._first_audio_callbacks = self._first_audio_callbacks, []
        for callback in callbacks:
            callback(t)

    def _ended(self, _text: str) -> None:
        self._resolve(True)

    def _cut(self, _text: str) -> None:
        self._first_audio_callbacks = []
        self._resolve(False)

    def _resolve(self, value: bool) -> None:
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(value)
