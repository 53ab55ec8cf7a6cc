"""Turns streamed model text into speakable text: no Markdown, numbers and symbols in words TTS reads well."""

from __future__ import annotations

import re

_LINK = re.compile(r"\[([^\]]*)\]\([^)]*\)")
_URL = re.compile(r"https?://\S+")
_LIST_MARKER = re.compile(r"(?m)^[ \t]*(?:[-*+•]|\d+[.)])[ \t]+")
_HEADING = re.compile(r"(?m)^[ \t]*#{1,6}[ \t]*")
_EMPHASIS = re.compile(r"\*{1,3}|_{2,3}|`+|~~")
_CURRENCY = re.compile(r"([$€£])\s?(\d+(?:[.,]\d+)*)")
_CURRENCY_WORD = {"$": "dollars", "€": "euros", "£": "pounds"}
_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}\b)")
_PERCENT = re.compile(r"(\d)\s?%")
_RANGE = re.compile(r"(\d)\s?[-–]\s?(\d)")
# A phone number is read digit by digit in its groups ("5 0 3, 5 5 5, 0 1 4 7"), never as a range or amount.
_PHONE = re.compile(r"(?:\+?1[\s.-])?(?:\((\d{3})\)\s?|\b(\d{3})[\s.-])?\b(\d{3})[.-](\d{4})\b")
_NON_SPEECH = re.compile(r"[\U0001F000-\U0001FFFF\u2600-\u27BF\uFE0F]")
_SPACES = re.compile(r"[ \t]*\n+[ \t]*|[ \t]{2,}")


def to_spoken(text: str) -> str:
    """Speakable form of a complete piece of text (keeps leading/trailing spaces for streaming joins)."""
    text = _LINK.sub(r"\1", text)
    text = _URL.sub("the link", text)
    text = _HEADING.sub("", text)
    text = _LIST_MARKER.sub("", text)
    text = _EMPHASIS.sub("", text)
    text = _NON_SPEECH.sub("", text)
    text = _PHONE.sub(_spell_phone, text)
    text = _THOUSANDS.sub("", text)
    text = _CURRENCY.sub(lambda m: f"{m.group(2)} {_CURRENCY_WORD[m.group(1)]}", text)
    text = _PERCENT.sub(r"\1 percent", text)
    text = _RANGE.sub(r"\1 to \2", text)
    text = text.replace("&", " and ").replace("e.g.", "for example").replace("i.e.", "that is")
    return _SPACES.sub(" ", text)


def _spell_phone(m: re.Match[str]) -> str:
    groups = [g for g in m.groups() if g]
    return ", ".join(" ".join(group) for group in groups)


class SpokenTextFilter:
    """Streaming ``to_spoken``: holds text back until a word (and any open link) is complete."""

    def __init__(self) -> None:
        self._buffer = ""
        self._at_line_start = True

    def push(self, delta: str) -> str:
        self._buffer += delta
        cut = max(self._buffer.rfind(" "), self._buffer.rfind("\n"))
        if cut < 0 or self._open_link(self._buffer[:cut]):
            return ""
        ready, self._buffer = self._buffer[: cut + 1], self._buffer[cut + 1 :]
        return self._emit(ready)

    def flush(self) -> str:
        ready, self._buffer = self._buffer, ""
        return self._emit(ready)

    def _emit(self, ready: str) -> str:
        # List/heading markers only count at a line start; keep that state across pushes.
        prefix = "\n" if self._at_line_start else ""
        out = to_spoken(prefix + ready)
        if prefix and out.startswith(" "):
            out = out[1:]
        self._at_line_start = ready.endswith("\n")
        return out

    @staticmethod
    def _open_link(text: str) -> bool:
        return text.count("[") > text.count("]") or (text.count("](") > text.count(")"))
