"""``PhoneCallAnswerer``: the ``on_call`` handler of the node's SIP user agent for calls it answers: who
is calling (directory), then a ``SipCallBridge`` for the rest of the call."""

from __future__ import annotations

import logging

from server.calls.identity import CallIdentity
from server.calls.session import CallDeps
from server.phone.callers import identify_caller
from server.phone.config import PhoneConfig
from server.phone.directory import PhoneDirectory
from server.transports.sip import SipCall
from server.transports.sip.bridge import SipCallBridge, TransferUri

log = logging.getLogger(__name__)


class PhoneCallAnswerer:
    def __init__(
        self, deps: CallDeps, directory: PhoneDirectory, config: PhoneConfig, transfer_uri: TransferUri
    ) -> None:
        self.deps = deps
        self.directory = directory
        self.config = config
        self.transfer_uri = transfer_uri

    async def __call__(self, call: SipCall) -> None:
        caller = await identify_caller(self.directory, call.identity)
        log.info(
            "SIP call %s from %s: user %s%s",
            call.call_id,
            call.identity.number or call.identity.uri,
            caller.user_id,
            " (anonymous)" if caller.anonymous else "",
        )
        bridge = self.bridge(call, caller.identity, greet=True, info=caller.info())
        bridge.start()
        await bridge.run()

    def bridge(
        self, call: SipCall, identity: CallIdentity, *, greet: bool, info: dict[str, object] | None = None
    ) -> SipCallBridge:
        """A bridge for ``call`` with this node's settings (also for the calls the outreach places)."""
        return SipCallBridge(
            call,
            self.deps,
            identity,
            greet=greet,
            goodbye=self.config.no_speech_goodbye,
            transfer_uri=self.transfer_uri,
            info=dict(info or {}),
        )
