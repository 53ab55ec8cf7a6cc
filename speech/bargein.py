"""Barge-in: decides whether caller speech during playback is a real interruption or a click/cough.

At the first voiced VAD chunk while the agent talks, playback is paused (the agent goes quiet within one
32 ms chunk); only after ``min_speech_ms`` of voiced audio is it interrupted for good. If the voice stops
first (a click, a cough, a short "mm"), playback resumes where it paused, so a false trigger loses no
audio. With ``pause_on_speech=False`` the agent keeps talking during the guard instead.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from speech.config import BargeInConfig
from speech.playback import PlaybackController
from speech.vad import VadChunk

log = logging.getLogger(__name__)


class BargeInDetector:
    """Feed it the caller's VAD chunks (``TurnListener(on_vad=detector.on_vad)``).

    ``on_barge_in(heard_text)`` is called once per confirmed interruption, with the text the caller heard.
    """

    def __init__(
        self,
        playback: PlaybackController,
        config: BargeInConfig,
        *,
        threshold: float = 0.5,
        on_barge_in: Callable[[str], None] | None = None,
    ) -> None:
        self.playback = playback
        self.config = config
        self.threshold = threshold
        self.on_barge_in = on_barge_in
        self.false_triggers = 0
        self.barge_ins = 0
        self._voiced = 0.0  # voiced seconds of the current candidate
        self._silence = 0.0  # silence since its last voiced chunk
        self._candidate = False

    def on_vad(self, chunk: VadChunk) -> None:
        if chunk.probability >= self.threshold:
            self._on_voiced(chunk)
        elif self._candidate:
            self._on_silent(chunk)

    def _on_voiced(self, chunk: VadChunk) -> None:
        if not self._candidate:
            if not self.playback.has_audio:
                return  # the agent is quiet: this is an ordinary turn, not a barge-in
            self._candidate = True
            self._voiced = 0.0
            if self.config.pause_on_speech:
                self.playback.pause()
        self._silence = 0.0
        self._voiced += chunk.duration
        if self._voiced >= self.config.min_speech_ms / 1000 - 1e-9:
            self._confirm(chunk.t + chunk.duration)

    def _on_silent(self, chunk: VadChunk) -> None:
        self._silence += chunk.duration
        if self._silence >= self.config.false_trigger_gap_ms / 1000 - 1e-9:
            self._candidate = False
            self.false_triggers += 1
            self.playback.resume()
            log.info("barge-in false trigger (%.0f ms of voice); playback resumed", self._voiced * 1000)

    def _confirm(self, t: float) -> None:
        self._candidate = False
        self.barge_ins += 1
        heard = self.playback.interrupt()
        log.info("barge-in at stream time %.3f; caller heard %r", t, heard[-60:])
        if self.on_barge_in is not None:
            self.on_barge_in(heard)
