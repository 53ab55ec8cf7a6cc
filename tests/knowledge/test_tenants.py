"""Tenants in the knowledge stores (both: embedded SQLite/FTS5 and PostgreSQL/pgvector): a document id is
unique within its tenant, a search filtered by tenant never returns another tenant's chunk, and stores made
before tenants keep their documents (in the default tenant) when they are opened by this version."""

from __future__ import annotations

import sqlite3
import uuid
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa

from knowledge.embeddings.base import Embedder
from knowledge.events import DocumentEvent
from knowledge.knowledge_base import KnowledgeBase
from knowledge.retrieval import TenantRetriever
from knowledge.stores.base import ChunkRecord, DocumentRecord, KnowledgeStore, SearchFilters

HOURS = {"acme": "The clinic opens at 8 am on weekdays.", "globex": "The clinic opens at 11 am on weekdays."}


async def test_same_document_id_in_two_tenants_never_collides(kb: KnowledgeBase) -> None:
    for tenant, text in HOURS.items():
        await kb.ingestor.submit(DocumentEvent(op="upsert", doc_id="hours", tenant=tenant, content=text))
    await kb.ingestor.wait_idle()
    acme, globex = await kb.ingestor.status("hours", "acme"), await kb.ingestor.status("hours", "globex")
    assert acme is not None and globex is not None and acme.status == globex.status == "ready"
    assert await kb.ingestor.status("hours") is None  # nothing in the default tenant
    for tenant, text in HOURS.items():
        hits = await kb.retriever.retrieve("When does the clinic open?", k=5, filters={"tenant": tenant})
        assert [h.text for h in hits] == [text] and hits[0].tenant == tenant
    # one tenant's delete (and a newer version) leaves the other's document alone
    await kb.ingestor.submit(DocumentEvent(op="delete", doc_id="hours", tenant="globex"))
    await kb.ingestor.wait_idle()
    assert await kb.ingestor.status("hours", "globex") is None
    scoped = TenantRetriever(kb.retriever, "acme")
    assert [h.text for h in await scoped.retrieve("When does the clinic open?", k=5)] == [HOURS["acme"]]
    assert await TenantRetriever(kb.retriever, "globex").retrieve("When does the clinic open?", k=5) == []


async def test_a_tenant_retriever_cannot_be_widened_by_its_caller(kb: KnowledgeBase) -> None:
    for tenant, text in HOURS.items():
        await kb.ingestor.submit(
            DocumentEvent(op="upsert", doc_id=f"{tenant}-hours", tenant=tenant, content=text)
        )
    await kb.ingestor.wait_idle()
    scoped = TenantRetriever(kb.retriever, "acme")
    for filters in (None, {"tenant": "globex"}, SearchFilters(tenant="globex"), {}):
        hits = await scoped.retrieve("clinic opening hours", k=5, filters=filters)
        assert hits and {h.tenant for h in hits} == {"acme"}, filters
    for mode in ("vector", "fulltext"):
        hits = await kb.retriever.retrieve("clinic opens", k=5, filters={"tenant": "globex"}, mode=mode)  # type: ignore[arg-type]
        assert {h.tenant for h in hits} == {"globex"}, mode


def _record(doc_id: str, tenant: str, version: int) -> DocumentRecord:
    return DocumentRecord(doc_id=doc_id, tenant=tenant, version=version, title=doc_id)


async def test_versions_are_per_tenant(store: KnowledgeStore, embedder: Embedder) -> None:
    vector = (await embedder.embed(["a"]))[0]
    chunk = [ChunkRecord(0, "text", None, vector)]
    assert await store.replace_document(_record("d", "acme", 5), chunk)
    assert await store.replace_document(_record("d", "globex", 1), chunk)  # not "older than 5": another doc
    assert not await store.replace_document(_record("d", "globex", 1), chunk)
    assert not await store.delete_document("d", version=0, tenant="acme")  # acme's is newer
    assert await store.delete_document("d", tenant="globex")
    acme = await store.get_document("d", "acme")
    assert acme is not None and acme.ready_version == 5
    assert [r.tenant for r in await store.list_documents()] == ["acme"]


