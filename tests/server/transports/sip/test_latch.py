"""Symmetric RTP latching (unit tests): latch once, then ignore every other source."""

from __future__ import annotations

from server.transports.sip.latch import PROBATION_PACKETS, SourceLatch

SDP = ("10.0.0.5", 4000)
REAL = ("127.0.0.1", 4000)
ROGUE = ("127.0.0.1", 6666)


def test_the_sdp_address_latches_at_once_and_others_are_ignored() -> None:
    latch = SourceLatch(SDP)
    assert latch.destination == SDP
    assert latch.accept(SDP, ssrc=1, seq=10)
    assert not latch.accept(ROGUE, ssrc=9, seq=11)
    assert latch.destination == SDP


def test_another_source_latches_after_a_run_in_sequence() -> None:
    latch = SourceLatch(SDP)
    results = [latch.accept(REAL, ssrc=1, seq=100 + i) for i in range(PROBATION_PACKETS + 1)]
    assert results == [False] * (PROBATION_PACKETS - 1) + [True, True]
    assert latch.destination == REAL
    assert not latch.accept(ROGUE, ssrc=1, seq=200)  # even with the stream's SSRC
    assert not latch.accept(SDP, ssrc=1, seq=201)  # and even from the SDP address, once latched elsewhere


def test_interleaved_sources_do_not_latch_and_seq_wraps() -> None:
    latch = SourceLatch(None)
    for i in range(10):
        assert not latch.accept(REAL if i % 2 else ROGUE, ssrc=1, seq=i)
    latch = SourceLatch(None)
    assert [latch.accept(REAL, ssrc=3, seq=s) for s in (65534, 65535, 0)] == [False, False, True]


def test_a_new_sdp_address_relatches() -> None:
    latch = SourceLatch(SDP)
    latch.accept(SDP, 1, 1)
    latch.reset(SDP)  # same address (a hold re-INVITE): keep the latch
    assert latch.latched == SDP
    latch.reset(("10.0.0.6", 4002))
    assert latch.latched is None and latch.destination == ("10.0.0.6", 4002)
