"""Outbound track pacing and caller audio conversion (aiortc <-> AudioFrame)."""

from __future__ import annotations

import time

import av
import numpy as np

from server.transports.webrtc.tracks import PacedAudioTrack, to_mono_int16
from speech.frames import AudioFrame


async def test_paced_track_sends_one_frame_per_20_ms_without_bursts() -> None:
    silence = AudioFrame(np.zeros(441, np.int16), 22_050)
    track = PacedAudioTrack(lambda: silence, 22_050)
    arrivals, pts = [], []
    for _ in range(50):
        frame = await track.recv()
        arrivals.append(time.monotonic())
        pts.append(frame.pts)
    assert pts == [i * 441 for i in range(50)]
    elapsed = arrivals[-1] - arrivals[0]
    assert 0.95 <= elapsed <= 1.15, elapsed  # 49 intervals of 20 ms, with scheduling slack
    gaps = np.diff(arrivals)
    assert (gaps < 0.005).sum() <= 3, "frames were sent in a burst"
    short = await PacedAudioTrack(lambda: AudioFrame(np.ones(10, np.int16), 8000), 8000).recv()
    assert short.samples == 160  # padded to a full frame


def test_caller_audio_is_mixed_down_to_mono() -> None:
    stereo = np.array([[100, 300, -100, -300]], dtype=np.int16)  # packed L R L R
    frame = av.AudioFrame.from_ndarray(stereo, format="s16", layout="stereo")
    frame.sample_rate = 48_000
    assert to_mono_int16(frame).tolist() == [200, -200]
