"""One test-suite for every ``KnowledgeStore`` (parametrized: embedded SQLite file, PostgreSQL)."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from knowledge.embeddings.base import Embedder
from knowledge.stores.base import ChunkRecord, DocumentRecord, KnowledgeStore, SearchFilters


async def chunks_for(embedder: Embedder, texts: list[str], heading: str | None = None) -> list[ChunkRecord]:
    vectors = await embedder.embed(texts)
    return [ChunkRecord(i, t, heading, vectors[i]) for i, t in enumerate(texts)]


async def put(
    store: KnowledgeStore, embedder: Embedder, doc_id: str, texts: list[str], version: int = 1, **meta: object
) -> bool:
    record = DocumentRecord(doc_id=doc_id, version=version, **meta)  # type: ignore[arg-type]
    await store.save_status(record)
    return await store.replace_document(record, await chunks_for(embedder, texts))


async def test_vector_and_fulltext_search_find_the_right_chunk(
    store: KnowledgeStore, embedder: Embedder
) -> None:
    await put(store, embedder, "returns", ["Items can be returned within thirty days for a full refund."])
    await put(store, embedder, "hours", ["The shop opens at nine and closes at six on weekdays."])
    q = (await embedder.embed(["when does the store open"]))[0]
    hits = await store.vector_search(q, 2, SearchFilters())
    assert [h.doc_id for h in hits] == ["hours", "returns"]
    assert hits[0].score > hits[1].score and hits[0].source_id == "hours#0"
    text_hits = await store.fulltext_search("refund for returned items", 5, SearchFilters())
    assert [h.doc_id for h in text_hits] == ["returns"]
    assert "thirty days" in text_hits[0].text


async def test_filters_by_tenant_source_and_tags(store: KnowledgeStore, embedder: Embedder) -> None:
    await put(
        store, embedder, "a", ["Refund policy for tenant A."], tenant="a", source="upload", tags=["faq", "x"]
    )
    await put(store, embedder, "b", ["Refund policy for tenant B."], tenant="b", source="cdc", tags=["faq"])
    q = (await embedder.embed(["refund policy"]))[0]
    for f, expected in [
        (SearchFilters(tenant="a"), ["a"]),
        (SearchFilters(source="cdc"), ["b"]),
        (SearchFilters(tags=("faq",)), ["a", "b"]),
        (SearchFilters(tags=("faq", "x")), ["a"]),
        (SearchFilters(tenant="b", tags=("x",)), []),
    ]:
        assert sorted(h.doc_id for h in await store.vector_search(q, 5, f)) == expected, f
        assert sorted(h.doc_id for h in await store.fulltext_search("refund policy", 5, f)) == expected, f


async def test_replace_swaps_all_chunks_and_refuses_older_versions(
    store: KnowledgeStore, embedder: Embedder
) -> None:
    assert await put(store, embedder, "d", ["old alpha text", "old beta text"], version=1)
    assert await put(store, embedder, "d", ["new gamma text"], version=3)
    assert not await put(store, embedder, "d", ["stale delta text"], version=2)
    hits = await store.fulltext_search("alpha beta gamma delta", 10, SearchFilters())
    assert [(h.text, h.version) for h in hits] == [("new gamma text", 3)]
    q = (await embedder.embed(["text"]))[0]
    assert [h.text for h in await store.vector_search(q, 10, SearchFilters())] == ["new gamma text"]
    record = await store.get_document("d")
    assert record is not None
    assert (record.status, record.ready_version, record.chunk_count) == ("ready", 3, 1)


async def test_delete_removes_document_unless_newer(store: KnowledgeStore, embedder: Embedder) -> None:
    await put(store, embedder, "d", ["unique zebra phrase"], version=5)
    assert not await store.delete_document("d", version=4)
    assert await store.delete_document("d", version=6)
    assert await store.get_document("d") is None
    assert await store.fulltext_search("zebra", 5, SearchFilters()) == []
    q = (await embedder.embed(["zebra"]))[0]
    assert await store.vector_search(q, 5, SearchFilters()) == []
    assert not await store.delete_document("missing")


async def test_status_rows_never_go_back_in_version(store: KnowledgeStore) -> None:
    await store.save_status(DocumentRecord("s", version=2, status="processing"))
    await store.save_status(DocumentRecord("s", version=1, status="failed", error="late"))
    record = await store.get_document("s")
    assert record is not None and (record.version, record.status) == (2, "processing")
    await store.save_status(DocumentRecord("t", version=1, status="failed", error="boom", tenant="x"))
    assert [r.doc_id for r in await store.list_documents(status="failed")] == ["t"]
    assert [r.doc_id for r in await store.list_documents(tenant="x")] == ["t"]
    assert len(await store.list_documents(limit=1)) == 1


async def test_empty_and_stopword_queries(store: KnowledgeStore, embedder: Embedder) -> None:
    await put(store, embedder, "d", ["something"])
    assert await store.fulltext_search("", 5, SearchFilters()) == []
    assert isinstance(await store.fulltext_search("the of and", 5, SearchFilters()), list)
    assert await store.fulltext_search("'\"():*&|!", 5, SearchFilters()) == []


async def test_embedded_store_reloads_vectors_from_disk(tmp_path, embedder: Embedder) -> None:  # type: ignore[no-untyped-def]
    from knowledge.stores.embedded import EmbeddedStore

    first = EmbeddedStore(tmp_path / "k.db")
    await first.start()
    await put(first, embedder, "d", ["persisted giraffe facts"])
    await first.close()
    second = EmbeddedStore(tmp_path / "k.db")
    await second.start()
    q = (await embedder.embed(["giraffe"]))[0]
    assert [h.doc_id for h in await second.vector_search(q, 1, SearchFilters())] == ["d"]
    await second.close()
    assert np.isfinite(q).all()


def test_vector_matrix_add_remove_matches_brute_force() -> None:
    from knowledge.stores.embedded import _VectorMatrix

    rng = np.random.default_rng(7)
    matrix = _VectorMatrix()
    live: dict[int, tuple[np.ndarray, str]] = {}
    next_id = 0
    for _ in range(300):
        if live and rng.random() < 0.4:
            gone = list(rng.choice(list(live), size=min(len(live), 3), replace=False))
            matrix.remove([int(g) for g in gone])
            for g in gone:
                live.pop(int(g))
        else:
            vecs = rng.normal(size=(int(rng.integers(1, 8)), 16)).astype(np.float32)
            ids = list(range(next_id, next_id + len(vecs)))
            next_id += len(vecs)
            tenant = str(rng.choice(["a", "b"]))
            matrix.add(ids, vecs, [(tenant, "s", frozenset())] * len(ids))
            live.update({i: (v, tenant) for i, v in zip(ids, vecs, strict=True)})
    assert matrix.n == len(live)
    q = rng.normal(size=16).astype(np.float32)
    expected = sorted(((float(v @ q), i) for i, (v, t) in live.items() if t == "a"), reverse=True)[:10]
    got = matrix.search(q, 10, SearchFilters(tenant="a"))
    assert [i for i, _ in got] == [i for _, i in expected]
    np.testing.assert_allclose([s for _, s in got], [s for s, _ in expected], rtol=1e-5)


@pytest.mark.integration
async def test_postgres_store_reconnects_after_its_connections_are_dropped(
    postgres_dsn: str, embedder: Embedder
) -> None:
    import psycopg

    from knowledge.stores.postgres import APPLICATION_NAME, PostgresStore

    store = PostgresStore(postgres_dsn, dim=384)
    await store.start()
    try:
        await put(store, embedder, "hours", ["The shop opens at nine and closes at six on weekdays."])
        for round_ in range(1, 3):  # drop every pooled connection, twice: reads and writes must carry on
            async with await psycopg.AsyncConnection.connect(postgres_dsn, autocommit=True) as admin:
                cur = await admin.execute(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = %s",
                    (APPLICATION_NAME,),
                )
                (killed,) = await cur.fetchone()  # type: ignore[misc]
                assert 1 <= killed <= store.pool_size  # the pool opens connections as it needs them
            await asyncio.sleep(0.2)  # let the server finish closing them
            hits = [
                await store.fulltext_search("when does the shop open", 1, SearchFilters()) for _ in range(2)
            ]
            assert all([h.doc_id for h in hit] == ["hours"] for hit in hits)
            assert await put(
                store, embedder, "returns", ["Returns are accepted for thirty days."], version=round_
            )
            assert (await store.get_document("hours")) is not None
    finally:
        await store.close()
