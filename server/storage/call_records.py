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
from server.storage.migrations import Migration, add_column, copy_legacy_rows, create_tables, migrate
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
    sa.Column("tenant", sa.String(128), nullable=False, server_default="default"),
)
sa.Index("call_records_started", call_records.c.started_at.desc())
sa.Index("call_records_user", call_records.c.user_id, call_records.c.started_at.desc())
_LEGACY_COLUMNS = ("call_id", "user_id", "node_id", "started_at", "ended_at", "end_reason", "body")
_COLUMNS = (*_LEGACY_COLUMNS, "tenant")
_TENANT_DDL = "VARCHAR(128) NOT NULL DEFAULT 'default'"
MIGRATIONS = (
    Migration(1, "call_records table", create_tables(call_records)),
    # Round 1 kept SQLite records in a table named ``calls`` (PostgreSQL already used ``call_records``).
    Migration(2, "copy round-1 SQLite table calls", copy_legacy_rows("calls", call_records, _LEGACY_COLUMNS)),
    # Records from before tenants belong to the default tenant.
    Migration(3, "call_records tenant", add_column("call_records", "tenant", _TENANT_DDL)),
    # Each reply's evidence and how it was produced (issue 14); rows saved before it have none.
    Migration(4, "call_turn_grounding table", create_tables(turn_grounding)),
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

    async def recent(
        self, limit: int = 50, user_id: str | None = None, tenant: str | None = None
    ) -> list[dict[str, Any]]:
        """Newest first; summaries without the transcript body; ``tenant`` None: every tenant."""
        return await self._run(self._recent, limit, user_id, tenant)  # type: ignore[no-any-return]

    async def _run(self, fn: Any, *args: Any) -> Any:
        try:
            return await asyncio.to_thread(fn, *args)
        except TRANSIENT_ERRORS as exc:
            raise unavailable("call records", exc) from exc

    def close(self) -> None:
        self.engine.dispose()

    def _save(self, record: CallRecord) -> None:
        body = body_without_grounding(record)
        values = dict(zip(_COLUMNS, (*_row_key(record), body, record.tenant), strict=True))
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
            row = conn.execute(
                sa.select(call_records.c.body, call_records.c.tenant).where(call_records.c.call_id == call_id)
            ).first()
            if row is None:
                return None
            body = attach_grounding(conn, call_id, {**row.body, "tenant": row.tenant})  # old bodies: no tenant
        return CallRecord.from_dict(body)

    def _recent(self, limit: int, user_id: str | None, tenant: str | None) -> list[dict[str, Any]]:
        query = sa.select(*(call_records.c[c] for c in _COLUMNS)).order_by(call_records.c.started_at.desc())
        if user_id is not None:
            query = query.where(call_records.c.user_id == user_id)
        if tenant is not None:
            query = query.where(call_records.c.tenant == tenant)
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
