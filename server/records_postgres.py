"""Call records in PostgreSQL, for several server nodes sharing one database.

Same shape as the SQLite store (one row per call, the body as JSONB), so the call page and the dashboard
read records of calls held by any node. psycopg's blocking connection runs in a worker thread, like the
SQLite store: a record is saved twice per call, so a pool would buy nothing. A dropped connection (database
restart, failover) is reopened once per operation, so a record is not lost to a stale socket.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from typing import Any

from server.records import CallRecord, summary

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS call_records (
    call_id text PRIMARY KEY,
    user_id text,
    node_id text NOT NULL,
    started_at double precision NOT NULL,
    ended_at double precision,
    end_reason text,
    body jsonb NOT NULL
);
CREATE INDEX IF NOT EXISTS call_records_started ON call_records (started_at DESC);
CREATE INDEX IF NOT EXISTS call_records_user ON call_records (user_id, started_at DESC);
"""
APPLICATION_NAME = "voice-agent-call-records"  # shows in pg_stat_activity


class CallRecordStoreError(RuntimeError):
    """The store cannot be opened (library missing, database unreachable)."""


class PostgresCallRecordStore:
    """``CallRecordStore`` on PostgreSQL; connects (and creates its table) on construction."""

    def __init__(self, dsn: str) -> None:
        try:
            import psycopg
        except ImportError as exc:
            raise CallRecordStoreError(
                "server.records_db is a PostgreSQL DSN: pip install 'voice-agent[postgres]'"
            ) from exc
        self._psycopg = psycopg
        self._dsn = dsn
        self._lock = threading.Lock()
        self._conn: Any = None
        with self._lock:
            self._run(self._create_schema)

    async def save(self, record: CallRecord) -> None:
        await asyncio.to_thread(self._locked, self._save, record)

    async def get(self, call_id: str) -> CallRecord | None:
        return await asyncio.to_thread(self._locked, self._get, call_id)

    async def recent(self, limit: int = 50, user_id: str | None = None) -> list[dict[str, Any]]:
        return await asyncio.to_thread(self._locked, self._list, limit, user_id)

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    # -- worker thread ----------------------------------------------------------------------------
    def _locked(self, op: Any, *args: Any) -> Any:
        with self._lock:
            return self._run(op, *args)

    def _run(self, op: Any, *args: Any) -> Any:
        """Run ``op(conn, *args)``; on a broken connection reconnect and try once more."""
        for attempt in (1, 2):
            conn = self._connection()
            try:
                return op(conn, *args)
            except self._psycopg.OperationalError as exc:
                if attempt == 2 or not conn.closed and not conn.broken:
                    raise
                log.warning("call record store: connection lost (%s); reconnecting", exc)
                self._conn = None
        raise AssertionError("unreachable")

    def _connection(self) -> Any:
        if self._conn is None or self._conn.closed:
            try:
                self._conn = self._psycopg.connect(
                    self._dsn, autocommit=True, application_name=APPLICATION_NAME
                )
            except self._psycopg.Error as exc:
                raise CallRecordStoreError(f"cannot connect to PostgreSQL for call records: {exc}") from exc
        return self._conn

    @staticmethod
    def _create_schema(conn: Any) -> None:
        with conn.transaction():  # nodes starting together: one creates, the others wait and see it
            conn.execute("SELECT pg_advisory_xact_lock(hashtext('voice_agent_call_records'))")
            conn.execute(_SCHEMA)

    @staticmethod
    def _save(conn: Any, record: CallRecord) -> None:
        conn.execute(
            "INSERT INTO call_records (call_id, user_id, node_id, started_at, ended_at, end_reason, body)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s::jsonb)"
            " ON CONFLICT (call_id) DO UPDATE SET user_id = EXCLUDED.user_id, node_id = EXCLUDED.node_id,"
            " started_at = EXCLUDED.started_at, ended_at = EXCLUDED.ended_at,"
            " end_reason = EXCLUDED.end_reason, body = EXCLUDED.body",
            (
                record.call_id,
                record.user_id,
                record.node_id,
                record.started_at,
                record.ended_at,
                record.end_reason,
                json.dumps(record.to_dict()),
            ),
        )

    @staticmethod
    def _get(conn: Any, call_id: str) -> CallRecord | None:
        row = conn.execute("SELECT body FROM call_records WHERE call_id = %s", (call_id,)).fetchone()
        return CallRecord.from_dict(row[0]) if row else None

    @staticmethod
    def _list(conn: Any, limit: int, user_id: str | None) -> list[dict[str, Any]]:
        query = "SELECT call_id, user_id, node_id, started_at, ended_at, end_reason, body FROM call_records"
        args: tuple[Any, ...] = ()
        if user_id is not None:
            query += " WHERE user_id = %s"
            args = (user_id,)
        rows = conn.execute(query + " ORDER BY started_at DESC LIMIT %s", (*args, limit)).fetchall()
        return [summary(*row[:6], row[6]) for row in rows]
