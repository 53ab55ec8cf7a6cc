"""`ProactivePromptConsumer`: turns ``voice_proactive`` messages into speech in the right live call.

Every node subscribes under its own consumer group (``<group_prefix>-<node_id>``), so every node sees
every prompt, and acts only when the user is in a call on this node. Before speaking it claims the
prompt's idempotency key in the shared `DeliveryLedger`; only one claim can win, so a prompt is spoken
once however many nodes, redeliveries or republished copies there are. A prompt for a user who is in no
call is held as ``pending`` (one row per key, whichever node writes it first) for `pop_pending` at the
user's next call. The bus message is acknowledged only after the prompt was spoken, held, expired or
found to be a duplicate; an exception from the call releases the claim (back to pending) and the bus
retries. With an ``outreach`` (a node that can place phone calls), a prompt for a user in no call on this
node is first offered to it: it rings the user's phone unless the user is in a call on another node
(``server.phone.outreach``); only what it does not take is held.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Protocol, TypeVar

from messaging.bus import Message, MessageBus, Subscription
from messaging.schemas import ProactivePrompt
from server.proactive.delivery import PromptDelivery
from server.proactive.directory import SessionDirectory
from server.proactive.ledger import LEDGER_OUTAGE_WAIT_S, DeliveryLedger, riding_out_outage

log = logging.getLogger(__name__)
T = TypeVar("T")


class Outreach(Protocol):
    """Rings the phone of a user who is in no call (``server.phone.outreach.PhoneOutreach``)."""

    async def offer(self, prompt: ProactivePrompt) -> bool:
        """True when it took the prompt (dialling, or a later attempt scheduled); False: hold it."""
        ...


class ProactivePromptConsumer:
    def __init__(
        self,
        bus: MessageBus,
        directory: SessionDirectory,
        ledger: DeliveryLedger,
        node_id: str,
        topic: str = "voice_proactive",
        group_prefix: str = "voice-proactive",
        clock: Callable[[], float] = time.time,
        ledger_outage_wait_s: float = LEDGER_OUTAGE_WAIT_S,
        delivery: PromptDelivery | None = None,
        outreach: Outreach | None = None,
    ) -> None:
        """``ledger_outage_wait_s``: how long one message waits for the ledger's database to come back
        (a PostgreSQL restart) before it goes back to the bus's retries."""
        self.ledger_outage_wait_s = ledger_outage_wait_s
        self.bus = bus
        self.directory = directory
        self.ledger = ledger
        self.node_id = node_id
        self.topic = topic
        self.group = f"{group_prefix}-{node_id}"
        self.clock = clock
        self.delivery = delivery or PromptDelivery(ledger, node_id, outage_wait_s=ledger_outage_wait_s)
        self.outreach = outreach

    def subscribe(self) -> Subscription:
        """Register with the bus (before or after ``bus.start()``); ``await`` the result to wait until
        this node's group is receiving."""
        return self.bus.subscribe(self.topic, self.group, self.handle)

    async def pop_pending(self, user_id: str, tenant: str = "default") -> list[ProactivePrompt]:
        """Prompts held for ``user_id`` of ``tenant``, for the greeting of the call that just started on
        this node."""
        return await self._ledger(self.ledger.pop_pending, user_id, self.node_id, tenant)

    async def _ledger(self, op: Callable[..., Awaitable[T]], *args: object) -> T:
        """A ledger write that waits out a database outage (``riding_out_outage``)."""
        return await riding_out_outage(op, *args, wait_s=self.ledger_outage_wait_s, what=op.__name__)

    async def handle(self, message: Message) -> None:
        await self.act_on(ProactivePrompt.parse(message.body))  # PoisonMessage -> dead letter

    async def act_on(self, prompt: ProactivePrompt) -> None:
        """Speak ``prompt`` in the user's call on this node, offer it to the phone outreach, or hold it
        (a bus message, or a prompt whose claim was abandoned by a dead node)."""
        ctx = (
            f"key={prompt.idempotency_key} tenant={prompt.tenant} user={prompt.user_id} "
            f"message_id={prompt.message_id} node={self.node_id}"
        )
        if prompt.expired(self.clock()):
            log.info("proactive prompt expired before delivery: %s", ctx)
            await self._ledger(self.ledger.mark_expired, prompt, self.node_id)
            return
        call = self.directory.find_by_user(prompt.user_id, prompt.tenant)
        if call is None:
            if self.outreach is not None and await self.outreach.offer(prompt):
                log.info("user not in a call on this node; the phone outreach took it: %s", ctx)
                return
            if await self._ledger(self.ledger.hold_pending, prompt, self.node_id):
                log.info("user not in a call on this node; holding prompt: %s", ctx)
            return
        blocked_by = await self._ledger(self.ledger.claim, prompt, self.node_id)
        if blocked_by is not None:
            log.info("proactive prompt already %s; not speaking again: %s", blocked_by, ctx)
            return
        if await self.delivery.speak(call, prompt):
            log.info("proactive prompt spoken: %s", ctx)
        else:
            log.info("proactive prompt not spoken; held for the next call: %s", ctx)
