"""Call records in SQLite (one node) or PostgreSQL (several nodes, one database): one implementation.

One row per call; the variable parts (transcript, replies, interruptions) are one JSON document, because
they are read whole (call page, admin dashboard) and never queried field by field (PostgreSQL: ``jsonb``).
``storage.records`` picks the database: a path, or a ``postgresql://`` DSN. See ``server.calls.record``
for the model.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Engine

from server.calls.record import CallRecord, CallRecordStore, call_summary
from server.storage.engine import TRANSIENT_ERRORS, create_engine, insert, unavailable
from server.storage.migrations import Migration, copy_legacy_rows, create_tables, migrate
from server.storage.turn_grounding import (
    attach_grounding,
    body_without_grounding,
    save_grounding,
    turn_grounding,
)

metadata = sa.MetaData()
call_records = sa.Table(
    "call_records",
    metadata,
    sa.Column("call_id", sa.String(64), primary_key=True),
    sa.Column("user_id", sa.String(200)),
    sa.Column("node_id", sa.String(200), nullable=False),
    sa.Column("started_at", sa.Double, nullable=False),
    sa.Column("ended_at", sa.Double),
    sa.Column("end_reason", sa.String(64)),
    sa.Column("body", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=False),
)
sa.Index("call_records_started", call_records.c.started_at.desc())
sa.Index("call_records_user", call_records.c.user_id, call_records.c.started_at.desc())
_COLUMNS = ("call_id", "user_id", "node_id", "started_at", "ended_at", "end_reason", "body")
MIGRATIONS = (
    Migration(1, "call_records table", create_tables(call_records)),
    # Round 1 kept SQLite records in a table named ``calls`` (PostgreSQL already used ``call_records``).
    Migration(2, "copy round-1 SQLite table calls", copy_legacy_rows("calls", call_records, _COLUMNS)),
    # Each reply's evidence and how it was produced (issue 14); rows saved before it have none.
    Migration(3, "call_turn_grounding table", create_tables(turn_grounding)),
)


class SqlCallRecordStore:
    """``CallRecordStore`` on a SQLAlchemy engine; blocking work runs in worker threads."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        migrate(engine, "call_records", MIGRATIONS)

    async def save(self, record: CallRecord) -> None:
        """Insert or replace the record; ``StoreUnavailable`` when the database is away."""
        await self._run(self._save, record)

    async def get(self, call_id: str) -> CallRecord | None:
        return await self._run(self._get, call_id)  # type: ignore[no-any-return]

    async def recent(self, limit: int = 50, user_id: str | None = None) -> list[dict[str, Any]]:
        """Newest first; summaries without the transcript body."""
        return await self._run(self._recent, limit, user_id)  # type: ignore[no-any-return]

    async def _run(self, fn: Any, *args: Any) -> Any:
        try:
            return await asyncio.to_thread(fn, *args)
        except TRANSIENT_ERRORS as exc:
            raise unavailable("call records", exc) from exc

    def close(self) -> None:
        self.engine.dispose()

    def _save(self, record: CallRecord) -> None:
        values = dict(zip(_COLUMNS, (*_row_key(record), body_without_grounding(record)), strict=True))
        with self.engine.begin() as conn:
            statement = insert(conn, call_records).values(**values)
            conn.execute(
                statement.on_conflict_do_update(
                    index_elements=["call_id"], set_={c: statement.excluded[c] for c in _COLUMNS[1:]}
                )
            )
            save_grounding(conn, record)

    def _get(self, call_id: str) -> CallRecord | None:
        with self.engine.begin() as conn:
            body = conn.execute(
                sa.select(call_records.c.body).where(call_records.c.call_id == call_id)
            ).scalar()
            if body is None:
                return None
            return CallRecord.from_dict(attach_grounding(conn, call_id, dict(body)))

    def _recent(self, limit: int, user_id: str | None) -> list[dict[str, Any]]:
        query = sa.select(*(call_records.c[c] for c in _COLUMNS)).order_by(call_records.c.started_at.desc())
        if user_id is not None:
            query = query.where(call_records.c.user_id == user_id)
        with self.engine.begin() as conn:
            rows = conn.execute(query.limit(limit)).all()
        return [call_summary(*row) for row in rows]


def _row_key(record: CallRecord) -> tuple[Any, ...]:
    return (
        record.call_id,
        record.user_id,
        record.node_id,
        record.started_at,
        record.ended_at,
        record.end_reason,
    )


def open_call_record_store(
    target: str | Path, *, connect_timeout_s: float = 5.0, statement_timeout_s: float = 30.0
) -> CallRecordStore:
    """The store for ``storage.records``: a SQLite path or a ``postgresql://`` DSN (blocking: connects and
    migrates; call it from a worker thread)."""
    engine = create_engine(
        target,
        connect_timeout_s=connect_timeout_s,
        statement_timeout_s=statement_timeout_s,
        application_name="voice-agent-call-records",
    )
    return SqlCallRecordStore(engine)
