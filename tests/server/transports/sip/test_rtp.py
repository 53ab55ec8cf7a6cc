"""The RTP receive path (unit tests on loopback sockets): reordering within the jitter window, loss
concealment, RFC 4733 digits, and what is counted and dropped."""

from __future__ import annotations

import asyncio
import socket

import numpy as np
import pytest
from aiortp import DtmfEvent, RtpPacket, get_codec

from server.transports.sip.rtp import RtpEndpoint
from server.transports.sip.sdp import MediaParams

PCMU = get_codec(0)


class Received:
    def __init__(self) -> None:
        self.frames: list[np.ndarray] = []
        self.digits: list[str] = []


@pytest.fixture
async def endpoint():  # type: ignore[no-untyped-def]
    got = Received()
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sender.bind(("127.0.0.1", 0))
    rtp = await RtpEndpoint.open(
        "127.0.0.1", lambda pcm, t: got.frames.append(pcm), lambda digit, duration: got.digits.append(digit)
    )
    rtp.configure(MediaParams("PCMU", 0, 101, sender.getsockname(), "sendrecv"), jitter_frames=1)
    yield rtp, sender, got
    rtp.close()
    sender.close()


def level(n: int) -> bytes:
    """A 20 ms PCMU frame whose samples all encode ``n * 1000`` (so frames can be told apart)."""
    return PCMU.encode(np.full(160, n * 1000, "<i2").tobytes())


async def send(sock: socket.socket, rtp: RtpEndpoint, packets: list[RtpPacket]) -> None:
    for packet in packets:
        sock.sendto(packet.serialize(), rtp.local_addr)
    await asyncio.sleep(0.1)


def audio(seq: int) -> RtpPacket:
    return RtpPacket(payload_type=0, sequence_number=seq, timestamp=seq * 160, ssrc=7, payload=level(seq))


def levels(got: Received) -> list[int]:
    return [round(float(np.median(f)) / 1000) for f in got.frames]


async def test_one_packet_out_of_order_is_put_back_in_order(endpoint) -> None:  # type: ignore[no-untyped-def]
    rtp, sock, got = endpoint
    await send(sock, rtp, [audio(s) for s in (1, 2, 4, 3, 5, 6, 7)])
    assert levels(got) == [1, 2, 3, 4, 5, 6]  # the last frame waits for the next one (20 ms)
    assert rtp.stats.lost_packets == 0


async def test_a_lost_packet_is_concealed(endpoint) -> None:  # type: ignore[no-untyped-def]
    rtp, sock, got = endpoint
    await send(sock, rtp, [audio(s) for s in (1, 2, 3, 5, 6, 7)])
    assert rtp.stats.lost_packets == 1
    assert len(got.frames) == 6 and sum(len(f) for f in got.frames) == 6 * 160  # timeline kept whole
    assert levels(got)[:3] == [1, 2, 3] and levels(got)[4:] == [5, 6]
    assert 0 < abs(float(np.median(got.frames[3]))) < 3000  # a faded copy of frame 3, not a gap


async def test_digits_and_junk(endpoint) -> None:  # type: ignore[no-untyped-def]
    rtp, sock, got = endpoint
    digit = [
        RtpPacket(
            101, 1 if i == 0 else 0, 10 + i, 1600, 7, DtmfEvent(9, i >= 3, 10, 160 * (i + 1)).serialize()
        )
        for i in range(6)  # three progress packets, three end packets
    ]
    await send(sock, rtp, [audio(s) for s in range(1, 10)] + digit)
    sock.sendto(b"\x80\x00junk", rtp.local_addr)  # too short for RTP
    sock.sendto(
        RtpPacket(payload_type=18, sequence_number=20, ssrc=7, payload=b"x" * 20).serialize(), rtp.local_addr
    )
    await asyncio.sleep(0.1)
    assert got.digits == ["9"]  # one digit, however many end packets
    assert rtp.stats.malformed_packets == 1 and rtp.stats.unknown_payload_packets == 1
