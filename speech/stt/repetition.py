"""Collapses Whisper's repetition loops ("Goodbye. Goodbye. Goodbye. ...") to one copy of the repeated words.

Whisper tiny.en sometimes decodes a short clip as its words repeated until the token limit: on one-word
Piper/espeak-ng clips with 0.3 s of silence around them about 1 in 30 came back that way, and so did two
real human recordings ("10 of clubs" six times, "5" nineteen times). Decoding with a mild repetition
penalty prevents nearly all of them (``STTConfig.repetition_penalty``); this text filter is the safety net
for whatever still slips through (a loop of a longer phrase, a penalty turned off by configuration).

A loop is a run of at least ``min_repeats`` consecutive copies of the same unit of 1-12 words, compared
without case and punctuation; the last copy may be cut short (the token limit ends a loop mid-unit) and counts when it holds more than
half of the unit.
Two copies are left alone: "no, no" and "bye bye" are how people speak.
"""

from __future__ import annotations

import re

_WORD = re.compile(r"\S+")
_MAX_UNIT_WORDS = 12


def _key(word: str) -> str:
    return re.sub(r"[^\w']", "", word.lower())


def collapse_repetitions(text: str, min_repeats: int = 3) -> str:
    """Return ``text`` with every loop of ``min_repeats`` or more copies of a unit reduced to one copy."""
    words = _WORD.findall(text)
    keys = [_key(w) for w in words]
    out: list[str] = []
    i = 0
    while i < len(words):
        unit, copies = _loop_at(keys, i, min_repeats)
        if copies:
            kept = words[i : i + unit]
            out.extend(kept[:-1] + [_close(kept[-1], words[min(len(words), i + copies) - 1])])
            i += copies
        else:
            out.append(words[i])
            i += 1
    return " ".join(out)


def _loop_at(keys: list[str], i: int, min_repeats: int) -> tuple[int, int]:
    """(unit length, words covered by the loop) of the shortest looping unit starting at ``i``; (0, 0) if none."""
    for unit in range(1, _MAX_UNIT_WORDS + 1):
        pattern = keys[i : i + unit]
        if len(pattern) < unit or not all(pattern):
            break
        n = i + unit
        full = 1
        while keys[n : n + unit] == pattern:
            full += 1
            n += unit
        tail = 0
        while n + tail < len(keys) and tail < unit - 1 and keys[n + tail] == pattern[tail]:
            tail += 1
        if full + (2 * tail > unit) >= min_repeats:
            return unit, n + tail - i
    return 0, 0


def _close(last_kept: str, last_of_loop: str) -> str:
    """Keep the punctuation the loop ended with when it ended a sentence ("Goodbye. Goodbye." -> "Goodbye.")."""
    if last_of_loop[-1:] in ".!?" and last_kept[-1:] not in ".!?":
        return last_kept.rstrip(",;:") + last_of_loop[-1]
    return last_kept
