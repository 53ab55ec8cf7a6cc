"""Adaptive end of turn: how long a silence ends the caller's turn, given the words said so far.

A fixed silence is a bad compromise: long enough to wait through "I'd like to book a table for... four",
it makes every complete question wait too; short enough to answer quickly, it cuts callers off at every
hesitation. The speculative transcript of the turn so far (ready a little after the silence starts) says
which case this is:

- ``QUESTION``: ends with ``?`` -> the shortest silence (a question hands the turn over);
- ``STATEMENT``: ends with ``.``/``!`` -> a middle one (callers often add a sentence after a statement);
- ``INCOMPLETE``: a trailing conjunction, filler, preposition, article or auxiliary ("and", "so", "um",
  "for", "the", "is"), or Whisper's own trailing comma, dash or ellipsis, or a last sentence that is only a
  dependent clause ("If I leave my laptop with you.") -> the long silence;
  A voiced turn with no words at all (a lone "um") counts as incomplete too;
- ``UNKNOWN``: no punctuation to go by -> ``unknown_silence_ms``.

Until the words are known the turn can end only after ``words_timeout_ms`` of silence, so a busy machine
delays the decision but never cuts a caller off before their words were read.

Word lists and silences were tuned on the tuning split of ``bench/turns.py`` (synthesized voices and
sentences apart from the held-out ones) and are reported on the held-out split.
"""

from __future__ import annotations

import enum
import re

from speech.config import EndOfTurnConfig

# A turn rarely ends on these words: a clause or a phrase is still open.
_CONJUNCTIONS = (
    "and or but so because cause cuz then if when while although though unless until since whereas "
    "plus nor than whether"
)
_FILLERS = "um uh uhm umm er erm ah hmm mm like"
_PREPOSITIONS = (
    "to for of at in on with from by about into onto over under between after before during without "
    "through via per as towards"
)
_DETERMINERS = "the a an my your our their his its this these those some any every each another which whose"
_AUXILIARIES = "is are was were am be been being have has had will would can could should shall may might must do does did i'm i've i'd i'll we're"
_PRONOUN_SUBJECTS = "i we they he she"
_CONTINUATION_WORDS = frozenset(
    f"{_CONJUNCTIONS} {_FILLERS} {_PREPOSITIONS} {_DETERMINERS} {_AUXILIARIES} {_PRONOUN_SUBJECTS}".split()
)
# Two-word endings that leave the sentence open ("I mean", "you know", "kind of", "such as").
_CONTINUATION_PAIRS = frozenset(
    {
        ("i", "mean"),
        ("you", "know"),
        ("kind", "of"),
        ("sort", "of"),
        ("such", "as"),
        ("and", "then"),
        ("so", "that"),
        ("in", "order"),
        ("as", "well"),
        ("let", "me"),
        ("i", "think"),
        ("i", "want"),
        ("i", "need"),
        ("want", "to"),
        ("need", "to"),
        ("going", "to"),
        ("like", "to"),
    }
)
# A sentence that is only a dependent clause waits for its main clause: "If I leave my laptop with you." is
# how Whisper writes "If I leave my laptop with you, | when will it be ready?" cut at the comma's pause.
# "When", "once", "after", "before" count only before a subject ("when I get there", "once you refund me"),
# not as a question word ("when do you open") or on their own ("once a week", "after lunch").
_DEPENDENT_OPENING = re.compile(
    r"^(?:(?:and|so|but|um|uh|well|okay|ok)\W+)*(?:if|unless|although|though|even if|even though|whenever|"
    r"(?:when|once|after|before|as soon as) (?:i|we|you|my|our|your|the|it|they|he|she))\b",
    re.IGNORECASE,
)
_DEPENDENT_MIN_WORDS = 4  # "If you can." and "If possible." are whole replies
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_OPEN_PUNCTUATION = re.compile(r"(,|;|:|-|–|—|\.\.\.|…)\s*$")
_CLOSED_PUNCTUATION = re.compile(r"[.!]['\")\]]*\s*$")
_QUESTION = re.compile(r"\?['\")\]]*\s*$")
_WORD = re.compile(r"[a-z0-9']+")


class Completeness(enum.Enum):
    QUESTION = "question"
    STATEMENT = "statement"
    INCOMPLETE = "incomplete"
    UNKNOWN = "unknown"


def completeness(text: str) -> Completeness:
    """How finished the words of a turn so far sound (see the module docstring)."""
    stripped = text.strip()
    words = _WORD.findall(stripped.lower().replace("’", "'"))
    if not words:
        return Completeness.INCOMPLETE  # voiced but no words yet: "um", "uh", a breath before speaking
    if _OPEN_PUNCTUATION.search(stripped):
        return Completeness.INCOMPLETE
    # Before the question mark: Whisper writes "Can I book a table for?" for a caller who paused after "for".
    if words[-1] in _CONTINUATION_WORDS or tuple(words[-2:]) in _CONTINUATION_PAIRS:
        return Completeness.INCOMPLETE
    if _QUESTION.search(stripped):
        return Completeness.QUESTION
    last_sentence = _SENTENCE_END.split(stripped)[-1]
    if (
        _DEPENDENT_OPENING.match(last_sentence)
        and "," not in last_sentence
        and len(_WORD.findall(last_sentence.lower())) >= _DEPENDENT_MIN_WORDS
    ):
        return Completeness.INCOMPLETE
    if _CLOSED_PUNCTUATION.search(stripped):
        return Completeness.STATEMENT
    return Completeness.UNKNOWN


class EndOfTurnPolicy:
    """Maps the speculative transcript of a pause to the silence that ends the turn there."""

    def __init__(self, config: EndOfTurnConfig, default_silence_ms: int) -> None:
        self.config = config
        self.default = default_silence_ms / 1000  # the fixed silence when not adaptive

    @property
    def adaptive(self) -> bool:
        return self.config.adaptive

    @property
    def transcribe_after(self) -> float:
        """Seconds of silence after which the speculative transcript (and with it the decision) starts."""
        return self.config.speculative_after_ms / 1000

    @property
    def words_timeout(self) -> float:
        """Silence after which the turn ends although its words are not known yet (adaptive only)."""
        return self.config.words_timeout_ms / 1000 if self.adaptive else self.default

    def silence_for(self, text: str | None) -> float:
        """Silence (seconds) that ends the turn after these words; ``None`` (not known yet) waits up to
        ``words_timeout``."""
        if not self.config.adaptive:
            return self.default
        if text is None:
            return self.words_timeout
        ms = {
            Completeness.QUESTION: self.config.question_silence_ms,
            Completeness.STATEMENT: self.config.statement_silence_ms,
            Completeness.INCOMPLETE: self.config.incomplete_silence_ms,
            Completeness.UNKNOWN: self.config.unknown_silence_ms,
        }[completeness(text)]
        return ms / 1000
