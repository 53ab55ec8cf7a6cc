"""A call's media: the RTP endpoint, the paced sender, the caller's frames, and two watchdogs.

The watchdogs turn silence into events: no packets at all for ``media_timeout_s`` means the peer is gone
(a phone that lost power never sends BYE); packets without voice for ``no_speech_s`` means an answering
machine or an open line, which the call core may end politely. That time counts from the last voice of
either side: a caller listening to a long answer is not an open line, and must get ``no_speech_s`` to
reply once the agent has finished.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import numpy as np

from server.transports.sip.events import DtmfReceived, NoSpeech
from server.transports.sip.pacer import RATE, FrameSource, RtpPacer
from server.transports.sip.rtp import RtpEndpoint
from server.transports.sip.sdp import MediaParams
from speech.frames import AudioFrame

log = logging.getLogger(__name__)

_QUEUE_FRAMES = 250  # 5 s of caller audio; a stalled consumer loses the oldest, never the newest
_VOICE_RMS = 330.0  # about -40 dBFS: quieter than any voice, louder than G.711 line noise
_WATCH_INTERVAL_S = 0.25


@dataclass(frozen=True)
class MediaSettings:
    host: str
    port_range: tuple[int, int]
    jitter_frames: int
    media_timeout_s: float
    no_speech_s: float | None


class CallMedia:
    """Owns one call's RTP endpoint and tasks; ``close()`` releases all of them."""

    def __init__(self, settings: MediaSettings, on_event: Callable[[object], None]) -> None:
        self._settings = settings
        self._on_event = on_event
        self._endpoint: RtpEndpoint | None = None
        self._pacer: RtpPacer | None = None
        self._frames: asyncio.Queue[AudioFrame | None] = asyncio.Queue(_QUEUE_FRAMES)
        self._tasks: list[asyncio.Task[None]] = []
        self._on_hold = False
        self._started_at = 0.0
        self._last_voice_at = 0.0  # the caller's or the agent's
        self._no_speech_sent = False
        self.on_media_timeout: Callable[[], None] | None = None
        self.dropped_frames = 0

    async def open(self) -> int:
        """Bind the RTP socket; returns the local port to put in SDP."""
        s = self._settings
        self._endpoint = await RtpEndpoint.open(s.host, self._caller_audio, self._caller_digit, s.port_range)
        self._pacer = RtpPacer(self._endpoint)
        return self._endpoint.local_addr[1]

    @property
    def endpoint(self) -> RtpEndpoint:
        assert self._endpoint is not None, "open() first"
        return self._endpoint

    def apply(self, params: MediaParams) -> None:
        """Use negotiated parameters (answer or re-INVITE); the peer's hold state pauses our sending."""
        self.endpoint.configure(params, self._settings.jitter_frames)
        assert self._pacer is not None
        self._pacer.sending = params.we_may_send
        if self._on_hold and not params.remote_holds:
            self._last_voice_at = time.monotonic()  # silence while held is not "no speech"
        self._on_hold = params.remote_holds

    def start(self) -> None:
        assert self._pacer is not None
        self._started_at = self._last_voice_at = time.monotonic()
        self._tasks = [
            asyncio.create_task(self._pacer.run(), name="sip-rtp-pacer"),
            asyncio.create_task(self._watch(), name="sip-media-watch"),
        ]

    def set_source(self, read_frame: FrameSource | None) -> None:
        assert self._pacer is not None
        self._pacer.source = None if read_frame is None else self._noting_voice(read_frame)

    def _noting_voice(self, read_frame: FrameSource) -> FrameSource:
        """``read_frame``, noting when the agent's frames hold voice (the no-speech clock starts again)."""

        def read() -> AudioFrame:
            frame = read_frame()
            if _voiced(frame.pcm):
                self._last_voice_at = time.monotonic()
            return frame

        return read

    def send_dtmf(self, digits: str, duration_ms: int = 100) -> None:
        assert self._pacer is not None
        self._pacer.queue_digits(digits, duration_ms)

    async def frames(self) -> AsyncIterator[AudioFrame]:
        while True:
            frame = await self._frames.get()
            if frame is None:
                return
            yield frame

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        if self._endpoint is not None:
            self._endpoint.close()
        self._push(None)

    def _caller_audio(self, pcm: np.ndarray, arrival: float) -> None:
        if _voiced(pcm):
            self._last_voice_at = arrival
            self._no_speech_sent = False
        self._push(AudioFrame(pcm, RATE, arrival - len(pcm) / RATE))

    def _push(self, frame: AudioFrame | None) -> None:
        if self._frames.full():
            self._frames.get_nowait()
            self.dropped_frames += 1
        self._frames.put_nowait(frame)

    def _caller_digit(self, digit: str, duration: int) -> None:
        self._on_event(DtmfReceived(digit, duration * 1000 // RATE, time.monotonic()))

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(_WATCH_INTERVAL_S)
            if self._on_hold:
                continue
            now = time.monotonic()
            last_packet = self.endpoint.last_packet_at or self._started_at
            if now - last_packet > self._settings.media_timeout_s:
                log.warning("no RTP for %.0f s: ending the call", now - last_packet)
                if self.on_media_timeout is not None:
                    self.on_media_timeout()
                return
            limit = self._settings.no_speech_s
            if limit is not None and not self._no_speech_sent and now - self._last_voice_at >= limit:
                self._no_speech_sent = True
                self._on_event(NoSpeech(round(now - self._last_voice_at, 1)))


def _voiced(pcm: np.ndarray) -> bool:
    return bool(len(pcm)) and float(np.sqrt(np.mean(pcm.astype(np.float64) ** 2))) > _VOICE_RMS
