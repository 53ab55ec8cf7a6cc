"""The interface every text-to-speech backend implements."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol

from speech.frames import AudioFrame


class TextToSpeech(Protocol):
    """Synthesizes text to mono int16 frames at ``sample_rate``, streaming as audio becomes ready.

    Frames carry ``meta["text"]`` (the text they belong to) so playback can tell what was actually spoken.
    Closing the iterator early (or cancelling its consumer) stops synthesis.
    """

    sample_rate: int

    def synthesize(self, text: str) -> AsyncIterator[AudioFrame]: ...
