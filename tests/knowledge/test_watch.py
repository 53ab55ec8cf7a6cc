"""Watched folder: real files, real inotify (watchfiles)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from knowledge.knowledge_base import KnowledgeBase
from knowledge.sources.watch import FolderWatcher


async def poll(kb: KnowledgeBase, phrase: str, present: bool, timeout: float = 5.0) -> float:
    start = time.perf_counter()
    while time.perf_counter() - start < timeout:
        hits = await kb.retriever.retrieve(phrase, k=5, mode="fulltext")
        if any(phrase in h.text for h in hits) == present:
            return time.perf_counter() - start
        await asyncio.sleep(0.05)
    raise AssertionError(f"{phrase!r} did not {'appear' if present else 'disappear'} within {timeout}s")


async def test_new_changed_and_deleted_files(kb: KnowledgeBase, tmp_path: Path) -> None:
    folder = tmp_path / "inbox"
    folder.mkdir()
    (folder / "existing.txt").write_text("Present before the watcher started: narwhal.")
    (folder / "ignored.png").write_bytes(b"\x89PNG")
    watcher = FolderWatcher(kb.ingestor, folder, debounce_ms=50)
    await watcher.start()
    try:
        await poll(kb, "narwhal", True)
        (folder / "sub").mkdir()
        (folder / "sub" / "new.md").write_text(
            "# Ferries\n\nThe ferry to the island leaves hourly from pier okapi."
        )
        took = await poll(kb, "pier okapi", True)
        print(f"\nwatched folder: new file searchable in {took:.3f} s")
        record = await kb.ingestor.status("file:sub/new.md")
        assert record is not None and record.source == "watch" and record.status == "ready"

        (folder / "sub" / "new.md").write_text("# Ferries\n\nThe ferry now leaves from pier tapir.")
        await poll(kb, "pier tapir", True)
        await poll(kb, "pier okapi", False)

        (folder / "sub" / "new.md").unlink()
        await poll(kb, "pier tapir", False)
        await kb.ingestor.wait_idle()
        assert await kb.ingestor.status("file:sub/new.md") is None
    finally:
        await watcher.stop()
    assert [d.doc_id for d in await kb.store.list_documents()] == ["file:existing.txt"]


async def test_reconcile_deletes_documents_of_files_removed_while_stopped(
    kb: KnowledgeBase, tmp_path: Path
) -> None:
    (tmp_path / "a.txt").write_text("Alpha file about ocelots.")
    watcher = FolderWatcher(kb.ingestor, tmp_path, debounce_ms=50)
    await watcher.start()
    await poll(kb, "ocelots", True)
    await watcher.stop()
    (tmp_path / "a.txt").unlink()
    watcher = FolderWatcher(kb.ingestor, tmp_path, debounce_ms=50)
    await watcher.start()
    try:
        await poll(kb, "ocelots", False)
    finally:
        await watcher.stop()
