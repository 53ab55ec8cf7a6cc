"""``PromptDelivery``: speak one proactive prompt in one live call and record what happened, the same way
wherever the prompt came from (the bus consumer, a retry that found the user in a call, a call the agent
placed for it); and, for a prompt that expects an answer by key ("press 1 to confirm"), record the key.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Protocol

from messaging.schemas import ProactivePrompt
from server.proactive.directory import PromptTarget
from server.proactive.ledger import LEDGER_OUTAGE_WAIT_S, DeliveryLedger, riding_out_outage

log = logging.getLogger(__name__)


class ResponseRecorder(Protocol):
    """Where the key a caller pressed after a prompt is recorded
    (``server.storage.outreach_ledger.SqlOutreachLedger``)."""

    async def record_response(self, prompt: ProactivePrompt, node_id: str, key: str | None) -> None: ...


class PromptDelivery:
    def __init__(
        self,
        ledger: DeliveryLedger,
        node_id: str,
        responses: ResponseRecorder | None = None,
        key_timeout_s: float = 10.0,
        outage_wait_s: float = LEDGER_OUTAGE_WAIT_S,
    ) -> None:
        """``outage_wait_s``: how long a ledger write waits for its database to come back (a PostgreSQL
        restart) before it fails."""
        self.outage_wait_s = outage_wait_s
        self.ledger = ledger
        self.node_id = node_id
        self.responses = responses
        self.key_timeout_s = key_timeout_s
        self._watching: set[asyncio.Task[None]] = set()

    async def speak(self, call: PromptTarget, prompt: ProactivePrompt) -> bool:
        """Speak a prompt this node claimed; ``delivered`` when it was said to the end, else back to
        ``pending`` for the user's next call. An exception from the call is recorded and re-raised."""
        try:
            spoken = await call.speak_proactive(prompt.spoken_text, prompt.message_id)
        except Exception as exc:
            await self._ledger(self.ledger.mark_failed, prompt, f"speak raised {type(exc).__name__}: {exc}")
            raise
        if spoken:
            await self._ledger(self.ledger.mark_delivered, prompt)
            self.watch_response(call, prompt)
        else:
            await self._ledger(self.ledger.mark_failed, prompt, "not spoken (no pause, cut off or call ended)")
        return spoken

    async def _ledger(self, op: Any, prompt: ProactivePrompt, *detail: str) -> None:
        """A ledger write that waits out a database outage (``riding_out_outage``): a prompt said during a
        PostgreSQL restart is still recorded as said, not retried into a second delivery."""
        await riding_out_outage(op, prompt, self.node_id, *detail, wait_s=self.outage_wait_s, what=op.__name__)

    def watch_response(self, call: Any, prompt: ProactivePrompt) -> None:
        """After a spoken prompt that expects a key: record the caller's key (or that none came)."""
        if not prompt.expect_digits or self.responses is None or not hasattr(call, "await_key"):
            return
        task = asyncio.create_task(self._await_key(call, prompt), name=f"prompt-key-{prompt.message_id[:8]}")
        self._watching.add(task)
        task.add_done_callback(self._watching.discard)

    async def _await_key(self, call: Any, prompt: ProactivePrompt) -> None:
        assert self.responses is not None
        try:
            key = await call.await_key(prompt.message_id, self.key_timeout_s)
            await self.responses.record_response(prompt, self.node_id, key)
            log.info("prompt %s answered by key: %s", prompt.idempotency_key, key or "none")
        except Exception:
            log.exception("recording the key response to prompt %s failed", prompt.idempotency_key)

    async def close(self) -> None:
        for task in list(self._watching):
            task.cancel()
        await asyncio.gather(*self._watching, return_exceptions=True)
