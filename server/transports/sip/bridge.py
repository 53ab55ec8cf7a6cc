"""``SipCallBridge``: one phone call (``SipCall``) carried by one ``server.calls.CallSession``.

A thin adapter, like the WebRTC and WebSocket transports: the caller's 8 kHz G.711 audio goes to
``session.listen``, the RTP pacer pulls ``session.read_frame`` (output rate 8000, so the agent's voice is
resampled once, when queued), and the call's events become the session's control events: a key pressed is
``Dtmf``, a re-INVITE to hold or resume is ``Hold``, a BYE (or dead media) is ``Hangup``. The other way, the
session ending hangs up (BYE), the agent's transfer tool becomes a REFER once its "one moment" is said, and
``NoSpeech`` (nobody on the line for ``sip.no_speech_hangup_s``) a polite goodbye and a hang-up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from server.calls.controls import Dtmf, Hangup, Hold
from server.calls.identity import CallIdentity
from server.calls.session import CallDeps, CallSession
from server.transports.sip.call import SipCall
from server.transports.sip.errors import SipError
from server.transports.sip.events import (
    CallEnded,
    DtmfReceived,
    HangupReason,
    HoldChanged,
    NoSpeech,
    TransferProgress,
)

log = logging.getLogger(__name__)

_TRANSFER_AFTER_S = 15.0  # REFER at the latest this long after the tool asked, said or not
_TRANSFER_TIMEOUT_S = 30.0  # REFER accepted and the target answered (NOTIFY 200)
# Caller speech (a transcript) cancels a goodbye that was waiting for the agent to finish speaking.
_CALLER_SPOKE = frozenset({"partial_transcript", "final_transcript"})

TransferUri = Callable[[str], str | None]


class SipCallBridge:
    """``MediaTransport`` of a SIP call. ``start()`` builds and starts the session; ``run()`` lasts until
    the call has ended (the user agent's ``on_call`` handler awaits it)."""

    kind = "sip"

    def __init__(
        self,
        call: SipCall,
        deps: CallDeps,
        identity: CallIdentity,
        *,
        greet: bool = True,
        goodbye: str = "Goodbye!",
        transfer_uri: TransferUri = lambda target: target if target.startswith("sip:") else None,
        info: dict[str, Any] | None = None,
    ) -> None:
        self.call = call
        self.deps = deps
        self.user_id = identity.user_id
        self.goodbye = goodbye
        self.transfer_uri = transfer_uri
        self.info = info or {}  # shown with the "connection" event (caller number, tenant...)
        self.session = CallSession(
            deps, identity=identity, output_rate=call.sample_rate, transport=self, greet=greet
        )
        self._goodbye: asyncio.Task[None] | None = None
        self._transfer_to: str | None = None
        self._transfer_due: asyncio.Event = asyncio.Event()

    # -- MediaTransport -----------------------------------------------------------------------------
    @property
    def connection_state(self) -> str:
        if self.call.ended:
            return "closed"
        return "on hold" if self.call.on_hold else "connected"

    async def close(self) -> None:
        """The session ended (whoever ended it): stop pulling audio and hang up (a no-op after a BYE)."""
        self.call.play(None)
        with contextlib.suppress(SipError):
            await self.call.hangup()

    # -- lifecycle ----------------------------------------------------------------------------------
    def start(self) -> CallSession:
        session = self.session
        if not session.admit():  # the INVITE's capacity check passed; another transport took the last line since
            log.warning("SIP call %s carried past server.max_calls (raced for the last line)", self.call.call_id)
        session.start()
        session.listen(self.call.audio())
        self.call.play(session.read_frame)
        session.spawn(self._follow_call(), "sip-events")
        session.spawn(self._follow_session(), "sip-session-events")
        session.events.emit(
            "connection",
            {
                "state": "connected",
                "transport": "sip",
                "direction": self.call.direction,
                "codec": self.call.codec,
                "sip_call_id": self.call.call_id,
                **self.info,
            },
        )
        session.connected()
        log.info(
            "SIP call %s (%s, %s) is call %s of user %s",
            self.call.call_id,
            self.call.direction,
            self.call.codec,
            session.call_id,
            self.user_id,
        )
        return session

    async def run(self) -> None:
        """Until the session has ended (records saved, BYE sent or received)."""
        await self.session.ended.wait()

    # -- the call's events -> the session -------------------------------------------------------------
    async def _follow_call(self) -> None:
        session = self.session
        async for event in self.call.events():
            if isinstance(event, DtmfReceived):
                await session.control(Dtmf(event.digit, event.at))
            elif isinstance(event, HoldChanged):
                await session.control(Hold(event.on_hold))
            elif isinstance(event, NoSpeech):
                self._say_goodbye(event)
            elif isinstance(event, TransferProgress):
                session.events.emit(
                    "transfer_progress",
                    {"target": event.target, "status": event.status, "reason": event.reason},
                )
            elif isinstance(event, CallEnded):
                await session.control(Hangup(_end_reason(event)))
                return

    def _say_goodbye(self, event: NoSpeech) -> None:
        if self._goodbye is None or self._goodbye.done():
            log.info(
                "call %s: nobody spoke for %.0f s; saying goodbye", self.session.call_id, event.silent_for_s
            )
            self._goodbye = self.session.spawn(self.session.say_goodbye(self.goodbye, "no_speech"), "goodbye")

    # -- the session's events -> the call ---------------------------------------------------------------
    async def _follow_session(self) -> None:
        events = self.session.events.subscribe()
        try:
            while (event := await events.get()) is not None:
                kind = event["type"]
                if kind == "transfer" and self._transfer_to is None:
                    self._transfer_to = str(event.get("target") or "")
                    self.session.spawn(self._transfer(self._transfer_to), "sip-transfer")
                elif kind == "turn" and self._transfer_to:
                    self._transfer_due.set()  # the reply that announced the transfer was said
                elif kind in _CALLER_SPOKE and self._goodbye is not None and not self._goodbye.done():
                    self._goodbye.cancel()  # someone is there after all
                    log.info("call %s: the caller spoke; no goodbye", self.session.call_id)
        finally:
            self.session.events.unsubscribe(events)

    async def _transfer(self, target: str) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._transfer_due.wait(), _TRANSFER_AFTER_S)
        uri = self.transfer_uri(target)
        if uri is None:
            self._transfer_failed(
                target, "no SIP address for this target (set phone.transfer_uri or a trunk)"
            )
            return
        log.info("call %s: transferring to %s (REFER %s)", self.session.call_id, target, uri)
        try:
            await self.call.transfer(uri, timeout=_TRANSFER_TIMEOUT_S)
        except SipError as exc:
            self._transfer_failed(target, str(exc))

    def _transfer_failed(self, target: str, why: str) -> None:
        log.warning("call %s: transfer to %s failed: %s", self.session.call_id, target, why)
        self.session.events.emit("transfer_failed", {"target": target, "reason": why})


def _end_reason(event: CallEnded) -> str:
    """The call record's end reason: ``hangup`` when the phone hung up, else what ended the SIP call."""
    return "hangup" if event.reason is HangupReason.REMOTE else event.reason.value
