"""Fixtures of the knowledge tests: the real MiniLM embedder and both stores (embedded, PostgreSQL)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from knowledge.config import KnowledgeConfig
from knowledge.embeddings.base import Embedder
from knowledge.embeddings.registry import create_embedder
from knowledge.knowledge_base import KnowledgeBase
from knowledge.stores.base import KnowledgeStore

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="session")
def embedder() -> Embedder:
    return create_embedder(KnowledgeConfig().embedding)


@pytest.fixture
def knowledge_config(tmp_path: Path) -> KnowledgeConfig:
    return KnowledgeConfig(embedded_path=str(tmp_path / "knowledge.sqlite3"), retry_backoff_s=0.05)


async def open_store(kind: str, config: KnowledgeConfig, request: pytest.FixtureRequest) -> KnowledgeStore:
    if kind == "embedded":
        from knowledge.stores.embedded import EmbeddedStore

        store: KnowledgeStore = EmbeddedStore(config.embedded_path)
        await store.start()
        return store
    from knowledge.stores.postgres import PostgresStore

    dsn = request.getfixturevalue("postgres_dsn")
    pg = PostgresStore(dsn, dim=384)
    await pg.start()
    with pg.engine.begin() as conn:  # every test starts from empty tables
        conn.exec_driver_sql("TRUNCATE knowledge_chunks, knowledge_documents")
    return pg


@pytest.fixture(params=["embedded", pytest.param("postgres", marks=pytest.mark.integration)])
async def store(
    request: pytest.FixtureRequest, knowledge_config: KnowledgeConfig
) -> AsyncIterator[KnowledgeStore]:
    s = await open_store(request.param, knowledge_config, request)
    yield s
    await s.close()


@pytest.fixture
async def kb(
    store: KnowledgeStore, embedder: Embedder, knowledge_config: KnowledgeConfig
) -> AsyncIterator[KnowledgeBase]:
    base = KnowledgeBase(knowledge_config, embedder=embedder, store=store)
    await base.ingestor.start()
    yield base
    await base.ingestor.close()
