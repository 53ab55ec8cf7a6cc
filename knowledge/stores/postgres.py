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

import contextlib
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from knowledge.errors import StoreError
from knowledge.stores import base
from knowledge.stores import documents as status
from knowledge.stores.base import ChunkRecord, DocumentRecord, RetrievedChunk, SearchFilters
from knowledge.stores.documents import SqlDocumentStore
from knowledge.stores.sql import create_engine

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
_CHUNK_COLUMNS = "id, doc_id, version, ordinal, text, heading, title, tenant, source, tags"
APPLICATION_NAME = "voice-agent-knowledge"  # shows in pg_stat_activity
_DELETE_CHUNKS = "DELETE FROM knowledge_chunks WHERE tenant = %s AND doc_id = %s"


def _lock_document(conn: sa.Connection, doc_id: str, tenant: str) -> None:
    """Serialise writers of one document (of one tenant) across nodes, until the transaction ends."""
    conn.exec_driver_sql("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"{tenant}\x1f{doc_id}",))


class PostgresStore(SqlDocumentStore):
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
        super().__init__("postgres", workers=pool_size)
        self.dsn = dsn
        self.dim = dim
        self.pool_size = pool_size
        self.timeouts = {"connect_timeout_s": connect_timeout_s, "statement_timeout_s": statement_timeout_s}

    async def start(self) -> None:
        try:
            import pgvector.psycopg  # noqa: F401
            import psycopg  # noqa: F401
        except ImportError as exc:
            raise StoreError(
                "the postgres knowledge store needs `pip install voice-agent[postgres]`"
            ) from exc
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
                driver = conn.connection.driver_connection
                assert driver is not None  # the live psycopg connection of this transaction
                driver.execute(path.read_text().replace("{dim}", str(int(self.dim))))
                conn.exec_driver_sql(
                    "INSERT INTO knowledge_schema_migrations (name) VALUES (%s)", (path.name,)
                )

    async def replace_document(self, record: DocumentRecord, chunks: Sequence[ChunkRecord]) -> bool:
        return await self._run(self._write, self._replace, record, list(chunks))

    @staticmethod
    def _replace(conn: sa.Connection, r: DocumentRecord, chunks: list[ChunkRecord]) -> bool:
        _lock_document(conn, r.doc_id, r.tenant)
        known = status.versions(conn, r.doc_id, r.tenant)
        if known and known[1] is not None and known[1] >= r.version:
            return False
        conn.exec_driver_sql(_DELETE_CHUNKS, (r.tenant, r.doc_id))
        if chunks:
            conn.exec_driver_sql(
                f"INSERT INTO knowledge_chunks ({base.CHUNK_COLUMNS}) VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)",
                [base.chunk_row(r, c, list(r.tags), np.asarray(c.embedding, dtype=np.float32)) for c in chunks],
            )
        status.mark_ready(conn, r, len(chunks))
        return True

    async def delete_document(
        self, doc_id: str, version: int | None = None, tenant: str = base.DEFAULT_TENANT
    ) -> bool:
        return await self._run(self._write, self._delete, doc_id, version, tenant)

    @staticmethod
    def _delete(conn: sa.Connection, doc_id: str, version: int | None, tenant: str) -> bool:
        _lock_document(conn, doc_id, tenant)
        known = status.versions(conn, doc_id, tenant)
        if known is None or (version is not None and known[0] > version):
            return False
        conn.exec_driver_sql(_DELETE_CHUNKS, (tenant, doc_id))
        status.delete(conn, doc_id, tenant)
        return True

    # --- search ----------------------------------------------------------------------------------------
    @staticmethod
    def _filters(f: SearchFilters) -> tuple[str, list[Any]]:
        where, args = base.metadata_conditions(f, "%s")
        if f.tags:  # one array containment for all tags (GIN-indexed)
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
        terms = base.query_terms(query)
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
        return self._read(lambda conn: [_chunk(row) for row in conn.exec_driver_sql(sql, params)])


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
        source_id=base.source_id(doc_id, ordinal),
        doc_id=doc_id,
        heading=heading,
        title=title,
        tenant=tenant,
        source=source,
        tags=tuple(tags),
        version=version,
    )
