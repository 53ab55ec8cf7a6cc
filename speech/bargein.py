"""Barge-in: decides whether caller speech during playback is an interruption, a backchannel or a click.

While the agent talks, playback is paused (the agent goes quiet within one 32 ms chunk) at the first chunk
that is voiced (VAD threshold) or a fresh onset after quiet (the lower ``pause_threshold``: through Opus, the
"St" of "Stop" scores 0.1-0.3 for ~100 ms before the vowel crosses 0.5). If no voiced chunk comes for
``false_trigger_gap_ms`` before ``min_speech_ms`` of voice (a click, a short noise), playback resumes where
it paused, so a false trigger loses no audio.

What happens to a sound with voice in it depends on ``decide_with_words``:

- on (default, with a ``BackchannelDecider``): playback stays paused while the caller's sound goes on; when
  the caller has been quiet for ``backchannel_end_gap_ms`` the sound is transcribed and classified
  (``speech.backchannel``). A backchannel ("mm-hm", "okay", a cough) resumes playback exactly where it
  paused (nothing lost, nothing replayed) and calls ``on_backchannel``; an interruption ("wait", "no, I
  meant...", a question), speech longer than ``max_backchannel_ms``, or no decision within
  ``decision_timeout_ms`` interrupts the reply and calls ``on_barge_in``. If the caller speaks again while
  the decision runs, it is dropped and the longer sound is decided when they stop. A sound still going on
  after ``early_decision_ms`` of voice is transcribed once early, and stops the reply at once if its words
  already make it an interruption ("No, I meant..."). Any voiced chunk is enough to ask for the words: a
  real "No." can be shorter than ``min_speech_ms`` of voice, and a cough comes back without words.
- off: ``min_speech_ms`` of voice interrupts at once (the rule before backchannels were told apart).

With ``pause_on_speech=False`` the agent keeps talking until the decision instead of pausing.
The low threshold applies only to an onset after ``_QUIET_BEFORE_ONSET`` of quiet, so steady background
noise scoring between the two thresholds cannot keep pausing the agent; it then needs a voiced chunk.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from speech.backchannel import BackchannelDecider, BargeInDecision, BargeInKind, is_clear_interruption
from speech.config import BargeInConfig
from speech.playback import PlaybackController
from speech.vad import CHUNK_SECONDS, VadChunk

log = logging.getLogger(__name__)

_QUIET_BEFORE_ONSET = 0.3  # seconds below pause_threshold before a weak chunk counts as an onset
_PRE_ROLL_CHUNKS = 10  # ~0.3 s kept before the onset: Whisper needs the start of the first phoneme
_PAD = np.zeros(3200, np.float32)  # 0.2 s of silence after the sound, as the listener's post-roll
_KEEP_SPANS = 16
_MIN_SOUND_S = 0.064  # two chunks: a shorter sound is a click, not worth a transcription


@dataclass(frozen=True, slots=True)
class BackchannelSpan:
    """A caller sound judged a backchannel: stream times of its first and last voiced chunk."""

    start: float
    end: float
    text: str


class BargeInDetector:
    """Feed it the caller's VAD chunks (``TurnListener(on_vad=detector.on_vad)``).

    ``on_barge_in(heard_text)`` is called once per interruption, with the text the caller heard;
    ``on_backchannel(decision)`` once per sound that resumed the reply.
    """

    def __init__(
        self,
        playback: PlaybackController,
        config: BargeInConfig,
        *,
        threshold: float = 0.5,
        on_barge_in: Callable[[str], None] | None = None,
        decider: BackchannelDecider | None = None,
        on_backchannel: Callable[[BargeInDecision], None] | None = None,
    ) -> None:
        self.playback = playback
        self.config = config
        self.threshold = threshold
        self.on_barge_in = on_barge_in
        self.on_backchannel = on_backchannel
        self.decider = decider if config.decide_with_words else None
        self.false_triggers = 0
        self.barge_ins = 0
        self.backchannels = 0
        self.decisions: list[BargeInDecision] = []
        self.backchannel_spans: deque[BackchannelSpan] = deque(maxlen=_KEEP_SPANS)
        self._voiced = 0.0  # voiced seconds of the current candidate
        self._sound = 0.0  # seconds above pause_threshold (words mode)
        self._forced = False  # the running decision was started on a sound that had not ended
        self._silence = 0.0  # silence since its last voiced chunk
        self._candidate = False
        self._quiet = 0.0  # seconds of consecutive chunks below pause_threshold
        self._recent: deque[np.ndarray] = deque(maxlen=_PRE_ROLL_CHUNKS)
        self._segment: list[np.ndarray] = []
        self._first_voiced_t: float | None = None
        self._last_voiced_t = 0.0
        self._deciding: asyncio.Task[BargeInDecision] | None = None
        self._early: asyncio.Task[BargeInDecision] | None = None
        self._decided = asyncio.Event()
        self._decided.set()

    @property
    def deciding(self) -> bool:
        """A caller sound is being judged (playback paused); see ``wait_decided``."""
        return self._candidate

    async def wait_decided(self, timeout: float) -> bool:
        """Wait until no caller sound is being judged; False if that took longer than ``timeout``."""
        try:
            await asyncio.wait_for(self._decided.wait(), timeout)
        except TimeoutError:
            return False
        return True

    def absorbs(self, speech_start_t: float, speech_end_t: float) -> bool:
        """True if a turn of the listener (stream times) is a sound already judged a backchannel, so the
        turn taker must not answer it. Spans match when they overlap."""
        return any(
            s.start <= speech_end_t + 0.1 and speech_start_t <= s.end + 0.1 for s in self.backchannel_spans
        )

    def on_vad(self, chunk: VadChunk) -> None:
        voiced = chunk.probability >= self.threshold
        if not self._candidate and (voiced or self._fresh_onset(chunk)):
            self._start_candidate()
        if self._candidate:
            if chunk.samples is not None:
                self._segment.append(chunk.samples)
            if self.decider is not None:
                self._judge_sound(chunk, voiced)
            elif voiced:
                self._on_voiced(chunk)
            else:
                self._on_silent(chunk)
        elif chunk.samples is not None:
            self._recent.append(chunk.samples)
        weak = chunk.probability < min(self.config.pause_threshold, self.threshold)
        self._quiet = self._quiet + chunk.duration if weak else 0.0

    def _fresh_onset(self, chunk: VadChunk) -> bool:
        return chunk.probability >= self.config.pause_threshold and self._quiet >= _QUIET_BEFORE_ONSET

    def _start_candidate(self) -> None:
        if not self.playback.has_audio:
            return  # the agent is quiet: this is an ordinary turn, not a barge-in
        self._candidate = True
        self._decided.clear()
        self._voiced = 0.0
        self._sound = 0.0
        self._silence = 0.0
        self._forced = False
        self._segment = list(self._recent)
        self._recent.clear()
        self._first_voiced_t = None
        if self.config.pause_on_speech:
            self.playback.pause()

    # -- without words: min_speech_ms of voice interrupts -------------------------------------------
    def _on_voiced(self, chunk: VadChunk) -> None:
        self._silence = 0.0
        self._voiced += chunk.duration
        if self._voiced >= self.config.min_speech_ms / 1000 - 1e-9:
            self._interrupt(chunk.t + chunk.duration, "speech")

    def _on_silent(self, chunk: VadChunk) -> None:
        self._silence += chunk.duration
        if self._silence >= self.config.false_trigger_gap_ms / 1000 - 1e-9:
            self._false_trigger()

    # -- with words ----------------------------------------------------------------------------------
    def _judge_sound(self, chunk: VadChunk, voiced: bool) -> None:
        """A sound lasts while chunks stay above ``pause_threshold``: a real "Yeah" on a phone line can hover
        at 0.2-0.5 for its whole length, so the VAD threshold alone would call it a click."""
        if chunk.probability < self.config.pause_threshold:
            self._silence += chunk.duration
            if self._silence < self._end_gap():
                return
            if self._sound < _MIN_SOUND_S - 1e-9:
                self._false_trigger()  # a click: nothing to transcribe
            elif self._deciding is None:
                self._start_decision()
            return
        self._silence = 0.0
        self._sound += chunk.duration
        self._voiced += chunk.duration if voiced else 0.0
        self._first_voiced_t = chunk.t if self._first_voiced_t is None else self._first_voiced_t
        self._last_voiced_t = chunk.t + chunk.duration
        if self._deciding is not None and not self._forced:
            self._deciding.cancel()  # the caller goes on: judge the whole sound when they stop
            self._deciding = None
        if self._voiced >= self.config.max_backchannel_ms / 1000 - 1e-9:
            self._interrupt(chunk.t + chunk.duration, "too long")
        elif self._sound >= 2 * self.config.max_backchannel_ms / 1000 and self._deciding is None:
            self._start_decision(forced=True)  # endless murmur: let the words say whether it is speech
        elif self._early is None and self._sound >= self.config.early_decision_ms / 1000 - 1e-9:
            assert self.decider is not None
            self._early = asyncio.get_running_loop().create_task(self.decider.decide(self._segment_audio()))
            self._early.add_done_callback(self._on_early_decision)

    def _on_early_decision(self, task: asyncio.Task[BargeInDecision]) -> None:
        """Words of a sound still going on: act only if they already make it an interruption ("No, I...");
        a fragment ("Oh" of "Oh, okay") waits for the whole sound."""
        if task.cancelled() or task is not self._early or not self._candidate:
            return
        decision = task.result()
        if decision.reason == "words" and is_clear_interruption(decision.text):
            self.decisions.append(decision)
            self._interrupt(self._last_voiced_t, "early words")

    def _false_trigger(self) -> None:
        self._end_candidate()
        self.false_triggers += 1
        self.playback.resume()
        log.info("barge-in false trigger (%.0f ms of voice); playback resumed", self._voiced * 1000)

    def _end_gap(self) -> float:
        return max(CHUNK_SECONDS, self.config.backchannel_end_gap_ms / 1000) - 1e-9

    def _segment_audio(self) -> np.ndarray:
        return np.concatenate([*self._segment, _PAD])

    def _start_decision(self, *, forced: bool = False) -> None:
        assert self.decider is not None
        self._forced = forced
        audio = self._segment_audio()
        span = (self._first_voiced_t or self._last_voiced_t, self._last_voiced_t)
        self._deciding = asyncio.get_running_loop().create_task(self.decider.decide(audio))
        self._deciding.add_done_callback(lambda task: self._on_decision(task, span))

    def _on_decision(self, task: asyncio.Task[BargeInDecision], span: tuple[float, float]) -> None:
        if task.cancelled() or task is not self._deciding:
            return  # the caller spoke again: a newer decision will come
        self._deciding = None
        decision = task.result()
        self.decisions.append(decision)
        if decision.kind is BargeInKind.INTERRUPTION:
            log.info(
                "barge-in: %r is an interruption (%s, %.2f s)",
                decision.text,
                decision.reason,
                decision.decided_in,
            )
            self._interrupt(span[1], decision.reason)
            return
        self._end_candidate()
        self.backchannels += 1
        self.backchannel_spans.append(BackchannelSpan(span[0], span[1], decision.text))
        self.playback.resume()
        log.info(
            "barge-in: %r is a backchannel (%.2f s); playback resumed", decision.text, decision.decided_in
        )
        if self.on_backchannel is not None:
            self.on_backchannel(decision)

    def _end_candidate(self) -> None:
        self._candidate = False
        self._segment = []
        if self._early is not None:
            self._early.cancel()
            self._early = None
        self._decided.set()

    def _interrupt(self, t: float, reason: str) -> None:
        if self._deciding is not None:
            self._deciding.cancel()
            self._deciding = None
        self._end_candidate()
        self.barge_ins += 1
        heard = self.playback.interrupt()
        log.info("barge-in at stream time %.3f (%s); caller heard %r", t, reason, heard[-60:])
        if self.on_barge_in is not None:
            self.on_barge_in(heard)
