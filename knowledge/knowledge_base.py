"""``KnowledgeBase``: the embedder, store, ingestor, retriever (and optional watched folder) of one config."""

from __future__ import annotations

from types import TracebackType
from typing import Self

from knowledge.config import KnowledgeConfig
from knowledge.embeddings.base import Embedder
from knowledge.embeddings.registry import create_embedder
from knowledge.ingest import Ingestor
from knowledge.retrieval import HybridRetriever
from knowledge.sources.cdc import ChangeEventHandler
from knowledge.sources.watch import FolderWatcher
from knowledge.stores.base import KnowledgeStore
from knowledge.stores.registry import create_store


class KnowledgeBase:
    """Wires one ``KnowledgeConfig``. ``await kb.start()`` / ``await kb.close()`` or ``async with``.

    ``kb.retriever`` is the agent's Retriever; ``kb.ingestor`` takes ``DocumentEvent``s; ``kb.change_handler``
    is the bus handler for the change topic; ``upload_routes(kb.ingestor, kb.config)`` gives the HTTP routes.
    """

    def __init__(
        self,
        config: KnowledgeConfig,
        embedder: Embedder | None = None,
        store: KnowledgeStore | None = None,
    ) -> None:
        self.config = config
        self.embedder = embedder or create_embedder(config.embedding)
        self.store = store or create_store(config, dim=self.embedder.dim)
        self.ingestor = Ingestor(self.store, self.embedder, config)
        r = config.retrieval
        self.retriever = HybridRetriever(self.store, self.embedder, r.mode, r.rrf_k, r.candidates)
        self.change_handler = ChangeEventHandler(self.ingestor)
        self.watcher = (
            FolderWatcher(self.ingestor, config.watch_dir, config.watch_tenant) if config.watch_dir else None
        )

    async def start(self) -> None:
        await self.store.start()
        await self.ingestor.start()
        if self.watcher is not None:
            await self.watcher.start()

    async def close(self) -> None:
        if self.watcher is not None:
            await self.watcher.stop()
        await self.ingestor.close()
        await self.store.close()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()
