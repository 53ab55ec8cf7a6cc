"""Backchannel or interruption: what the caller's short sound during the agent's speech meant, from its words.

"mm-hm", "okay", "right", "yeah", "uh-huh" or a cough while the agent talks mean "go on"; "wait", "no, I
meant...", or a question mean "stop". The barge-in detector pauses playback at the first sound (so the
agent goes quiet at once either way), collects the sound, and asks ``BackchannelDecider`` once the caller
is quiet again: the segment is transcribed with the shared Whisper and the words are classified.

Classification is deliberately asymmetric: only a short run of acknowledgement words (and a sound with no
words at all: a cough, a breath, a hum) is a backchannel; everything else, including anything with a
question mark, a "no", "wait" or "but", is an interruption. A decision that cannot be made in time
(``decision_timeout_ms``) counts as an interruption: a caller wrongly ignored is worse than a reply cut.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import re
import time
from dataclasses import dataclass

import numpy as np

from speech.config import BargeInConfig
from speech.stt.base import SpeechToText

log = logging.getLogger(__name__)

# Words that, alone or together, acknowledge without taking the turn. Whisper spells hums many ways.
_ACKNOWLEDGEMENT_WORDS = (
    "mm mmm mhm mmhm mmhmm mhmm hmm hm uhhuh uhuh uh huh um umm er erm ah aha oh ooh "
    "yeah yea yep yup yes ya okay ok k alright right sure cool great good nice fine wow true totally "
    "exactly indeed absolutely gotcha see got it i all thanks thank you"
)
_ACKNOWLEDGEMENTS = frozenset(_ACKNOWLEDGEMENT_WORDS.split())
# Pairs that must appear together to count ("i see", "got it", "all right", "thank you").
_NEEDS_PARTNER = {
    "see": "i",
    "i": "see",
    "got": "it",
    "it": "got",
    "all": "right",
    "thank": "you",
    "you": "thank",
}
_MAX_BACKCHANNEL_WORDS = 4
_HUM = re.compile(r"^(m+|m+-?h+m+|m+-?hm+|u+h+-?h+u+h+|h+m+|u+m+|a+h+|o+h+)$")


class BargeInKind(enum.Enum):
    BACKCHANNEL = "backchannel"  # resume the reply where it paused
    INTERRUPTION = "interruption"  # stop the reply; the caller has the turn


@dataclass(frozen=True, slots=True)
class BargeInDecision:
    kind: BargeInKind
    text: str  # what the caller said ("" for a sound without words)
    reason: str  # "words", "no words", "too long", "timeout", "stt failed"
    decided_in: float = 0.0  # seconds from the request to the decision


def _normalise(word: str) -> str:
    return re.sub(r"[^a-z']", "", word.lower().replace("-", ""))


def classify_barge_in(text: str) -> BargeInKind:
    """Backchannel for a short run of acknowledgements ("Mm-hmm.", "Yeah, okay.", "Oh, I see.") or no
    words at all; interruption for anything else (see the module docstring)."""
    if "?" in text:
        return BargeInKind.INTERRUPTION
    words = [w for w in (_normalise(w) for w in text.split()) if w]
    if not words:
        return BargeInKind.BACKCHANNEL  # a cough, a breath, a hum Whisper did not spell out
    if len(words) > _MAX_BACKCHANNEL_WORDS:
        return BargeInKind.INTERRUPTION
    for i, word in enumerate(words):
        if word not in _ACKNOWLEDGEMENTS and not _HUM.match(word):
            return BargeInKind.INTERRUPTION
        partner = _NEEDS_PARTNER.get(word)
        if partner is not None and partner not in words[max(0, i - 1) : i + 2]:
            return BargeInKind.INTERRUPTION  # "I" alone starts a sentence; "see" alone is not "I see"
    return BargeInKind.BACKCHANNEL


# Words that take the turn however the sentence goes on ("No, I...", "Wait", "But...").
_CUE_WORDS = "no nope wait stop hold hang but sorry what why when where how who which excuse actually pardon"
_TURN_TAKING_CUES = frozenset(_CUE_WORDS.split())


def is_clear_interruption(text: str) -> bool:
    """Words of a sound still going on that already make it an interruption whatever follows: a question,
    a turn-taking cue ("no", "wait", "but", "what"), or three words that are not acknowledgements. A
    fragment like "Oh" or "So" is not enough: it may still become "Oh, okay"."""
    if classify_barge_in(text) is not BargeInKind.INTERRUPTION:
        return False
    words = [w for w in (_normalise(w) for w in text.split()) if w]
    if "?" in text or any(w in _TURN_TAKING_CUES for w in words):
        return True
    return sum(w not in _ACKNOWLEDGEMENTS and not _HUM.match(w) for w in words) >= 3


class BackchannelDecider:
    """Transcribes a barge-in segment with the shared STT and classifies it, within a bounded time."""

    def __init__(self, stt: SpeechToText, config: BargeInConfig) -> None:
        self.stt = stt
        self.timeout = config.decision_timeout_ms / 1000

    async def decide(self, audio: np.ndarray) -> BargeInDecision:
        """``audio``: the caller's sound, 16 kHz float32 (int16 accepted), with a little silence around it."""
        started = time.monotonic()
        try:
            result = await asyncio.wait_for(self.stt.transcribe(audio), self.timeout)
        except TimeoutError:
            return BargeInDecision(BargeInKind.INTERRUPTION, "", "timeout", time.monotonic() - started)
        except Exception:
            log.exception("barge-in transcription failed (%.2f s of audio)", len(audio) / 16_000)
            return BargeInDecision(BargeInKind.INTERRUPTION, "", "stt failed", time.monotonic() - started)
        text = result.text.strip() if result is not None else ""
        kind = classify_barge_in(text)
        return BargeInDecision(kind, text, "words" if text else "no words", time.monotonic() - started)
