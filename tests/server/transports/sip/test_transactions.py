"""Client and server transaction timers (unit tests on a manual clock: deterministic on a busy machine)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from aiosipua import SipMessage, SipRequest, SipResponse

from server.transports.sip.transactions import ClientTransactions, ServerTransactions

T1, T2 = 0.5, 4.0  # RFC 3261's values: the clock is manual
PEER = ("127.0.0.1", 5099)


def request(method: str, branch: str = "z9hG4bKabc") -> SipRequest:
    text = (
        f"{method} sip:bob@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch={branch}\r\n"
        "From: <sip:a@127.0.0.1>;tag=ours\r\nTo: <sip:bob@127.0.0.1>\r\nCall-ID: c1\r\n"
        f"CSeq: 1 {method}\r\nRoute: <sip:proxy;lr>\r\nContent-Length: 0\r\n\r\n"
    )
    parsed = SipMessage.parse(text)
    assert isinstance(parsed, SipRequest)
    return parsed


def response(to: SipRequest, status: int) -> SipResponse:
    text = (
        f"SIP/2.0 {status} X\r\nVia: {to.headers.get_first('via')}\r\nFrom: <sip:a@127.0.0.1>;tag=ours\r\n"
        f"To: <sip:bob@127.0.0.1>;tag=theirs\r\nCall-ID: c1\r\nCSeq: 1 {to.method}\r\nContent-Length: 0\r\n\r\n"
    )
    parsed = SipMessage.parse(text)
    assert isinstance(parsed, SipResponse)
    return parsed


class ManualClock:
    """``time()`` and ``call_later()`` of an event loop, advanced by hand."""

    class Timer:
        def __init__(self, due: float, callback: Callable[..., object], args: tuple[object, ...]) -> None:
            self.due, self.callback, self.args, self.cancelled = due, callback, args, False

        def cancel(self) -> None:
            self.cancelled = True

    def __init__(self) -> None:
        self.now = 0.0
        self._timers: list[ManualClock.Timer] = []

    def time(self) -> float:
        return self.now

    def call_later(self, delay: float, callback: Callable[..., object], *args: object) -> ManualClock.Timer:
        timer = ManualClock.Timer(self.now + delay, callback, args)
        self._timers.append(timer)
        return timer

    def advance(self, seconds: float) -> None:
        end = self.now + seconds
        while True:
            due = [t for t in self._timers if not t.cancelled and t.due <= end]
            if not due:
                break
            timer = min(due, key=lambda t: t.due)
            self._timers.remove(timer)
            self.now = timer.due
            timer.callback(*timer.args)
        self.now = end


class Wire:
    def __init__(self) -> None:
        self.clock = ManualClock()
        self.sent: list[tuple[float, SipRequest]] = []
        self.timeouts: list[SipRequest] = []

    def send(self, message: SipRequest, addr: tuple[str, int]) -> None:
        self.sent.append((self.clock.now, message))

    def transactions(self, reliable: bool = False) -> ClientTransactions:
        return ClientTransactions(
            self.send, reliable=reliable, on_timeout=self.timeouts.append, t1=T1, t2=T2, clock=self.clock
        )


async def test_invite_is_retransmitted_doubling_until_a_provisional() -> None:
    wire = Wire()
    client = wire.transactions()
    invite = request("INVITE")
    client.sent(invite, PEER)
    wire.clock.advance(T1 * 7.5)
    assert [t / T1 for t, _ in wire.sent] == [1, 3, 7]  # Timer A: T1, 2*T1, 4*T1 apart
    client.on_response(response(invite, 180))
    assert client.provisional_seen(invite)
    wire.clock.advance(600)
    assert len(wire.sent) == 3 and wire.timeouts == []  # a provisional stops Timers A and B


async def test_a_failure_answer_to_invite_is_acked_every_time_it_comes() -> None:
    wire = Wire()
    client = wire.transactions()
    invite = request("INVITE")
    client.sent(invite, PEER)
    waiter = asyncio.ensure_future(client.final_response(invite, 1.0))
    await asyncio.sleep(0)
    busy = response(invite, 486)
    client.on_response(busy)
    assert (await waiter).status_code == 486
    client.on_response(busy)  # the peer did not get our ACK: it repeats the 486
    acks = [m for _, m in wire.sent if m.method == "ACK"]
    assert len(acks) == 2
    ack = acks[0]
    assert ack.headers.get_first("via") == invite.headers.get_first("via")  # same branch (RFC 3261 §17.1.1.3)
    assert ack.cseq is not None and (ack.cseq.seq, ack.cseq.method) == (1, "ACK")
    assert "tag=theirs" in (ack.headers.get_first("to") or "") and ack.uri == invite.uri
    assert ack.headers.get("route") == ["<sip:proxy;lr>"]


async def test_non_invite_retransmissions_are_capped_at_t2_and_stop_on_the_final() -> None:
    wire = Wire()
    client = wire.transactions()
    bye = request("BYE", "z9hG4bKbye")
    client.sent(bye, PEER)
    wire.clock.advance(16.0)
    assert [t for t, _ in wire.sent] == [0.5, 1.5, 3.5, 7.5, 11.5, 15.5]  # Timer E: doubling, capped at T2
    client.on_response(response(bye, 100))
    wire.clock.advance(9.0)
    assert [t for t, _ in wire.sent][6:] == [19.5, 23.5]  # after a provisional: every T2
    client.on_response(response(bye, 200))
    wire.clock.advance(60)
    assert len(wire.sent) == 8 and wire.timeouts == []


async def test_no_response_times_out_after_64_t1_and_tcp_never_retransmits() -> None:
    wire = Wire()
    client = wire.transactions(reliable=True)
    register = request("REGISTER", "z9hG4bKreg")
    client.sent(register, PEER)
    waiter = asyncio.ensure_future(client.final_response(register, 3600))
    await asyncio.sleep(0)
    wire.clock.advance(64 * T1 - 0.1)
    assert wire.timeouts == []
    wire.clock.advance(0.2)
    with pytest.raises(TimeoutError):
        await waiter
    assert wire.sent == [] and wire.timeouts == [register]  # TCP: Timer F only


async def test_server_side_absorbs_retransmitted_requests() -> None:
    resent: list[SipResponse] = []
    server = ServerTransactions(resent.append)
    invite = request("INVITE", "z9hG4bKin")
    assert not server.is_retransmission(invite)
    assert server.is_retransmission(invite)  # nothing answered yet: dropped
    trying = response(invite, 100)
    server.responded(trying)
    assert server.is_retransmission(invite) and resent == [trying]
    assert not server.is_retransmission(request("INVITE", "z9hG4bKother"))
    assert not server.is_retransmission(request("ACK", "z9hG4bKin"))
