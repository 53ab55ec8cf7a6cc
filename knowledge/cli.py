"""Command-line entry points (wired by the server CLI to ``voice-agent ingest`` / ``voice-agent search``)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from knowledge.config import KnowledgeConfig
from knowledge.events import DocumentEvent
from knowledge.knowledge_base import KnowledgeBase
from knowledge.parsers import guess_content_type
from knowledge.retrieval import Mode
from knowledge.stores.base import DocumentRecord, RetrievedChunk

log = logging.getLogger(__name__)


def _config(settings: Any) -> KnowledgeConfig:
    """Accept the whole ``Settings`` (with a ``knowledge`` section) or a ``KnowledgeConfig``."""
    cfg = getattr(settings, "knowledge", settings)
    if not isinstance(cfg, KnowledgeConfig):
        raise TypeError(
            f"expected Settings with a knowledge section or KnowledgeConfig, got {type(settings)}"
        )
    return cfg.model_copy(update={"watch_dir": None})


def _files(paths: Iterable[str | Path], allowed: list[str]) -> list[Path]:
    out: list[Path] = []
    for p in map(Path, paths):
        candidates = sorted(p.rglob("*")) if p.is_dir() else [p]
        out += [f for f in candidates if f.is_file() and guess_content_type(f.name) in allowed]
    return out


def ingest_paths(
    paths: Iterable[str | Path], settings: Any, tenant: str = "default", tags: list[str] | None = None
) -> list[DocumentRecord]:
    """Ingest files (directories recursively) with a progress bar; returns the final status of each file.

    The document id of a file is ``file:<absolute path>``, so re-running updates instead of duplicating.
    """
    return asyncio.run(_ingest(paths, _config(settings), tenant, tags or []))


async def _ingest(
    paths: Iterable[str | Path], cfg: KnowledgeConfig, tenant: str, tags: list[str]
) -> list[DocumentRecord]:
    from tqdm import tqdm

    files = _files(paths, cfg.allowed_content_types)
    async with KnowledgeBase(cfg) as kb:
        ids = []
        with tqdm(total=len(files), unit="doc", desc="ingest") as bar:
            kb.ingestor.on_settled.append(lambda _event, _outcome: bar.update(1))
            for f in files:
                event = DocumentEvent(
                    op="upsert",
                    doc_id=f"file:{f.resolve()}",
                    tenant=tenant,
                    source="cli",
                    tags=tags,
                    path=str(f.resolve()),
                    title=f.name,
                    content_type=guess_content_type(f.name),
                )
                ids.append((await kb.ingestor.submit(event)).doc_id)
            await kb.ingestor.wait_idle()
        records = [await kb.store.get_document(i) for i in ids]
    return [r for r in records if r is not None]


def search(
    query: str, settings: Any, k: int = 5, mode: Mode | None = None, filters: dict[str, Any] | None = None
) -> list[RetrievedChunk]:
    """Search the configured knowledge base and return the hits (best first)."""
    return asyncio.run(_search(query, _config(settings), k, mode, filters))


async def _search(
    query: str, cfg: KnowledgeConfig, k: int, mode: Mode | None, filters: dict[str, Any] | None
) -> list[RetrievedChunk]:
    async with KnowledgeBase(cfg) as kb:
        return await kb.retriever.retrieve(query, k=k, filters=filters, mode=mode)


def format_hits(hits: list[RetrievedChunk]) -> str:
    lines = []
    for i, h in enumerate(hits, 1):
        text = h.text if len(h.text) < 300 else h.text[:297] + "..."
        where = " / ".join(x for x in (h.title or h.doc_id, h.heading) if x)
        lines.append(f"{i}. [{h.score:.4f}] {h.source_id} ({where})\n   {text}")
    return "\n".join(lines) or "no results"
