"""PostgreSQL store for multi-node deployments: pgvector (HNSW, cosine) + tsvector (GIN) in one table.

Reached through a SQLAlchemy engine (``knowledge.stores.sql``: psycopg 3, connect and statement timeouts,
dropped connections replaced by the pool's pre-ping), run from a small pool of worker threads. Document
status rows are the shared ``knowledge.stores.documents`` implementation; what is PostgreSQL's own stays
here: the vector and tsvector columns and their queries. Migrations in ``knowledge/stores/migrations/*.sql``
are applied at ``start()`` under an advisory lock, so several nodes can start at once. Writes of one
document take a per-document advisory lock inside the transaction that swaps its chunks, which makes the
version check race-free across nodes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from knowledge.errors import StoreError
from knowledge.stores import documents as status
from knowledge.stores.base import (
    CHUNK_COLUMNS,
    ChunkRecord,
    DocumentRecord,
    RetrievedChunk,
    SearchFilters,
    chunk_row,
    query_terms,
    source_id,
)
from knowledge.stores.sql import create_engine, reading

log = logging.getLogger(__name__)
T = TypeVar("T")

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
_CHUNK_COLUMNS = "id, doc_id, version, ordinal, text, heading, title, tenant, source, tags"
APPLICATION_NAME = "voice-agent-knowledge"  # shows in pg_stat_activity


class PostgresStore:
    """``KnowledgeStore`` on PostgreSQL with pgvector; ``pool_size`` connections and worker threads."""

    def __init__(
        self,
        dsn: str,
        dim: int = 384,
        pool_size: int = 3,
        *,
        connect_timeout_s: float = 5.0,
        statement_timeout_s: float = 30.0,
    ) -> None:
        self.dsn = dsn
        self.dim = dim
        self.pool_size = pool_size
        self.timeouts = {"connect_timeout_s": connect_timeout_s, "statement_timeout_s": statement_timeout_s}
        self._engine: Engine | None = None
        self._executor: ThreadPoolExecutor | None = None

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            raise StoreError("postgres knowledge store is not started; call start() first")
        return self._engine

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        if self._executor is None:
            raise StoreError("postgres knowledge store is not started; call start() first")
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def start(self) -> None:
        try:
            import pgvector.psycopg  # noqa: F401
            import psycopg  # noqa: F401
        except ImportError as exc:
            raise StoreError(
                "the postgres knowledge store needs `pip install voice-agent[postgres]`"
            ) from exc
        self._executor = ThreadPoolExecutor(max_workers=self.pool_size, thread_name_prefix="knowledge-pg")
        engine = create_engine(
            self.dsn,
            pool_size=self.pool_size,
            application_name=APPLICATION_NAME,
            on_connect=_prepare,
            **self.timeouts,
        )
        try:
            await self._run(self._migrate, engine)
        except sa.exc.OperationalError as exc:
            engine.dispose()
            raise StoreError(f"cannot connect to PostgreSQL for the knowledge store: {exc.orig}") from exc
        engine.dispose()  # connections opened before the vector type existed would not know it
        self._engine = engine

    def _migrate(self, engine: Engine) -> None:
        with engine.begin() as conn:
            conn.exec_driver_sql("SELECT pg_advisory_xact_lock(hashtext('knowledge_migrations'))")
            conn.exec_driver_sql(
                "CREATE TABLE IF NOT EXISTS knowledge_schema_migrations (name text PRIMARY KEY, applied_at timestamptz "
                "NOT NULL DEFAULT now())"
            )
            done = {r[0] for r in conn.exec_driver_sql("SELECT name FROM knowledge_schema_migrations")}
            for path in sorted(MIGRATIONS_DIR.glob("*.sql")):
                if path.name in done:
                    continue
                log.info("applying knowledge migration %s", path.name)
                # Several statements in one script: the driver's simple query protocol (no parameters).
                conn.connection.driver_connection.execute(
                    path.read_text().replace("{dim}", str(int(self.dim)))
                )
                conn.exec_driver_sql(
                    "INSERT INTO knowledge_schema_migrations (name) VALUES (%s)", (path.name,)
                )

    async def close(self) -> None:
        if self._engine is not None:
            await self._run(self._engine.dispose)
            self._engine = None
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None

    # --- documents -------------------------------------------------------------------------------------
    async def save_status(self, record: DocumentRecord) -> None:
        await self._run(self._write, status.save_status, record)

    async def get_document(self, doc_id: str) -> DocumentRecord | None:
        rows = await self._run(self._read, status.select, doc_id)
        return rows[0] if rows else None

    async def list_documents(
        self, tenant: str | None = None, status: str | None = None, limit: int = 100, offset: int = 0
    ) -> list[DocumentRecord]:
        return await self._run(self._read, _select_documents, tenant, status, limit, offset)

    def _write(self, fn: Callable[..., T], *args: Any) -> T:
        with self.engine.begin() as conn:
            return fn(conn, *args)

    def _read(self, fn: Callable[..., T], *args: Any) -> T:
        with reading(self.engine) as conn:
            return fn(conn, *args)

    async def replace_document(self, record: DocumentRecord, chunks: Sequence[ChunkRecord]) -> bool:
        return await self._run(self._write, self._replace, record, list(chunks))

    @staticmethod
    def _replace(conn: sa.Connection, r: DocumentRecord, chunks: list[ChunkRecord]) -> bool:
        conn.exec_driver_sql("SELECT pg_advisory_xact_lock(hashtext(%s))", (r.doc_id,))
        known = status.versions(conn, r.doc_id)
        if known and known[1] is not None and known[1] >= r.version:
            return False
        conn.exec_driver_sql("DELETE FROM knowledge_chunks WHERE doc_id = %s", (r.doc_id,))
        if chunks:
            conn.exec_driver_sql(
                f"INSERT INTO knowledge_chunks ({CHUNK_COLUMNS}) VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)",
                [chunk_row(r, c, list(r.tags), np.asarray(c.embedding, dtype=np.float32)) for c in chunks],
            )
        status.mark_ready(conn, r, len(chunks))
        return True

    async def delete_document(self, doc_id: str, version: int | None = None) -> bool:
        return await self._run(self._write, self._delete, doc_id, version)

    @staticmethod
    def _delete(conn: sa.Connection, doc_id: str, version: int | None) -> bool:
        conn.exec_driver_sql("SELECT pg_advisory_xact_lock(hashtext(%s))", (doc_id,))
        known = status.versions(conn, doc_id)
        if known is None or (version is not None and known[0] > version):
            return False
        conn.exec_driver_sql("DELETE FROM knowledge_chunks WHERE doc_id = %s", (doc_id,))
        status.delete(conn, doc_id)
        return True

    # --- search ----------------------------------------------------------------------------------------
    @staticmethod
    def _filters(f: SearchFilters) -> tuple[str, list[Any]]:
        where: list[str] = []
        args: list[Any] = []
        if f.tenant:
            where.append("tenant = %s")
            args.append(f.tenant)
        if f.source:
            where.append("source = %s")
            args.append(f.source)
        if f.tags:
            where.append("tags @> %s::text[]")
            args.append(list(f.tags))
        return (" AND " + " AND ".join(where) if where else ""), args

    async def vector_search(self, vector: np.ndarray, k: int, filters: SearchFilters) -> list[RetrievedChunk]:
        clause, args = self._filters(filters)
        v = np.asarray(vector, dtype=np.float32)
        sql = (
            f"SELECT {_CHUNK_COLUMNS}, 1 - (embedding <=> %s) AS score FROM knowledge_chunks WHERE true{clause} "
            "ORDER BY embedding <=> %s LIMIT %s"
        )
        return await self._run(self._search, sql, (v, *args, v, k))

    async def fulltext_search(self, query: str, k: int, filters: SearchFilters) -> list[RetrievedChunk]:
        terms = query_terms(query)
        if not terms:
            return []
        clause, args = self._filters(filters)
        sql = (
            f"SELECT {_CHUNK_COLUMNS}, ts_rank_cd(tsv, q) AS score "
            f"FROM knowledge_chunks, to_tsquery('english', %s) AS q WHERE tsv @@ q{clause} "
            "ORDER BY score DESC, id LIMIT %s"
        )
        return await self._run(self._search, sql, (" | ".join(terms), *args, k))

    def _search(self, sql: str, params: tuple[Any, ...]) -> list[RetrievedChunk]:
        with reading(self.engine) as conn:
            return [_chunk(row) for row in conn.exec_driver_sql(sql, params)]


def _select_documents(
    conn: sa.Connection, tenant: str | None, state: str | None, limit: int, offset: int
) -> list[DocumentRecord]:
    return status.select(conn, None, tenant, state, limit, offset)


def _prepare(dbapi_connection: Any) -> None:
    """Every new connection: numpy arrays as pgvector values, and filtered HNSW queries that keep scanning
    until k rows pass the filter (pgvector >= 0.8; older versions ignore it)."""
    import psycopg
    from pgvector.psycopg import register_vector

    with contextlib.suppress(psycopg.ProgrammingError):  # before the first migration: no vector type yet
        register_vector(dbapi_connection)
    try:
        dbapi_connection.execute("SET hnsw.iterative_scan = relaxed_order")
        dbapi_connection.commit()
    except psycopg.Error:
        dbapi_connection.rollback()


def _chunk(row: Any) -> RetrievedChunk:
    _id, doc_id, version, ordinal, text, heading, title, tenant, source, tags, score = row
    return RetrievedChunk(
        text=text,
        score=float(score),
        source_id=source_id(doc_id, ordinal),
        doc_id=doc_id,
        heading=heading,
        title=title,
        tenant=tenant,
        source=source,
        tags=tuple(tags),
        version=version,
    )
