"""Sentence boundaries: of retrieved passages (evidence is chosen sentence by sentence) and of a model's
streamed text (each sentence is checked before it is spoken)."""

from __future__ import annotations

import itertools
import re

# Abbreviations after which a full stop does not end a sentence when a capitalised word follows
# ("Dr. Okafor"); after "a.m." / "p.m." a capital does start a new sentence.
_TITLES = ("dr", "mr", "mrs", "ms", "st", "prof", "no", "vs", "approx", "ave", "e.g", "i.e", "etc", "inc")
_BOUNDARY = re.compile(r"(?<=[.!?])[\"')\]]*\s+(?=[\"'(\[]?[A-Z0-9$€£])|\n+")
_LIST_MARKER = re.compile(r"^\s*(?:[-*+•]|\d+[.)])\s+")
_MARKUP = re.compile(r"\*{1,3}|_{2,3}|`+|~~|^#{1,6}\s*")


def _ends_with_title(text: str) -> bool:
    tail = text.rstrip().rstrip(".").rsplit(None, 1)
    return bool(tail) and tail[-1].lower().lstrip("(") in _TITLES


def clean(sentence: str) -> str:
    """A sentence without list markers and Markdown emphasis, whitespace collapsed."""
    sentence = _LIST_MARKER.sub("", sentence.strip())
    return re.sub(r"\s+", " ", _MARKUP.sub("", sentence)).strip()


def _cuts(text: str) -> list[int]:
    """Offsets where a new sentence starts in ``text`` (after a boundary that is not a title's full stop)."""
    cuts = []
    for match in _BOUNDARY.finditer(text):
        if "\n" in match.group(0) or not _ends_with_title(text[: match.start()]):
            cuts.append(match.end())
    return cuts


def split_sentences(text: str) -> list[str]:
    """Sentences of a passage; paragraph and line breaks (list items) always end one."""
    edges = [0, *_cuts(text), len(text)]
    return [s for a, b in itertools.pairwise(edges) if (s := clean(text[a:b]))]


class SentenceBuffer:
    """Collects streamed text and hands out complete sentences (the last one only on ``flush``)."""

    def __init__(self) -> None:
        self._text = ""

    def push(self, delta: str) -> list[str]:
        self._text += delta
        cuts = _cuts(self._text)
        if not cuts:
            return []
        done, self._text = self._text[: cuts[-1]], self._text[cuts[-1] :]
        return split_sentences(done)

    def flush(self) -> list[str]:
        rest, self._text = self._text, ""
        return split_sentences(rest)
