"""What the scheduler needs of the delivery ledger: the one row per prompt it shares with the RTC nodes.

The scheduler records a prompt's states until it is on the bus (``scheduled``, ``deferred``, ``dropped``,
``failed``, ``published``); the nodes take it from there (``claimed``, ``pending``, ``delivered``,
``expired``), so a campaign's delivery report reads one status per prompt. ``server.storage.delivery_ledger``
implements it on SQLite or PostgreSQL; the composition root (``server.node``) hands it in.
"""

from __future__ import annotations

from typing import Any, Protocol

from messaging.schemas import ProactivePrompt

# The states the scheduler writes before a prompt is on the bus (and may still change).
SCHEDULER_STATES = ("scheduled", "deferred", "dropped", "failed")


class PromptDeliveries(Protocol):
    async def note(
        self,
        prompt: ProactivePrompt,
        source: str,
        status: str,
        run_at: float,
        detail: str | None,
        waiting: dict[str, Any] | None = None,
        *,
        if_new: bool = False,
    ) -> bool:
        """Record a scheduler state (``scheduled``, ``deferred``, ``dropped``, ``failed``); ``waiting`` is
        what to publish later. Never changes a row a node acts on; ``if_new``: only for an unknown key."""
        ...

    async def begin_publish(self, prompt: ProactivePrompt, source: str, run_at: float) -> bool:
        """Mark it ``published`` just before publishing; False: it already was (do not publish again)."""
        ...

    async def publish_failed(self, prompt: ProactivePrompt, detail: str) -> None: ...

    async def status_of(self, idempotency_key: str) -> str | None: ...

    async def waiting_prompts(self) -> list[tuple[dict[str, Any], float]]:
        """``(waiting, run_at)`` of every prompt still to be published (scheduled or deferred)."""
        ...

    async def campaign_deliveries(self, campaign_id: str) -> list[dict[str, Any]]:
        """Rows of a campaign's prompts: ``idempotency_key``, ``message_id``, ``user_id``, ``status``,
        ``detail``, ``run_at``, ``updated_at`` (epoch seconds)."""
        ...
