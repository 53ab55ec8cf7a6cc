from __future__ import annotations

import numpy as np

from speech.vad import CHUNK_SECONDS, SileroVAD

from .conftest import SpeechClip


def test_speech_and_silence_probabilities_follow_the_true_segments(espeak_clip: SpeechClip) -> None:
    vad = SileroVAD()
    samples = espeak_clip.pcm.astype(np.float32) / 32768
    chunks = []
    for i in range(0, len(samples), 333):  # odd piece size: the wrapper must buffer partial chunks
        chunks += vad.process(samples[i : i + 333], i / 16_000)
    assert len(chunks) == len(samples) // 512
    assert all(abs(c.t - i * CHUNK_SECONDS) < 1e-6 for i, c in enumerate(chunks))

    def mean_prob(a: float, b: float) -> float:
        return float(np.mean([c.probability for c in chunks if a <= c.t and c.t + c.duration <= b]))

    for start, end in espeak_clip.segments:
        assert mean_prob(start + 0.1, end - 0.1) > 0.6
    assert mean_prob(0.0, espeak_clip.segments[0][0] - 0.1) < 0.1
    assert mean_prob(espeak_clip.segments[0][1] + 0.3, espeak_clip.segments[1][0] - 0.1) < 0.2


def test_reset_forgets_state() -> None:
    vad = SileroVAD()
    noise = (np.random.default_rng(0).standard_normal(16_000) * 0.3).astype(np.float32)
    first = [c.probability for c in vad.process(noise, 0.0)]
    vad.reset()
    assert [c.probability for c in vad.process(noise, 0.0)] == first
