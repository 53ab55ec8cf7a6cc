"""Watched folder (object-storage style triggers): files added, changed or deleted -> document events.

The document id of a file is ``file:<path relative to the folder>``. On start the folder is reconciled with
the store: files not yet ingested (or changed since) are submitted and documents whose file is gone are deleted.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

from knowledge.events import DocumentEvent
from knowledge.ingest import Ingestor
from knowledge.parsers import guess_content_type

log = logging.getLogger(__name__)

SOURCE = "watch"


class FolderWatcher:
    """Run with ``await watcher.run()`` (until ``stop()``) or ``start()`` / ``stop()`` as a task."""

    def __init__(
        self,
        ingestor: Ingestor,
        directory: str | Path,
        tenant: str = "default",
        allowed_content_types: list[str] | None = None,
        debounce_ms: int = 100,
    ) -> None:
        self.ingestor = ingestor
        self.directory = Path(directory).resolve()
        self.tenant = tenant
        self.allowed = set(allowed_content_types or ingestor.config.allowed_content_types)
        self.debounce_ms = debounce_ms
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.ready = asyncio.Event()  # set once the initial scan is done and changes are being watched

    def doc_id(self, path: Path) -> str:
        return "file:" + path.resolve().relative_to(self.directory).as_posix()

    def _wanted(self, path: Path) -> bool:
        return not path.name.startswith(".") and guess_content_type(path.name) in self.allowed

    async def start(self) -> None:
        self._task = asyncio.create_task(self.run(), name=f"knowledge-watch-{self.directory}")
        await asyncio.wait(
            {self._task, asyncio.create_task(self.ready.wait())}, return_when=asyncio.FIRST_COMPLETED
        )
        if self._task.done():
            self._task.result()

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            await self._task

    async def run(self) -> None:
        from watchfiles import awatch

        self.directory.mkdir(parents=True, exist_ok=True)
        watcher = awatch(
            self.directory,
            stop_event=self._stop,
            debounce=self.debounce_ms,
            step=20,
            recursive=True,
            yield_on_timeout=False,
        )
        consumer = asyncio.create_task(self._consume(watcher))
        # awatch creates its notifier on first iteration; reconcile after that so no change falls in a gap.
        await asyncio.sleep(0.1)
        try:
            await self.reconcile()
            self.ready.set()
        finally:
            if not self.ready.is_set():
                self._stop.set()
        await consumer

    async def _consume(self, watcher: Any) -> None:
        from watchfiles import Change

        async for changes in watcher:
            for change, name in sorted(changes, key=lambda c: c[1]):
                path = Path(name)
                if change == Change.added and path.is_dir():
                    # Files written right after mkdir land before the new directory's watch exists.
                    for child in sorted(path.rglob("*")):
                        if child.is_file() and self._wanted(child):
                            await self._upsert(child)
                    continue
                if not self._wanted(path):
                    continue
                if change == Change.deleted or not path.is_file():
                    await self._delete(path)
                else:
                    await self._upsert(path)

    async def reconcile(self) -> None:
        """Submit files the store does not have at their current mtime; delete documents of vanished files."""
        files = {self.doc_id(p): p for p in self.directory.rglob("*") if p.is_file() and self._wanted(p)}
        known: dict[str, Any] = {}
        offset = 0
        while batch := await self.ingestor.store.list_documents(tenant=self.tenant, limit=500, offset=offset):
            known.update({d.doc_id: d for d in batch if d.source == SOURCE})
            offset += len(batch)
        for doc_id, path in files.items():
            record = known.get(doc_id)
            if record is None or record.status == "failed" or record.updated_at < path.stat().st_mtime:
                await self._upsert(path)
        for doc_id in known.keys() - files.keys():
            await self.ingestor.submit(
                DocumentEvent(op="delete", doc_id=doc_id, tenant=self.tenant, source=SOURCE)
            )

    async def _upsert(self, path: Path) -> None:
        log.info("watched file changed: %s", path)
        await self.ingestor.submit(
            DocumentEvent(
                op="upsert",
                doc_id=self.doc_id(path),
                tenant=self.tenant,
                source=SOURCE,
                path=str(path),
                title=path.name,
                content_type=guess_content_type(path.name),
            )
        )

    async def _delete(self, path: Path) -> None:
        log.info("watched file deleted: %s", path)
        await self.ingestor.submit(
            DocumentEvent(op="delete", doc_id=self.doc_id(path), tenant=self.tenant, source=SOURCE)
        )
