"""`DeliveryLedger`: what happened to each proactive prompt, shared by every node.

One row per idempotency key in ``proactive_deliveries`` (its current status) and an append-only history in
``proactive_delivery_events``. Statuses: ``claimed`` (a node is speaking it), ``delivered``, ``pending``
(held for the user's next call), ``expired``, ``failed`` (only in history: a speak attempt that did not
play; the prompt goes back to ``pending``), ``duplicate`` (only in history). The claim is one
``INSERT ... ON CONFLICT DO NOTHING`` or a conditional ``UPDATE``, so across nodes sharing the database
exactly one wins. Stores: a SQLite file here (nodes sharing one filesystem), PostgreSQL in
``server/proactive/ledger_postgres.py`` (nodes on several machines); ``bus.proactive_ledger`` picks one
through ``open_delivery_ledger``: a path, or a ``postgresql://`` DSN.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from messaging.schemas import ProactivePrompt
from server.proactive.ledger import DeliveryEvent, DeliveryLedger, DeliveryRecord

log = logging.getLogger(__name__)
T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS proactive_deliveries (
    idempotency_key TEXT PRIMARY KEY,
    message_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    tenant TEXT NOT NULL,
    campaign_id TEXT,
    status TEXT NOT NULL,
    node_id TEXT,
    prompt TEXT NOT NULL,
    priority INTEGER NOT NULL,
    expires_at DOUBLE PRECISION,
    created_at DOUBLE PRECISION NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL,
    delivered_at DOUBLE PRECISION,
    detail TEXT
);
CREATE INDEX IF NOT EXISTS proactive_deliveries_user ON proactive_deliveries (user_id, status);
CREATE TABLE IF NOT EXISTS proactive_delivery_events (
    idempotency_key TEXT NOT NULL,
    message_id TEXT NOT NULL,
    status TEXT NOT NULL,
    node_id TEXT,
    at DOUBLE PRECISION NOT NULL,
    detail TEXT
);
CREATE INDEX IF NOT EXISTS proactive_delivery_events_key ON proactive_delivery_events (idempotency_key);
"""

_COLUMNS = (
    "idempotency_key, message_id, user_id, tenant, campaign_id, status, node_id, prompt, priority, "
    "expires_at, created_at, updated_at, delivered_at, detail"
)


def open_delivery_ledger(target: str | Path, claim_timeout_s: float = 300.0) -> DeliveryLedger:
    """A PostgreSQL ledger for a ``postgresql://`` DSN, else a SQLite file at that path."""
    if str(target).startswith(("postgresql://", "postgres://")):
        from server.storage.delivery_ledger_postgres import PostgresDeliveryLedger

        return PostgresDeliveryLedger(str(target), claim_timeout_s=claim_timeout_s)
    return SqliteDeliveryLedger(target, claim_timeout_s=claim_timeout_s)


