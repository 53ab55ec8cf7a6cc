"""The agent's voice out: one 20 ms RTP packet per 20 ms of clock, pulled from the call core.

Like ``server.tracks.PacedAudioTrack``, the pacer asks ``read_frame()`` for exactly one frame per tick and
sends silence when there is no source, so the peer's jitter buffer never starves and the call core's
playback advances at real time. RFC 4733 digits replace audio packets while they play: one event packet
per tick with a growing duration, all sharing the RTP timestamp of the event start, then three end packets.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from aiortp import DtmfEvent
from aiortp.dtmf import DTMF_EVENTS

from server.transports.sip.rtp import RtpEndpoint
from speech.frames import AudioFrame
from speech.resample import Resampler

log = logging.getLogger(__name__)

RATE = 8000
FRAME_SECONDS = 0.02
FRAME_SAMPLES = 160
_MAX_LAG_SECONDS = 0.06  # a stalled loop skips the missed packets instead of sending a burst
_DIGIT_VOLUME = 10  # -10 dBm0, RFC 4733's usual level
_END_REPEATS = 3

FrameSource = Callable[[], AudioFrame]


@dataclass
class _Digit:
    code: int
    duration: int  # samples
    gap: int  # samples of audio after the end packets before the next digit
    start_ts: int = -1
    elapsed: int = 0


class RtpPacer:
    """Owns the outbound RTP clock of one call; ``run()`` is the call's sender task."""

    def __init__(self, endpoint: RtpEndpoint) -> None:
        self._endpoint = endpoint
        self.source: FrameSource | None = None
        self.sending = True  # False while the peer holds the call: no pull, no packets
        self._timestamp = int.from_bytes(os.urandom(4), "big")
        self._digits: deque[_Digit] = deque()
        self._gap_left = 0
        self._pending = np.zeros(0, dtype=np.int16)
        self._resampler: Resampler | None = None
        self._first_packet = True
        self._source_failed = False

    def queue_digits(self, digits: str, duration_ms: int = 100, gap_ms: int = 60) -> None:
        """Queue RFC 4733 digits (0-9, *, #, A-D); raises ValueError naming an invalid one."""
        invalid = [d for d in digits if d.upper() not in DTMF_EVENTS]
        if invalid:  # nothing is queued: a half-sent number is worse than none
            raise ValueError(f"invalid DTMF digit(s) {invalid} in {digits!r}: use 0-9, *, #, A-D")
        for digit in digits:
            self._digits.append(
                _Digit(DTMF_EVENTS[digit.upper()], duration_ms * RATE // 1000, gap_ms * RATE // 1000)
            )

    async def run(self) -> None:
        due = time.monotonic()
        while True:
            now = time.monotonic()
            if now - due > _MAX_LAG_SECONDS:
                missed = int((now - due) / FRAME_SECONDS)
                self._timestamp += missed * FRAME_SAMPLES
                due += missed * FRAME_SECONDS
            try:
                self.tick()
            except Exception:  # one bad tick must not silence the rest of the call
                log.exception("RTP send tick failed")
            due += FRAME_SECONDS
            await asyncio.sleep(max(0.0, due - time.monotonic()))

    def tick(self) -> None:
        """Send what one 20 ms slot holds: a digit packet, an audio packet, or nothing on hold."""
        params = self._endpoint.params
        if params is None or not self.sending or not params.we_may_send:
            self._timestamp += FRAME_SAMPLES
            return
        if self._digits and self._gap_left == 0 and params.dtmf_payload_type is not None:
            self._send_digit_packet(params.dtmf_payload_type)
        else:
            self._gap_left = max(0, self._gap_left - FRAME_SAMPLES)
            payload = self._endpoint.encode(self._next_pcm())
            self._endpoint.send(params.payload_type, payload, self._timestamp, marker=self._first_packet)
            self._first_packet = False
        self._timestamp += FRAME_SAMPLES

    def _send_digit_packet(self, payload_type: int) -> None:
        digit = self._digits[0]
        if digit.start_ts < 0:
            digit.start_ts = self._timestamp
        digit.elapsed += FRAME_SAMPLES
        marker = digit.elapsed == FRAME_SAMPLES
        if digit.elapsed < digit.duration:
            event = DtmfEvent(digit.code, False, _DIGIT_VOLUME, digit.elapsed)
            self._endpoint.send(payload_type, event.serialize(), digit.start_ts, marker=marker)
            return
        end = DtmfEvent(digit.code, True, _DIGIT_VOLUME, digit.duration).serialize()
        for _ in range(_END_REPEATS):
            self._endpoint.send(payload_type, end, digit.start_ts, marker=marker)
            marker = False
        self._digits.popleft()
        self._gap_left = digit.gap

    def _next_pcm(self) -> np.ndarray:
        """Exactly 160 samples at 8 kHz from the source (resampled if needed), else silence."""
        while len(self._pending) < FRAME_SAMPLES:
            frame = self._pull()
            if frame is None:
                break
            self._pending = np.concatenate([self._pending, self._to_8k(frame)])
        out, self._pending = self._pending[:FRAME_SAMPLES], self._pending[FRAME_SAMPLES:]
        if len(out) < FRAME_SAMPLES:
            out = np.pad(out, (0, FRAME_SAMPLES - len(out)))
        return out

    def _pull(self) -> AudioFrame | None:
        if self.source is None:
            return None
        try:
            frame = self.source()
        except Exception:
            if not self._source_failed:  # log once, keep the call alive on silence
                log.exception("the call's audio source failed; sending silence")
                self._source_failed = True
            return None
        return frame if len(frame.pcm) else None

    def _to_8k(self, frame: AudioFrame) -> np.ndarray:
        if frame.sample_rate == RATE:
            return frame.pcm
        if self._resampler is None or self._resampler.src_rate != frame.sample_rate:
            self._resampler = Resampler(frame.sample_rate, RATE)
        return self._resampler.process(frame).pcm
