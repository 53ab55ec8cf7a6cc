"""Ingestion worker: ``DocumentEvent`` -> parse -> chunk -> embed -> one atomic store write per version.

Guarantees:
- bounded: a fixed number of workers drain a bounded queue (``submit`` waits when it is full);
- never half-searchable: the store swaps all chunks of a document version in one transaction;
- latest wins: changes of one document are processed under a per-document lock, versions that a newer
  submission superseded are skipped, and the store refuses versions older than the searchable one;
- failures mark the document ``failed`` with the reason; transient ones are retried with exponential
  backoff up to ``max_attempts``, broken documents (``ParseError``) are not retried.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from knowledge.chunking import chunk_document, count_tokens
from knowledge.config import KnowledgeConfig
from knowledge.embeddings.base import Embedder
from knowledge.errors import KnowledgeError, ParseError
from knowledge.events import DocumentEvent
from knowledge.metrics import INGEST_QUEUE, INGEST_SECONDS
from knowledge.parsers import guess_content_type, parse
from knowledge.stores.base import DEFAULT_TENANT, ChunkRecord, DocumentRecord, DocumentStatus, KnowledgeStore

log = logging.getLogger(__name__)

DocKey = tuple[str, str]  # (tenant, doc_id)


def _key(event: DocumentEvent) -> DocKey:
    return (event.tenant, event.doc_id)


@dataclass
class _Job:
    event: DocumentEvent
    attempt: int = 1
    submitted: float = field(default_factory=time.monotonic)


class Ingestor:
    """Applies document events to a store. ``start()`` before ``submit``; ``close()`` stops the workers.

    The newest submitted version of a document is remembered while it has events in flight and for the
    ``remember_settled`` most recently settled documents after that (a late, older event of one of those is
    skipped without parsing); beyond that the store's version check alone refuses older versions.
    """

    def __init__(
        self,
        store: KnowledgeStore,
        embedder: Embedder,
        config: KnowledgeConfig,
        remember_settled: int = 10_000,
    ) -> None:
        self.store = store
        self.embedder = embedder
        self.config = config
        self.remember_settled = remember_settled
        self._queue: asyncio.Queue[_Job] = asyncio.Queue(maxsize=config.ingest_queue_size)
        self._workers: list[asyncio.Task[None]] = []
        self._retries: set[asyncio.Task[None]] = set()
        # Keyed by (tenant, doc_id): a document id is unique within its tenant.
        self._latest: dict[DocKey, int] = {}  # newest submitted version per document
        self._in_flight: dict[DocKey, int] = {}  # events submitted and not yet settled, per document
        # Documents with nothing in flight, least recently settled first; their _latest entry is dropped
        # once more than ``remember_settled`` of them have settled since.
        self._settled: OrderedDict[DocKey, None] = OrderedDict()
        self._locks: dict[DocKey, tuple[asyncio.Lock, int]] = {}
        # Called with (event, outcome) once an event is finished: ready, stale, superseded, deleted, failed.
        self.on_settled: list[Callable[[DocumentEvent, str], None]] = []

    async def start(self) -> None:
        if not self._workers:
            self._workers = [
                asyncio.create_task(self._work(), name=f"knowledge-ingest-{i}")
                for i in range(self.config.ingest_concurrency)
            ]

    async def close(self) -> None:
        for task in [*self._workers, *self._retries]:
            task.cancel()
        await asyncio.gather(*self._workers, *self._retries, return_exceptions=True)
        self._workers.clear()
        self._retries.clear()

    async def submit(self, event: DocumentEvent) -> DocumentRecord:
        """Record the change as ``queued`` and enqueue it; returns the status row the caller can poll."""
        key = _key(event)
        if event.version < self._latest.get(key, -1):
            log.info(
                "stale %s of %s (version %d): a newer one was submitted; it will be skipped",
                event.op,
                event.doc_id,
                event.version,
            )
        self._latest[key] = max(event.version, self._latest.get(key, -1))
        self._in_flight[key] = self._in_flight.get(key, 0) + 1
        self._settled.pop(key, None)
        record = self._record(event, "queued")
        try:
            if event.op == "upsert":
                await self.store.save_status(record)
            await self._queue.put(_Job(event))
        except BaseException:
            self._forget_if_settled(key)
            raise
        INGEST_QUEUE.set(self._queue.qsize())
        return record

    async def status(self, doc_id: str, tenant: str = DEFAULT_TENANT) -> DocumentRecord | None:
        return await self.store.get_document(doc_id, tenant)

    async def wait_idle(self) -> None:
        """Wait until the queue is drained and no retry is pending (for the CLI and tests)."""
        while True:
            await self._queue.join()
            if not self._retries:
                return
            await asyncio.wait(set(self._retries))

    def _record(self, event: DocumentEvent, status: DocumentStatus) -> DocumentRecord:
        content_type = event.content_type or guess_content_type(event.path or event.title or event.doc_id)
        if content_type == "application/octet-stream" and isinstance(event.content, str):
            content_type = "text/plain"
        return DocumentRecord(
            doc_id=event.doc_id,
            tenant=event.tenant,
            source=event.source,
            tags=list(event.tags),
            title=event.display_name(),
            content_type=content_type,
            version=event.version,
            status=status,
        )

    async def _work(self) -> None:
        while True:
            job = await self._queue.get()
            INGEST_QUEUE.set(self._queue.qsize())
            try:
                outcome = await self._process(job)
            except asyncio.CancelledError:
                raise
            except Exception:  # a bug, not a document problem: log it, keep the worker alive
                log.exception("ingest worker failed on %s version %d", job.event.doc_id, job.event.version)
                outcome = "failed"
            finally:
                self._queue.task_done()
            if outcome != "retrying":
                self._settle(job, outcome)

    def _settle(self, job: _Job, outcome: str) -> None:
        INGEST_SECONDS.labels(outcome).observe(time.monotonic() - job.submitted)
        event = job.event
        self._forget_if_settled(_key(event))
        for callback in self.on_settled:
            callback(event, outcome)

    def _forget_if_settled(self, key: DocKey) -> None:
        """One event of ``key`` left; keep its version only among the most recently settled documents."""
        left = self._in_flight.get(key, 1) - 1
        if left > 0:
            self._in_flight[key] = left
            return
        self._in_flight.pop(key, None)
        self._settled[key] = None
        self._settled.move_to_end(key)
        while len(self._settled) > self.remember_settled:
            oldest, _ = self._settled.popitem(last=False)
            self._latest.pop(oldest, None)

    @contextlib.asynccontextmanager
    async def _doc_lock(self, key: DocKey) -> AsyncIterator[None]:
        lock, users = self._locks.get(key, (asyncio.Lock(), 0))
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users == 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)

    def _superseded(self, event: DocumentEvent) -> bool:
        return event.version < self._latest.get(_key(event), -1)

    async def _process(self, job: _Job) -> str:
        """Apply one event; returns the outcome (ready, stale, superseded, deleted, failed, retrying)."""
        event = job.event
        async with self._doc_lock(_key(event)):
            if self._superseded(event):
                log.debug(
                    "skipping %s version %d: a newer version was submitted", event.doc_id, event.version
                )
                return "superseded"
            if event.op == "delete":
                deleted = await self.store.delete_document(event.doc_id, event.version, event.tenant)
                log.info("delete %s version %d: %s", event.doc_id, event.version, deleted)
                return "deleted" if deleted else "stale"
            record = self._record(event, "processing")
            record.attempts = job.attempt
            await self.store.save_status(record)
            try:
                chunks = await self._prepare(event, record)
                if self._superseded(event):
                    return "superseded"
                written = await self.store.replace_document(record, chunks)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - any failure must end as a visible status
                return await self._fail(job, record, exc)
            log.info("%s version %d: %s, %d chunks", event.doc_id, event.version, written, len(chunks))
            return "ready" if written else "stale"

    async def _prepare(self, event: DocumentEvent, record: DocumentRecord) -> list[ChunkRecord]:
        data = await asyncio.to_thread(event.payload)
        doc = await asyncio.to_thread(parse, data, record.content_type or "text/plain")
        if doc.title and not event.title and not event.path:
            record.title = doc.title
        # Count in the embedder's own tokens when it says how, so no chunk is silently truncated.
        counter = getattr(self.embedder, "count_tokens", None) or count_tokens
        chunks = chunk_document(doc, self.config.chunk_tokens, self.config.chunk_overlap_tokens, counter)
        vectors = await self.embedder.embed([c.embedding_text for c in chunks])
        return [ChunkRecord(c.ordinal, c.text, c.heading, vectors[i]) for i, c in enumerate(chunks)]

    async def _fail(self, job: _Job, record: DocumentRecord, exc: Exception) -> str:
        permanent = isinstance(exc, ParseError) or (isinstance(exc, OSError) and job.event.path is not None)
        retry = not permanent and job.attempt < self.config.max_attempts
        reason = str(exc) if isinstance(exc, KnowledgeError) else f"{type(exc).__name__}: {exc}"
        record.status = "failed"
        record.error = reason + (f" (retrying, attempt {job.attempt})" if retry else "")
        await self.store.save_status(record)
        log.warning("ingest of %s version %d failed: %s", record.doc_id, record.version, record.error)
        if not retry:
            return "failed"
        delay = self.config.retry_backoff_s * 2 ** (job.attempt - 1)
        task = asyncio.create_task(self._retry(_Job(job.event, job.attempt + 1, job.submitted), delay))
        self._retries.add(task)
        task.add_done_callback(self._retries.discard)
        return "retrying"

    async def _retry(self, job: _Job, delay: float) -> None:
        await asyncio.sleep(delay)
        if self._superseded(job.event):
            self._settle(job, "superseded")
        else:
            await self._queue.put(job)
