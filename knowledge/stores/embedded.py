"""Embedded store: one SQLite file. FTS5 (bm25) for full text; vectors as blobs plus an in-memory numpy
matrix for cosine search, loaded at start and updated on every commit. Document status rows are the
shared ``knowledge.stores.documents`` implementation.

All SQLite work and matrix updates run on one dedicated thread (through a SQLAlchemy engine,
``knowledge.stores.sql``): writes are serialised anyway, and the event loop never blocks on disk.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import sqlalchemy as sa

from knowledge.errors import StoreError
from knowledge.stores import documents as status
from knowledge.stores.base import (
    CHUNK_COLUMNS,
    DEFAULT_TENANT,
    ChunkRecord,
    DocumentRecord,
    RetrievedChunk,
    SearchFilters,
    chunk_row,
    metadata_conditions,
    query_terms,
    source_id,
)
from knowledge.stores.documents import SqlDocumentStore
from knowledge.stores.sql import create_engine

log = logging.getLogger(__name__)

_SCHEMA = (
    (
        "CREATE TABLE IF NOT EXISTS chunks (id INTEGER PRIMARY KEY, doc_id TEXT NOT NULL, version INTEGER NOT NULL,"
        " ordinal INTEGER NOT NULL, text TEXT NOT NULL, heading TEXT, title TEXT, tenant TEXT NOT NULL,"
        " source TEXT NOT NULL, tags TEXT NOT NULL, embedding BLOB NOT NULL)"
    ),
    "CREATE INDEX IF NOT EXISTS chunks_doc ON chunks(doc_id)",
    "CREATE INDEX IF NOT EXISTS chunks_tenant_doc ON chunks(tenant, doc_id)",
    "CREATE VIRTUAL TABLE IF NOT EXISTS chunks_fts USING fts5(text, heading, tokenize = 'porter unicode61')",
)
# Round 1 kept the status rows in a table named ``documents``; they are copied once into the shared table.
_LEGACY_DOCUMENTS = (
    "INSERT INTO knowledge_documents (doc_id, tenant, source, tags, title, content_type, version, ready_version,"
    " status, error, attempts, chunk_count, updated_at) SELECT doc_id, tenant, source, tags, title, content_type,"
    " version, ready_version, status, error, attempts, chunk_count, updated_at FROM documents WHERE true"
    " ON CONFLICT DO NOTHING"
)
# Round 2 made document ids unique per tenant: a status table keyed by doc_id alone is rebuilt once.
_PRE_TENANT = "knowledge_documents_pre_tenant"
_REKEY = (
    f"ALTER TABLE knowledge_documents RENAME TO {_PRE_TENANT}",
    "DROP INDEX IF EXISTS knowledge_documents_tenant_status",
)
_STATUS_NAMES = ", ".join(c.name for c in status.documents.columns)
_COPY_PRE_TENANT = (
    f"INSERT INTO knowledge_documents ({_STATUS_NAMES}) SELECT {_STATUS_NAMES} FROM {_PRE_TENANT}"
    " WHERE true ON CONFLICT DO NOTHING"
)


class _VectorMatrix:
    """Unit vectors of all chunks with the metadata needed to filter before ranking.

    Rows live in a preallocated matrix that doubles when full; a removed row is filled with the last one,
    so adding and removing a document costs O(its chunks), not O(all chunks).
    """

    def __init__(self) -> None:
        self.dim: int | None = None
        self.n = 0
        self._mat = np.zeros((0, 0), dtype=np.float32)
        self._ids = np.zeros(0, dtype=np.int64)
        self._meta: list[tuple[str, str, frozenset[str]]] = []
        self._row: dict[int, int] = {}

    def add(self, ids: list[int], vectors: np.ndarray, meta: list[tuple[str, str, frozenset[str]]]) -> None:
        if not ids:
            return
        if self.dim is None or self.n == 0:
            self.dim = vectors.shape[1]
            if self._mat.shape[1] != self.dim:
                self._mat = np.zeros((0, self.dim), dtype=np.float32)
        if vectors.shape[1] != self.dim:
            raise StoreError(
                f"embedding dimension {vectors.shape[1]} differs from the store's {self.dim}: "
                "re-create the store after changing the embedding backend"
            )
        end = self.n + len(ids)
        if end > len(self._mat):
            capacity = max(end, 2 * len(self._mat), 1024)
            mat = np.zeros((capacity, self.dim), dtype=np.float32)
            mat[: self.n] = self._mat[: self.n]
            self._mat = mat
            self._ids = np.concatenate([self._ids[: self.n], np.zeros(capacity - self.n, dtype=np.int64)])
        self._mat[self.n : end] = vectors
        self._ids[self.n : end] = ids
        for i, chunk_id in enumerate(ids):
            self._row[chunk_id] = self.n + i
        self._meta.extend(meta)
        self.n = end

    def remove(self, ids: Sequence[int]) -> None:
        for chunk_id in ids:
            row = self._row.pop(chunk_id, None)
            if row is None:
                continue
            last = self.n - 1
            if row != last:
                self._mat[row] = self._mat[last]
                self._ids[row] = self._ids[last]
                self._meta[row] = self._meta[last]
                self._row[int(self._ids[row])] = row
            self._meta.pop()
            self.n = last

    def search(self, vector: np.ndarray, k: int, f: SearchFilters) -> list[tuple[int, float]]:
        if self.n == 0:
            return []
        scores = self._mat[: self.n] @ vector.astype(np.float32)
        if f.tenant or f.source or f.tags:
            tags = frozenset(f.tags)
            mask = np.fromiter(
                (
                    (not f.tenant or t == f.tenant) and (not f.source or s == f.source) and tags <= tg
                    for t, s, tg in self._meta
                ),
                dtype=bool,
                count=self.n,
            )
            scores = np.where(mask, scores, -np.inf)
        k = min(k, len(scores))
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.argsort(-scores[top])]
        return [(int(self._ids[i]), float(scores[i])) for i in top if np.isfinite(scores[i])]


class EmbeddedStore(SqlDocumentStore):
    """``KnowledgeStore`` in one SQLite file (no server); for a single node."""

    def __init__(self, path: str | Path, *, busy_timeout_s: float = 30.0) -> None:
        super().__init__("sqlite", workers=1)  # one thread: the vector matrix is not locked
        self.path = Path(path)
        self.busy_timeout_s = busy_timeout_s
        self._vectors = _VectorMatrix()

    async def start(self) -> None:
        await self._run(self._open)

    def _open(self) -> None:
        engine = create_engine(
            self.path, connect_timeout_s=self.busy_timeout_s, statement_timeout_s=self.busy_timeout_s
        )
        with engine.begin() as conn:
            if _keyed_by_doc_id_alone(conn):
                for statement in _REKEY:
                    conn.exec_driver_sql(statement)
            status.metadata.create_all(conn)
            if sa.inspect(conn).has_table(_PRE_TENANT):
                conn.exec_driver_sql(_COPY_PRE_TENANT)
                conn.exec_driver_sql(f"DROP TABLE {_PRE_TENANT}")
                log.info("knowledge documents re-keyed by (tenant, doc_id) in %s", self.path)
            for statement in _SCHEMA:
                conn.exec_driver_sql(statement)
            if sa.inspect(conn).has_table("documents"):
                conn.exec_driver_sql(_LEGACY_DOCUMENTS)
            rows = conn.exec_driver_sql("SELECT id, embedding, tenant, source, tags FROM chunks").all()
        self._engine = engine
        if rows:
            vectors = np.stack([np.frombuffer(r[1], dtype=np.float32) for r in rows])
            self._vectors.add(
                [r[0] for r in rows], vectors, [(r[2], r[3], frozenset(json.loads(r[4]))) for r in rows]
            )
        log.info("embedded knowledge store %s opened with %d chunks", self.path, len(rows))

    async def replace_document(self, record: DocumentRecord, chunks: Sequence[ChunkRecord]) -> bool:
        return await self._run(self._replace, record, list(chunks))

    def _replace(self, r: DocumentRecord, chunks: list[ChunkRecord]) -> bool:
        with self.engine.begin() as conn:  # not _write: the vector matrix changes after the commit
            known = status.versions(conn, r.doc_id, r.tenant)
            if known and known[1] is not None and known[1] >= r.version:
                return False
            old_ids = self._delete_chunks(conn, r.doc_id, r.tenant)
            tags = json.dumps(r.tags)
            new_ids = []
            for c in chunks:
                cur = conn.exec_driver_sql(
                    f"INSERT INTO chunks ({CHUNK_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?)",
                    chunk_row(r, c, tags, c.embedding.astype(np.float32).tobytes()),
                )
                new_ids.append(int(cur.lastrowid or 0))
                conn.exec_driver_sql(
                    "INSERT INTO chunks_fts (rowid, text, heading) VALUES (?,?,?)",
                    (cur.lastrowid, c.text, c.heading or ""),
                )
            status.mark_ready(conn, r, len(chunks))  # no-op on the status if a newer version is queued
        self._vectors.remove(old_ids)
        meta = (r.tenant, r.source, frozenset(r.tags))
        if chunks:
            self._vectors.add(new_ids, np.stack([c.embedding for c in chunks]), [meta] * len(chunks))
        return True

    @staticmethod
    def _delete_chunks(conn: sa.Connection, doc_id: str, tenant: str) -> list[int]:
        key = (tenant, doc_id)
        select = "SELECT id FROM chunks WHERE tenant = ? AND doc_id = ?"
        ids = [r[0] for r in conn.exec_driver_sql(select, key)]
        if ids:
            conn.exec_driver_sql("DELETE FROM chunks_fts WHERE rowid = ?", [(i,) for i in ids])
        conn.exec_driver_sql("DELETE FROM chunks WHERE tenant = ? AND doc_id = ?", key)
        return ids

    async def delete_document(
        self, doc_id: str, version: int | None = None, tenant: str = DEFAULT_TENANT
    ) -> bool:
        return await self._run(self._delete, doc_id, version, tenant)

    def _delete(self, doc_id: str, version: int | None, tenant: str) -> bool:
        with self.engine.begin() as conn:
            known = status.versions(conn, doc_id, tenant)
            if known is None or (version is not None and known[0] > version):
                return False
            ids = self._delete_chunks(conn, doc_id, tenant)
            status.delete(conn, doc_id, tenant)
        self._vectors.remove(ids)
        return True

    # --- search ----------------------------------------------------------------------------------------
    async def vector_search(self, vector: np.ndarray, k: int, filters: SearchFilters) -> list[RetrievedChunk]:
        return await self._run(self._vector_search, vector, k, filters)

    def _vector_search(self, vector: np.ndarray, k: int, f: SearchFilters) -> list[RetrievedChunk]:
        return self._read(self._hydrate, self._vectors.search(vector, k, f))

    async def fulltext_search(self, query: str, k: int, filters: SearchFilters) -> list[RetrievedChunk]:
        return await self._run(self._fulltext_search, query, k, filters)

    def _fulltext_search(self, query: str, k: int, f: SearchFilters) -> list[RetrievedChunk]:
        terms = query_terms(query)
        if not terms:
            return []
        match = " OR ".join('"' + t.replace('"', "") + '"' for t in terms)
        tag = "EXISTS (SELECT 1 FROM json_each(c.tags) WHERE value = ?)"
        where, args = metadata_conditions(f, "?", "c.{}", tag)
        where, args = ["chunks_fts MATCH ?", *where], [match, *args]
        # bm25() is lower-is-better; weight headings x2.
        sql = (
            "SELECT c.id, -bm25(chunks_fts, 1.0, 2.0) AS score FROM chunks_fts JOIN chunks c ON c.id = chunks_fts.rowid "
            f"WHERE {' AND '.join(where)} ORDER BY score DESC LIMIT ?"
        )
        return self._read(self._ranked, sql, (*args, k))

    def _ranked(self, conn: sa.Connection, sql: str, params: tuple[Any, ...]) -> list[RetrievedChunk]:
        rows = conn.exec_driver_sql(sql, params).all()
        return self._hydrate(conn, [(r[0], float(r[1])) for r in rows])

    @staticmethod
    def _hydrate(conn: sa.Connection, hits: list[tuple[int, float]]) -> list[RetrievedChunk]:
        if not hits:
            return []
        marks = ",".join("?" * len(hits))
        rows = conn.exec_driver_sql(
            f"SELECT id, doc_id, version, ordinal, text, heading, title, tenant, source, tags FROM chunks "
            f"WHERE id IN ({marks})",
            tuple(h[0] for h in hits),
        ).all()
        by_id = {r[0]: r for r in rows}
        out = []
        for cid, score in hits:
            r = by_id.get(cid)
            if r is None:
                continue
            out.append(
                RetrievedChunk(
                    text=r[4],
                    score=score,
                    source_id=source_id(r[1], r[3]),
                    doc_id=r[1],
                    heading=r[5],
                    title=r[6],
                    tenant=r[7],
                    source=r[8],
                    tags=tuple(json.loads(r[9])),
                    version=r[2],
                )
            )
        return out


def _keyed_by_doc_id_alone(conn: sa.Connection) -> bool:
    """True for a status table of round 1 (primary key ``doc_id``); False when new or already re-keyed."""
    inspector = sa.inspect(conn)
    if not inspector.has_table("knowledge_documents"):
        return False
    key = inspector.get_pk_constraint("knowledge_documents").get("constrained_columns") or []
    return list(key) == ["doc_id"]
