"""The paced RTP sender (unit tests on loopback sockets): one packet per 20 ms, RFC 4733 digits as one
event per tick sharing the start timestamp, three end packets, audio from any sample rate."""

from __future__ import annotations

import asyncio
import itertools
import time

import numpy as np
import pytest
from aiortp import DtmfEvent, RtpPacket, get_codec

from server.transports.sip.pacer import RtpPacer
from server.transports.sip.rtp import RtpEndpoint
from server.transports.sip.sdp import MediaParams
from speech.frames import AudioFrame


class Peer(asyncio.DatagramProtocol):
    """The far end: records each RTP packet with its arrival time."""

    def __init__(self) -> None:
        self.packets: list[tuple[float, RtpPacket]] = []
        self.addr: tuple[str, int] = ("", 0)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.addr = transport.get_extra_info("sockname")

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.packets.append((time.monotonic(), RtpPacket.parse(data)))


@pytest.fixture
async def wire():  # type: ignore[no-untyped-def]
    peer = Peer()
    await asyncio.get_running_loop().create_datagram_endpoint(lambda: peer, local_addr=("127.0.0.1", 0))
    endpoint = await RtpEndpoint.open("127.0.0.1", lambda pcm, t: None, lambda d, n: None)
    endpoint.configure(MediaParams("PCMU", 0, 101, peer.addr, "sendrecv"), jitter_frames=1)
    yield endpoint, peer
    endpoint.close()
    peer.transport.close()


def drain(peer: Peer) -> list[tuple[float, RtpPacket]]:
    return list(peer.packets)


async def run_for(pacer: RtpPacer, seconds: float) -> None:
    task = asyncio.create_task(pacer.run())
    await asyncio.sleep(seconds)
    task.cancel()


async def test_one_packet_per_20_ms_from_a_48_khz_source(wire) -> None:  # type: ignore[no-untyped-def]
    endpoint, peer = wire
    pacer = RtpPacer(endpoint)
    tone = (8000 * np.sin(np.arange(960) * 2 * np.pi * 440 / 48000)).astype(np.int16)
    pacer.source = lambda: AudioFrame(tone, 48000)
    await run_for(pacer, 1.0)
    packets = drain(peer)
    assert 40 <= len(packets) <= 52  # 50 on an idle machine; a stalled loop skips, never bursts
    seqs = [p.sequence_number for _, p in packets]
    assert all((b - a) & 0xFFFF == 1 for a, b in itertools.pairwise(seqs))
    steps = [(b - a) & 0xFFFFFFFF for a, b in itertools.pairwise([p.timestamp for _, p in packets])]
    assert all(step % 160 == 0 and step > 0 for step in steps)  # skipped slots keep the RTP clock honest
    gaps = [b - a for (a, _), (b, _) in itertools.pairwise(packets)]
    assert max(gaps) < 0.2 and sum(g < 0.005 for g in gaps) <= 3  # paced: no bursts
    assert packets[0][1].marker == 1 and all(p.marker == 0 for _, p in packets[1:])
    pcm = np.frombuffer(get_codec(0).decode(b"".join(p.payload for _, p in packets[5:])), "<i2")
    assert 5000 < np.abs(pcm).max() < 9000  # the resampled tone, not silence


async def test_digits_replace_audio_per_rfc_4733(wire) -> None:  # type: ignore[no-untyped-def]
    endpoint, peer = wire
    pacer = RtpPacer(endpoint)
    with pytest.raises(ValueError):
        pacer.queue_digits("1x")  # refused whole: no "1" goes out
    pacer.queue_digits("5", duration_ms=100)
    await run_for(pacer, 0.4)
    packets = [p for _, p in drain(peer)]
    events = [p for p in packets if p.payload_type == 101]
    parsed = [DtmfEvent.parse(p.payload) for p in events]
    assert {e.digit for e in parsed} == {"5"}
    assert len({p.timestamp for p in events}) == 1  # one event: one timestamp
    assert [e.duration for e in parsed if not e.end] == [160, 320, 480, 640]
    assert [e.duration for e in parsed if e.end] == [800, 800, 800]
    assert [p.marker for p in events] == [1, 0, 0, 0, 0, 0, 0]
    audio_after = [p for p in packets[packets.index(events[-1]) + 1 :] if p.payload_type == 0]
    assert audio_after and audio_after[0].timestamp - events[0].timestamp >= 800  # the clock ran on


async def test_nothing_is_sent_while_the_peer_holds(wire) -> None:  # type: ignore[no-untyped-def]
    endpoint, peer = wire
    endpoint.configure(MediaParams("PCMU", 0, 101, peer.addr, "sendonly"), jitter_frames=1)
    pulled = []
    pacer = RtpPacer(endpoint)
    pacer.source = lambda: pulled.append(1) or AudioFrame(np.zeros(160, np.int16), 8000)  # type: ignore[func-returns-value]
    pacer.sending = False
    await run_for(pacer, 0.3)
    assert drain(peer) == [] and pulled == []  # not even pulled: the agent's speech waits for the unhold
