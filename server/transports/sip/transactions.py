"""Transaction timers aiosipua 0.7.1 leaves out (RFC 3261 §17).

``ClientTransactions``: the library sends INVITE, BYE, REGISTER, CANCEL, REFER and NOTIFY once, so one
lost UDP datagram loses a call, a hang-up or a registration. Every request we send is tracked here and
retransmitted over UDP (Timer A/E: T1 doubling, capped at T2 for non-INVITE) until a response arrives, and
given up after 64*T1 (Timers B/F). Non-2xx final answers to our INVITEs are ACKed here (the library
does not), and waiters can await a request's final response.

``ServerTransactions``: the library treats a retransmitted INVITE as a new call (a second IncomingCall
with a second To tag). Requests seen before are answered with our last response instead.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from aiosipua import SipRequest, SipResponse

from server.transports.sip.messages import TransactionKey, build_failure_ack, transaction_key

log = logging.getLogger(__name__)

T1 = 0.5
T2 = 4.0
TIMEOUT = 64 * T1
_SERVER_ENTRIES_MAX = 4096  # bounded under a flood: the oldest are forgotten first


class TimerHandle(Protocol):
    def cancel(self) -> None: ...


class Clock(Protocol):
    """What the timers need of an event loop (``asyncio`` loops qualify; tests pass a manual clock)."""

    def time(self) -> float: ...

    def call_later(self, delay: float, callback: Callable[..., object], *args: Any) -> TimerHandle: ...


@dataclass
class _Client:
    request: SipRequest
    addr: tuple[str, int]
    started: float
    interval: float
    provisional: bool = False
    timer: TimerHandle | None = None
    waiters: list[asyncio.Future[SipResponse]] = field(default_factory=list)


class ClientTransactions:
    """Our requests in flight on one transport."""

    def __init__(
        self,
        send: Callable[[SipRequest, tuple[str, int]], object],
        *,
        reliable: bool,
        on_timeout: Callable[[SipRequest], None],
        t1: float = T1,
        t2: float = T2,
        clock: Clock | None = None,
    ) -> None:
        self._send = send  # sends without tracking (retransmissions, ACKs)
        self._t1, self._t2, self._timeout = t1, t2, 64 * t1
        self._clock = clock  # the running event loop unless a test gives a manual clock
        self._reliable = reliable
        self._on_timeout = on_timeout
        self._live: dict[TransactionKey, _Client] = {}
        self._failed_invites: OrderedDict[TransactionKey, tuple[SipRequest, tuple[str, int], float]] = (
            OrderedDict()
        )
        self.retransmissions = 0

    def sent(self, request: SipRequest, addr: tuple[str, int]) -> None:
        """Track a request the library just sent (ACKs are not transactions)."""
        if request.method.upper() == "ACK":
            return
        key = transaction_key(request)
        entry = _Client(request, addr, self._now(), self._t1)
        self._live[key] = entry
        self._arm(key, entry)

    async def final_response(self, request: SipRequest, timeout: float = TIMEOUT) -> SipResponse:
        """The final response to ``request`` (sent earlier); ``TimeoutError`` when none comes in time."""
        entry = self._live.get(transaction_key(request))
        if entry is None:
            raise LookupError(f"{request.method} is not in flight (already answered or never sent)")
        future: asyncio.Future[SipResponse] = asyncio.get_running_loop().create_future()
        entry.waiters.append(future)
        return await asyncio.wait_for(future, timeout)

    def provisional_seen(self, request: SipRequest) -> bool:
        """Whether ``request`` (still in flight) got a 1xx: a peer is there, ringing or trying."""
        entry = self._live.get(transaction_key(request))
        return entry is not None and entry.provisional

    def abandon(self, request: SipRequest) -> None:
        """Stop retransmitting ``request`` without waiting for Timer B/F (we gave up on it)."""
        key = transaction_key(request)
        entry = self._live.get(key)
        if entry is not None:
            self._finish(key, entry)
            for waiter in entry.waiters:
                waiter.cancel()

    def on_response(self, response: SipResponse) -> None:
        """Stop retransmitting on a response; ACK non-2xx finals to our INVITEs, including repeats."""
        key = transaction_key(response)
        failed = self._failed_invites.get(key)
        if failed is not None:  # the peer did not get our ACK: send it again
            self._send(build_failure_ack(failed[0], response), failed[1])
            return
        entry = self._live.get(key)
        if entry is None:
            return
        if response.status_code < 200:
            entry.provisional = True
            if key[2] == "INVITE" and entry.timer is not None:
                entry.timer.cancel()  # Timer A and B stop; the ring timeout is the caller's business
                entry.timer = None
            return
        self._finish(key, entry)
        if key[2] == "INVITE" and response.status_code >= 300:
            self._send(build_failure_ack(entry.request, response), entry.addr)
            self._failed_invites[key] = (entry.request, entry.addr, self._now())
            self._prune_failed()
        for waiter in entry.waiters:
            if not waiter.done():
                waiter.set_result(response)

    def close(self) -> None:
        for key, entry in list(self._live.items()):
            self._finish(key, entry)
            for waiter in entry.waiters:
                waiter.cancel()

    def _loop(self) -> Clock:
        return self._clock or asyncio.get_running_loop()

    def _now(self) -> float:
        return self._loop().time()

    def _arm(self, key: TransactionKey, entry: _Client) -> None:
        delay = min(entry.interval, self._timeout - (self._now() - entry.started))
        entry.timer = self._loop().call_later(max(0.0, delay), self._fire, key, entry)

    def _fire(self, key: TransactionKey, entry: _Client) -> None:
        if self._live.get(key) is not entry:
            return
        if self._now() - entry.started >= self._timeout - 1e-3:
            self._finish(key, entry)
            log.warning("no response to %s %s after %.0f s", key[2], entry.request.uri, self._timeout)
            for waiter in entry.waiters:
                if not waiter.done():
                    waiter.set_exception(
                        TimeoutError(f"no response to {key[2]} within {self._timeout:.0f} s")
                    )
            self._on_timeout(entry.request)
            return
        if not self._reliable:
            self._send(entry.request, entry.addr)
            self.retransmissions += 1
            log.debug("retransmitted %s to %s:%d", key[2], *entry.addr)
        invite = key[2] == "INVITE"
        if self._reliable:
            entry.interval = self._timeout  # TCP: only the timeout matters
        elif entry.provisional:
            entry.interval = self._t2
        else:
            entry.interval = entry.interval * 2 if invite else min(entry.interval * 2, self._t2)
        self._arm(key, entry)

    def _finish(self, key: TransactionKey, entry: _Client) -> None:
        if entry.timer is not None:
            entry.timer.cancel()
            entry.timer = None
        self._live.pop(key, None)

    def _prune_failed(self) -> None:
        horizon = self._now() - self._timeout
        while self._failed_invites and next(iter(self._failed_invites.values()))[2] < horizon:
            self._failed_invites.popitem(last=False)


class ServerTransactions:
    """Requests we have seen recently, with the last response we sent to each."""

    def __init__(self, resend: Callable[[SipResponse], None]) -> None:
        self._resend = resend
        self._seen: OrderedDict[TransactionKey, tuple[float, SipResponse | None]] = OrderedDict()
        self.absorbed = 0

    def is_retransmission(self, request: SipRequest) -> bool:
        """True (and our last response re-sent, if any) when ``request`` was seen before; else records it."""
        if request.method.upper() == "ACK":
            return False
        key = transaction_key(request)
        seen = self._seen.get(key)
        if seen is None:
            self._remember(key, None)
            return False
        self.absorbed += 1
        if seen[1] is not None:
            self._resend(seen[1])
        return True

    def responded(self, response: SipResponse) -> None:
        key = transaction_key(response)
        if key in self._seen:
            self._remember(key, response)

    def _remember(self, key: TransactionKey, response: SipResponse | None) -> None:
        now = time.monotonic()
        self._seen[key] = (now, response)
        self._seen.move_to_end(key)
        while self._seen and (
            len(self._seen) > _SERVER_ENTRIES_MAX or next(iter(self._seen.values()))[0] < now - TIMEOUT
        ):
            self._seen.popitem(last=False)
