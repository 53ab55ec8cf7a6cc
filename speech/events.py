"""Events a ``TurnListener`` emits. Times are seconds on the monotonic clock of the incoming audio."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SpeechStarted:
    """The caller started speaking at ``t`` (onset of the first voiced chunk, not the confirmation time)."""

    t: float


@dataclass(frozen=True, slots=True)
class PartialTranscript:
    """Best guess of the words so far in the current turn; ``t`` is the stream time the guess covers up to."""

    text: str
    t: float


@dataclass(frozen=True, slots=True)
class FinalTranscript:
    """Transcript of a finished turn.

    ``speech_end_t`` is when the caller stopped speaking; ``stt_ready_t`` is ``time.monotonic()`` when the
    text was ready, so ``stt_ready_t - speech_end_t`` is the caller-perceived STT delay on live audio.
    """

    text: str
    speech_end_t: float
    stt_ready_t: float
    speech_start_t: float = 0.0
    stt_seconds: float = 0.0  # compute time of the final transcription alone


@dataclass(frozen=True, slots=True)
class SpeculativeTranscript:
    """The caller paused: the words of the turn so far, before the turn is known to have ended.

    ``speech_end_t`` is when the pause began (stream time); ``end_after_s`` is the silence after which this
    pause ends the turn (adaptive end of turn). If the turn ends at this pause, its ``FinalTranscript`` has
    the same text, so a reply may be prepared from here (speculative start); a ``SpeechStarted`` or
    another ``SpeculativeTranscript`` means the caller went on and the preparation must be dropped.
    Nothing may be spoken before the ``FinalTranscript``.
    """

    text: str
    speech_end_t: float
    end_after_s: float


@dataclass(frozen=True, slots=True)
class SpeechStopped:
    """End of turn: the caller has been silent for the configured end-of-turn time since ``t``."""

    t: float


ListenerEvent = SpeechStarted | PartialTranscript | SpeculativeTranscript | FinalTranscript | SpeechStopped
