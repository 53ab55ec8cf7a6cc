"""``Telephony``: the phone side of a node, built by ``server.node.VoiceNode``.

- the phone directory (``storage.phone_directory``, plus ``phone.directory_file`` loaded at start);
- presence: this node's live calls in the shared delivery-ledger database (every node, SIP or not, so no
  node rings a user who talks to another one);
- the SIP user agent (``sip.enabled``) with ``PhoneCallAnswerer`` for inbound calls;
- ``PhoneOutreach`` (SIP nodes) for prompts whose user is in no call, and the ``RetrySweeper`` (every node)
  for later attempts;
- ``PromptDelivery``, shared with the bus consumer, which records answers by key.
``open()`` builds it all without taking calls; ``start()`` starts listening once the node's bus
subscriptions receive; ``stop()`` ends it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from typing import Any

from aiosipua import parse_uri

from messaging.bus import MessageBus, dead_letter_topic
from messaging.schemas import ProactivePrompt
from server.calls.identity import CallIdentity
from server.calls.registry import SessionRegistry
from server.calls.session import CallDeps
from server.phone.directory import load_directory_file
from server.phone.inbound import PhoneCallAnswerer
from server.phone.outreach import PhoneOutreach, Presence
from server.phone.presence import PresenceTracker
from server.phone.retries import RetrySweeper
from server.proactive.delivery import PromptDelivery
from server.settings import Settings
from server.storage.delivery_ledger import SqlDeliveryLedger
from server.storage.outreach_ledger import SqlOutreachLedger
from server.storage.phone_directory import SqlPhoneDirectory, open_phone_directory
from server.storage.presence import SqlPresence
from server.transports.sip import SipConfig, SipUserAgent
from server.transports.sip.bridge import SipCallBridge, TransferUri

log = logging.getLogger(__name__)

# What the transfer tool may name besides a full sip: URI (which must be agent.transfer_target itself):
# a queue name, an extension or a number. The model fills this argument from the caller's words, so
# nothing a caller says may send the call to an arbitrary SIP address (toll fraud).
_TRANSFER_NAME = re.compile(r"^[A-Za-z0-9+*#_.-]{1,64}$")


class Telephony:
    def __init__(
        self, settings: Settings, deps: CallDeps, ledger: SqlDeliveryLedger, bus: MessageBus
    ) -> None:
        self.settings = settings
        self.deps = deps
        self.ledger = ledger
        self.bus = bus
        self.node_id = settings.server.node_id
        self.user_agent: SipUserAgent | None = None
        self.outreach: PhoneOutreach | None = None
        self.sweeper: RetrySweeper | None = None
        self._cleanup = contextlib.AsyncExitStack()

    @classmethod
    async def open(
        cls, settings: Settings, deps: CallDeps, ledger: SqlDeliveryLedger, bus: MessageBus
    ) -> Telephony:
        phone = cls(settings, deps, ledger, bus)
        try:
            await phone._open()
        except BaseException:
            await phone._cleanup.aclose()
            raise
        return phone

    async def _open(self) -> None:
        s = self.settings
        storage = s.storage
        self.directory: SqlPhoneDirectory = await asyncio.to_thread(
            open_phone_directory,
            storage.phone_directory,
            connect_timeout_s=storage.connect_timeout_s,
            statement_timeout_s=storage.statement_timeout_s,
        )
        self._cleanup.callback(self.directory.close)
        if s.phone.directory_file:
            entries = await asyncio.to_thread(load_directory_file, s.phone.directory_file)
            count = await self.directory.replace_source("file", entries)
            log.info("phone directory: %d entries from %s", count, s.phone.directory_file)
        self.store = await asyncio.to_thread(SqlOutreachLedger, self.ledger)
        self.presence_store = await asyncio.to_thread(SqlPresence, self.ledger.engine, self.ledger.clock)
        self.tracker = PresenceTracker(
            self.presence_store, self.deps.registry, self.node_id, s.phone.presence_heartbeat_s
        )
        self.presence = Presence(self.tracker.window_s, self.ledger.clock)
        self.delivery = PromptDelivery(self.ledger, self.node_id, self.store, s.phone.key_response_timeout_s)
        self._cleanup.push_async_callback(self.delivery.close)
        if s.sip.enabled:
            self.answerer = PhoneCallAnswerer(
                self.deps,
                self.directory,
                s.phone,
                transfer_uri(s.sip, s.agent.transfer_target, s.phone.transfer_uri),
            )
            self.user_agent = SipUserAgent(s.sip, on_call=self.answerer)
            admission = self.deps.admission
            self.user_agent.set_capacity_check(lambda: admission.full("sip"))  # server.max_calls, node-wide
            self.outreach = PhoneOutreach(
                node_id=self.node_id,
                config=s.phone.outreach,
                dialer=self.user_agent,
                directory=self.directory,
                store=self.store,
                delivery=self.delivery,
                bridge=self._outbound_bridge,
                presence=self.presence,
                greeting=s.agent.greeting,
                dead_letter=self._dead_letter,
            )

    async def start(self, registry: SessionRegistry) -> None:
        """Publish presence, listen for SIP (and register at the trunk), look for due retries."""
        await self.tracker.start()
        self._cleanup.push_async_callback(self.tracker.stop)
        if self.user_agent is not None:
            await self.user_agent.start()
            self._cleanup.push_async_callback(self.user_agent.stop)
        if self.outreach is not None:
            self._cleanup.push_async_callback(self.outreach.stop)
        if self.settings.phone.outreach.enabled:
            self.sweeper = RetrySweeper(
                node_id=self.node_id,
                config=self.settings.phone.outreach,
                store=self.store,
                calls=registry,
                delivery=self.delivery,
                presence=self.presence,
                outreach=self.outreach,
            )
            self.sweeper.start()
            self._cleanup.push_async_callback(self.sweeper.stop)

    async def stop(self) -> None:
        await self._cleanup.aclose()

    def _outbound_bridge(self, call: Any, callee: CallIdentity, info: dict[str, Any]) -> SipCallBridge:
        return self.answerer.bridge(call, callee, greet=False, info=info)

    async def _dead_letter(self, prompt: ProactivePrompt, reason: str) -> None:
        bus = self.settings.bus
        await self.bus.publish(
            dead_letter_topic(bus.topic_proactive, bus.dead_letter_suffix),
            prompt.to_bytes(),
            key=prompt.user_id,
            properties={"reason": reason[:500], "node_id": self.node_id},
        )


def transfer_uri(sip: SipConfig, configured_target: str, template: str | None) -> TransferUri:
    """Where the transfer tool's target goes as a REFER: a name or number through ``phone.transfer_uri``
    (``{target}``) or the trunk's domain; a sip: URI only when it is ``agent.transfer_target`` itself.
    Anything else (a URI the caller talked the model into, free text) is replaced by the configured target."""
    trunk = sip.trunk
    domain = (trunk.domain or parse_uri(trunk.uri).host) if trunk is not None else None

    def resolve(target: str) -> str | None:
        if target.startswith("sip:"):
            return target if target == configured_target else None
        if not _TRANSFER_NAME.match(target):
            return None
        if template is not None:
            return template.replace("{target}", target)
        return f"sip:{target}@{domain}" if domain else None

    def uri(target: str) -> str | None:
        resolved = resolve(target)
        if resolved is None and target != configured_target:
            log.warning("transfer target %r is not allowed; using agent.transfer_target", target[:80])
            resolved = resolve(configured_target)
        return resolved

    return uri
