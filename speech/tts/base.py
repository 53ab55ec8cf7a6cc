"""The interface every text-to-speech backend implements."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol

from speech.frames import AudioFrame


class TextToSpeech(Protocol):
    """Synthesizes text to mono int16 frames at ``sample_rate``, streaming as audio becomes ready.

    Frames carry ``meta["text"]`` (the text they belong to) so playback can tell what was actually spoken.
    Closing the iterator early (or cancelling its consumer) stops synthesis. Text of any length streams:
    synthesis runs at most one piece ahead of the consumer. Text with nothing to pronounce (empty, only
    emoji or punctuation) yields no frames (not an error).
    """

    sample_rate: int

    def synthesize(self, text: str) -> AsyncIterator[AudioFrame]: ...
