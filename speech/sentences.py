"""SentenceAggregator: LLM token deltas in, speakable sentences out, each as soon as it is complete.

TTS sounds natural per sentence and can start on the first sentence while the LLM is still writing the
rest. A sentence ends at ``.``, ``!``, ``?`` (or a newline) followed by whitespace; waiting for that
whitespace is what keeps decimals (``3.14``), URLs (``example.com/a``) and ``e.g.x`` whole, at the cost of
one more token. Known abbreviations (``Dr.``, ``Mr.``, ``e.g.``) and initials (``J.``) never end a
sentence. When no sentence end comes for ``max_chars``, the text is cut at the last clause break
(comma, semicolon, colon, dash) within ``max_chars`` so a long run-on reply does not delay speech.

The first chunk of a reply is cut earlier, because the caller is waiting for it and TTS time grows with
its length: at the first clause break after ``first_clause_words`` words, or, with no punctuation, after
``first_chunk_words`` words (before a conjunction or preposition when there is one, so the seam falls
between phrases). Later chunks are whole sentences, which sound more natural.
"""

from __future__ import annotations

import re
import unicodedata

# Never sentence ends: titles precede a name, and "e.g."/"i.e." are always followed by more words.
_TITLES = ("mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "mt", "vs", "no", "vol", "fig", "dept", "est")
_LATIN = ("e.g", "i.e", "eg", "ie", "approx", "etc")
_MONTHS = ("jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec")
_OTHER = ("inc", "ltd", "co", "a.m", "p.m", "u.s", "u.k")
_ABBREVIATIONS = frozenset(_TITLES + _LATIN + _MONTHS + _OTHER)
# "etc." and the like end a sentence when a capitalised word follows.
_SOFT_ABBREVIATIONS = frozenset({"etc", "inc", "ltd", "co", "a.m", "p.m", "u.s", "u.k"})
_END = re.compile(r"([.!?]+|…)[\"')\]]*(?=\s)|\n")
_CLAUSE = re.compile(r"[,;:]\s|\s[-–—]\s")
_WORD = re.compile(r"\S+")
# Words that start a phrase: cutting just before one keeps each half speakable on its own.
_PHRASE_STARTS = frozenset(
    [
        "and",
        "but",
        "or",
        "so",
        "because",
        "for",
        "to",
        "on",
        "in",
        "at",
        "with",
        "from",
        "of",
        "by",
        "about",
        "which",
        "that",
        "when",
        "if",
        "while",
        "after",
        "before",
    ]
)


class SentenceAggregator:
    """Accumulates text deltas; ``push`` returns completed sentences, ``flush`` the remainder."""

    def __init__(
        self,
        max_chars: int = 150,
        min_clause_chars: int = 40,
        *,
        first_clause_words: int = 4,
        first_chunk_words: int = 8,
    ) -> None:
        """``first_chunk_words=0`` turns the early first cut off (every chunk a whole sentence)."""
        self.max_chars = max_chars
        self.min_clause_chars = min_clause_chars
        self.first_clause_words = first_clause_words
        self.first_chunk_words = first_chunk_words
        self._buffer = ""
        self._scan_from = 0  # positions before this were already rejected as sentence ends
        self._first = True  # no chunk of this reply went out yet

    def push(self, delta: str) -> list[str]:
        self._buffer += delta
        sentences: list[str] = []
        while (cut := self._next_cut()) is not None:
            sentence, self._buffer = self._buffer[:cut].strip(), self._buffer[cut:]
            self._scan_from = 0
            if sentence:
                sentences.append(sentence)
                self._first = False
        return sentences

    def flush(self) -> list[str]:
        """Return whatever is left (end of the reply), as at most one sentence; the next push starts a reply."""
        rest, self._buffer, self._scan_from, self._first = self._buffer.strip(), "", 0, True
        return [rest] if rest else []

    def _next_cut(self) -> int | None:
        cut = self._sentence_end()
        if self._first and self.first_chunk_words > 0:
            early = self._first_chunk_cut()
            if early is not None and (cut is None or early < cut):
                return early
        if cut is None and len(self._buffer.strip()) >= self.max_chars:
            return self._clause_cut()
        return cut

    def _sentence_end(self) -> int | None:
        for match in _END.finditer(self._buffer, self._scan_from):
            decision = self._is_sentence_end(match)
            if decision is None:
                return None  # need to see the next word first
            if decision:
                return match.end()
            self._scan_from = match.end()
        return None

    def _first_chunk_cut(self) -> int | None:
        words: list[re.Match[str]] = []
        for word in _WORD.finditer(self._buffer):
            words.append(word)
            if len(words) > self.first_chunk_words:
                break  # the cut falls at or before this word: no need to look further
        horizon = words[-1].start() if len(words) > self.first_chunk_words else len(self._buffer)
        for clause in _CLAUSE.finditer(self._buffer, 0, horizon):
            if sum(1 for w in words if w.start() <= clause.start()) >= self.first_clause_words:
                return clause.end()
        if len(words) <= self.first_chunk_words:
            return None  # a sentence end may still come in time
        for i in range(self.first_clause_words, self.first_chunk_words):
            if words[i].group(0).lower() in _PHRASE_STARTS:
                return words[i].start()
        return words[self.first_chunk_words].start()

    def _is_sentence_end(self, match: re.Match[str]) -> bool | None:
        if match.group(0) == "\n" or not match.group(0).startswith("."):
            return True
        word = (
            self._buffer[: match.start()].rsplit(None, 1)[-1] if self._buffer[: match.start()].strip() else ""
        )
        word = word.lstrip("(\"'").lower()
        if len(word) == 1 and word.isalpha():
            return False  # an initial, as in "J. R. R. Tolkien"
        if word not in _ABBREVIATIONS:
            return True
        if word not in _SOFT_ABBREVIATIONS:
            return False
        following = self._buffer[match.end() :].lstrip()
        if not following:
            return None
        return following[0].isupper()

    def _clause_cut(self) -> int | None:
        # Look only within max_chars: a long text pushed at once must not come out as one huge chunk.
        limit = self.max_chars + len(self._buffer) - len(self._buffer.lstrip())
        cuts = [m.end() for m in _CLAUSE.finditer(self._buffer, 0, limit) if m.end() >= self.min_clause_chars]
        if cuts:
            return cuts[-1]
        # No clause break at all: cut at the last word boundary so speech can start anyway.
        space = self._buffer.rfind(" ", 0, limit)
        if space >= self.min_clause_chars:
            return space
        # One "word" longer than max_chars (a URL, garbage): cut it rather than buffer it without bound.
        return limit if len(self._buffer) >= 2 * limit else None


def split_for_speech(text: str, max_chars: int = 150) -> list[str]:
    """Split a whole text into the pieces TTS should synthesize one at a time: a short first piece (see
    ``SentenceAggregator``), then sentences of at most ``max_chars``. Emoji and other pictographs are
    removed (a synthesizer either skips them or reads out their names), and pieces with nothing left to
    pronounce are dropped, so a text of only emoji or punctuation gives an empty list."""
    aggregator = SentenceAggregator(max_chars=max_chars)
    pieces = aggregator.push(text) + aggregator.flush()
    spoken = (" ".join("".join(ch for ch in p if unicodedata.category(ch) != "So").split()) for p in pieces)
    return [p for p in spoken if any(ch.isalnum() for ch in p)]
