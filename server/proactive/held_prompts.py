"""``HeldPromptGreeting``: the prompts held while a user was offline, spoken after the greeting of their
next call (see README.md, "Nobody holds the user: hold it")."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from server.proactive.consumer import ProactivePromptConsumer
from server.proactive.ledger import DeliveryLedger, riding_out_outage

log = logging.getLogger(__name__)


class HeldPromptGreeting:
    """``on_call_connected`` hook: after the greeting, speak the prompts held while the caller was offline.

    ``pop_pending`` returns each held, unexpired prompt once (most urgent first). One that could not be
    spoken (no pause, cut off, call ended) goes back to ``pending`` for the user's next call."""

    def __init__(self, consumer: ProactivePromptConsumer, ledger: DeliveryLedger, node_id: str) -> None:
        self.consumer = consumer
        self.ledger = ledger
        self.node_id = node_id
        self.delivery = consumer.delivery

    async def __call__(self, session: Any) -> None:
        if not session.user_id or getattr(session, "anonymous", False):
            return  # an anonymous caller is nobody a prompt was held for
        prompts = await self.consumer.pop_pending(session.user_id, getattr(session, "tenant", "default"))
        for index, prompt in enumerate(prompts):
            try:
                spoken = await session.speak_proactive(prompt.spoken_text, prompt.message_id)
            except asyncio.CancelledError:
                await asyncio.shield(self._hold_again(prompts[index:], "call ended before it was spoken"))
                raise
            if not spoken:
                await self._hold_again([prompt], "not spoken at connect (no pause, cut off or call ended)")
            else:
                self.delivery.watch_response(session, prompt)
                log.info(
                    "held proactive prompt spoken: key=%s user=%s call=%s",
                    prompt.idempotency_key,
                    prompt.user_id,
                    session.call_id,
                )

    async def _hold_again(self, prompts: list[Any], detail: str) -> None:
        for prompt in prompts:  # popped as delivered: must go back to pending even through a DB restart
            await riding_out_outage(self.ledger.mark_failed, prompt, self.node_id, detail, what="hold again")
