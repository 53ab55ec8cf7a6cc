"""aiortc media tracks <-> ``speech.frames.AudioFrame``.

``PacedAudioTrack`` is the agent's outbound voice: aiortc pulls ``recv()`` as fast as it can, so the track
itself paces one 20 ms frame per 20 ms of wall clock and sends silence when there is nothing to say (a
stalled track makes browsers play catch-up bursts). ``caller_audio`` turns the caller's decoded Opus
frames (48 kHz, usually stereo) into mono ``AudioFrame``s stamped on the monotonic clock.
"""

from __future__ import annotations

import fractions
import logging
import time
from collections.abc import AsyncIterator, Callable

import av
import numpy as np
from aiortc import RTCPeerConnection
from aiortc.jitterbuffer import JitterBuffer
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from server.calls.pacing import FramePacer, fit_frame
from speech.frames import AudioFrame

log = logging.getLogger(__name__)

OPUS_RATE = 48_000  # WebRTC's Opus clock: outbound tracks at this rate are encoded without resampling

class PacedAudioTrack(MediaStreamTrack):
    """Outbound audio track that asks ``read_frame()`` for exactly one frame every ``frame_ms``.

    ``read_frame`` (``CallSession.read_frame``) always returns a frame (audio or silence) at ``sample_rate``;
    shorter frames are padded and longer ones truncated, so the RTP clock advances by exactly one frame per
    call. The pacing is ``server.calls.pacing.FramePacer``, shared with the other transports.
    """

    kind = "audio"

    def __init__(self, read_frame: Callable[[], AudioFrame], sample_rate: int, frame_ms: int = 20) -> None:
        super().__init__()
        self._read_frame = read_frame
        self.sample_rate = sample_rate
        self._pacer = FramePacer(sample_rate, frame_ms)
        self.samples_per_frame = self._pacer.samples_per_frame
        self._time_base = fractions.Fraction(1, sample_rate)

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        pts = await self._pacer.next_slot()
        return self._to_av(fit_frame(self._read_frame().pcm, self.samples_per_frame), pts)

    def _to_av(self, pcm: np.ndarray, pts: int) -> av.AudioFrame:
        out = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
        out.sample_rate = self.sample_rate
        out.pts = pts
        out.time_base = self._time_base
        return out


def set_audio_receive_buffer(pc: RTCPeerConnection, frames: int) -> None:
    """Hold each received audio frame until ``frames`` later ones arrived (reordering window), not aiortc's 4.

    aiortc releases an audio frame only once 4 newer frames are in (80 ms of delay on every caller frame,
    before VAD even sees it). Our receiver feeds VAD and STT, not a loudspeaker, so it needs no playout
    smoothing, only a small reordering window: 1 frame (20 ms) halves barge-in and end-of-turn delay on
    loopback. aiortc has no setting for it, so the receiver's buffer is replaced after
    ``setRemoteDescription`` (before any packet); if aiortc's internals change, the default stays, logged.
    """
    for receiver in pc.getReceivers():
        if receiver.track is None or receiver.track.kind != "audio":
            continue
        attr = "_RTCRtpReceiver__jitter_buffer"
        current = getattr(receiver, attr, None)
        if not isinstance(current, JitterBuffer):
            log.warning("aiortc receiver has no jitter buffer to resize; keeping its default depth")
            continue
        setattr(receiver, attr, JitterBuffer(capacity=current.capacity, prefetch=frames))


def to_mono_int16(frame: av.AudioFrame) -> np.ndarray:
    """Mono int16 samples of a decoded PyAV frame (packed or planar, any channel count)."""
    if frame.format.name not in ("s16", "s16p"):
        frame = av.AudioResampler(format="s16", layout=frame.layout.name, rate=frame.sample_rate).resample(
            frame
        )[0]
    data = frame.to_ndarray()
    channels = len(frame.layout.channels)
    if frame.format.is_planar:
        mono = data.mean(axis=0) if channels > 1 else data.reshape(-1)
    else:
        mono = data.reshape(-1, channels).mean(axis=1) if channels > 1 else data.reshape(-1)
    return np.asarray(mono, dtype=np.int16) if mono.dtype != np.int16 else mono


async def caller_audio(track: MediaStreamTrack) -> AsyncIterator[AudioFrame]:
    """Yield the caller's audio until the track ends; timestamps are the monotonic time of the first sample."""
    while True:
        try:
            frame = await track.recv()
        except MediaStreamError:
            return
        if not isinstance(frame, av.AudioFrame):
            continue
        pcm = to_mono_int16(frame)
        rate = int(frame.sample_rate)
        yield AudioFrame(pcm, rate, time.monotonic() - len(pcm) / rate)
