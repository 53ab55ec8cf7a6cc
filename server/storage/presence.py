"""Presence of users in live calls across nodes, in the shared delivery-ledger database.

Each node writes a row per live call (``join``/``leave``) and refreshes its rows' ``seen_at`` on a
heartbeat; a row whose node stopped refreshing it (the node died) is ignored after a freshness window, and
a node clears its own rows when it starts and stops. ``server.storage.outreach_ledger`` reads the table
inside its dial claims, so "is this user in a call on another node?" and "I dial" are one transaction.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from messaging.schemas import ProactivePrompt
from server.storage.delivery_schema import deliveries, delivery_events
from server.storage.engine import insert
from server.storage.migrations import migrate
from server.storage.outreach_schema import MIGRATIONS, user_presence

T = TypeVar("T")


class SqlPresence:
    def __init__(self, engine: Engine, clock: Callable[[], float] = time.time) -> None:
        self.engine = engine
        self.clock = clock
        migrate(engine, "phone_outreach", MIGRATIONS)

    async def _run(self, fn: Callable[[sa.Connection], T]) -> T:
        def in_transaction() -> T:
            with self.engine.begin() as conn:
                return fn(conn)

        return await asyncio.to_thread(in_transaction)

    async def join(self, call_id: str, user_id: str, node_id: str) -> None:
        await self._run(lambda conn: self._upsert(conn, node_id, [(call_id, user_id)]))

    async def leave(self, call_id: str) -> None:
        await self._run(
            lambda conn: conn.execute(user_presence.delete().where(user_presence.c.call_id == call_id))
        )

    async def refresh(self, node_id: str, calls: list[tuple[str, str]]) -> None:
        """Heartbeat: this node's live calls are ``calls`` (call id, user id); their rows are written fresh,
        its other rows go."""

        def tx(conn: sa.Connection) -> None:
            mine = user_presence.c.node_id == node_id
            conn.execute(
                user_presence.delete().where(mine, user_presence.c.call_id.not_in([c for c, _ in calls]))
            )
            self._upsert(conn, node_id, calls)

        await self._run(tx)

    def _upsert(self, conn: sa.Connection, node_id: str, calls: list[tuple[str, str]]) -> None:
        now = self.clock()
        for call_id, user_id in calls:
            row = {
                "call_id": call_id,
                "user_id": user_id,
                "node_id": node_id,
                "started_at": now,
                "seen_at": now,
            }
            statement = insert(conn, user_presence).values(**row)
            conn.execute(statement.on_conflict_do_update(index_elements=["call_id"], set_={"seen_at": now}))

    async def where(self, user_id: str, fresh_after: float) -> list[str]:
        """Nodes that hold a live call of ``user_id`` (rows refreshed after ``fresh_after``)."""

        def q(conn: sa.Connection) -> list[str]:
            rows = conn.execute(
                sa.select(user_presence.c.node_id)
                .where(user_presence.c.user_id == user_id, user_presence.c.seen_at >= fresh_after)
                .distinct()
            ).all()
            return [r[0] for r in rows]

        return await self._run(q)

    async def release_abandoned_claims(
        self, node_id: str, fresh_after: float, claimed_before: float
    ) -> list[ProactivePrompt]:
        """Put back to ``pending`` every ledger claim whose node no longer holds a fresh live call of the
        prompt's user (the node died, or the call ended without the claim being settled), claimed before
        ``claimed_before``; returns those prompts. A node speaking a prompt holds the user's call and
        refreshes its presence row, so its claim is never taken; only one of several nodes sweeping at
        once gets each row (conditional ``UPDATE``). ``node_id``: the node releasing them (history)."""
        detail = "claim abandoned: its node no longer holds the user's call"
        held_by_claimant = (
            sa.select(user_presence.c.call_id)
            .where(
                user_presence.c.node_id == deliveries.c.node_id,
                user_presence.c.user_id == deliveries.c.user_id,
                user_presence.c.seen_at >= fresh_after,
            )
            .exists()
        )

        def tx(conn: sa.Connection) -> list[ProactivePrompt]:
            now = self.clock()
            rows = conn.execute(
                deliveries.update()
                .where(
                    deliveries.c.status == "claimed",
                    deliveries.c.updated_at < claimed_before,
                    ~held_by_claimant,
                )
                .values(status="pending", node_id=node_id, updated_at=now, detail=detail)
                .returning(deliveries.c.idempotency_key, deliveries.c.message_id, deliveries.c.prompt)
            ).all()
            for key, message_id, _ in rows:
                conn.execute(
                    delivery_events.insert(),
                    {"idempotency_key": key, "message_id": message_id, "status": "released",
                     "node_id": node_id, "at": now, "detail": detail},
                )
            return [ProactivePrompt.model_validate_json(r[2]) for r in rows]

        return await self._run(tx)


def present_node(conn: sa.Connection, user_id: str, fresh_after: float) -> str | None:
    """Inside a transaction: a node holding a fresh live call of ``user_id``, or None."""
    return conn.execute(
        sa.select(user_presence.c.node_id)
        .where(user_presence.c.user_id == user_id, user_presence.c.seen_at >= fresh_after)
        .limit(1)
    ).scalar()
