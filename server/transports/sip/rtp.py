"""One call's RTP socket: symmetric latching, a reordering jitter buffer, G.711 decoding, RFC 4733 digits.

Built from aiortp's parts (packet format, jitter buffer, G.711 codecs, concealment, telephone-event
parsing) rather than its ``RTPSession``, whose latching follows any source (see ``latch.py``) and whose
digit sender sends a whole digit in one burst with RTP timestamp 0.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from aiortp import DtmfReceiver, JitterBuffer, PcmConcealer, RtpPacket, get_codec, is_rtcp
from aiortp.codecs import Codec

from server.transports.sip.latch import SourceLatch
from server.transports.sip.sdp import MediaParams

log = logging.getLogger(__name__)

COMFORT_NOISE_PT = 13
_JITTER_CAPACITY = 16  # packets (320 ms); must be a power of two


@dataclass
class RtpStats:
    packets_received: int = 0
    packets_sent: int = 0
    foreign_packets: int = 0  # from a source other than the latched peer: ignored
    unlatched_packets: int = 0  # from a source still on probation (before the stream latched)
    malformed_packets: int = 0
    unknown_payload_packets: int = 0
    lost_packets: int = 0  # concealed
    digits_received: int = 0


class RtpEndpoint(asyncio.DatagramProtocol):
    """Receives and sends one RTP stream; ``on_audio``/``on_dtmf`` are called on the event loop."""

    def __init__(
        self, on_audio: Callable[[np.ndarray, float], None], on_dtmf: Callable[[str, int], None]
    ) -> None:
        self._on_audio = on_audio
        self._on_dtmf = on_dtmf
        self._transport: asyncio.DatagramTransport | None = None
        self.local_addr: tuple[str, int] = ("0.0.0.0", 0)
        self.stats = RtpStats()
        self.last_packet_at: float | None = None
        self.latch = SourceLatch(None)
        self._params: MediaParams | None = None
        self._codec: Codec | None = None
        self._jitter = JitterBuffer(_JITTER_CAPACITY)
        self._concealer = PcmConcealer(8000)
        self._dtmf = DtmfReceiver(self._digit)
        self._remote_ssrc: int | None = None
        self._ssrc = int.from_bytes(os.urandom(4), "big")
        self._seq = int.from_bytes(os.urandom(2), "big")

    @classmethod
    async def open(
        cls,
        host: str,
        on_audio: Callable[[np.ndarray, float], None],
        on_dtmf: Callable[[str, int], None],
        port_range: tuple[int, int] = (0, 0),
    ) -> RtpEndpoint:
        """Bind a UDP socket on ``host``: an even port in ``port_range``, or any free port for (0, 0)."""
        loop = asyncio.get_running_loop()
        endpoint = cls(on_audio, on_dtmf)
        last_error: OSError | None = None
        for port in _candidate_ports(port_range):
            try:
                await loop.create_datagram_endpoint(lambda: endpoint, local_addr=(host, port))
            except OSError as exc:
                last_error = exc
                continue
            return endpoint
        raise OSError(f"no free RTP port on {host} in {port_range}: {last_error}")

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # Python 3.11's selector datagram transport does not subclass asyncio.DatagramTransport
        self._transport = transport  # type: ignore[assignment]
        sockname = transport.get_extra_info("sockname")
        self.local_addr = (str(sockname[0]), int(sockname[1]))

    def configure(self, params: MediaParams, jitter_frames: int) -> None:
        """Apply negotiated parameters (first answer or a re-INVITE); a changed address re-latches."""
        if self._params is None or params.payload_type != self._params.payload_type:
            self._codec = get_codec(params.payload_type)
            self._jitter = JitterBuffer(_JITTER_CAPACITY, prefetch=jitter_frames, skip_audio_gaps=True)
        self._params = params
        self.latch.reset(params.remote_rtp)

    @property
    def params(self) -> MediaParams | None:
        return self._params

    # -- receiving ---------------------------------------------------------------------------------

    def datagram_received(self, data: bytes, addr: tuple[str, int] | tuple[str, int, int, int]) -> None:
        source = (str(addr[0]), int(addr[1]))
        if self._params is None or is_rtcp(data):
            return
        try:
            packet = RtpPacket.parse(data)
        except ValueError:
            self.stats.malformed_packets += 1
            return
        if not self.latch.accept(source, packet.ssrc, packet.sequence_number):
            if self.latch.latched is None:
                self.stats.unlatched_packets += 1
            else:
                self.stats.foreign_packets += 1
            return
        self.stats.packets_received += 1
        self.last_packet_at = time.monotonic()
        if packet.ssrc != self._remote_ssrc:
            self._remote_ssrc = packet.ssrc
            self._jitter.reset()
        try:
            self._receive(packet)
        except Exception:  # a hostile payload must cost one packet, never the call
            log.exception("dropped an RTP packet that could not be processed (pt %d)", packet.payload_type)

    def _receive(self, packet: RtpPacket) -> None:
        assert self._params is not None
        pt = packet.payload_type
        if pt == self._params.payload_type:
            _, frame = self._jitter.add(packet)
        elif pt == self._params.dtmf_payload_type and len(packet.payload) >= 4:
            frame = self._jitter.mark_non_media(packet.sequence_number)
            self._dtmf.handle_packet(packet)
        elif pt == COMFORT_NOISE_PT:
            frame = self._jitter.mark_non_media(packet.sequence_number)
        else:
            self.stats.unknown_payload_packets += 1
            return
        if frame is not None:
            self._deliver(frame.data, frame.lost)

    def _deliver(self, payload: bytes, lost: int) -> None:
        assert self._codec is not None
        now = time.monotonic()
        if lost and self._concealer.frame_samples:
            self.stats.lost_packets += lost
            concealed = self._concealer.conceal(lost * self._concealer.frame_samples)
            self._on_audio(np.frombuffer(concealed, dtype="<i2").astype(np.int16), now)
        pcm = self._codec.decode(payload)
        self._concealer.update(pcm)
        self._on_audio(np.frombuffer(pcm, dtype="<i2").astype(np.int16), now)

    def _digit(self, digit: str, duration: int) -> None:
        self.stats.digits_received += 1
        self._on_dtmf(digit, duration)

    # -- sending -----------------------------------------------------------------------------------

    def encode(self, pcm: np.ndarray) -> bytes:
        """G.711-encode int16 PCM with the negotiated codec."""
        assert self._codec is not None, "configure() before sending"
        return self._codec.encode(pcm.astype("<i2").tobytes())

    def send(self, payload_type: int, payload: bytes, timestamp: int, marker: bool = False) -> None:
        destination = self.latch.destination
        if self._transport is None or destination is None:
            return
        packet = RtpPacket(payload_type, int(marker), self._seq, timestamp & 0xFFFFFFFF, self._ssrc, payload)
        self._seq = (self._seq + 1) & 0xFFFF
        try:
            self._transport.sendto(packet.serialize(), destination)
        except OSError as exc:  # like a lost packet: the next one may get through
            log.debug("RTP to %s:%d not sent: %s", destination[0], destination[1], exc)
            return
        self.stats.packets_sent += 1

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
            self._transport = None

    def error_received(self, exc: Exception) -> None:
        log.debug("RTP socket %s:%d: %s", *self.local_addr, exc)  # ICMP unreachable while the peer starts


def _candidate_ports(port_range: tuple[int, int]) -> list[int]:
    low, high = port_range
    if low == 0:
        return [0]
    evens = list(range(low + (low % 2), high + 1, 2))
    start = random.randrange(len(evens)) if evens else 0
    return evens[start:] + evens[:start]