async def test_an_embedded_store_from_before_tenants_keeps_its_documents(
    tmp_path: Path, embedder: Embedder
) -> None:
    """A round-1 file: status rows keyed by doc_id alone. Opening it re-keys them, keeps them searchable."""
    from knowledge.stores.embedded import EmbeddedStore

    path = tmp_path / "old.sqlite3"
    vector = (await embedder.embed(["The clinic opens at 8 am."]))[0].astype(np.float32)
    db = sqlite3.connect(path)
    db.executescript(
        """
        CREATE TABLE knowledge_documents (doc_id TEXT PRIMARY KEY, tenant TEXT NOT NULL, source TEXT NOT NULL,
          tags JSON NOT NULL, title TEXT, content_type TEXT, version BIGINT NOT NULL, ready_version BIGINT,
          status TEXT NOT NULL, error TEXT, attempts INTEGER NOT NULL, chunk_count INTEGER NOT NULL,
          updated_at FLOAT NOT NULL);
        CREATE INDEX knowledge_documents_tenant_status ON knowledge_documents (tenant, status);
        CREATE TABLE chunks (id INTEGER PRIMARY KEY, doc_id TEXT NOT NULL, version INTEGER NOT NULL,
          ordinal INTEGER NOT NULL, text TEXT NOT NULL, heading TEXT, title TEXT, tenant TEXT NOT NULL,
          source TEXT NOT NULL, tags TEXT NOT NULL, embedding BLOB NOT NULL);
        CREATE VIRTUAL TABLE chunks_fts USING fts5(text, heading, tokenize = 'porter unicode61');
        INSERT INTO knowledge_documents VALUES ('hours', 'default', 'api', '[]', 'Hours', 'text/plain', 3, 3,
          'ready', NULL, 1, 1, 1.0);
        """
    )
    db.execute(
        "INSERT INTO chunks VALUES (1, 'hours', 3, 0, 'The clinic opens at 8 am.', NULL, 'Hours', 'default',"
        " 'api', '[]', ?)",
        (vector.tobytes(),),
    )
    db.execute("INSERT INTO chunks_fts (rowid, text, heading) VALUES (1, 'The clinic opens at 8 am.', '')")
    db.commit()
    db.close()
    for attempt in (1, 2):  # the second open finds it migrated already
        store = EmbeddedStore(path)
        await store.start()
        try:
            record = await store.get_document("hours")
            assert record is not None and record.ready_version == 3 and record.tenant == "default"
            hits = await store.fulltext_search("clinic", 3, SearchFilters(tenant="default"))
            assert [h.doc_id for h in hits] == ["hours"]
            assert await store.replace_document(
                _record("hours", "acme", attempt), [ChunkRecord(0, "x", None, vector)]
            )
        finally:
            await store.close()


@pytest.mark.integration
async def test_a_postgres_store_from_before_tenants_keeps_its_documents(postgres_dsn: str) -> None:
    """A database at migration 001 only (primary key doc_id) with a document: 002 re-keys it, keeps it."""
    from knowledge.stores.postgres import MIGRATIONS_DIR, PostgresStore

    name = f"pretenant_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(sa.engine.make_url(postgres_dsn).set(drivername="postgresql+psycopg"),
                             isolation_level="AUTOCOMMIT")  # fmt: skip
    with admin.connect() as conn:
        conn.exec_driver_sql(f"CREATE DATABASE {name}")
    dsn = str(sa.engine.make_url(postgres_dsn).set(database=name).render_as_string(hide_password=False))
    old = sa.create_engine(sa.engine.make_url(dsn).set(drivername="postgresql+psycopg"))
    try:
        with old.begin() as conn:
            driver = conn.connection.driver_connection
            assert driver is not None
            driver.execute((MIGRATIONS_DIR / "001_init.sql").read_text().replace("{dim}", "384"))
            conn.exec_driver_sql(
                "CREATE TABLE knowledge_schema_migrations (name text PRIMARY KEY, applied_at timestamptz "
                "NOT NULL DEFAULT now()); INSERT INTO knowledge_schema_migrations (name) VALUES ('001_init.sql');"
                "INSERT INTO knowledge_documents (doc_id, tenant, source, title, version, ready_version, status,"
                " updated_at) VALUES ('hours', 'default', 'api', 'Hours', 3, 3, 'ready', 1.0)"
            )
        old.dispose()
        store = PostgresStore(dsn, dim=384)
        await store.start()
        try:
            record = await store.get_document("hours")
            assert record is not None and record.ready_version == 3
            vector = np.ones(384, np.float32) / np.sqrt(384)
            assert await store.replace_document(
                _record("hours", "acme", 1), [ChunkRecord(0, "x", None, vector)]
            )
            assert {r.tenant for r in await store.list_documents()} == {"default", "acme"}
        finally:
            await store.close()
    finally:
        old.dispose()
        with admin.connect() as conn:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.dispose()
