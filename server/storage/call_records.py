"""Call records in SQLite (one node); see ``server.calls.record`` for the model."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
from pathlib import Path
from typing import Any

from server.calls.record import CallRecord, CallRecordStore, call_summary

_SCHEMA = """
CREATE TABLE IF NOT EXISTS calls (
    call_id TEXT PRIMARY KEY,
    user_id TEXT,
    node_id TEXT NOT NULL,
    started_at REAL NOT NULL,
    ended_at REAL,
    end_reason TEXT,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS calls_started ON calls (started_at DESC);
CREATE INDEX IF NOT EXISTS calls_user ON calls (user_id, started_at DESC);
"""


def open_call_record_store(target: str | Path) -> CallRecordStore:
    """A PostgreSQL store for a ``postgresql://`` DSN, else a SQLite file at that path."""
    if str(target).startswith(("postgresql://", "postgres://")):
        from server.storage.call_records_postgres import PostgresCallRecordStore

        return PostgresCallRecordStore(str(target))
    return SqliteCallRecordStore(target)



class SqliteCallRecordStore:
    """SQLite file of call records; blocking work runs in a thread so the event loop keeps serving audio."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if str(path) != ":memory:":
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False)
        self._db.executescript(_SCHEMA)

    async def save(self, record: CallRecord) -> None:
        await asyncio.to_thread(self._save, record)

    async def get(self, call_id: str) -> CallRecord | None:
        return await asyncio.to_thread(self._get, call_id)

    async def recent(self, limit: int = 50, user_id: str | None = None) -> list[dict[str, Any]]:
        """Newest first; summaries without the transcript body."""
        return await asyncio.to_thread(self._list, limit, user_id)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _save(self, record: CallRecord) -> None:
        body = json.dumps(record.to_dict())
        with self._lock, self._db:
            self._db.execute(
                "INSERT OR REPLACE INTO calls (call_id, user_id, node_id, started_at, ended_at, end_reason, body)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    record.call_id,
                    record.user_id,
                    record.node_id,
                    record.started_at,
                    record.ended_at,
                    record.end_reason,
                    body,
                ),
            )

    def _get(self, call_id: str) -> CallRecord | None:
        with self._lock:
            row = self._db.execute("SELECT body FROM calls WHERE call_id = ?", (call_id,)).fetchone()
        return CallRecord.from_dict(json.loads(row[0])) if row else None

    def _list(self, limit: int, user_id: str | None) -> list[dict[str, Any]]:
        query = "SELECT call_id, user_id, node_id, started_at, ended_at, end_reason, body FROM calls"
        args: tuple[Any, ...] = ()
        if user_id is not None:
            query += " WHERE user_id = ?"
            args = (user_id,)
        query += " ORDER BY started_at DESC LIMIT ?"
        with self._lock:
            rows = self._db.execute(query, (*args, limit)).fetchall()
        return [call_summary(*row[:6], json.loads(row[6])) for row in rows]


