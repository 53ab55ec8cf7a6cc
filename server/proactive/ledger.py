"""The delivery ledger's interface: what happened to each proactive prompt, shared by every node.

One row per idempotency key with its current status, and an append-only history. Statuses: ``claimed`` (a
node is speaking it), ``delivered``, ``pending`` (held for the user's next call), ``expired``, ``failed``
(only in history: a speak attempt that did not play; the prompt goes back to ``pending``), ``duplicate``
(only in history). See README.md; the store is ``server.storage.delivery_ledger``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol, TypeVar

from messaging.schemas import ProactivePrompt
from server.storage.engine import StoreUnavailable

log = logging.getLogger(__name__)
T = TypeVar("T")

# How long a prompt's handling waits for the ledger's database to come back before it gives the message
# back to the bus (whose retries and dead-letter topic take it from there).
LEDGER_OUTAGE_WAIT_S = 120.0


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
    (``server.storage.delivery_ledger`` implements it). Methods raise ``StoreUnavailable`` while the
    database is away (``riding_out_outage`` retries them)."""

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


async def riding_out_outage(
    op: Callable[..., Awaitable[T]], *args: object, wait_s: float = LEDGER_OUTAGE_WAIT_S, what: str = ""
) -> T:
    """``await op(*args)``, retried with backoff (0.5 s doubling to 5 s) while the ledger raises
    ``StoreUnavailable``, for up to ``wait_s``; then the last ``StoreUnavailable`` is raised. A prompt in
    hand during a database restart is held here instead of being failed (or dead-lettered) at once."""
    deadline = time.monotonic() + wait_s
    delay = 0.5
    while True:
        try:
            return await op(*args)
        except StoreUnavailable as exc:
            if time.monotonic() + delay > deadline:
                raise
            log.warning("delivery ledger away, retrying in %.1f s: %s (%s)", delay, what, exc)
            await asyncio.sleep(delay)
            delay = min(5.0, delay * 2)

