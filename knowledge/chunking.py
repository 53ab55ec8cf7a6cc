"""Split a parsed document into chunks: by heading sections, then paragraphs, then sentences, with overlap.

Token counts are approximate (words and punctuation), which stays under the WordPiece count the embedder
sees for ordinary prose; the embedder truncates anything longer at 256 WordPiece tokens.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from knowledge.parsers import ParsedDocument

_TOKEN = re.compile(r"\w+|[^\w\s]")
_SENTENCE = re.compile(r"(?<=[.!?;:])\s+")


def count_tokens(text: str) -> int:
    return len(_TOKEN.findall(text))


@dataclass(frozen=True)
class Chunk:
    ordinal: int
    text: str
    heading: str | None

    @property
    def embedding_text(self) -> str:
        return f"{self.heading}\n{self.text}" if self.heading else self.text


def chunk_document(
    doc: ParsedDocument,
    max_tokens: int = 200,
    overlap_tokens: int = 30,
    counter: Callable[[str], int] = count_tokens,
) -> list[Chunk]:
    """Chunks never cross a heading; inside a section consecutive chunks share ~``overlap_tokens``."""
    overlap_tokens = min(overlap_tokens, max_tokens // 2)
    chunks: list[Chunk] = []
    for section in doc.sections:
        pieces = [p for para in section.paragraphs for p in _split(para, max_tokens, counter)]
        for text in _pack(pieces, max_tokens, overlap_tokens, counter):
            chunks.append(Chunk(len(chunks), text, section.heading))
    return chunks


def _split(paragraph: str, max_tokens: int, counter: Callable[[str], int]) -> list[str]:
    """A paragraph as pieces of at most ``max_tokens``: whole, else sentences, else word windows."""
    if counter(paragraph) <= max_tokens:
        return [paragraph]
    out: list[str] = []
    for sentence in _SENTENCE.split(paragraph):
        if counter(sentence) <= max_tokens:
            out.append(sentence)
            continue
        words = sentence.split()
        step = max(1, max_tokens * 2 // 3)  # words are ~1.3 tokens once punctuation is counted
        out.extend(" ".join(words[i : i + step]) for i in range(0, len(words), step))
    return out


def _pack(pieces: list[str], max_tokens: int, overlap: int, counter: Callable[[str], int]) -> list[str]:
    chunks: list[str] = []
    current: list[str] = []
    size = 0
    fresh = 0  # tokens in `current` not carried over from the previous chunk
    for piece in pieces:
        n = counter(piece)
        if current and size + n > max_tokens:
            chunks.append("\n\n".join(current))
            current, size = _tail(current, overlap, max_tokens - n, counter)
            fresh = 0
        current.append(piece)
        size += n
        fresh += n
    if current and fresh:
        chunks.append("\n\n".join(current))
    return chunks


def _tail(pieces: list[str], overlap: int, room: int, counter: Callable[[str], int]) -> tuple[list[str], int]:
    """The trailing pieces (whole sentences) of the last chunk that fit in the overlap budget."""
    tail: list[str] = []
    size = 0
    for piece in reversed(pieces):
        sentences = _SENTENCE.split(piece)
        for sentence in reversed(sentences):
            n = counter(sentence)
            if size + n > min(overlap, room):
                return tail, size
            tail.insert(0, sentence)
            size += n
    return tail, size
