"""The structure of a PDF's text from its layout: headings and paragraphs, not one run of lines per page.

``pypdf``'s plain extraction gives a page as lines with no blank line between paragraphs, so a heading ends
up glued to the sentence after it ("Billing Monthly plans are charged ...") and the agent reads it aloud.
Each text run's position and font tell more: a line set larger than the body text, or in bold, that does not
end like a sentence is a heading; a vertical gap wider than the usual line spacing ends a paragraph; a
paragraph that does not end like a sentence at the bottom of a page goes on at the top of the next.
"""

from __future__ import annotations

import itertools
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

_SENTENCE_END = (".", "!", "?", ":", ";")
_HEADING_MAX_WORDS = 14
_PARAGRAPH_GAP = 1.4  # x the usual line spacing
_WIDEST_LINE_SPACING = 1.6  # x the font size: line spacing beyond this is a gap between paragraphs
_LARGER = 1.08  # x the body text size


@dataclass
class Line:
    text: str
    y: float
    size: float
    bold: bool


@dataclass
class Block:
    """A heading or a paragraph, in reading order."""

    text: str
    heading: bool = False
    lines: list[str] = field(default_factory=list)


def page_lines(page: Any) -> list[Line]:
    """The page's lines, top to bottom, from ``pypdf``'s text visitor (runs on one baseline are one line)."""
    runs: list[tuple[str, float, float, bool]] = []

    def visit(text: str, cm: list[float], tm: list[float], font: Any, size: float) -> None:
        if not text.strip():
            return
        y = cm[1] * tm[4] + cm[3] * tm[5] + cm[5]
        scale = (tm[2] ** 2 + tm[3] ** 2) ** 0.5 * ((cm[2] ** 2 + cm[3] ** 2) ** 0.5 or 1.0)
        name = str(font.get("/BaseFont", "")) if font else ""
        runs.append((text, round(y, 1), size * (scale or 1.0), "bold" in name.lower()))

    page.extract_text(visitor_text=visit)
    lines: list[Line] = []
    for text, y, size, bold in runs:
        for part in text.split("\n"):
            if not part.strip():
                continue
            if lines and abs(lines[-1].y - y) < 0.5 * size:  # the same baseline: one line
                last = lines[-1]
                last.text = f"{last.text.rstrip()} {part.strip()}"
                last.size = max(last.size, size)
                last.bold = last.bold and bold
            else:
                lines.append(Line(part.strip(), y, size, bold))
    return lines


def blocks(pages: list[list[Line]]) -> list[Block]:
    """Headings and paragraphs of a document given as its pages' lines."""
    every = [line for page in pages for line in page]
    if not every:
        return []
    body = Counter(round(line.size, 1) for line in every for _ in line.text).most_common(1)[0][0]
    out: list[Block] = []
    for page in pages:
        spacing = _usual_spacing(page, body)
        previous: Line | None = None
        for line in page:
            if _is_heading(line, body):
                out.append(Block(line.text, heading=True))
            elif _continues(out, previous, line, spacing):
                out[-1].lines.append(line.text)
            else:
                out.append(Block("", lines=[line.text]))
            previous = line
    for block in out:
        if not block.heading:
            block.text = _join(block.lines)
    return [b for b in out if b.text]


def _usual_spacing(page: list[Line], body: float) -> float:
    """The line spacing inside a paragraph: the smallest gap between two consecutive body lines."""
    gaps = [
        a.y - b.y
        for a, b in itertools.pairwise(page)
        if a.y - b.y > 0 and not _is_heading(a, body) and not _is_heading(b, body)
    ]
    return min(gaps, default=0.0)


def _is_heading(line: Line, body: float) -> bool:
    stands_out = line.size > body * _LARGER or line.bold
    return (
        stands_out and not line.text.endswith(_SENTENCE_END) and len(line.text.split()) <= _HEADING_MAX_WORDS
    )


def _continues(out: list[Block], previous: Line | None, line: Line, spacing: float) -> bool:
    """Does ``line`` go on with the paragraph before it?"""
    if not out or out[-1].heading:
        return False
    unfinished = not out[-1].lines[-1].endswith(_SENTENCE_END)
    if previous is None:  # top of a page: only an unfinished sentence goes on
        return unfinished
    gap = previous.y - line.y
    if gap <= 0:
        return False
    # Wider than the usual spacing, or wider than any single spacing (a page of one-line paragraphs has no
    # usual spacing to go by), ends the paragraph, unless a sentence plainly runs on (double spacing).
    wide = gap > min(spacing * _PARAGRAPH_GAP if spacing else gap, line.size * _WIDEST_LINE_SPACING)
    return not wide or (unfinished and line.text[:1].islower())


def _join(lines: list[str]) -> str:
    text = ""
    for line in lines:
        if text.endswith("-") and line[:1].islower():  # a word broken at its hyphen: "out-of-" + "hours"
            text += line
        else:
            text = f"{text} {line}" if text else line
    return re.sub(r"\s+", " ", text).strip()
