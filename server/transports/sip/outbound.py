"""Outbound calls: INVITE to a URI or through the trunk, ring timeout with CANCEL, outcomes kept apart.

busy (486/600), rejected (403/603/...), no answer (rang until the ring timeout, or 408/480) and unreachable
(no response, 404, 5xx) are reported as distinct ``DialOutcome``s so a retry policy can treat them
differently. A 200 that crosses our CANCEL is ACKed and hung up at once (aiosipua ignores it).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from dataclasses import dataclass
from functools import partial

from aiosipua import DialogState, OutgoingCall, SipDigestAuth, SipResponse, parse_uri

from server.transports.sip import sdp
from server.transports.sip.call import CallSignaling, CallTimings, SipCall
from server.transports.sip.context import SipContext
from server.transports.sip.errors import DialError, DialOutcome, SdpError
from server.transports.sip.identity import callee_identity
from server.transports.sip.media import CallMedia
from server.transports.sip.messages import adopt_answer, build_2xx_ack
from server.transports.sip.metrics import SIP_CALLS, SIP_DIAL_OUTCOMES
from server.transports.sip.sdp import LocalSdp
from server.transports.sip.stack import SignalingStack
from server.transports.sip.transactions import TIMEOUT

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DialRoute:
    request_uri: str
    remote_addr: tuple[str, int]
    from_uri: str
    auth: SipDigestAuth | None
    transport: str  # "udp" or "tcp" (";transport=tcp" on the target or trunk URI)


def outcome_of(status: int) -> DialOutcome:
    if status in (486, 600):
        return DialOutcome.BUSY
    if status in (408, 480, 487):
        return DialOutcome.NO_ANSWER
    if status in (404, 410, 484, 604) or 500 <= status < 600:
        return DialOutcome.UNREACHABLE
    return DialOutcome.REJECTED


class Dialer:
    def __init__(self, ctx: SipContext, stacks: dict[str, SignalingStack]) -> None:
        self._ctx = ctx
        self._stacks = stacks
        self._timed_out: dict[str, asyncio.Event] = {}

    def invite_timed_out(self, call_id: str) -> None:
        """Timer B fired: no response at all to our INVITE."""
        event = self._timed_out.get(call_id)
        if event is not None:
            event.set()

    async def dial(
        self,
        target: str,
        *,
        caller_id: str | None = None,
        ring_timeout_s: float | None = None,
        headers: dict[str, str] | None = None,
    ) -> SipCall:
        ctx = self._ctx
        if ctx.registry.busy >= ctx.config.max_calls:
            raise DialError(target, DialOutcome.FAILED, 503, f"at sip.max_calls ({ctx.config.max_calls})")
        route = await self._route(target, caller_id)
        stack = self._stacks.get(route.transport)
        if stack is None:
            raise DialError(target, DialOutcome.FAILED, 0, f"sip.{route.transport} is not enabled")
        if not await stack.connect(route.remote_addr):
            raise self._failed(
                target, DialOutcome.UNREACHABLE, 0, f"no TCP connection to {route.remote_addr}"
            )
        media = CallMedia(ctx.media_settings(), on_event=lambda event: call.emit(event))
        port = await media.open()
        local_sdp = LocalSdp(ctx.sdp_host, port, str(int.from_bytes(os.urandom(4), "big")))
        offer = sdp.build_offer(
            local_ip=ctx.sdp_host,
            rtp_port=port,
            codecs=list(ctx.config.codecs),
            session_id=local_sdp.session_id,
        )
        local_sdp.last = offer
        rejected: list[tuple[int, str]] = []
        started = time.monotonic()
        out = stack.uac.send_invite(
            route.from_uri,
            route.request_uri,
            route.remote_addr,
            offer,
            extra_headers=headers,
            user_agent=ctx.config.user_agent,
            auth=route.auth,
        )
        out.on_rejected = lambda _call, status, reason: rejected.append((status, reason))
        ctx.registry.dialing.add(out.call_id)
        self._timed_out[out.call_id] = timed_out = asyncio.Event()
        try:
            ring = ring_timeout_s or ctx.config.ring_timeout_s
            await self._wait_answer(stack, out, timed_out, ring, rejected, target)
            params = self._answer_params(stack, out, target)
        except BaseException:
            await media.close()
            raise
        finally:
            ctx.registry.dialing.discard(out.call_id)
            self._timed_out.pop(out.call_id, None)
        media.apply(params)
        forget = partial(stack.uac.remove_call, out.call_id)
        signaling = CallSignaling(stack, out.dialog, route.remote_addr, forget)
        identity = callee_identity(route.request_uri, route.remote_addr)
        call = SipCall(
            out.call_id,
            "outbound",
            identity,
            media,
            signaling,
            params,
            local_sdp,
            CallTimings(started, answered_at=time.monotonic()),
            ctx.registry.remove,
        )
        media.start()
        ctx.registry.add(call, None)
        SIP_CALLS.labels("outbound").inc()
        SIP_DIAL_OUTCOMES.labels("answered").inc()
        log.info("call %s to %s answered (%s)", out.call_id, target, params.codec)
        return call

    async def _wait_answer(
        self,
        stack: SignalingStack,
        out: OutgoingCall,
        timed_out: asyncio.Event,
        ring_timeout: float,
        rejected: list[tuple[int, str]],
        target: str,
    ) -> None:
        answered = asyncio.ensure_future(out.wait_answered(timeout=ring_timeout))
        no_response = asyncio.ensure_future(timed_out.wait())
        try:
            await asyncio.wait([answered, no_response], return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            answered.cancel()
            await self._give_up(stack, out)
            raise
        finally:
            no_response.cancel()
        if not answered.done():
            answered.cancel()
            raise self._failed(target, DialOutcome.UNREACHABLE, 0, "no response to INVITE")
        try:
            answered.result()
        except RuntimeError:  # the library's "Call rejected" (3xx-6xx)
            status, reason = rejected[-1] if rejected else (0, "rejected")
            raise self._failed(target, outcome_of(status), status, reason) from None
        except TimeoutError:
            if not stack.client.provisional_seen(out.invite):
                stack.client.abandon(out.invite)
                raise self._failed(target, DialOutcome.UNREACHABLE, 0, "no response to INVITE") from None
            await self._give_up(stack, out)
            raise self._failed(
                target, DialOutcome.NO_ANSWER, 0, f"no answer in {ring_timeout:.0f} s"
            ) from None

    async def _give_up(self, stack: SignalingStack, out: OutgoingCall) -> None:
        """CANCEL a ringing INVITE; if a 200 crosses the CANCEL, ACK it and hang up at once."""
        if out.dialog.state is not DialogState.EARLY:
            return
        invite = out.invite
        if not stack.client.provisional_seen(invite):
            stack.client.abandon(invite)  # RFC 3261 §9.1: no CANCEL before a provisional
            return
        final = asyncio.ensure_future(stack.client.final_response(invite, TIMEOUT))
        out.cancel(stack.uac)
        try:
            response = await final
        except (TimeoutError, asyncio.CancelledError):
            return
        if 200 <= response.status_code < 300:
            self._hang_up_late_answer(stack, out, response)

    def _hang_up_late_answer(self, stack: SignalingStack, out: OutgoingCall, response: SipResponse) -> None:
        dialog = out.dialog
        adopt_answer(dialog, response)
        dialog.state = DialogState.CONFIRMED
        seq = out.invite.cseq.seq if out.invite.cseq else 1
        via_host, via_port = stack.uac.advertised_addr or stack.transport.local_addr
        stack.transport.send_untracked(build_2xx_ack(dialog, seq, via_host, via_port), out.remote_addr)
        stack.uac.send_bye(dialog, out.remote_addr)
        log.info("call %s answered after our CANCEL: ACKed and hung up", out.call_id)

    def _answer_params(self, stack: SignalingStack, out: OutgoingCall, target: str) -> sdp.MediaParams:
        try:
            if out.sdp_answer is None:
                raise SdpError("200 OK without an SDP answer")
            return sdp.read_answer(out.sdp_answer, list(self._ctx.config.codecs))
        except SdpError as exc:
            log.warning("call %s: unusable answer (%s); hanging up", out.call_id, exc)
            out.hangup(stack.uac)
            raise self._failed(target, DialOutcome.FAILED, 488, str(exc)) from None

    @staticmethod
    def _failed(target: str, outcome: DialOutcome, status: int, reason: str) -> DialError:
        SIP_DIAL_OUTCOMES.labels(outcome.value).inc()
        log.info("call to %s: %s (%s %s)", target, outcome.value, status or "", reason)
        return DialError(target, outcome, status, reason)

    async def _route(self, target: str, caller_id: str | None) -> DialRoute:
        """A sip: URI is dialled directly (through the trunk if it names the trunk's host); anything else
        is a number or user dialled through the trunk."""
        trunk = self._ctx.config.trunk
        trunk_host = parse_uri(trunk.uri).host if trunk else None
        domain = (trunk.domain if trunk and trunk.domain else trunk_host) or self._ctx.sdp_host
        user = caller_id or (trunk.caller_id or trunk.username if trunk else None) or "voice-agent"
        from_uri = f"sip:{user}@{domain}"
        trunk_transport = transport_of(trunk.uri) if trunk else "udp"
        if target.startswith("sip:"):
            uri = parse_uri(target)
            via_trunk = trunk is not None and uri.host in (trunk_host, trunk.domain)
            if via_trunk:
                return DialRoute(
                    target, await self._trunk_addr(), from_uri, self._trunk_auth(), trunk_transport
                )
            addr = await resolve(uri.host, uri.port or 5060)
            return DialRoute(target, addr, from_uri, None, transport_of(target))
        if trunk is None:
            raise DialError(target, DialOutcome.FAILED, 0, "a number needs sip.trunk (or dial a sip: URI)")
        number_uri = f"sip:{target}@{domain}"
        return DialRoute(number_uri, await self._trunk_addr(), from_uri, self._trunk_auth(), trunk_transport)

    async def _trunk_addr(self) -> tuple[str, int]:
        assert self._ctx.config.trunk is not None
        uri = parse_uri(self._ctx.config.trunk.uri)
        return await resolve(uri.host, uri.port or 5060)

    def _trunk_auth(self) -> SipDigestAuth | None:
        trunk = self._ctx.config.trunk
        if trunk is None or trunk.password is None or not (trunk.auth_username or trunk.username):
            return None
        return SipDigestAuth(trunk.auth_username or trunk.username or "", trunk.password.get_secret_value())


def transport_of(uri: str) -> str:
    """``tcp`` for a URI with ``;transport=tcp``, else ``udp``."""
    value = parse_uri(uri).params.get("transport") or "udp"
    return value.lower()


async def resolve(host: str, port: int) -> tuple[str, int]:
    """A host name or address -> an IPv4/IPv6 address (no SRV/NAPTR: give the trunk's port)."""
    with contextlib.suppress(OSError):
        socket.inet_pton(socket.AF_INET6 if ":" in host else socket.AF_INET, host.strip("[]"))
        return host.strip("[]"), port
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_DGRAM)
    if not infos:
        raise OSError(f"cannot resolve SIP host {host!r}")
    address = infos[0][4]
    return str(address[0]), int(address[1])
