"""Embedded store: one SQLite file. FTS5 (bm25) for full text; vectors as blobs plus an in-memory numpy
matrix for cosine search, loaded at start and updated on every commit.

All SQLite work and matrix updates run on one dedicated thread: SQLite connections are not shared across
threads, writes are serialised anyway, and the event loop never blocks on disk.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

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
T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS documents (
    doc_id TEXT PRIMARY KEY, tenant TEXT NOT NULL, source TEXT NOT NULL, tags TEXT NOT NULL,
    title TEXT, content_type TEXT, version INTEGER NOT NULL, ready_version INTEGER,
    status TEXT NOT NULL, error TEXT, attempts INTEGER NOT NULL, chunk_count INTEGER NOT NULL,
    updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS chunks (
    id INTEGER PRIMARY KEY, doc_id TEXT NOT NULL, version INTEGER NOT NULL, ordinal INTEGER NOT NULL,
    text TEXT NOT NULL, heading TEXT, title TEXT, tenant TEXT NOT NULL, source TEXT NOT NULL,
    tags TEXT NOT NULL, embedding BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS chunks_doc ON chunks(doc_id);
CREATE VIRTUAL TABLE IF NOT EXISTS chunks_fts USING fts5(text, heading, tokenize = 'porter unicode61');
"""

