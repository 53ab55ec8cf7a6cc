"""``SipUserAgent``: the in-process SIP endpoint of a node (UDP + TCP listeners, calls in and out).

Every received message passes, in order: the size guard (transport), the peer filter (403 outside
``allowed_peers``), retransmission absorption, admission of new INVITEs (401/503/400/488), and only then
aiosipua's UAS/UAC. Responses also feed our client transactions (retransmission stop, ACK of failures).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from contextlib import suppress

from aiosipua import SipRequest, SipResponse
from aiosipua.message import missing_required_headers

from server.transports.sip import sdp
from server.transports.sip.admission import InviteAdmission, PeerFilter, Refusal
from server.transports.sip.call import SipCall
from server.transports.sip.config import SipConfig
from server.transports.sip.context import SipContext
from server.transports.sip.errors import DialError, DialOutcome, SdpError, SipError
from server.transports.sip.inbound import InboundCalls
from server.transports.sip.messages import (
    MalformedMessage,
    adopt_answer,
    build_response,
    is_new_dialog,
)
from server.transports.sip.metrics import SIP_DROPPED, SIP_REFUSED
from server.transports.sip.outbound import Dialer, resolve, transport_of
from server.transports.sip.registration import TrunkRegistration
from server.transports.sip.registry import CallHandler, CallRegistry
from server.transports.sip.stack import SignalingStack
from server.transports.sip.throttle import LogThrottle
from server.transports.sip.transport import GuardedTcpTransport, GuardedUdpTransport

log = logging.getLogger(__name__)
_warn = LogThrottle(log)

_BIND_ATTEMPTS = 8


class SipUserAgent:
    """Answers INVITEs (handing each call to ``on_call``; without one, refuses them with 480), dials out,
    registers at the trunk."""

    def __init__(self, config: SipConfig, on_call: CallHandler | None = None) -> None:
        self.config = config
        self._registry = CallRegistry()
        self._peers = PeerFilter(config)
        self._admission = InviteAdmission(config)
        self._ctx = SipContext(config, self._registry, config.advertised_host or config.listen_host, on_call)
        self._inbound = InboundCalls(self._ctx)
        self._udp: SignalingStack | None = None
        self._tcp: SignalingStack | None = None
        self._dialer: Dialer | None = None
        self.registration: TrunkRegistration | None = None
        self.refusals: Counter[str] = Counter()  # by reason: peer, auth, capacity, draining, sdp...
        self.port = 0

    # -- lifecycle ------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Listen on UDP (and TCP), then register at the trunk if configured."""
        for attempt in range(_BIND_ATTEMPTS):
            try:
                await self._listen(self.config.udp_port)
                break
            except OSError:
                await self._close_stacks()
                if self.config.udp_port or attempt == _BIND_ATTEMPTS - 1:
                    raise
        assert self._udp is not None
        stacks = {"udp": self._udp} | ({"tcp": self._tcp} if self._tcp is not None else {})
        self._dialer = Dialer(self._ctx, stacks)
        trunk = self.config.trunk
        if trunk is not None and trunk.registration:
            stack = stacks.get(transport_of(trunk.uri))
            if stack is None:
                raise SipError(f"sip.trunk.uri {trunk.uri} needs TCP, but sip.tcp is off")
            registrar = await resolve(*_host_port(trunk.uri))
            self.registration = TrunkRegistration(stack, trunk, registrar, self.config.user_agent)
            await self.registration.start()
        log.info(
            "SIP listening on %s:%d (UDP%s)", self.config.listen_host, self.port, "+TCP" if self._tcp else ""
        )

    async def stop(self) -> None:
        """Hang up every call, unregister, close the listeners."""
        self._admission.accepting = False
        await self._inbound.close()
        await self._registry.close()
        if self.registration is not None:
            await self.registration.stop()
        await self._close_stacks()

    async def _listen(self, port: int) -> None:
        host = self.config.listen_host
        advertised = None
        udp = GuardedUdpTransport(local_addr=(host, port), max_message_bytes=self.config.max_message_bytes)
        self._udp = self._stack(udp, advertised)
        await self._udp.start(self._on_message)
        self.port = udp.bound_port
        udp.local_addr = (host, self.port)
        if self.config.advertised_host:
            advertised = (self.config.advertised_host, self.config.advertised_port or self.port)
            for side in (self._udp.uas, self._udp.uac):
                side.advertised_addr = advertised
        if self.config.tcp:
            tcp = GuardedTcpTransport(
                local_addr=(host, self.port), max_message_bytes=self.config.max_message_bytes
            )
            self._tcp = self._stack(tcp, advertised)
            await self._tcp.start(self._on_message)

    def _stack(
        self, transport: GuardedUdpTransport | GuardedTcpTransport, advertised: tuple[str, int] | None
    ) -> SignalingStack:
        stack = SignalingStack(
            transport, advertised=advertised, user_agent=self.config.user_agent, on_timeout=self._on_timeout
        )
        self._inbound.attach(stack)
        return stack

    async def _close_stacks(self) -> None:
        for stack in (self._tcp, self._udp):
            if stack is not None:
                with suppress(Exception):
                    await stack.stop()
        self._udp = self._tcp = None

    # -- public operations -----------------------------------------------------------------------------

    @property
    def address(self) -> tuple[str, int]:
        """The signalling address peers reach us at (advertised when behind NAT)."""
        return (
            self.config.advertised_host or self.config.listen_host,
            self.config.advertised_port or self.port,
        )

    @property
    def calls(self) -> dict[str, SipCall]:
        return dict(self._registry.calls)

    @property
    def accepting(self) -> bool:
        return self._admission.accepting

    def set_accepting(self, accepting: bool) -> None:
        """False: new INVITEs get 503 + Retry-After (draining a node); live calls go on."""
        self._admission.accepting = accepting

    def set_capacity_check(self, node_full: Callable[[], bool] | None) -> None:
        """``node_full()`` True: the node has no free line for any transport (``server.max_calls``), so a new
        INVITE gets 503 + Retry-After and a dial fails at once, before any RTP port or ringing."""
        self._admission.node_full = node_full

    async def dial(
        self,
        target: str,
        *,
        caller_id: str | None = None,
        ring_timeout_s: float | None = None,
        headers: dict[str, str] | None = None,
    ) -> SipCall:
        """Call ``target`` (a sip: URI, or a number/user through the trunk); returns the answered call or
        raises ``DialError`` with a ``DialOutcome``."""
        if self._dialer is None:
            raise SipError("the SIP user agent is not started")
        node_full = self._admission.node_full
        if node_full is not None and node_full():
            raise DialError(target, DialOutcome.FAILED, 503, "no free line on this node (server.max_calls)")
        return await self._dialer.dial(
            target, caller_id=caller_id, ring_timeout_s=ring_timeout_s, headers=headers
        )

    def counters(self) -> dict[str, int]:
        """Protocol counters for tests and the health page."""
        stacks = [s for s in (self._udp, self._tcp) if s is not None]
        return {
            "retransmissions": sum(s.client.retransmissions for s in stacks),
            "absorbed_retransmissions": sum(s.server.absorbed for s in stacks),
            "dropped_oversized": sum(s.transport.dropped_oversized for s in stacks),
            "dropped_malformed": sum(s.transport.dropped_malformed for s in stacks),
            "library_incoming_calls": sum(len(s.uas.active_calls) for s in stacks),
            "library_outgoing_calls": sum(len(s.uac._calls) for s in stacks),
        }

    # -- message routing ------------------------------------------------------------------------------

    def _on_message(
        self, stack: SignalingStack, message: SipRequest | SipResponse, addr: tuple[str, int]
    ) -> None:
        if not self._peers.allows(addr[0]):
            self._refuse_peer(stack, message, addr)
            return
        try:
            if isinstance(message, SipResponse):
                self._on_response(stack, message)
            else:
                self._on_request(stack, message, addr)
        except MalformedMessage as exc:
            SIP_DROPPED.labels("malformed").inc()
            _warn.warning("malformed", "dropped a malformed SIP message from %s: %s", addr[0], exc)
        except Exception:
            log.exception("a SIP message from %s:%d could not be handled", addr[0], addr[1])
            if isinstance(message, SipRequest) and message.method.upper() != "ACK":
                with suppress(Exception):
                    stack.reply(build_response(message, 500))

    def _on_request(self, stack: SignalingStack, request: SipRequest, addr: tuple[str, int]) -> None:
        if missing_required_headers(request):
            stack.deliver(request, addr)  # the library answers 400 (or drops it without a Via)
            return
        if stack.server.is_retransmission(request):
            return
        method, call_id = request.method.upper(), request.call_id or ""
        if method == "INVITE" and is_new_dialog(request):
            if self._registry.knows(call_id):
                self._refuse(stack, request, Refusal(482, "Loop Detected", why="call-id in use"))
                return
            if self._ctx.on_call is None:  # dial-only agent: nobody would listen to an answered call
                self._refuse(stack, request, Refusal(480, "Temporarily Unavailable", why="no handler"))
                return
            outcome = self._admission.check(
                request, addr, active_calls=self._registry.busy, received_at=stack.transport.received_at
            )
            if isinstance(outcome, Refusal):
                self._refuse(stack, request, outcome)
                return
            self._registry.admit(call_id, outcome)
        elif method in ("INVITE", "UPDATE") and request.body:
            try:
                sdp.parse(request.text)
            except SdpError as exc:
                self._refuse(stack, request, Refusal(exc.status, "", why="sdp"))
                return
        elif method == "CANCEL" and call_id in self._registry.calls:
            stack.reply(build_response(request, 200))  # already answered: the CANCEL changes nothing
            return
        stack.deliver(request, addr)

    def _on_response(self, stack: SignalingStack, response: SipResponse) -> None:
        stack.client.on_response(response)
        cseq = response.cseq
        if cseq is not None and cseq.method.upper() == "INVITE" and 200 <= response.status_code < 300:
            outgoing = stack.uac.get_call(response.call_id or "")
            if outgoing is not None and outgoing.dialog.state.value == "early":
                adopt_answer(outgoing.dialog, response)
        stack.deliver(response, ("", 0))

    def _refuse(self, stack: SignalingStack, request: SipRequest, refusal: Refusal) -> None:
        self.refusals[refusal.why or str(refusal.status)] += 1
        SIP_REFUSED.labels(refusal.why or str(refusal.status)).inc()
        log.info(
            "refused %s %s: %d %s (%s)",
            request.method,
            request.call_id,
            refusal.status,
            refusal.reason,
            refusal.why,
        )
        stack.reply(build_response(request, refusal.status, refusal.reason, refusal.headers))

    def _refuse_peer(
        self, stack: SignalingStack, message: SipRequest | SipResponse, addr: tuple[str, int]
    ) -> None:
        self.refusals["peer"] += 1
        SIP_REFUSED.labels("peer").inc()
        _warn.warning(addr[0], "SIP from %s is outside sip.allowed_peers: refused", addr[0])
        if isinstance(message, SipRequest) and message.method.upper() != "ACK":
            with suppress(Exception):
                stack.reply(build_response(message, 403))

    def _on_timeout(self, request: SipRequest) -> None:
        method = request.method.upper()
        if method == "INVITE" and self._dialer is not None:
            self._dialer.invite_timed_out(request.call_id or "")
        elif method == "REGISTER" and self.registration is not None:
            self.registration.registration_timed_out()


def _host_port(uri: str) -> tuple[str, int]:
    from aiosipua import parse_uri

    parsed = parse_uri(uri)
    return parsed.host, parsed.port or 5060
