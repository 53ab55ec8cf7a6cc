"""The interface every speech-to-text backend implements."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np


@dataclass(frozen=True, slots=True)
class Transcript:
    text: str
    audio_seconds: float
    compute_seconds: float  # time spent inside the model, excluding queueing
    queued_seconds: float = 0.0  # time spent waiting for a free worker


class SpeechToText(Protocol):
    """Transcribes whole utterances of 16 kHz mono float32 audio without blocking the event loop.

    ``partial=True`` marks an interim guess: a backend may return ``None`` instead of queueing it when its
    workers are busy, so partials never delay a final transcript.

    Input: 1-D float audio in [-1, 1] (int16 PCM is also accepted and scaled); other dtypes or shapes raise
    ``ValueError``. Empty or digitally silent audio gives an empty text without a model call.
    """

    sample_rate: int

    async def transcribe(self, audio: np.ndarray, *, partial: bool = False) -> Transcript | None: ...

    async def warm_up(self) -> None:
        """Load the model now instead of on the first call."""
        ...
