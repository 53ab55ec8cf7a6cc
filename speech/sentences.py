"""SentenceAggregator: LLM token deltas in, speakable sentences out, each as soon as it is complete.

TTS sounds natural per sentence and can start on the first sentence while the LLM is still writing the
rest. A sentence ends at ``.``, ``!``, ``?`` (or a newline) followed by whitespace; waiting for that
whitespace is what keeps decimals (``3.14``), URLs (``example.com/a``) and ``e.g.x`` whole, at the cost of
one more token. Known abbreviations (``Dr.``, ``Mr.``, ``e.g.``) and initials (``J.``) never end a
sentence. When no sentence end comes for ``max_chars``, the text is cut at the last clause break
(comma, semicolon, colon, dash) so a long run-on reply does not delay speech.
"""

from __future__ import annotations

import re

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


class SentenceAggregator:
    """Accumulates text deltas; ``push`` returns completed sentences, ``flush`` the remainder."""

    def __init__(self, max_chars: int = 150, min_clause_chars: int = 40) -> None:
        self.max_chars = max_chars
        self.min_clause_chars = min_clause_chars
        self._buffer = ""
        self._scan_from = 0  # positions before this were already rejected as sentence ends

    def push(self, delta: str) -> list[str]:
        self._buffer += delta
        sentences: list[str] = []
        while (cut := self._next_cut()) is not None:
            sentence, self._buffer = self._buffer[:cut].strip(), self._buffer[cut:]
            self._scan_from = 0
            if sentence:
                sentences.append(sentence)
        return sentences

    def flush(self) -> list[str]:
        """Return whatever is left (end of the reply), as at most one sentence."""
        rest, self._buffer, self._scan_from = self._buffer.strip(), "", 0
        return [rest] if rest else []

    def _next_cut(self) -> int | None:
        for match in _END.finditer(self._buffer, self._scan_from):
            decision = self._is_sentence_end(match)
            if decision is None:
                return None  # need to see the next word first
            if decision:
                return match.end()
            self._scan_from = match.end()
        if len(self._buffer.strip()) >= self.max_chars:
            return self._clause_cut()
        return None

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
        cuts = [m.end() for m in _CLAUSE.finditer(self._buffer) if m.end() >= self.min_clause_chars]
        if cuts:
            return cuts[-1]
        # No clause break at all: cut at the last word boundary so speech can start anyway.
        space = self._buffer.rstrip().rfind(" ")
        return space if space >= self.min_clause_chars else None
