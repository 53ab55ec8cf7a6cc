"""One-line harness pieces for speech tests: frame slicing, a fake STT, text normalisation for WER."""

from __future__ import annotations

import re
from collections.abc import Iterator

import numpy as np

from speech.frames import AudioFrame
from speech.stt.base import Transcript


def frames(pcm: np.ndarray, rate: int, frame_ms: int = 20, t0: float = 100.0) -> Iterator[AudioFrame]:
    step = rate * frame_ms // 1000
    for i in range(0, len(pcm), step):
        yield AudioFrame(pcm[i : i + step], rate, t0 + i / rate)


def normalize(text: str) -> str:
    words = re.sub(r"[^a-z0-9' ]", " ", text.lower()).split()
    numbers = {"1": "one", "2": "two", "3": "three", "9": "nine", "10": "ten"}
    return " ".join(numbers.get(w, w) for w in words)


class FakeSTT:
    """Deterministic STT: returns ``text`` and records the audio lengths it was asked to transcribe."""

    sample_rate = 16_000

    def __init__(self, text: str = "hello") -> None:
        self.text = text
        self.calls: list[tuple[float, bool]] = []

    async def transcribe(self, audio: np.ndarray, *, partial: bool = False) -> Transcript | None:
        self.calls.append((len(audio) / self.sample_rate, partial))
        return Transcript(self.text, len(audio) / self.sample_rate, 0.0)

    async def warm_up(self) -> None:
        return None
