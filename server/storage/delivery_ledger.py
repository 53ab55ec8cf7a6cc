"""The delivery ledger: one row per proactive prompt (its idempotency key), from the scheduler's first
plan to the node that spoke it, in SQLite (processes on one machine) or PostgreSQL (several machines).

The scheduler writes ``scheduled``, ``deferred``, ``dropped``, ``failed`` (the bus refused it) and
``published``; from then on the nodes write ``claimed``, ``pending`` (held for the user's next call),
``delivered`` and ``expired``, and the history table keeps what each node did (``failed`` and
``duplicate`` appear only there). A status write never moves a row backwards: the scheduler only changes
rows still in its own states, a node only takes over published, pending, stale-claimed or scheduler rows.
The claim is one ``INSERT ... ON CONFLICT DO NOTHING`` or one conditional ``UPDATE`` inside a transaction
(SQLite ``BEGIN IMMEDIATE``; PostgreSQL row locks: a concurrent ``UPDATE`` waits and re-checks its
condition on the committed row), so of N racing claims exactly one wins. ``storage.delivery_ledger`` picks
the database: a path, or a ``postgresql://`` DSN. Implements ``server.proactive.ledger.DeliveryLedger``
(nodes, admin API) and ``scheduler.deliveries.PromptDeliveries`` (the scheduler).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from messaging.schemas import ProactivePrompt
from scheduler.deliveries import SCHEDULER_STATES
from server.proactive.ledger import DeliveryEvent, DeliveryRecord
from server.storage.delivery_schema import MIGRATIONS, deliveries, delivery_events
from server.storage.engine import TRANSIENT_ERRORS, create_engine, insert, unavailable
from server.storage.migrations import migrate

T = TypeVar("T")

HOLDABLE = (*SCHEDULER_STATES, "published")  # a node may hold these for the user's next call

# Statements built once and executed with parameter dicts: building a Core statement per call (values,
# coercions, cache key) cost more than the SQL itself on the hot path of a busy consumer.
_KEY = deliveries.c.idempotency_key == sa.bindparam("k")
_STALE_CLAIM = sa.and_(
    deliveries.c.status == "claimed", deliveries.c.updated_at < sa.bindparam("stale_before")
)
_UPDATE_WHEN = {
    "claimable": deliveries.update().where(
        _KEY, sa.or_(deliveries.c.status.in_((*HOLDABLE, "pending")), _STALE_CLAIM)
    ),
    "any": deliveries.update().where(_KEY),
    "holdable": deliveries.update().where(_KEY, deliveries.c.status.in_(HOLDABLE)),
    "expirable": deliveries.update().where(_KEY, deliveries.c.status.in_((*HOLDABLE, "pending"))),
    "scheduler's": deliveries.update().where(_KEY, deliveries.c.status.in_(SCHEDULER_STATES)),
    "published": deliveries.update().where(_KEY, deliveries.c.status == "published"),
}
_EVENT = delivery_events.insert()

_RECORD = (
    deliveries.c.idempotency_key,
    deliveries.c.message_id,
    deliveries.c.user_id,
    deliveries.c.status,
    deliveries.c.node_id,
    deliveries.c.updated_at,
    deliveries.c.delivered_at,
    deliveries.c.detail,
)


class SqlDeliveryLedger:
    """Methods are coroutines; the SQL runs in a worker thread, one transaction per call.

    ``claim_timeout_s``: a ``claimed`` row older than this is considered abandoned (its node died while
    speaking) and may be claimed again."""

    def __init__(
        self, engine: Engine, claim_timeout_s: float = 300.0, clock: Callable[[], float] = time.time
    ) -> None:
        self.engine = engine
        self.claim_timeout_s = claim_timeout_s
        self.clock = clock
        migrate(engine, "delivery_ledger", MIGRATIONS)
        self._insert_new = (
            insert(engine, deliveries)
            .on_conflict_do_nothing(index_elements=["idempotency_key"])
            .returning(deliveries.c.idempotency_key)
        )

    def close(self) -> None:
        self.engine.dispose()

    async def _run(self, fn: Callable[[sa.Connection], T]) -> T:
        """``fn`` in one transaction in a worker thread; ``StoreUnavailable`` when the database is away."""

        def in_transaction() -> T:
            with self.engine.begin() as conn:
                return fn(conn)

        try:
            return await asyncio.to_thread(in_transaction)
        except TRANSIENT_ERRORS as exc:
            raise unavailable("delivery ledger", exc) from exc

    # --- statements (inside a transaction) -------------------------------------------------------
    def _row(
        self, prompt: ProactivePrompt, status: str, node_id: str | None, detail: str | None
    ) -> dict[str, Any]:
        return {
            "idempotency_key": prompt.idempotency_key,
            "message_id": prompt.message_id,
            "user_id": prompt.user_id,
            "tenant": prompt.tenant,
            "campaign_id": prompt.campaign_id,
            "status": status,
            "node_id": node_id,
            "prompt": prompt.model_dump_json(),
            "priority": prompt.priority,
            "expires_at": prompt.expires_at,
            "created_at": prompt.created_at,
            "updated_at": self.clock(),
            "detail": _clip(detail),
        }

    def _insert(self, conn: sa.Connection, row: dict[str, Any]) -> bool:
        """True when the row was inserted, False when the key was there already. (RETURNING, because a
        driver's rowcount of an INSERT is not reliable: psycopg 3 under SQLAlchemy reports -1.)"""
        return conn.execute(self._insert_new, row).first() is not None

    def _update(self, conn: sa.Connection, key: str, when: str, **values: Any) -> int:
        """Set ``values`` on the row of ``key`` if it is in the states ``_UPDATE_WHEN[when]`` names."""
        return int(conn.execute(_UPDATE_WHEN[when], {"k": key, **values}).rowcount)

    def _event(
        self,
        conn: sa.Connection,
        key: str,
        message_id: str,
        status: str,
        node_id: str | None,
        detail: str | None = None,
    ) -> None:
        conn.execute(
            _EVENT,
            {
                "idempotency_key": key,
                "message_id": message_id,
                "status": status,
                "node_id": node_id,
                "at": self.clock(),
                "detail": _clip(detail),
            },
        )

    def _status(self, conn: sa.Connection, key: str) -> str | None:
        return conn.execute(
            sa.select(deliveries.c.status).where(deliveries.c.idempotency_key == key)
        ).scalar()

    # --- nodes -----------------------------------------------------------------------------------
    async def claim(self, prompt: ProactivePrompt, node_id: str) -> str | None:
        """Try to become the one node that speaks ``prompt``. Returns None when claimed, else the status
        that stopped it (``delivered``, ``claimed``, ``expired``...); a duplicate event is then recorded."""
        key, message_id = prompt.idempotency_key, prompt.message_id

        def tx(conn: sa.Connection) -> str | None:
            now = self.clock()
            taken = self._insert(conn, self._row(prompt, "claimed", node_id, None))
            if not taken:
                # Published or held for this user, or abandoned by a node that died mid-speech: take it over.
                taken = (
                    self._update(
                        conn,
                        key,
                        "claimable",
                        stale_before=now - self.claim_timeout_s,
                        status="claimed",
                        node_id=node_id,
                        updated_at=now,
                        detail=None,
                        prompt=prompt.model_dump_json(),
                    )
                    == 1
                )
            if taken:
                self._event(conn, key, message_id, "claimed", node_id)
                return None
            status = self._status(conn, key) or "unknown"
            self._event(conn, key, message_id, "duplicate", node_id, f"already {status}")
            return status

        return await self._run(tx)

    async def _set_status(
        self, prompt: ProactivePrompt, node_id: str, status: str, event: str, detail: str | None
    ) -> None:
        def tx(conn: sa.Connection) -> None:
            now = self.clock()
            values: dict[str, Any] = {
                "status": status,
                "node_id": node_id,
                "updated_at": now,
                "detail": _clip(detail),
            }
            if status == "delivered":
                values["delivered_at"] = now
            self._update(conn, prompt.idempotency_key, "any", **values)
            self._event(conn, prompt.idempotency_key, prompt.message_id, event, node_id, detail)

        await self._run(tx)

    async def mark_delivered(self, prompt: ProactivePrompt, node_id: str) -> None:
        await self._set_status(prompt, node_id, "delivered", "delivered", None)

    async def mark_failed(self, prompt: ProactivePrompt, node_id: str, detail: str) -> None:
        """A claimed prompt was not spoken: record the failure and hold it for the user's next call."""
        await self._set_status(prompt, node_id, "pending", "failed", detail)

    async def hold_pending(self, prompt: ProactivePrompt, node_id: str) -> bool:
        """Hold ``prompt`` for the user's next call. One row per idempotency key: returns False if a node
        already holds, speaks or finished it."""

        def tx(conn: sa.Connection) -> bool:
            detail = "user offline"
            held = (
                self._insert(conn, self._row(prompt, "pending", node_id, detail))
                or self._update(
                    conn,
                    prompt.idempotency_key,
                    "holdable",
                    status="pending",
                    node_id=node_id,
                    updated_at=self.clock(),
                    detail=detail,
                    prompt=prompt.model_dump_json(),
                )
                == 1
            )
            if held:
                self._event(conn, prompt.idempotency_key, prompt.message_id, "pending", node_id, detail)
            return held

        return await self._run(tx)

    async def mark_expired(self, prompt: ProactivePrompt, node_id: str) -> None:
        detail = "expired before delivery"

        def tx(conn: sa.Connection) -> None:
            if not self._insert(conn, self._row(prompt, "expired", node_id, detail)):
                self._update(
                    conn,
                    prompt.idempotency_key,
                    "expirable",
                    status="expired",
                    node_id=node_id,
                    updated_at=self.clock(),
                )
            self._event(conn, prompt.idempotency_key, prompt.message_id, "expired", node_id, detail)

        await self._run(tx)

    async def pop_pending(
        self, user_id: str, node_id: str, tenant: str = "default"
    ) -> list[ProactivePrompt]:
        """Take the prompts held for ``user_id`` of ``tenant`` (most urgent, then oldest, first) for the
        greeting of the call that just started on ``node_id``; each is returned once, also when two nodes
        pop at once (the second waits for the first's locks and then finds the rows no longer pending).
        Expired ones are recorded, not returned."""

        def tx(conn: sa.Connection) -> list[ProactivePrompt]:
            now = self.clock()
            # "retry": waiting to ring the user's phone again (server.storage.outreach_ledger); the user
            # called first, so it is said in this call instead.
            held = sa.and_(
                deliveries.c.user_id == user_id,
                deliveries.c.tenant == tenant,
                deliveries.c.status.in_(("pending", "retry")),
            )
            expired = conn.execute(
                deliveries.update()
                .where(held, deliveries.c.expires_at.is_not(None), deliveries.c.expires_at <= now)
                .values(status="expired", node_id=node_id, updated_at=now, detail="expired while held")
                .returning(deliveries.c.idempotency_key, deliveries.c.message_id)
            ).all()
            for key, message_id in expired:
                self._event(conn, key, message_id, "expired", node_id, "expired while held")
            rows = conn.execute(
                deliveries.update()
                .where(held)
                .values(
                    status="delivered",
                    node_id=node_id,
                    updated_at=now,
                    delivered_at=now,
                    detail="handed to call greeting",
                )
                .returning(deliveries.c.prompt)
            ).all()
            prompts = [ProactivePrompt.model_validate_json(r[0]) for r in rows]
            for p in prompts:
                self._event(
                    conn, p.idempotency_key, p.message_id, "delivered", node_id, "handed to call greeting"
                )
            return sorted(prompts, key=lambda p: (p.priority, p.created_at))

        return await self._run(tx)

    # --- reads -----------------------------------------------------------------------------------
    async def get(self, idempotency_key: str) -> DeliveryRecord | None:
        def q(conn: sa.Connection) -> DeliveryRecord | None:
            row = conn.execute(
                sa.select(*_RECORD).where(deliveries.c.idempotency_key == idempotency_key)
            ).first()
            return DeliveryRecord(*row) if row else None

        return await self._run(q)

    async def events(self, idempotency_key: str) -> list[DeliveryEvent]:
        def q(conn: sa.Connection) -> list[DeliveryEvent]:
            e = delivery_events.c
            rows = conn.execute(
                sa.select(e.idempotency_key, e.message_id, e.status, e.node_id, e.at, e.detail)
                .where(e.idempotency_key == idempotency_key)
                .order_by(e.at, e.id)
            ).all()
            return [DeliveryEvent(*r) for r in rows]

        return await self._run(q)

    async def list_recent(self, limit: int = 100) -> list[DeliveryRecord]:
        """Latest deliveries, newest first (for the admin dashboard)."""

        def q(conn: sa.Connection) -> list[DeliveryRecord]:
            rows = conn.execute(
                sa.select(*_RECORD).order_by(deliveries.c.updated_at.desc()).limit(limit)
            ).all()
            return [DeliveryRecord(*r) for r in rows]

        return await self._run(q)

    # --- the scheduler ---------------------------------------------------------------------------
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
        """Record a scheduler state (``scheduled``, ``deferred``, ``dropped``, ``failed``) of ``prompt``;
        ``waiting`` is what to publish later. A row a node already acts on is never changed; ``if_new``:
        only when the key is not known yet. True when written."""
        if status not in SCHEDULER_STATES:
            raise ValueError(f"the scheduler cannot record {status!r}; use one of {SCHEDULER_STATES}")

        return await self._scheduler_write(prompt, status, source, run_at, detail, waiting, if_new)

    async def begin_publish(self, prompt: ProactivePrompt, source: str, run_at: float) -> bool:
        """Mark ``prompt`` ``published`` just before it goes on the bus; False when it already was (or a
        node already acts on it): the caller must not publish it again."""
        return await self._scheduler_write(prompt, "published", source, run_at, None, None, False)

    async def _scheduler_write(
        self,
        prompt: ProactivePrompt,
        status: str,
        source: str,
        run_at: float,
        detail: str | None,
        waiting: dict[str, Any] | None,
        if_new: bool,
    ) -> bool:
        """Insert the row, or move it to ``status`` while it is still in a scheduler state."""

        def tx(conn: sa.Connection) -> bool:
            row = {**self._row(prompt, status, None, detail), "source": source, "run_at": run_at}
            row["waiting"] = waiting
            if self._insert(conn, row):
                return True
            if if_new:
                return False
            return self._update(conn, prompt.idempotency_key, "scheduler's", **_without_key(row)) == 1

        return await self._run(tx)

    async def publish_failed(self, prompt: ProactivePrompt, detail: str) -> None:
        """The bus refused ``prompt`` after ``begin_publish``: back to the scheduler (``failed``)."""

        def tx(conn: sa.Connection) -> None:
            self._update(
                conn,
                prompt.idempotency_key,
                "published",
                status="failed",
                updated_at=self.clock(),
                detail=_clip(detail),
            )

        await self._run(tx)

    async def status_of(self, idempotency_key: str) -> str | None:
        return await self._run(lambda conn: self._status(conn, idempotency_key))

    async def waiting_prompts(self) -> list[tuple[dict[str, Any], float]]:
        """``(waiting, run_at)`` of every prompt the scheduler still has to publish."""

        def q(conn: sa.Connection) -> list[tuple[dict[str, Any], float]]:
            rows = conn.execute(
                sa.select(deliveries.c.waiting, deliveries.c.run_at).where(
                    deliveries.c.waiting.is_not(None), deliveries.c.status.in_(("scheduled", "deferred"))
                )
            ).all()
            return [(r.waiting, float(r.run_at)) for r in rows]

        return await self._run(q)

    async def campaign_deliveries(self, campaign_id: str) -> list[dict[str, Any]]:
        """Every prompt of a campaign, by run time then user: key, user, status, detail, times."""
        columns: Sequence[Any] = (
            deliveries.c.idempotency_key,
            deliveries.c.message_id,
            deliveries.c.user_id,
            deliveries.c.status,
            deliveries.c.detail,
            deliveries.c.run_at,
            deliveries.c.updated_at,
        )

        def q(conn: sa.Connection) -> list[dict[str, Any]]:
            rows = conn.execute(
                sa.select(*columns)
                .where(deliveries.c.campaign_id == campaign_id)
                .order_by(deliveries.c.run_at, deliveries.c.user_id)
            ).all()
            return [dict(r._mapping) for r in rows]

        return await self._run(q)


def _without_key(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k != "idempotency_key"}


def _clip(detail: str | None) -> str | None:
    return detail[:500] if detail else None


def open_delivery_ledger(
    target: str | Path,
    *,
    claim_timeout_s: float = 300.0,
    connect_timeout_s: float = 5.0,
    statement_timeout_s: float = 30.0,
    clock: Callable[[], float] = time.time,
) -> SqlDeliveryLedger:
    """The ledger for ``storage.delivery_ledger``: a SQLite path or a ``postgresql://`` DSN (blocking:
    connects and migrates; call it from a worker thread)."""
    engine = create_engine(
        target,
        connect_timeout_s=connect_timeout_s,
        statement_timeout_s=statement_timeout_s,
        application_name="voice-agent-delivery-ledger",
    )
    return SqlDeliveryLedger(engine, claim_timeout_s=claim_timeout_s, clock=clock)
