"""``SipCall``: one phone call as the call core sees it, whatever SIP and RTP did to set it up.

Audio in: ``audio()`` yields the caller's 8 kHz mono ``AudioFrame``s stamped on the monotonic clock.
Audio out: ``play(read_frame)`` gives the pacer a callable it pulls one 20 ms frame from per 20 ms.
Control out: ``events()`` yields DTMF digits, hold/unhold, no-speech, transfer progress and, last,
``CallEnded``. Control in: ``hangup()``, ``transfer(target)`` (REFER), ``send_dtmf(digits)``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, Literal

from aiosipua import Dialog, DialogState, SipRequest, SipResponse

from server.transports.sip.errors import CallEndedError, SipError, TransferError
from server.transports.sip.events import (
    CallEnded,
    HangupReason,
    HoldChanged,
    SipCallEvent,
    TransferProgress,
)
from server.transports.sip.identity import CallerIdentity
from server.transports.sip.media import CallMedia
from server.transports.sip.pacer import FrameSource
from server.transports.sip.rtp import RtpStats
from server.transports.sip.sdp import LocalSdp, MediaParams
from server.transports.sip.stack import SignalingStack
from server.transports.sip.transactions import TIMEOUT
from speech.frames import AudioFrame

log = logging.getLogger(__name__)

_EVENT_QUEUE = 256
_BYE_WAIT_S = 5.0


@dataclass
class CallTimings:
    """Monotonic timestamps of the call's life; ``setup_s`` is INVITE -> 200 OK (sent or received)."""

    invite_at: float
    answered_at: float | None = None
    ended_at: float | None = None

    @property
    def setup_s(self) -> float | None:
        return None if self.answered_at is None else self.answered_at - self.invite_at


class CallSignaling:
    """The in-dialog requests a call sends (BYE, REFER), tracked by the stack's transactions."""

    def __init__(
        self, stack: SignalingStack, dialog: Dialog, remote_addr: tuple[str, int], forget: Callable[[], None]
    ) -> None:
        self.stack = stack
        self.dialog = dialog
        self.remote_addr = remote_addr
        self._forget = forget  # drops the library's record of the dialog (it keeps hung-up calls forever)

    async def bye(self) -> None:
        if self.dialog.state is not DialogState.CONFIRMED:
            self._forget()
            return
        request = self.stack.uac.send_bye(self.dialog, self.remote_addr)
        self._forget()
        await self._final(request, _BYE_WAIT_S)

    async def refer(self, target: str, timeout: float) -> SipResponse:
        request = self.stack.uac.send_refer(self.dialog, target, self.remote_addr)
        response = await self._final(request, timeout)
        if response is None:
            raise TransferError(target, 408, "no answer to REFER")
        return response

    async def _final(self, request: SipRequest, timeout: float) -> SipResponse | None:
        try:
            return await self.stack.client.final_response(request, timeout)
        except (TimeoutError, LookupError, asyncio.CancelledError) as exc:
            if isinstance(exc, asyncio.CancelledError):
                raise
            log.warning("no final response to %s on call %s", request.method, self.dialog.call_id)
            return None


