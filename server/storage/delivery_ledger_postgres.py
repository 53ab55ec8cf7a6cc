"""The delivery ledger in PostgreSQL, for server nodes on several machines sharing one database.

Same tables, statuses and methods as the SQLite ``DeliveryLedger`` (``server/proactive/ledger.py``). Each
write is one transaction; the exactly-once claim rests on PostgreSQL's row locks, not on anything in this
process: ``INSERT ... ON CONFLICT DO NOTHING`` waits for a concurrent insert of the same key and then sees
the conflict, and the take-over ``UPDATE ... WHERE status = 'pending' ...`` waits for a concurrent update
of the row and re-checks its condition on the committed row, so of N racing claims exactly one changes it.
psycopg's blocking connection runs in a worker thread (one connection per ledger, like the call record
store); a dropped connection is reopened once per operation.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, TypeVar

from messaging.schemas import ProactivePrompt
from server.proactive.ledger import DeliveryEvent, DeliveryRecord
from server.storage.pg_connection import BlockingPgConnection

log = logging.getLogger(__name__)
T = TypeVar("T")

# As in SQLite, plus an event id: several events of one key can share a timestamp and must keep their order.
_SCHEMA = """
CREATE TABLE IF NOT EXISTS proactive_deliveries (
    idempotency_key text PRIMARY KEY,
    message_id text NOT NULL,
    user_id text NOT NULL,
    tenant text NOT NULL,
    campaign_id text,
    status text NOT NULL,
    node_id text,
    prompt text NOT NULL,
    priority integer NOT NULL,
    expires_at double precision,
    created_at double precision NOT NULL,
    updated_at double precision NOT NULL,
    delivered_at double precision,
    detail text
);
CREATE INDEX IF NOT EXISTS proactive_deliveries_user ON proactive_deliveries (user_id, status);
CREATE INDEX IF NOT EXISTS proactive_deliveries_updated ON proactive_deliveries (updated_at DESC);
CREATE TABLE IF NOT EXISTS proactive_delivery_events (
    id bigserial PRIMARY KEY,
    idempotency_key text NOT NULL,
    message_id text NOT NULL,
    status text NOT NULL,
    node_id text,
    at double precision NOT NULL,
    detail text
);
CREATE INDEX IF NOT EXISTS proactive_delivery_events_key ON proactive_delivery_events (idempotency_key);
"""
_RECORD = "idempotency_key, message_id, user_id, status, node_id, updated_at, delivered_at, detail"
APPLICATION_NAME = "voice-agent-proactive-ledger"  # shows in pg_stat_activity


class PostgresDeliveryLedger:
    """``DeliveryLedgerStore`` on PostgreSQL; connects (and creates its tables) on construction.

    ``claim_timeout_s``: a ``claimed`` row older than this is considered abandoned (its node died while
    speaking) and may be claimed again.
    """

    def __init__(
        self, dsn: str, claim_timeout_s: float = 300.0, clock: Callable[[], float] = time.time
    ) -> None:
        self.claim_timeout_s = claim_timeout_s
        self.clock = clock
        self._db = BlockingPgConnection(
            dsn,
            application_name=APPLICATION_NAME,
            purpose="the proactive delivery ledger",
            config_key="bus.proactive_ledger",
            schema=_SCHEMA,
        )

    def close(self) -> None:
        self._db.close()

    async def _call(self, fn: Callable[[Any], T], write: bool = False) -> T:
        return await self._db.call(fn, write)

    # -- statements (inside a transaction) --------------------------------------------------------
    def _insert(
        self, conn: Any, prompt: ProactivePrompt, status: str, node_id: str, detail: str | None
    ) -> bool:
        cur = conn.execute(
            "INSERT INTO proactive_deliveries (idempotency_key, message_id, user_id, tenant, campaign_id,"
            " status, node_id, prompt, priority, expires_at, created_at, updated_at, delivered_at, detail)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, NULL, %s)"
            " ON CONFLICT (idempotency_key) DO NOTHING",
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
                self.clock(),
                detail,
            ),
        )
        return bool(cur.rowcount == 1)

    def _event(
        self,
        conn: Any,
        key: str,
        message_id: str,
        status: str,
        node_id: str | None,
        detail: str | None = None,
    ) -> None:
        conn.execute(
            "INSERT INTO proactive_delivery_events (idempotency_key, message_id, status, node_id, at, detail)"
            " VALUES (%s, %s, %s, %s, %s, %s)",
            (key, message_id, status, node_id, self.clock(), detail),
        )

    # -- writes -----------------------------------------------------------------------------------
    async def claim(self, prompt: ProactivePrompt, node_id: str) -> str | None:
        """Try to become the one node that speaks ``prompt``. Returns None when claimed, else the status
        that stopped it (``delivered``, ``claimed``, ``expired``...); a duplicate event is then recorded."""
        key, message_id = prompt.idempotency_key, prompt.message_id

        def tx(conn: Any) -> str | None:
            now = self.clock()
            if self._insert(conn, prompt, "claimed", node_id, None):
                self._event(conn, key, message_id, "claimed", node_id)
                return None
            # Held for this user, or abandoned by a node that died mid-speech: take it over.
            taken = conn.execute(
                "UPDATE proactive_deliveries SET status = 'claimed', node_id = %s, updated_at = %s, detail = NULL"
                " WHERE idempotency_key = %s"
                " AND (status = 'pending' OR (status = 'claimed' AND updated_at < %s))",
                (node_id, now, key, now - self.claim_timeout_s),
            )
            if taken.rowcount == 1:
                self._event(conn, key, message_id, "claimed", node_id)
                return None
            row = conn.execute(
                "SELECT status FROM proactive_deliveries WHERE idempotency_key = %s", (key,)
            ).fetchone()
            status = str(row[0]) if row else "unknown"
            self._event(conn, key, message_id, "duplicate", node_id, f"already {status}")
            return status

        return await self._call(tx, write=True)

    async def _set_status(
        self, prompt: ProactivePrompt, node_id: str, status: str, event: str, detail: str | None
    ) -> None:
        def tx(conn: Any) -> None:
            now = self.clock()
            conn.execute(
                "UPDATE proactive_deliveries SET status = %s, node_id = %s, updated_at = %s, detail = %s,"
                " delivered_at = CASE WHEN %s = 'delivered' THEN %s ELSE delivered_at END"
                " WHERE idempotency_key = %s",
                (status, node_id, now, detail, status, now, prompt.idempotency_key),
            )
            self._event(conn, prompt.idempotency_key, prompt.message_id, event, node_id, detail)

        await self._call(tx, write=True)

    async def mark_delivered(self, prompt: ProactivePrompt, node_id: str) -> None:
        await self._set_status(prompt, node_id, "delivered", "delivered", None)

    async def mark_failed(self, prompt: ProactivePrompt, node_id: str, detail: str) -> None:
        """A claimed prompt was not spoken: record the failure and hold it for the user's next call."""
        await self._set_status(prompt, node_id, "pending", "failed", detail)

    async def hold_pending(self, prompt: ProactivePrompt, node_id: str) -> bool:
        """Hold ``prompt`` for the user's next call. Exactly one row per idempotency key: returns False if
        the key is already known (pending, claimed or done)."""

        def tx(conn: Any) -> bool:
            stored = self._insert(conn, prompt, "pending", node_id, "user offline")
            if stored:
                self._event(
                    conn, prompt.idempotency_key, prompt.message_id, "pending", node_id, "user offline"
                )
            return stored

        return await self._call(tx, write=True)

    async def mark_expired(self, prompt: ProactivePrompt, node_id: str) -> None:
        detail = "expired before delivery"

        def tx(conn: Any) -> None:
            if not self._insert(conn, prompt, "expired", node_id, detail):
                conn.execute(
                    "UPDATE proactive_deliveries SET status = 'expired', node_id = %s, updated_at = %s"
                    " WHERE idempotency_key = %s AND status = 'pending'",
                    (node_id, self.clock(), prompt.idempotency_key),
                )
            self._event(conn, prompt.idempotency_key, prompt.message_id, "expired", node_id, detail)

        await self._call(tx, write=True)

    async def pop_pending(self, user_id: str, node_id: str) -> list[ProactivePrompt]:
        """Take the prompts held for ``user_id`` (most urgent, then oldest, first) for the greeting of the
        call that just started on ``node_id``; each is returned once, also when two nodes pop at once (the
        second waits for the first's row locks and then finds the rows no longer pending)."""

        def tx(conn: Any) -> list[ProactivePrompt]:
            now = self.clock()
            expired = conn.execute(
                "UPDATE proactive_deliveries SET status = 'expired', node_id = %s, updated_at = %s,"
                " detail = 'expired while held' WHERE user_id = %s AND status = 'pending'"
                " AND expires_at IS NOT NULL AND expires_at <= %s RETURNING idempotency_key, message_id",
                (node_id, now, user_id, now),
            ).fetchall()
            for key, message_id in expired:
                self._event(conn, key, message_id, "expired", node_id, "expired while held")
            rows = conn.execute(
                "UPDATE proactive_deliveries SET status = 'delivered', node_id = %s, updated_at = %s,"
                " delivered_at = %s, detail = 'handed to call greeting' WHERE user_id = %s"
                " AND status = 'pending' RETURNING prompt",
                (node_id, now, now, user_id),
            ).fetchall()
            prompts = [ProactivePrompt.model_validate_json(r[0]) for r in rows]
            for p in prompts:
                self._event(
                    conn, p.idempotency_key, p.message_id, "delivered", node_id, "handed to call greeting"
                )
            return sorted(prompts, key=lambda p: (p.priority, p.created_at))

        return await self._call(tx, write=True)

    # -- reads ------------------------------------------------------------------------------------
    async def get(self, idempotency_key: str) -> DeliveryRecord | None:
        def q(conn: Any) -> DeliveryRecord | None:
            row = conn.execute(
                f"SELECT {_RECORD} FROM proactive_deliveries WHERE idempotency_key = %s", (idempotency_key,)
            ).fetchone()
            return DeliveryRecord(*row) if row else None

        return await self._call(q)

    async def events(self, idempotency_key: str) -> list[DeliveryEvent]:
        def q(conn: Any) -> list[DeliveryEvent]:
            rows = conn.execute(
                "SELECT idempotency_key, message_id, status, node_id, at, detail FROM proactive_delivery_events"
                " WHERE idempotency_key = %s ORDER BY at, id",
                (idempotency_key,),
            ).fetchall()
            return [DeliveryEvent(*r) for r in rows]

        return await self._call(q)

    async def list_recent(self, limit: int = 100) -> list[DeliveryRecord]:
        """Latest deliveries, newest first (for the admin dashboard)."""

        def q(conn: Any) -> list[DeliveryRecord]:
            rows = conn.execute(
                f"SELECT {_RECORD} FROM proactive_deliveries ORDER BY updated_at DESC LIMIT %s", (limit,)
            ).fetchall()
            return [DeliveryRecord(*r) for r in rows]

        return await self._call(q)
