"""The delivery ledger's interface: what happened to each proactive prompt, shared by every node.

One row per idempotency key with its current status, and an append-only history. Statuses: ``claimed`` (a
node is speaking it), ``delivered``, ``pending`` (held for the user's next call), ``expired``, ``failed``
(only in history: a speak attempt that did not play; the prompt goes back to ``pending``), ``duplicate``
(only in history). See README.md; the store is ``server.storage.delivery_ledger``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from messaging.schemas import ProactivePrompt


@dataclass(frozen=True)
class DeliveryRecord:
    idempotency_key: str
    message_id: str
    user_id: str
    status: str
    node_id: str | None
    updated_at: float
    delivered_at: float | None
    detail: str | None


@dataclass(frozen=True)
class DeliveryEvent:
    idempotency_key: str
    message_id: str
    status: str
    node_id: str | None
    at: float
    detail: str | None


class DeliveryLedger(Protocol):
    """What the consumer, the node and the admin API need of the delivery ledger
    (``server.storage.delivery_ledger`` implements it)."""

    async def claim(self, prompt: ProactivePrompt, node_id: str) -> str | None: ...
    async def mark_delivered(self, prompt: ProactivePrompt, node_id: str) -> None: ...
    async def mark_failed(self, prompt: ProactivePrompt, node_id: str, detail: str) -> None: ...
    async def hold_pending(self, prompt: ProactivePrompt, node_id: str) -> bool: ...
    async def mark_expired(self, prompt: ProactivePrompt, node_id: str) -> None: ...
    async def pop_pending(
        self, user_id: str, node_id: str, tenant: str = "default"
    ) -> list[ProactivePrompt]: ...
    async def get(self, idempotency_key: str) -> DeliveryRecord | None: ...
    async def events(self, idempotency_key: str) -> list[DeliveryEvent]: ...
    async def list_recent(self, limit: int = 100) -> list[DeliveryRecord]: ...
    def close(self) -> None: ...
