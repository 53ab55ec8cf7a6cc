"""``SipMediaTap``: hears what a SIPp caller hears. SIPp cannot record the RTP it receives, so the test puts
this tap between SIPp and the node, on loopback:

- SIP (UDP): SIPp sends to the tap, the tap relays to the node (``;rport`` added to the top Via so the
  answers come back through it); in the node's SDP the audio port is replaced by the tap's RTP port;
- RTP: the caller's packets go on to the node from the tap's socket (the node latches onto it: symmetric
  RTP), the node's packets go on to the caller and are kept, decoded with aiortp's G.711 (what the
  caller received, with arrival times).
"""

from __future__ import annotations

import asyncio
import re
import struct
import time
from dataclasses import dataclass, field

import numpy as np
from aiortp import get_codec

_M_AUDIO = re.compile(rb"m=audio (\d+)")
_C_IN = re.compile(rb"c=IN IP4 ([0-9.]+)")
_CODECS = {0: "PCMU", 8: "PCMA"}


@dataclass
class HeardPacket:
    at: float  # monotonic arrival
    pcm: np.ndarray  # 8 kHz int16


@dataclass
class SipMediaTap:
    node_sip: tuple[str, int]
    heard: list[HeardPacket] = field(default_factory=list)
    caller_rtp: tuple[str, int] | None = None
    node_rtp: tuple[str, int] | None = None
    forwarded_to_node: int = 0
    holds: list[tuple[float, bool]] = field(default_factory=list)  # (when, on hold) of the caller's re-INVITEs
    _caller_sip: tuple[str, int] | None = None
    _sip: asyncio.DatagramTransport | None = None
    _rtp: asyncio.DatagramTransport | None = None

    @classmethod
    async def start(cls, node_sip: tuple[str, int]) -> SipMediaTap:
        tap = cls(node_sip)
        loop = asyncio.get_running_loop()
        tap._sip, _ = await loop.create_datagram_endpoint(
            lambda: _Socket(tap._on_sip), local_addr=("127.0.0.1", 0)
        )
        tap._rtp, _ = await loop.create_datagram_endpoint(
            lambda: _Socket(tap._on_rtp), local_addr=("127.0.0.1", 0)
        )
        return tap

    @property
    def sip_port(self) -> int:
        assert self._sip is not None
        return int(self._sip.get_extra_info("sockname")[1])

    @property
    def rtp_port(self) -> int:
        assert self._rtp is not None
        return int(self._rtp.get_extra_info("sockname")[1])

    def close(self) -> None:
        for transport in (self._sip, self._rtp):
            if transport is not None:
                transport.close()

    def audio(self, since: float = 0.0) -> np.ndarray:
        pcm = [p.pcm for p in self.heard if p.at >= since]
        return np.concatenate(pcm) if pcm else np.zeros(0, np.int16)

    def utterances(self, gap_s: float = 1.0) -> list[float]:
        """Start times of the node's utterances: voiced packets after at least ``gap_s`` of no voice."""
        starts: list[float] = []
        last = -1e9
        for t in self.voiced_times():
            if t - last > gap_s:
                starts.append(t)
            last = t
        return starts

    def voiced_times(self, rms: float = 300.0) -> list[float]:
        """Arrival times of the packets that held voice (RMS above ``rms``)."""
        return [p.at for p in self.heard if len(p.pcm) and float(np.sqrt(np.mean(p.pcm.astype(float) ** 2))) > rms]

    # -- SIP ---------------------------------------------------------------------------------------
    def _on_sip(self, data: bytes, addr: tuple[str, int]) -> None:
        assert self._sip is not None
        if addr == self.node_sip:
            if self._caller_sip is not None:
                self._sip.sendto(self._rewrite_answer(data), self._caller_sip)
            return
        self._caller_sip = addr
        self._sip.sendto(self._note_offer(_add_rport(data)), self.node_sip)

    def _note_offer(self, data: bytes) -> bytes:
        body = data.partition(b"\r\n\r\n")[2]
        if b"a=sendonly" in body or b"a=sendrecv" in body:  # a re-INVITE: hold or resume
            self.holds.append((time.monotonic(), b"a=sendonly" in body))
        port, host = _M_AUDIO.search(body), _C_IN.search(body)
        if port and host and self.caller_rtp is None:
            self.caller_rtp = (host.group(1).decode(), int(port.group(1)))
        return data

    def _rewrite_answer(self, data: bytes) -> bytes:
        head, sep, body = data.partition(b"\r\n\r\n")
        port, host = _M_AUDIO.search(body), _C_IN.search(body)
        if not (port and host):
            return data
        self.node_rtp = (host.group(1).decode(), int(port.group(1)))
        body = _M_AUDIO.sub(b"m=audio %d" % self.rtp_port, body, count=1)
        head = re.sub(rb"(?im)^(content-length|l)\s*:\s*\d+", b"Content-Length: %d" % len(body), head)
        return head + sep + body

    # -- RTP ---------------------------------------------------------------------------------------
    def _on_rtp(self, data: bytes, addr: tuple[str, int]) -> None:
        assert self._rtp is not None
        if addr == self.node_rtp:
            if self.caller_rtp is not None:
                self._rtp.sendto(data, self.caller_rtp)
            self._record(data)
        elif self.node_rtp is not None:
            self.forwarded_to_node += 1
            self._rtp.sendto(data, self.node_rtp)

    def _record(self, data: bytes) -> None:
        if len(data) < 12 or data[0] >> 6 != 2:
            return
        payload_type = data[1] & 0x7F
        codec = _CODECS.get(payload_type)
        if codec is None:  # telephone-event or RTCP
            return
        offset = 12 + 4 * (data[0] & 0x0F)
        if data[0] & 0x10:  # header extension
            (words,) = struct.unpack("!H", data[offset + 2 : offset + 4])
            offset += 4 + 4 * words
        pcm = np.frombuffer(get_codec(payload_type).decode(data[offset:]), "<i2").astype(np.int16)
        self.heard.append(HeardPacket(time.monotonic(), pcm))


def _add_rport(data: bytes) -> bytes:
    """``;rport`` on the first Via, so the node answers to the tap's address (RFC 3581)."""
    return re.sub(rb"(?im)^(via\s*:[^\r\n,]*?)(\r\n)", lambda m: m.group(1) + b";rport" + m.group(2), data, count=1)


class _Socket(asyncio.DatagramProtocol):
    def __init__(self, on_datagram) -> None:  # type: ignore[no-untyped-def]
        self.on_datagram = on_datagram

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.on_datagram(data, addr)
