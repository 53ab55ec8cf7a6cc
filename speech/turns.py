"""End-of-turn detection: turns per-chunk VAD probabilities into speech-start and speech-end events.

Hysteresis (enter at ``threshold``, leave below ``threshold - 0.15``) keeps one noisy chunk from
flipping the state. A start is only reported once ``min_speech_ms`` of voiced audio accumulated, so
clicks and coughs never open a turn; its time is the onset of the first voiced chunk, so turn
boundaries stay accurate. The end is reported after ``end_of_turn_silence_ms`` of silence, with the
time the silence began, unless ``require_silence`` set another length for the current silence (adaptive end
of turn: the listener sets it from the words of the turn so far, see ``speech.endpointing``).
"""

from __future__ import annotations

from dataclasses import dataclass

from speech.config import VADConfig
from speech.vad import VadChunk

_HYSTERESIS = 0.15
# A candidate that has not yet reached min_speech is dropped after this much silence, so a click followed
# later by real speech does not drag the turn's onset back to the click.
_CANDIDATE_GAP_SECONDS = 0.15


@dataclass(frozen=True, slots=True)
class TurnStart:
    t: float  # onset of speech
    confirmed_t: float  # stream time at which min_speech_ms was reached


@dataclass(frozen=True, slots=True)
class TurnEnd:
    t: float  # when speech stopped
    detected_t: float  # stream time at which the silence was long enough


TurnEvent = TurnStart | TurnEnd


class EndOfTurnDetector:
    """Stateful turn detector for one stream; feed it ``VadChunk``s in order."""

    def __init__(self, config: VADConfig, *, end_silence: float | None = None) -> None:
        """``end_silence`` (seconds) overrides ``config.end_of_turn_silence_ms`` as the default wait."""
        self.threshold = config.threshold
        self.min_speech = config.min_speech_ms / 1000
        self.end_silence = config.end_of_turn_silence_ms / 1000 if end_silence is None else end_silence
        self.in_turn = False
        self._voiced = False
        self._onset: float | None = None  # first voiced chunk of a candidate or open turn
        self._voiced_seconds = 0.0
        self._silence_start: float | None = None
        self._required: float | None = None  # silence that ends the turn in the current pause, if decided

    @property
    def silence_start(self) -> float | None:
        """Start of the current silence inside an open turn (None while voiced or outside a turn)."""
        return self._silence_start if self.in_turn else None

    def require_silence(self, seconds: float) -> None:
        """End the turn after ``seconds`` of silence in the current pause (back to the default at the next
        voiced chunk). Takes effect at the next chunk, also when the silence is already that long."""
        if self._silence_start is not None:
            self._required = seconds

    def update(self, chunk: VadChunk) -> list[TurnEvent]:
        self._voiced = self._is_voiced(chunk.probability)
        chunk_end = chunk.t + chunk.duration
        if self._voiced:
            return self._on_voiced(chunk, chunk_end)
        return self._on_silent(chunk, chunk_end)

    def _is_voiced(self, probability: float) -> bool:
        limit = self.threshold - _HYSTERESIS if self._voiced else self.threshold
        return probability >= limit

    def _on_voiced(self, chunk: VadChunk, chunk_end: float) -> list[TurnEvent]:
        self._silence_start = None
        self._required = None
        if self._onset is None:
            self._onset = chunk.t
        self._voiced_seconds += chunk.duration
        if not self.in_turn and self._voiced_seconds >= self.min_speech - 1e-9:
            self.in_turn = True
            return [TurnStart(self._onset, chunk_end)]
        return []

    def _on_silent(self, chunk: VadChunk, chunk_end: float) -> list[TurnEvent]:
        if self._onset is None:
            return []
        if self._silence_start is None:
            self._silence_start = chunk.t
        silence = chunk_end - self._silence_start
        if not self.in_turn and silence >= min(_CANDIDATE_GAP_SECONDS, self.end_silence) - 1e-9:
            self._reset_candidate()
            return []
        if silence < (self.end_silence if self._required is None else self._required) - 1e-9:
            return []
        speech_end = self._silence_start
        was_turn = self.in_turn
        self._reset_candidate()
        # A candidate that never reached min_speech (a click, a cough) is dropped silently.
        return [TurnEnd(speech_end, chunk_end)] if was_turn else []

    def _reset_candidate(self) -> None:
        self.in_turn = False
        self._onset = None
        self._voiced_seconds = 0.0
        self._silence_start = None
        self._required = None