_DOC_COLUMNS = (
    "doc_id, tenant, source, tags, title, content_type, version, ready_version, status, error, attempts, "
    "chunk_count, updated_at"
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


class EmbeddedStore:
    """``KnowledgeStore`` in one SQLite file (no server); for a single node."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="knowledge-sqlite")
        self._db: sqlite3.Connection | None = None
        self._vectors = _VectorMatrix()

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    @property
    def db(self) -> sqlite3.Connection:
        if self._db is None:
            raise StoreError(f"embedded store {self.path} is not started; call start() first")
        return self._db

    async def start(self) -> None:
        await self._run(self._open)

    def _open(self) -> None:
        if self.path.parent:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.executescript(_SCHEMA)
        self._db = db
        rows = db.execute("SELECT id, embedding, tenant, source, tags FROM chunks").fetchall()
        if rows:
            vectors = np.stack([np.frombuffer(r[1], dtype=np.float32) for r in rows])
            self._vectors.add(
                [r[0] for r in rows], vectors, [(r[2], r[3], frozenset(json.loads(r[4]))) for r in rows]
            )
        log.info("embedded knowledge store %s opened with %d chunks", self.path, len(rows))

    async def close(self) -> None:
        if self._db is not None:
            await self._run(self.db.close)
            self._db = None
        self._executor.shutdown(wait=True)

    # --- documents -------------------------------------------------------------------------------------
    async def save_status(self, record: DocumentRecord) -> None:
        await self._run(self._save_status, record)

    def _save_status(self, r: DocumentRecord) -> None:
        """Upsert the status row; never moves it back to an older version, never touches ready_version."""
        r.updated_at = time.time()
        self.db.execute(
            f"INSERT INTO documents ({_DOC_COLUMNS}) VALUES (?,?,?,?,?,?,?,NULL,?,?,?,0,?) "
            "ON CONFLICT(doc_id) DO UPDATE SET tenant = excluded.tenant, source = excluded.source, "
            "tags = excluded.tags, title = excluded.title, content_type = excluded.content_type, "
            "version = excluded.version, status = excluded.status, error = excluded.error, "
            "attempts = excluded.attempts, updated_at = excluded.updated_at "
            "WHERE excluded.version >= documents.version",
            r.status_row(json.dumps(r.tags)),
        )

    async def get_document(self, doc_id: str) -> DocumentRecord | None:
        rows = await self._run(self._select_docs, "WHERE doc_id = ?", (doc_id,))
        return rows[0] if rows else None

    async def list_documents(
        self, tenant: str | None = None, status: str | None = None, limit: int = 100, offset: int = 0
    ) -> list[DocumentRecord]:
        clause, args = document_list_clause(tenant, status, limit, offset, "?")
        return await self._run(self._select_docs, clause, args)

    def _select_docs(self, clause: str, args: tuple[Any, ...]) -> list[DocumentRecord]:
        rows = self.db.execute(f"SELECT {_DOC_COLUMNS} FROM documents {clause}", args).fetchall()
        return [_record(row) for row in rows]

    async def replace_document(self, record: DocumentRecord, chunks: Sequence[ChunkRecord]) -> bool:
        return await self._run(self._replace, record, list(chunks))

    def _replace(self, r: DocumentRecord, chunks: list[ChunkRecord]) -> bool:
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        try:
            row = db.execute(
                "SELECT version, ready_version FROM documents WHERE doc_id = ?", (r.doc_id,)
            ).fetchone()
            if row and row[1] is not None and row[1] >= r.version:
                db.execute("ROLLBACK")
                return False
            old_ids = self._delete_chunks(r.doc_id)
            tags = json.dumps(r.tags)
            new_ids = []
            for c in chunks:
                cur = db.execute(
                    "INSERT INTO chunks (doc_id, version, ordinal, text, heading, title, tenant, source, tags, "
                    "embedding) VALUES (?,?,?,?,?,?,?,?,?,?)",
                    (
                        r.doc_id,
                        r.version,
                        c.ordinal,
                        c.text,
                        c.heading,
                        r.title,
                        r.tenant,
                        r.source,
                        tags,
                        c.embedding.astype(np.float32).tobytes(),
                    ),
                )
                new_ids.append(int(cur.lastrowid or 0))
                db.execute(
                    "INSERT INTO chunks_fts (rowid, text, heading) VALUES (?,?,?)",
                    (cur.lastrowid, c.text, c.heading or ""),
                )
            r.ready_version, r.chunk_count, r.error, r.status = r.version, len(chunks), None, "ready"
            self._save_status(r)  # no-op on the status if a newer version is already queued
            db.execute(
                "UPDATE documents SET ready_version = ?, chunk_count = ? WHERE doc_id = ?",
                (r.version, len(chunks), r.doc_id),
            )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        self._vectors.remove(old_ids)
        meta = (r.tenant, r.source, frozenset(r.tags))
        if chunks:
            self._vectors.add(new_ids, np.stack([c.embedding for c in chunks]), [meta] * len(chunks))
        return True

    def _delete_chunks(self, doc_id: str) -> list[int]:
        ids = [row[0] for row in self.db.execute("SELECT id FROM chunks WHERE doc_id = ?", (doc_id,))]
        self.db.executemany("DELETE FROM chunks_fts WHERE rowid = ?", [(i,) for i in ids])
        self.db.execute("DELETE FROM chunks WHERE doc_id = ?", (doc_id,))
        return ids

    async def delete_document(self, doc_id: str, version: int | None = None) -> bool:
        return await self._run(self._delete, doc_id, version)

    def _delete(self, doc_id: str, version: int | None) -> bool:
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        try:
            row = db.execute("SELECT version FROM documents WHERE doc_id = ?", (doc_id,)).fetchone()
            if row is None or (version is not None and row[0] > version):
                db.execute("ROLLBACK")
                return False
            ids = self._delete_chunks(doc_id)
            db.execute("DELETE FROM documents WHERE doc_id = ?", (doc_id,))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        self._vectors.remove(ids)
        return True

    # --- search ----------------------------------------------------------------------------------------
    async def vector_search(self, vector: np.ndarray, k: int, filters: SearchFilters) -> list[RetrievedChunk]:
        return await self._run(self._vector_search, vector, k, filters)

    def _vector_search(self, vector: np.ndarray, k: int, f: SearchFilters) -> list[RetrievedChunk]:
        hits = self._vectors.search(vector, k, f)
        return self._hydrate(hits)

    async def fulltext_search(self, query: str, k: int, filters: SearchFilters) -> list[RetrievedChunk]:
        return await self._run(self._fulltext_search, query, k, filters)

    def _fulltext_search(self, query: str, k: int, f: SearchFilters) -> list[RetrievedChunk]:
        terms = query_terms(query)
        if not terms:
            return []
        match = " OR ".join('"' + t.replace('"', "") + '"' for t in terms)
        where, args = ["chunks_fts MATCH ?"], [match]
        if f.tenant:
            where.append("c.tenant = ?")
            args.append(f.tenant)
        if f.source:
            where.append("c.source = ?")
            args.append(f.source)
        for tag in f.tags:
            where.append("EXISTS (SELECT 1 FROM json_each(c.tags) WHERE value = ?)")
            args.append(tag)
        # bm25() is lower-is-better; weight headings x2.
        rows = self.db.execute(
            "SELECT c.id, -bm25(chunks_fts, 1.0, 2.0) AS score FROM chunks_fts JOIN chunks c ON c.id = chunks_fts.rowid "
            f"WHERE {' AND '.join(where)} ORDER BY score DESC LIMIT ?",
            (*args, k),
        ).fetchall()
        return self._hydrate([(r[0], float(r[1])) for r in rows])

    def _hydrate(self, hits: list[tuple[int, float]]) -> list[RetrievedChunk]:
        if not hits:
            return []
        marks = ",".join("?" * len(hits))
        rows = self.db.execute(
            f"SELECT id, doc_id, version, ordinal, text, heading, title, tenant, source, tags FROM chunks "
            f"WHERE id IN ({marks})",
            [h[0] for h in hits],
        ).fetchall()
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


def _record(row: tuple[Any, ...]) -> DocumentRecord:
    return DocumentRecord(
        doc_id=row[0],
        tenant=row[1],
        source=row[2],
        tags=json.loads(row[3]),
        title=row[4],
        content_type=row[5],
        version=row[6],
        ready_version=row[7],
        status=row[8],
        error=row[9],
        attempts=row[10],
        chunk_count=row[11],
        updated_at=row[12],
    )
