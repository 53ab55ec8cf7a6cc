"""Answering admitted INVITEs, and the in-dialog requests of every call (BYE, re-INVITE, NOTIFY).

The UAS sends 100 Trying by itself; ``on_invite`` then binds the RTP socket, answers the offer, sends 180
and 200 and hands the new ``SipCall`` to the call handler. A CANCEL that wins the race against the
socket bind leaves nothing behind.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from functools import partial

from aiosipua import DialogState, IncomingCall, SipRequest

from server.transports.sip.admission import AdmittedInvite
from server.transports.sip.call import CallSignaling, CallTimings, SipCall
from server.transports.sip.context import SipContext
from server.transports.sip.errors import SdpError
from server.transports.sip.events import HangupReason
from server.transports.sip.media import CallMedia
from server.transports.sip.messages import build_response
from server.transports.sip.metrics import SIP_CALL_SETUP, SIP_CALLS
from server.transports.sip.sdp import LocalSdp
from server.transports.sip.stack import SignalingStack

log = logging.getLogger(__name__)


class InboundCalls:
    def __init__(self, ctx: SipContext) -> None:
        self._ctx = ctx
        self._tasks: set[asyncio.Task[None]] = set()

    def attach(self, stack: SignalingStack) -> None:
        uas = stack.uas
        uas.on_invite = partial(self.on_invite, stack)
        uas.on_cancel = self.on_cancel
        uas.on_bye = self.on_bye
        uas.on_reinvite = partial(self.on_reinvite, stack)
        uas.on_ack_timeout = self.on_ack_timeout
        uas.on_transfer_progress = self.on_transfer_progress

    def on_invite(self, stack: SignalingStack, incoming: IncomingCall) -> None:
        admitted = self._ctx.registry.pending.get(incoming.call_id)
        if admitted is None:  # cannot happen: the router admits every new INVITE first
            incoming.reject(500)
            return
        # RFC 3261 §12.1.1: the UAS takes Record-Route in order (aiosipua reverses it, which breaks
        # in-dialog routing through two or more proxies).
        incoming.dialog.route_set = list(incoming.invite.headers.get("record-route"))
        task = asyncio.create_task(self._answer(stack, incoming, admitted), name="sip-answer")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _answer(self, stack: SignalingStack, incoming: IncomingCall, admitted: AdmittedInvite) -> None:
        ctx, call_id = self._ctx, incoming.call_id
        media = CallMedia(ctx.media_settings(), on_event=lambda event: call.emit(event))
        try:
            port = await media.open()
        except OSError:
            log.exception("call %s: no RTP port; answering 503", call_id)
            ctx.registry.pending.pop(call_id, None)
            incoming.reject(503)
            return
        if admitted.cancelled or incoming.dialog.state is DialogState.TERMINATED:
            await media.close()
            return
        local_sdp = LocalSdp(ctx.sdp_host, port, str(int.from_bytes(os.urandom(4), "big")))
        try:
            answer, params = local_sdp.answer(admitted.offer, list(ctx.config.codecs))
        except SdpError:  # admission checked the same offer: only a changed config gets here
            await media.close()
            ctx.registry.pending.pop(call_id, None)
            incoming.reject(488)
            return
        media.apply(params)
        signaling = CallSignaling(
            stack, incoming.dialog, incoming.source_addr, partial(_forget, stack, call_id)
        )
        call = SipCall(
            call_id,
            "inbound",
            admitted.identity,
            media,
            signaling,
            params,
            local_sdp,
            CallTimings(admitted.received_at),
            ctx.registry.remove,
        )
        incoming.ringing()
        incoming.accept(answer)
        call.timings.answered_at = time.monotonic()
        media.start()
        ctx.registry.add(call, ctx.on_call)
        SIP_CALLS.labels("inbound").inc()
        SIP_CALL_SETUP.observe(call.timings.setup_s or 0.0)
        log.info(
            "answered call %s from %s (%s, %s) in %.1f ms",
            call_id,
            admitted.identity.uri,
            params.codec,
            stack.name,
            1000 * (call.timings.setup_s or 0.0),
        )

    def on_cancel(self, request: SipRequest, addr: tuple[str, int]) -> None:
        admitted = self._ctx.registry.pending.pop(request.call_id or "", None)
        if admitted is not None:
            admitted.cancelled = True
            log.info("call %s cancelled by the caller before the answer", request.call_id)

    def on_bye(self, incoming: IncomingCall, request: SipRequest) -> None:
        call = self._ctx.registry.calls.get(incoming.call_id)
        if call is not None:
            call.remote_ended(HangupReason.REMOTE, request.get_header("reason") or "")

    def on_ack_timeout(self, incoming: IncomingCall) -> None:
        call = self._ctx.registry.calls.get(incoming.call_id)
        if call is not None:
            call.remote_ended(HangupReason.ACK_TIMEOUT, "no ACK for our 200 OK")

    def on_transfer_progress(self, call_id: str, status: int, reason: str) -> None:
        call = self._ctx.registry.calls.get(call_id)
        if call is not None:
            call.transfer_progress(status, reason)

    def on_reinvite(self, stack: SignalingStack, incoming: IncomingCall) -> None:
        """Hold/unhold and address changes: answer with the call's codec, keep the SDP session."""
        call = self._ctx.registry.calls.get(incoming.call_id)
        if call is None:
            stack.reply(build_response(incoming.invite, 481))
            return
        if incoming.sdp_offer is None:  # offer-less re-INVITE: our current SDP is the offer
            incoming.accept(call.local_sdp.last)
            return
        try:
            answer, params = call.local_sdp.answer(incoming.sdp_offer, [call.codec])
        except SdpError as exc:
            log.warning("call %s: re-INVITE refused: %s", call.call_id, exc)
            stack.reply(build_response(incoming.invite, 488))  # reject() would end the dialog
            return
        incoming.accept(answer)
        call.remote_offer(params)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


def _forget(stack: SignalingStack, call_id: str) -> None:
    """aiosipua keeps a call we hung up in its UAS table forever; drop it (and any 2xx retransmission)."""
    incoming = stack.uas._calls.pop(call_id, None)  # private: no public removal in 0.7.1
    if incoming is not None:
        incoming._stop_retransmissions()
