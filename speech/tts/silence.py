"""Drops the silence a synthesizer puts before speech, so the caller hears the first word sooner.

Piper (en_US-joe-medium) starts every sentence with 45-80 ms below -40 dBFS and espeak-ng with 10-35 ms;
that silence goes out before the first word and adds straight to the reply's latency. Trimming keeps
``keep_ms`` before the first loud 5 ms window (so a soft onset such as the "h" of "hello" stays whole), and
never trims more than ``max_trim_ms``: a quiet start longer than that is left alone rather than guessed at.
Trailing silence is kept: it is the natural pause before the next sentence.
"""

from __future__ import annotations

import numpy as np

_WINDOW_S = 0.005


class LeadingSilenceTrimmer:
    """Feed one utterance's int16 chunks in order; returns them without the leading silence."""

    def __init__(
        self,
        sample_rate: int,
        threshold_dbfs: float = -50.0,
        keep_ms: float = 10.0,
        max_trim_ms: float = 300.0,
    ) -> None:
        self.window = max(1, int(sample_rate * _WINDOW_S))
        self.keep = int(sample_rate * keep_ms / 1000)
        self.max_trim = int(sample_rate * max_trim_ms / 1000)
        self.threshold = 32768 * 10 ** (threshold_dbfs / 20)
        self._held = np.zeros(0, np.int16)
        self._started = False
        self.trimmed = 0  # samples dropped so far

    def process(self, chunk: np.ndarray) -> np.ndarray:
        if self._started:
            return chunk
        held = np.concatenate([self._held, chunk])
        onset = self._onset(held)
        if onset is None and len(held) < self.max_trim + self.keep:
            self._held = held  # all quiet so far: hold it until speech (or the cap) shows up
            return held[:0]
        self._started = True
        self._held = held[:0]
        cut = 0 if onset is None else max(0, onset - self.keep)
        cut = cut if cut <= self.max_trim else 0  # a long quiet start: leave it alone
        self.trimmed = cut
        return held[cut:]

    def flush(self) -> np.ndarray:
        """What is still held (an utterance that never got loud): returned as is."""
        held, self._held, self._started = self._held, self._held[:0], True
        return held

    def _onset(self, pcm: np.ndarray) -> int | None:
        n = len(pcm) // self.window
        if n == 0:
            return None
        frames = pcm[: n * self.window].astype(np.float64).reshape(n, self.window)
        loud = np.nonzero(np.sqrt((frames**2).mean(axis=1)) > self.threshold)[0]
        return int(loud[0]) * self.window if len(loud) else None


def trim_leading_silence(pcm: np.ndarray, sample_rate: int, **options: float) -> np.ndarray:
    """One whole utterance without its leading silence (see ``LeadingSilenceTrimmer``)."""
    trimmer = LeadingSilenceTrimmer(sample_rate, **options)
    return np.concatenate([trimmer.process(pcm), trimmer.flush()])
