"""Call records in PostgreSQL, for several server nodes sharing one database.

Same shape as the SQLite store (one row per call, the body as JSONB), so the call page and the dashboard
read records of calls held by any node. The connection handling (worker thread, reconnect once, schema under
an advisory lock) is ``server/pg_connection.py``.
"""

from __future__ import annotations

import json
from typing import Any

from server.calls.record import CallRecord, call_summary
from server.storage.pg_connection import BlockingPgConnection

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


class PostgresCallRecordStore:
    """``CallRecordStore`` on PostgreSQL; connects (and creates its table) on construction."""

    def __init__(self, dsn: str) -> None:
        self._db = BlockingPgConnection(
            dsn,
            application_name=APPLICATION_NAME,
            purpose="call records",
            config_key="server.records_db",
            schema=_SCHEMA,
        )

    async def save(self, record: CallRecord) -> None:
        await self._db.call(lambda conn: self._save(conn, record), write=True)

    async def get(self, call_id: str) -> CallRecord | None:
        return await self._db.call(lambda conn: self._get(conn, call_id))

    async def recent(self, limit: int = 50, user_id: str | None = None) -> list[dict[str, Any]]:
        return await self._db.call(lambda conn: self._list(conn, limit, user_id))

    def close(self) -> None:
        self._db.close()

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
        return [call_summary(*row[:6], row[6]) for row in rows]
