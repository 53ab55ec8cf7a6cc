"""The status of knowledge documents: one implementation on SQLAlchemy Core for both stores.

``knowledge_documents`` has one row per document (a ``doc_id`` is unique within its tenant: two tenants'
documents of the same id never touch each other): its last submitted ``version``, the ``ready_version``
whose chunks are searchable, ``status`` (queued, processing, ready, failed) with ``error`` and ``attempts``.
The functions take the store's open connection, so a status change and the chunk swap it belongs to
commit together. Only the column type of ``tags`` differs (JSON in SQLite, ``text[]`` in PostgreSQL).
``SqlDocumentStore`` is the base of both stores: their engine, worker threads and status methods.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine

from knowledge.errors import StoreError
from knowledge.stores.base import DEFAULT_TENANT, DocumentRecord
from knowledge.stores.sql import reading

T = TypeVar("T")

metadata = sa.MetaData()
documents = sa.Table(
    "knowledge_documents",
    metadata,
    sa.Column("tenant", sa.Text, primary_key=True),
    sa.Column("doc_id", sa.Text, primary_key=True),
    sa.Column("source", sa.Text, nullable=False),
    sa.Column("tags", sa.JSON().with_variant(postgresql.ARRAY(sa.Text), "postgresql"), nullable=False),
    sa.Column("title", sa.Text),
    sa.Column("content_type", sa.Text),
    sa.Column("version", sa.BigInteger, nullable=False),  # last submitted version
    sa.Column("ready_version", sa.BigInteger),  # version whose chunks are searchable
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("error", sa.Text),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("chunk_count", sa.Integer, nullable=False, default=0),
    sa.Column("updated_at", sa.Double, nullable=False),
)
sa.Index("knowledge_documents_tenant_status", documents.c.tenant, documents.c.status)
_STATUS_COLUMNS = (
    "source",
    "tags",
    "title",
    "content_type",
    "version",
    "status",
    "error",
    "attempts",
)


def save_status(conn: sa.Connection, r: DocumentRecord) -> None:
    """Upsert the status row; never moves it back to an older version, never touches ready_version."""
    r.updated_at = time.time()
    values = {c: getattr(r, c) for c in ("tenant", "doc_id", *_STATUS_COLUMNS, "updated_at")}
    insert: Any = (postgresql if conn.dialect.name == "postgresql" else sqlite).insert(documents)
    statement = insert.values(**values, ready_version=None, chunk_count=0)
    conn.execute(
        statement.on_conflict_do_update(
            index_elements=["tenant", "doc_id"],
            set_={c: statement.excluded[c] for c in (*_STATUS_COLUMNS, "updated_at")},
            where=statement.excluded.version >= documents.c.version,
        )
    )


def mark_ready(conn: sa.Connection, r: DocumentRecord, chunk_count: int) -> None:
    """``r``'s version is searchable now, with ``chunk_count`` chunks (a newer queued version keeps its
    status row; only the searchable version and its count change)."""
    r.ready_version, r.chunk_count, r.error, r.status = r.version, chunk_count, None, "ready"
    save_status(conn, r)
    conn.execute(
        documents.update()
        .where(_key(r.doc_id, r.tenant))
        .values(ready_version=r.version, chunk_count=chunk_count)
    )


def _key(doc_id: str, tenant: str) -> Any:
    return sa.and_(documents.c.tenant == tenant, documents.c.doc_id == doc_id)


def versions(conn: sa.Connection, doc_id: str, tenant: str) -> tuple[int, int | None] | None:
    """(last submitted version, searchable version) of ``doc_id`` of ``tenant``, or None if unknown."""
    row = conn.execute(
        sa.select(documents.c.version, documents.c.ready_version).where(_key(doc_id, tenant))
    ).first()
    return None if row is None else (row[0], row[1])


def delete(conn: sa.Connection, doc_id: str, tenant: str) -> None:
    conn.execute(documents.delete().where(_key(doc_id, tenant)))


def select(
    conn: sa.Connection,
    doc_id: str | None = None,
    tenant: str | None = None,
    status: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[DocumentRecord]:
    """Status rows, most recently updated first, filtered by whatever is given."""
    query = sa.select(documents).order_by(documents.c.updated_at.desc()).limit(limit).offset(offset)
    for column, value in (("doc_id", doc_id), ("tenant", tenant), ("status", status)):
        if value is not None:
            query = query.where(documents.c[column] == value)
    return [DocumentRecord(**{**row._mapping, "tags": list(row.tags)}) for row in conn.execute(query)]


class SqlDocumentStore:
    """What both knowledge stores share: a SQLAlchemy engine driven from worker threads (never the event
    loop) and the document status rows of ``KnowledgeStore``. A store sets ``_engine`` in ``start()``."""

    def __init__(self, name: str, workers: int) -> None:
        self.name = name
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"knowledge-{name}")
        self._engine: Engine | None = None

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            raise StoreError(f"the {self.name} knowledge store is not started; call start() first")
        return self._engine

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    def _write(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(conn, *args)`` in one writing transaction (call it from a worker: ``await _run(_write, ...)``)."""
        with self.engine.begin() as conn:
            return fn(conn, *args)

    def _read(self, fn: Callable[..., T], *args: Any) -> T:
        with reading(self.engine) as conn:
            return fn(conn, *args)

    async def close(self) -> None:
        if self._engine is not None:
            await self._run(self._engine.dispose)
            self._engine = None
        self._executor.shutdown(wait=True)

    async def save_status(self, record: DocumentRecord) -> None:
        await self._run(self._write, save_status, record)

    async def get_document(self, doc_id: str, tenant: str = DEFAULT_TENANT) -> DocumentRecord | None:
        rows = await self._run(self._read, select, doc_id, tenant)
        return rows[0] if rows else None

    async def list_documents(
        self, tenant: str | None = None, status: str | None = None, limit: int = 100, offset: int = 0
    ) -> list[DocumentRecord]:
        return await self._run(self._read, select, None, tenant, status, limit, offset)
