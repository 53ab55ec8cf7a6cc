from __future__ import annotations

import numpy as np
import pytest

from speech.frames import AudioFrame
from speech.resample import Resampler, resample_array

RATES = [8_000, 16_000, 22_050, 24_000, 48_000]


def tone(rate: int, seconds: float = 0.5, hz: float = 440.0) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return (np.sin(2 * np.pi * hz * t) * 10_000).astype(np.int16)


@pytest.mark.parametrize("src", RATES)
@pytest.mark.parametrize("dst", RATES)
def test_length_and_pitch_preserved(src: int, dst: int) -> None:
    out = resample_array(tone(src), src, dst)
    assert abs(len(out) - dst // 2) <= 2  # 0.5 s in, 0.5 s out
    spectrum = np.abs(np.fft.rfft(out.astype(np.float64)))
    peak_hz = np.argmax(spectrum) * dst / len(out)
    assert abs(peak_hz - 440) < 5


def test_round_trip_16k_48k_16k_in_20ms_frames() -> None:
    src = tone(16_000, 1.0)
    up, down = Resampler(16_000, 48_000), Resampler(48_000, 16_000)
    out = []
    for i in range(0, len(src), 320):
        out.append(down.process(up.process(AudioFrame(src[i : i + 320], 16_000, i / 16_000))).pcm)
    out.append(down.process(up.flush()).pcm)
    out.append(down.flush().pcm)
    result = np.concatenate(out)
    assert abs(len(result) - len(src)) <= 4
    # Align for the filter delay, then require a clean signal (SNR > 30 dB) away from the edges.
    delay = int(np.argmax(np.correlate(result[:2000].astype(float), src[:1000].astype(float), "valid")))
    a, b = src[1000:15000].astype(float), result[1000 + delay : 15000 + delay].astype(float)
    snr = 10 * np.log10((a**2).sum() / ((a - b) ** 2).sum())
    assert snr > 30, f"SNR {snr:.1f} dB, delay {delay}"


def test_frame_keeps_timestamp_and_rejects_wrong_rate() -> None:
    r = Resampler(8_000, 16_000)
    out = r.process(AudioFrame(tone(8_000, 0.02), 8_000, 12.5, {"k": 1}))
    assert out.sample_rate == 16_000 and out.timestamp == 12.5 and out.meta == {"k": 1}
    with pytest.raises(ValueError, match="8000 Hz"):
        r.process(AudioFrame(tone(16_000, 0.02), 16_000))


def test_empty_frame_gives_an_empty_frame_and_keeps_the_stream_going() -> None:
    # Before the fix libswresample raised av.error.MemoryError ("Cannot allocate memory") on 0 samples.
    resampler = Resampler(48_000, 16_000)
    out = resampler.process(AudioFrame(np.zeros(0, np.int16), 48_000, 1.5))
    assert out.samples == 0 and out.sample_rate == 16_000 and out.timestamp == 1.5
    assert resampler.process(AudioFrame(np.zeros(960, np.int16), 48_000)).samples > 0
