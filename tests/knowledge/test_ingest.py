"""Ingestion worker on both stores: versions, failures, retries, concurrency."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

import numpy as np

from knowledge.embeddings.base import Embedder
from knowledge.events import DocumentEvent
from knowledge.ingest import Ingestor
from knowledge.knowledge_base import KnowledgeBase
from knowledge.stores.base import DocumentRecord, KnowledgeStore
from tests.knowledge.test_parsing_chunking import minimal_pdf


def upsert(doc_id: str, content: str | bytes, version: int | None = None, **kw: object) -> DocumentEvent:
    extra = {"version": version} if version is not None else {}
    return DocumentEvent(op="upsert", doc_id=doc_id, content=content, **extra, **kw)  # type: ignore[arg-type]


async def found(kb: KnowledgeBase, query: str, mode: str = "fulltext") -> list[str]:
    return [h.text for h in await kb.retriever.retrieve(query, k=10, mode=mode)]  # type: ignore[arg-type]


async def test_concurrent_updates_end_with_only_latest_searchable(kb: KnowledgeBase) -> None:
    events = [upsert("doc", f"Revision marker{i} of the manual.", version=i) for i in range(1, 9)]
    # Submit out of order and concurrently; the highest version must win.
    order = [3, 1, 7, 2, 8, 5, 4, 6]
    await asyncio.gather(*(kb.ingestor.submit(events[i - 1]) for i in order))
    await kb.ingestor.wait_idle()
    texts = await found(kb, " ".join(f"marker{i}" for i in range(1, 9)))
    assert texts == ["Revision marker8 of the manual."]
    record = await kb.ingestor.status("doc")
    assert record is not None and (record.status, record.version, record.ready_version) == ("ready", 8, 8)


async def test_concurrent_updates_across_two_ingestors_sharing_a_store(kb: KnowledgeBase) -> None:
    # Two workers (two nodes) race on one document; the store's version check decides.
    other = Ingestor(kb.store, kb.embedder, kb.config)
    await other.start()
    try:
        await asyncio.gather(
            *(
                ing.submit(upsert("shared", f"Edition token{v}.", version=v))
                for v, ing in [(2, kb.ingestor), (5, other), (4, kb.ingestor), (3, other), (1, kb.ingestor)]
            )
        )
        await asyncio.gather(kb.ingestor.wait_idle(), other.wait_idle())
    finally:
        await other.close()
    assert await found(kb, "token1 token2 token3 token4 token5") == ["Edition token5."]


async def test_broken_pdf_marks_document_failed_with_reason(kb: KnowledgeBase) -> None:
    await kb.ingestor.submit(upsert("bad.pdf", b"%PDF-1.7\n1 0 obj broken", content_type="application/pdf"))
    await kb.ingestor.submit(
        upsert("good.pdf", minimal_pdf("Warranty covers two years."), content_type="application/pdf")
    )
    await kb.ingestor.wait_idle()
    bad = await kb.ingestor.status("bad.pdf")
    assert bad is not None and bad.status == "failed" and bad.error and "PDF" in bad.error
    assert bad.attempts == 1  # a broken file is not retried
    assert await found(kb, "warranty") == ["Warranty covers two years."]


async def test_failed_update_keeps_previous_version_searchable(kb: KnowledgeBase) -> None:
    await kb.ingestor.submit(upsert("manual", "The first edition mentions aardvarks.", version=1))
    await kb.ingestor.wait_idle()
    await kb.ingestor.submit(upsert("manual", b"%PDF-broken", version=2, content_type="application/pdf"))
    await kb.ingestor.wait_idle()
    record = await kb.ingestor.status("manual")
    assert record is not None and record.status == "failed" and record.ready_version == 1
    assert await found(kb, "aardvarks") == ["The first edition mentions aardvarks."]


class FlakyEmbedder:
    """Fails the first ``failures`` calls (a transient model/network error), then delegates."""

    name = "flaky"

    def __init__(self, inner: Embedder, failures: int) -> None:
        self.inner, self.failures, self.calls = inner, failures, 0
        self.dim = inner.dim

    async def embed(self, texts: Sequence[str]) -> np.ndarray:
        self.calls += 1
        if self.calls <= self.failures:
            raise ConnectionError(f"embedding service unavailable (call {self.calls})")
        return await self.inner.embed(texts)


async def test_transient_failure_is_retried_with_backoff(
    store: KnowledgeStore,
    embedder: Embedder,
    knowledge_config,  # type: ignore[no-untyped-def]
) -> None:
    flaky = FlakyEmbedder(embedder, failures=2)
    ingestor = Ingestor(store, flaky, knowledge_config)
    history: list[tuple[str, int, str | None]] = []
    save_status = store.save_status

    async def recording_save_status(record: DocumentRecord) -> None:
        history.append((record.status, record.attempts, record.error))
        await save_status(record)

    store.save_status = recording_save_status  # type: ignore[method-assign]
    await ingestor.start()
    started = time.perf_counter()
    try:
        await ingestor.submit(upsert("r", "Retried documents still arrive."))
        await ingestor.wait_idle()
    finally:
        await ingestor.close()
    # Backoff 0.05 s then 0.1 s: the two retries cannot finish sooner than 0.15 s after the first failure.
    assert time.perf_counter() - started >= 0.15
    assert [(status, attempts) for status, attempts, _ in history] == [
        ("queued", 0),
        ("processing", 1),
        ("failed", 1),
        ("processing", 2),
        ("failed", 2),
        ("processing", 3),
    ]
    assert "unavailable" in (history[2][2] or "") and "retrying" in (history[2][2] or "")
    record = await store.get_document("r")
    assert record is not None and (record.status, record.attempts, record.error) == ("ready", 3, None)


async def test_gives_up_after_max_attempts(
    store: KnowledgeStore, embedder: Embedder, knowledge_config
) -> None:  # type: ignore[no-untyped-def]
    ingestor = Ingestor(store, FlakyEmbedder(embedder, failures=99), knowledge_config)
    await ingestor.start()
    try:
        await ingestor.submit(upsert("r", "Never arrives."))
        await ingestor.wait_idle()
    finally:
        await ingestor.close()
    record = await store.get_document("r")
    assert (
        record is not None and record.status == "failed" and record.attempts == knowledge_config.max_attempts
    )
    assert "retrying" not in (record.error or "") and "ConnectionError" in (record.error or "")


async def test_delete_event_removes_document(kb: KnowledgeBase) -> None:
    await kb.ingestor.submit(upsert("gone", "Temporary platypus notice."))
    await kb.ingestor.wait_idle()
    assert await found(kb, "platypus")
    await kb.ingestor.submit(DocumentEvent(op="delete", doc_id="gone"))
    await kb.ingestor.wait_idle()
    assert await found(kb, "platypus") == [] and await kb.ingestor.status("gone") is None


async def test_latest_version_map_keeps_only_recently_settled_documents(kb: KnowledgeBase) -> None:
    # Before: one entry per document ever seen, for the life of the process.
    ingestor = Ingestor(kb.store, kb.embedder, kb.config, remember_settled=3)
    await ingestor.start()
    try:
        for i in range(8):
            await ingestor.submit(upsert(f"doc-{i}", f"Short note number {i}.", version=10))
        await ingestor.wait_idle()
        assert sorted(ingestor._latest) == [("default", "doc-5"), ("default", "doc-6"), ("default", "doc-7")]
        assert not ingestor._in_flight
        # A late, older event of a forgotten document is still refused, by the store's version check.
        await ingestor.submit(upsert("doc-0", "Stale revision of note zero.", version=9))
        await ingestor.wait_idle()
    finally:
        await ingestor.close()
    assert await found(kb, "stale revision") == []
    record = await kb.ingestor.status("doc-0")
    assert record is not None and (record.version, record.ready_version) == (10, 10)
