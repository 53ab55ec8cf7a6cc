"""PostgreSQL store for multi-node deployments: pgvector (HNSW, cosine) + tsvector (GIN) in one table.

Migrations in ``knowledge/stores/migrations/*.sql`` are applied at ``start()`` under an advisory lock, so
several nodes can start at once. Writes of one document take a per-document advisory lock inside the
transaction that swaps its chunks, which makes the version check race-free across nodes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from knowledge.errors import StoreError
from knowledge.stores.base import (
    ChunkRecord,
    DocumentRecord,
    RetrievedChunk,
    SearchFilters,
    document_list_clause,
    query_terms,
    source_id,
)

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
_DOC_COLUMNS = (
    "doc_id, tenant, source, tags, title, content_type, version, ready_version, status, error, attempts, "
    "chunk_count, updated_at"
)
_CHUNK_COLUMNS = "id, doc_id, version, ordinal, text, heading, title, tenant, source, tags"
APPLICATION_NAME = "voice-agent-knowledge"  # shows in pg_stat_activity


class PostgresStore:
    """``KnowledgeStore`` on PostgreSQL with pgvector; a small fixed pool of async connections."""

    def __init__(self, dsn: str, dim: int = 384, pool_size: int = 3) -> None:
        self.dsn = dsn
        self.dim = dim
        self.pool_size = pool_size
        self._pool: asyncio.Queue[Any] = asyncio.Queue()
        self._conns: list[Any] = []

    async def start(self) -> None:
        try:
            import pgvector.psycopg  # noqa: F401
            import psycopg  # noqa: F401
        except ImportError as exc:
            raise StoreError(
                "the postgres knowledge store needs `pip install voice-agent[postgres]`"
            ) from exc
        first = await self._connect(prepare=False)
        await self._migrate(first)  # creates the vector type the connections register
        await self._prepare(first)
        self._conns = [first]
        for _ in range(self.pool_size - 1):
            self._conns.append(await self._connect())
        for conn in self._conns:
            self._pool.put_nowait(conn)

    async def _connect(self, prepare: bool = True) -> Any:
        import psycopg

        try:
            conn = await psycopg.AsyncConnection.connect(
                self.dsn, autocommit=True, application_name=APPLICATION_NAME
            )
        except psycopg.Error as exc:
            raise StoreError(f"cannot connect to PostgreSQL for the knowledge store: {exc}") from exc
        if prepare:
            await self._prepare(conn)
        return conn

    @staticmethod
    async def _prepare(conn: Any) -> None:
        import psycopg
        from pgvector.psycopg import register_vector_async

        await register_vector_async(conn)
        # Filtered HNSW queries keep scanning until k rows pass the filter (pgvector >= 0.8).
        with contextlib.suppress(psycopg.Error):
            await conn.execute("SET hnsw.iterative_scan = relaxed_order")

    async def _migrate(self, conn: Any) -> None:
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext('knowledge_migrations'))")
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS knowledge_schema_migrations (name text PRIMARY KEY, applied_at timestamptz "
                "NOT NULL DEFAULT now())"
            )
            done = {
                r[0]
                for r in await (await conn.execute("SELECT name FROM knowledge_schema_migrations")).fetchall()
            }
            for path in sorted(MIGRATIONS_DIR.glob("*.sql")):
                if path.name in done:
                    continue
                log.info("applying knowledge migration %s", path.name)
                await conn.execute(path.read_text().replace("{dim}", str(int(self.dim))))
                await conn.execute("INSERT INTO knowledge_schema_migrations (name) VALUES (%s)", (path.name,))

    async def close(self) -> None:
        for conn in self._conns:
            await conn.close()
        self._conns.clear()
        self._pool = asyncio.Queue()

    @contextlib.asynccontextmanager
    async def _conn(self) -> AsyncIterator[Any]:
        if not self._conns:
            raise StoreError("postgres knowledge store is not started; call start() first")
        conn = await self._pool.get()
        try:
            conn = await self._healthy(conn)
            yield conn
        finally:
            self._pool.put_nowait(conn)

    async def _healthy(self, conn: Any) -> Any:
        """``conn``, or a new connection in its place if it was dropped (server restart, terminated backend,
        network). An empty query is one loopback round trip (~0.1 ms) and finds a dead socket before a
        search or a write fails on it. If the server is still unreachable this raises ``StoreError`` and the
        dead connection stays pooled, to be replaced on a later use."""
        try:
            if not conn.closed:
                await conn.execute("")
                return conn
            reason = "connection closed"
        except Exception as exc:  # noqa: BLE001 - any failure of the ping means the connection is unusable
            reason = f"{type(exc).__name__}: {exc}"
        log.warning("knowledge store: PostgreSQL connection lost (%s); reconnecting", reason.strip())
        fresh = await self._connect()
        self._conns[self._conns.index(conn)] = fresh
        with contextlib.suppress(Exception):
            await conn.close()
        return fresh

    # --- documents -------------------------------------------------------------------------------------
    async def save_status(self, record: DocumentRecord) -> None:
        async with self._conn() as conn:
            await self._save_status(conn, record)

    async def _save_status(self, conn: Any, r: DocumentRecord) -> None:
        r.updated_at = time.time()
        await conn.execute(
            f"INSERT INTO knowledge_documents ({_DOC_COLUMNS}) VALUES (%s,%s,%s,%s,%s,%s,%s,NULL,%s,%s,%s,0,%s) "
            "ON CONFLICT (doc_id) DO UPDATE SET tenant = excluded.tenant, source = excluded.source, "
            "tags = excluded.tags, title = excluded.title, content_type = excluded.content_type, "
            "version = excluded.version, status = excluded.status, error = excluded.error, "
            "attempts = excluded.attempts, updated_at = excluded.updated_at "
            "WHERE excluded.version >= knowledge_documents.version",
            r.status_row(list(r.tags)),
        )

    async def get_document(self, doc_id: str) -> DocumentRecord | None:
        rows = await self._select_docs("WHERE doc_id = %s", (doc_id,))
        return rows[0] if rows else None

    async def list_documents(
        self, tenant: str | None = None, status: str | None = None, limit: int = 100, offset: int = 0
    ) -> list[DocumentRecord]:
        clause, args = document_list_clause(tenant, status, limit, offset, "%s")
        return await self._select_docs(clause, args)

    async def _select_docs(self, clause: str, args: tuple[Any, ...]) -> list[DocumentRecord]:
        async with self._conn() as conn:
            rows = await (
                await conn.execute(f"SELECT {_DOC_COLUMNS} FROM knowledge_documents {clause}", args)
            ).fetchall()
        return [DocumentRecord(*row) for row in rows]

    async def replace_document(self, record: DocumentRecord, chunks: Sequence[ChunkRecord]) -> bool:
        r = record
        async with self._conn() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (r.doc_id,))
            cur = await conn.execute(
                "SELECT ready_version FROM knowledge_documents WHERE doc_id = %s", (r.doc_id,)
            )
            row = await cur.fetchone()
            if row and row[0] is not None and row[0] >= r.version:
                return False
            await conn.execute("DELETE FROM knowledge_chunks WHERE doc_id = %s", (r.doc_id,))
            async with conn.cursor() as cur:
                await cur.executemany(
                    "INSERT INTO knowledge_chunks (doc_id, version, ordinal, text, heading, title, tenant, source, "
                    "tags, embedding) VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)",
                    [
                        (
                            r.doc_id,
                            r.version,
                            c.ordinal,
                            c.text,
                            c.heading,
                            r.title,
                            r.tenant,
                            r.source,
                            list(r.tags),
                            np.asarray(c.embedding, dtype=np.float32),
                        )
                        for c in chunks
                    ],
                )
            r.ready_version, r.chunk_count, r.error, r.status = r.version, len(chunks), None, "ready"
            await self._save_status(conn, r)
            await conn.execute(
                "UPDATE knowledge_documents SET ready_version = %s, chunk_count = %s WHERE doc_id = %s",
                (r.version, len(chunks), r.doc_id),
            )
        return True

    async def delete_document(self, doc_id: str, version: int | None = None) -> bool:
        async with self._conn() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (doc_id,))
            row = await (
                await conn.execute("SELECT version FROM knowledge_documents WHERE doc_id = %s", (doc_id,))
            ).fetchone()
            if row is None or (version is not None and row[0] > version):
                return False
            await conn.execute("DELETE FROM knowledge_chunks WHERE doc_id = %s", (doc_id,))
            await conn.execute("DELETE FROM knowledge_documents WHERE doc_id = %s", (doc_id,))
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
        async with self._conn() as conn:
            rows = await (await conn.execute(sql, (v, *args, v, k))).fetchall()
        return [_chunk(row) for row in rows]

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
        async with self._conn() as conn:
            rows = await (await conn.execute(sql, (" | ".join(terms), *args, k))).fetchall()
        return [_chunk(row) for row in rows]


def _chunk(row: tuple[Any, ...]) -> RetrievedChunk:
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
