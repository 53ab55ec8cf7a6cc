"""aiortc media tracks <-> ``speech.frames.AudioFrame``.

``PacedAudioTrack`` is the agent's outbound voice: aiortc pulls ``recv()`` as fast as it can, so the track
itself paces one 20 ms frame per 20 ms of wall clock and sends silence when there is nothing to say (a
stalled track makes browsers play catch-up bursts). ``caller_audio`` turns the caller's decoded Opus
frames (48 kHz, usually stereo) into mono ``AudioFrame``s stamped on the monotonic clock.
"""

from __future__ import annotations

import asyncio
import fractions
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Callable

import av
import numpy as np
from aiortc import RTCPeerConnection
from aiortc.jitterbuffer import JitterBuffer
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from speech.frames import AudioFrame

log = logging.getLogger(__name__)

OPUS_RATE = 48_000  # WebRTC's Opus clock: outbound tracks at this rate are encoded without resampling

# If the event loop stalls for longer than this, skip the missed frames instead of sending them in a burst.
_MAX_LAG_SECONDS = 0.06


class PacedAudioTrack(MediaStreamTrack):
    """Outbound audio track that asks ``read_frame()`` for exactly one frame every ``frame_ms``.

    ``read_frame`` must always return a frame (audio or silence) at ``sample_rate``; shorter frames are
    padded and longer ones truncated, so the RTP clock advances by exactly one frame per call.
    """

    kind = "audio"

    def __init__(self, read_frame: Callable[[], AudioFrame], sample_rate: int, frame_ms: int = 20) -> None:
        super().__init__()
        self._read_frame = read_frame
        self.sample_rate = sample_rate
        self.samples_per_frame = sample_rate * frame_ms // 1000
        self._time_base = fractions.Fraction(1, sample_rate)
        self._start: float | None = None
        self._pts = 0

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        await self._wait_for_slot()
        frame = self._read_frame()
        return self._to_av(frame.pcm)

    async def _wait_for_slot(self) -> None:
        now = time.monotonic()
        if self._start is None:
            self._start = now
            return
        self._pts += self.samples_per_frame
        due = self._start + self._pts / self.sample_rate
        if now - due > _MAX_LAG_SECONDS:
            self._start = now - self._pts / self.sample_rate
            return
        if due > now:
            await asyncio.sleep(due - now)

    def _to_av(self, pcm: np.ndarray) -> av.AudioFrame:
        n = self.samples_per_frame
        if len(pcm) != n:
            pcm = np.pad(pcm[:n], (0, max(0, n - len(pcm))))
        out = av.AudioFrame.from_ndarray(
            pcm.astype(np.int16, copy=False).reshape(1, -1), format="s16", layout="mono"
        )
        out.sample_rate = self.sample_rate
        out.pts = self._pts
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


class StreamClock:
    """Maps a listener's stream time (samples counted since the first frame) to the monotonic clock.

    Under CPU load aiortc's jitter buffer drops or delays frames, so stream time drifts behind wall time
    and "end of speech" would be dated too early; this keeps (stream time, arrival time) pairs of recent
    frames to translate event times back to when the audio actually arrived.
    """

    def __init__(self, keep: int = 1500) -> None:
        self._points: deque[tuple[float, float]] = deque(maxlen=keep)

    def note(self, stream_t: float, wall_t: float) -> None:
        self._points.append((stream_t, wall_t))

    def to_wall(self, stream_t: float) -> float:
        for point_stream, point_wall in self._points:
            if point_stream >= stream_t:
                return point_wall - (point_stream - stream_t)
        if self._points:
            last_stream, last_wall = self._points[-1]
            return last_wall + (stream_t - last_stream)
        return stream_t