class SqliteDeliveryLedger:
    """SQLite-backed ledger (WAL, busy timeout) usable by several processes on one file.

    Methods are coroutines; the SQL runs in a worker thread so a locked database never stalls the loop.
    ``claim_timeout_s``: a ``claimed`` row older than this is considered abandoned (its node died while
    speaking) and may be claimed again.
    """

    def __init__(
        self, path: str | Path, claim_timeout_s: float = 300.0, clock: Callable[[], float] = time.time
    ):
        self.path = str(path)
        self.claim_timeout_s = claim_timeout_s
        self.clock = clock
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA busy_timeout=30000")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    async def _run(self, fn: Callable[[sqlite3.Connection], T], write: bool = False) -> T:
        """Run ``fn`` in a worker thread; ``write`` wraps it in one IMMEDIATE transaction (the claim's
        atomicity across processes rests on it)."""

        def locked() -> T:
            with self._lock:
                if not write:
                    return fn(self._db)
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    result = fn(self._db)
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
                self._db.execute("COMMIT")
                return result

        return await asyncio.to_thread(locked)

    # --- writes ----------------------------------------------------------------------------------
    def _insert(
        self, db: sqlite3.Connection, prompt: ProactivePrompt, status: str, node_id: str, detail: str | None
    ) -> bool:
        now = self.clock()
        cur = db.execute(
            f"INSERT INTO proactive_deliveries ({_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?) "
            "ON CONFLICT (idempotency_key) DO NOTHING",
            (
                prompt.idempotency_key,
                prompt.message_id,
                prompt.user_id,
                prompt.tenant,
                prompt.campaign_id,
                status,
                node_id,
                prompt.model_dump_json(),
                prompt.priority,
                prompt.expires_at,
                prompt.created_at,
                now,
                None,
                detail,
            ),
        )
        return cur.rowcount == 1

    def _event(
        self,
        db: sqlite3.Connection,
        key: str,
        message_id: str,
        status: str,
        node_id: str | None,
        detail: str | None = None,
    ) -> None:
        db.execute(
            "INSERT INTO proactive_delivery_events (idempotency_key, message_id, status, node_id, at, detail) "
            "VALUES (?,?,?,?,?,?)",
            (key, message_id, status, node_id, self.clock(), detail),
        )

    async def claim(self, prompt: ProactivePrompt, node_id: str) -> str | None:
        """Try to become the one node that speaks ``prompt``. Returns None when claimed, else the status
        that stopped it (``delivered``, ``claimed``, ``expired``...); a duplicate event is then recorded."""

        def tx(db: sqlite3.Connection) -> str | None:
            now = self.clock()
            if self._insert(db, prompt, "claimed", node_id, None):
                self._event(db, prompt.idempotency_key, prompt.message_id, "claimed", node_id)
                return None
            # Held for this user, or abandoned by a node that died mid-speech: take it over.
            cur = db.execute(
                "UPDATE proactive_deliveries SET status = 'claimed', node_id = ?, updated_at = ?, detail = NULL "
                "WHERE idempotency_key = ? AND (status = 'pending' OR (status = 'claimed' AND updated_at < ?))",
                (node_id, now, prompt.idempotency_key, now - self.claim_timeout_s),
            )
            if cur.rowcount == 1:
                self._event(db, prompt.idempotency_key, prompt.message_id, "claimed", node_id)
                return None
            row = db.execute(
                "SELECT status FROM proactive_deliveries WHERE idempotency_key = ?", (prompt.idempotency_key,)
            ).fetchone()
            status = str(row[0]) if row else "unknown"
            self._event(
                db, prompt.idempotency_key, prompt.message_id, "duplicate", node_id, f"already {status}"
            )
            return status

        return await self._run(tx, write=True)

    async def _set_status(
        self, prompt: ProactivePrompt, node_id: str, status: str, event: str, detail: str | None
    ) -> None:
        def tx(db: sqlite3.Connection) -> None:
            now = self.clock()
            db.execute(
                "UPDATE proactive_deliveries SET status = ?, node_id = ?, updated_at = ?, detail = ?, "
                "delivered_at = CASE WHEN ? = 'delivered' THEN ? ELSE delivered_at END "
                "WHERE idempotency_key = ?",
                (status, node_id, now, detail, status, now, prompt.idempotency_key),
            )
            self._event(db, prompt.idempotency_key, prompt.message_id, event, node_id, detail)

        await self._run(tx, write=True)

    async def mark_delivered(self, prompt: ProactivePrompt, node_id: str) -> None:
        await self._set_status(prompt, node_id, "delivered", "delivered", None)

    async def mark_failed(self, prompt: ProactivePrompt, node_id: str, detail: str) -> None:
        """A claimed prompt was not spoken: record the failure and hold it for the user's next call."""
        await self._set_status(prompt, node_id, "pending", "failed", detail)

    async def hold_pending(self, prompt: ProactivePrompt, node_id: str) -> bool:
        """Hold ``prompt`` for the user's next call. Exactly one row per idempotency key: returns False if
        the key is already known (pending, claimed or done)."""

        def tx(db: sqlite3.Connection) -> bool:
            stored = self._insert(db, prompt, "pending", node_id, "user offline")
            if stored:
                self._event(db, prompt.idempotency_key, prompt.message_id, "pending", node_id, "user offline")
            return stored

        return await self._run(tx, write=True)

    async def mark_expired(self, prompt: ProactivePrompt, node_id: str) -> None:
        def tx(db: sqlite3.Connection) -> None:
            if not self._insert(db, prompt, "expired", node_id, "expired before delivery"):
                db.execute(
                    "UPDATE proactive_deliveries SET status = 'expired', node_id = ?, updated_at = ? "
                    "WHERE idempotency_key = ? AND status = 'pending'",
                    (node_id, self.clock(), prompt.idempotency_key),
                )
            self._event(
                db, prompt.idempotency_key, prompt.message_id, "expired", node_id, "expired before delivery"
            )

        await self._run(tx, write=True)

    async def pop_pending(self, user_id: str, node_id: str) -> list[ProactivePrompt]:
        """Take the prompts held for ``user_id`` (most urgent, then oldest, first) for the greeting of the
        call that just started on ``node_id``; each is returned once. Expired ones are recorded, not returned."""

        def tx(db: sqlite3.Connection) -> list[ProactivePrompt]:
            now = self.clock()
            expired = db.execute(
                "UPDATE proactive_deliveries SET status = 'expired', node_id = ?, updated_at = ?, "
                "detail = 'expired while held' WHERE user_id = ? AND status = 'pending' "
                "AND expires_at IS NOT NULL AND expires_at <= ? RETURNING idempotency_key, message_id",
                (node_id, now, user_id, now),
            ).fetchall()
            for key, message_id in expired:
                self._event(db, key, message_id, "expired", node_id, "expired while held")
            rows = db.execute(
                "UPDATE proactive_deliveries SET status = 'delivered', node_id = ?, updated_at = ?, "
                "delivered_at = ?, detail = 'handed to call greeting' WHERE user_id = ? AND status = 'pending' "
                "RETURNING prompt",
                (node_id, now, now, user_id),
            ).fetchall()
            prompts = [ProactivePrompt.model_validate_json(r[0]) for r in rows]
            for p in prompts:
                self._event(
                    db, p.idempotency_key, p.message_id, "delivered", node_id, "handed to call greeting"
                )
            return sorted(prompts, key=lambda p: (p.priority, p.created_at))

        return await self._run(tx, write=True)

    # --- reads -----------------------------------------------------------------------------------
    async def get(self, idempotency_key: str) -> DeliveryRecord | None:
        def q(db: sqlite3.Connection) -> DeliveryRecord | None:
            row = db.execute(
                "SELECT idempotency_key, message_id, user_id, status, node_id, updated_at, delivered_at, detail "
                "FROM proactive_deliveries WHERE idempotency_key = ?",
                (idempotency_key,),
            ).fetchone()
            return DeliveryRecord(*row) if row else None

        return await self._run(q)

    async def events(self, idempotency_key: str) -> list[DeliveryEvent]:
        def q(db: sqlite3.Connection) -> list[DeliveryEvent]:
            rows: list[Any] = db.execute(
                "SELECT idempotency_key, message_id, status, node_id, at, detail FROM proactive_delivery_events "
                "WHERE idempotency_key = ? ORDER BY at",
                (idempotency_key,),
            ).fetchall()
            return [DeliveryEvent(*r) for r in rows]

        return await self._run(q)

    async def list_recent(self, limit: int = 100) -> list[DeliveryRecord]:
        """Latest deliveries, newest first (for the admin dashboard)."""

        def q(db: sqlite3.Connection) -> list[DeliveryRecord]:
            rows: list[Any] = db.execute(
                "SELECT idempotency_key, message_id, user_id, status, node_id, updated_at, delivered_at, detail "
                "FROM proactive_deliveries ORDER BY updated_at DESC LIMIT ?",
                (limit,),
            ).fetchall()
            return [DeliveryRecord(*r) for r in rows]

        return await self._run(q)
