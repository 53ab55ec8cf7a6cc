"""Barge-in: decides whether caller speech during playback is a real interruption or a click/cough.

While the agent talks, playback is paused (the agent goes quiet within one 32 ms chunk) at the first chunk
that is voiced (VAD threshold) or a fresh onset after quiet (the lower ``pause_threshold``: through Opus, the
"St" of "Stop" scores 0.1-0.3 for ~100 ms before the vowel crosses 0.5). Only after ``min_speech_ms`` of
voiced audio is the reply interrupted for good. If no voiced chunk comes for ``false_trigger_gap_ms`` (a
click, a cough, a short "mm"), playback resumes where it paused, so a false trigger loses no audio. With
``pause_on_speech=False`` the agent keeps talking during the guard instead.

The low threshold applies only to an onset after ``_QUIET_BEFORE_ONSET`` of quiet, so steady background
noise scoring between the two thresholds cannot keep pausing the agent; it then needs a voiced chunk.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from speech.config import BargeInConfig
from speech.playback import PlaybackController
from speech.vad import VadChunk

log = logging.getLogger(__name__)

_QUIET_BEFORE_ONSET = 0.3  # seconds below pause_threshold before a weak chunk counts as an onset


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
        self._quiet = 0.0  # seconds of consecutive chunks below pause_threshold

    def on_vad(self, chunk: VadChunk) -> None:
        voiced = chunk.probability >= self.threshold
        if not self._candidate and (voiced or self._fresh_onset(chunk)):
            self._start_candidate()
        if self._candidate:
            if voiced:
                self._on_voiced(chunk)
            else:
                self._on_silent(chunk)
        weak = chunk.probability < min(self.config.pause_threshold, self.threshold)
        self._quiet = self._quiet + chunk.duration if weak else 0.0

    def _fresh_onset(self, chunk: VadChunk) -> bool:
        return chunk.probability >= self.config.pause_threshold and self._quiet >= _QUIET_BEFORE_ONSET

    def _start_candidate(self) -> None:
        if not self.playback.has_audio:
            return  # the agent is quiet: this is an ordinary turn, not a barge-in
        self._candidate = True
        self._voiced = 0.0
        self._silence = 0.0
        if self.config.pause_on_speech:
            self.playback.pause()

    def _on_voiced(self, chunk: VadChunk) -> None:
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