class SipCall:
    """A live SIP call. Created by ``SipUserAgent`` (inbound) or ``SipUserAgent.dial`` (outbound)."""

    sample_rate = 8000

    def __init__(
        self,
        call_id: str,
        direction: Literal["inbound", "outbound"],
        identity: CallerIdentity,
        media: CallMedia,
        signaling: CallSignaling,
        params: MediaParams,
        local_sdp: LocalSdp,
        timings: CallTimings,
        on_end: Callable[[SipCall], None],
    ) -> None:
        self.call_id = call_id
        self.direction = direction
        self.identity = identity
        self.timings = timings
        self.media_params = params
        self.local_sdp = local_sdp  # our SDP session: re-INVITE answers keep its id and port
        self.end: CallEnded | None = None
        self._media = media
        self._signaling = signaling
        self._on_end = on_end
        self._events: asyncio.Queue[SipCallEvent | None] = asyncio.Queue(_EVENT_QUEUE)
        self._ended = asyncio.Event()
        self._transfer_result: asyncio.Future[tuple[int, str]] | None = None
        self._transfer_target = ""
        self._closing: asyncio.Task[None] | None = None
        media.on_media_timeout = lambda: self._finish_soon(HangupReason.MEDIA_TIMEOUT)

    # -- what the call core uses ------------------------------------------------------------------------

    @property
    def codec(self) -> str:
        return self.media_params.codec

    @property
    def on_hold(self) -> bool:
        return self.media_params.remote_holds

    @property
    def ended(self) -> bool:
        return self.end is not None

    @property
    def rtp_stats(self) -> RtpStats:
        return self._media.endpoint.stats

    @property
    def rtp_local_addr(self) -> tuple[str, int]:
        return self._media.endpoint.local_addr

    @property
    def rtp_peer(self) -> tuple[str, int] | None:
        """Where the caller's RTP comes from and ours goes (latched), None before the first packets."""
        return self._media.endpoint.latch.latched

    def audio(self) -> AsyncIterator[AudioFrame]:
        """The caller's audio until the call ends (8 kHz mono int16, 20 ms frames, monotonic stamps).

        One consumer per call: a bounded queue (5 s) behind it drops the oldest frames if nobody reads."""
        return self._media.frames()

    async def events(self) -> AsyncIterator[SipCallEvent]:
        """Control events in order (one consumer); the last one is ``CallEnded``."""
        while True:
            event = await self._events.get()
            if event is None:
                return
            yield event

    def play(self, read_frame: FrameSource | None) -> None:
        """Pull the agent's voice from ``read_frame`` (one 20 ms frame per call, any rate); None: silence."""
        self._media.set_source(read_frame)

    def send_dtmf(self, digits: str, duration_ms: int = 100) -> None:
        """Queue RFC 4733 digits on the negotiated telephone-event payload (ValueError on a bad digit)."""
        self._require_live()
        if self.media_params.dtmf_payload_type is None:
            raise SipError(
                f"call {self.call_id}: the peer did not offer telephone-event (RFC 4733) for digits"
            )
        self._media.send_dtmf(digits, duration_ms)

    async def hangup(self) -> None:
        """Send BYE (retransmitted over UDP) and release the media; a no-op once the call ended."""
        await self._finish(HangupReason.LOCAL)

    async def transfer(self, target: str, timeout: float = TIMEOUT) -> None:
        """Blind transfer (REFER, RFC 3515): returns once the peer reports the target answered, then
        releases the call. Raises ``TransferError`` when refused or when the target did not answer."""
        self._require_live()
        self._transfer_target = target
        self._transfer_result = asyncio.get_running_loop().create_future()
        response = await self._signaling.refer(target, timeout)
        if response.status_code >= 300:
            raise TransferError(target, response.status_code, response.reason_phrase)
        released: asyncio.Future[Any] = asyncio.ensure_future(self._ended.wait())
        waiting: list[asyncio.Future[Any]] = [self._transfer_result, released]
        try:
            done, _ = await asyncio.wait(waiting, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            released.cancel()
        if self._transfer_result.done():
            status, reason = self._transfer_result.result()
            if status >= 300:
                raise TransferError(target, status, reason)
            await self._finish(HangupReason.TRANSFERRED)
        elif not done:
            raise TransferError(target, 408, "no final transfer report (NOTIFY) in time")
        # else: the peer released the call after accepting the REFER, as RFC 5589 allows

    async def wait_ended(self) -> CallEnded:
        await self._ended.wait()
        assert self.end is not None
        return self.end

    # -- what the user agent calls (package-internal) ------------------------------------------------------

    def emit(self, event: object) -> None:
        if self.ended:
            return
        if self._events.full():
            dropped = self._events.get_nowait()
            log.warning("call %s: event queue full, dropped %r", self.call_id, dropped)
        self._events.put_nowait(event)  # type: ignore[arg-type]  # media events are SipCallEvents

    def remote_offer(self, params: MediaParams) -> None:
        """A re-INVITE was answered with ``params``; hold state changes become events."""
        was_held = self.media_params.remote_holds
        self.media_params = params
        self._media.apply(params)
        if params.remote_holds != was_held:
            log.info("call %s %s", self.call_id, "put on hold" if params.remote_holds else "resumed")
            self.emit(HoldChanged(params.remote_holds))

    def transfer_progress(self, status: int, reason: str) -> None:
        self.emit(TransferProgress(self._transfer_target, status, reason))
        if status >= 200 and self._transfer_result is not None and not self._transfer_result.done():
            self._transfer_result.set_result((status, reason))

    def remote_ended(self, reason: HangupReason, detail: str = "") -> None:
        """The peer ended the call (BYE) or it died (ACK timeout); nothing more is sent."""
        self._finish_soon(reason, detail, signal=False)

    async def shutdown(self) -> None:
        await self._finish(HangupReason.SHUTDOWN)

    def _finish_soon(self, reason: HangupReason, detail: str = "", signal: bool = True) -> None:
        if self._closing is None and not self.ended:
            self._closing = asyncio.create_task(self._finish(reason, detail, signal))

    async def _finish(self, reason: HangupReason, detail: str = "", signal: bool = True) -> None:
        if self.end is not None:  # ending already (remote BYE, media timeout): wait until it has ended
            await self._ended.wait()
            return
        self.end = CallEnded(reason, detail)
        self.timings.ended_at = time.monotonic()
        log.info("call %s ended: %s %s", self.call_id, reason.value, detail)
        try:
            if signal:
                await self._signaling.bye()
            else:
                self._signaling.dialog.terminate()
        finally:
            await self._media.close()
            for last in (self.end, None):  # always delivered: the oldest events make room
                if self._events.full():
                    self._events.get_nowait()
                self._events.put_nowait(last)
            self._ended.set()
            self._on_end(self)

    def _require_live(self) -> None:
        if self.ended:
            raise CallEndedError(
                f"call {self.call_id} already ended ({self.end.reason.value if self.end else ''})"
            )
