"""``HybridRetriever``: vector + full-text search fused with reciprocal rank fusion (RRF).

Implements ``agent.retrieval.Retriever`` structurally: ``await retrieve(query, k=3, filters=None)`` returns
``RetrievedChunk`` objects with ``text``, ``score``, ``source_id`` and ``doc_id``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from dataclasses import replace
from typing import Any, Literal

from knowledge.embeddings.base import Embedder
from knowledge.metrics import RETRIEVAL_SECONDS
from knowledge.stores.base import KnowledgeStore, RetrievedChunk, SearchFilters

log = logging.getLogger(__name__)

Mode = Literal["hybrid", "vector", "fulltext"]


def reciprocal_rank_fusion(rankings: list[list[RetrievedChunk]], rrf_k: int = 60) -> list[RetrievedChunk]:
    """Fuse ranked lists: score = sum over lists of 1 / (rrf_k + rank), rank starting at 1."""
    scores: dict[str, float] = {}
    chunks: dict[str, RetrievedChunk] = {}
    for ranking in rankings:
        for rank, chunk in enumerate(ranking, start=1):
            scores[chunk.source_id] = scores.get(chunk.source_id, 0.0) + 1.0 / (rrf_k + rank)
            chunks.setdefault(chunk.source_id, chunk)
    order = sorted(scores, key=lambda sid: scores[sid], reverse=True)
    return [replace(chunks[sid], score=scores[sid]) for sid in order]


class HybridRetriever:
    """Retrieves chunks from a ``KnowledgeStore``; ``mode`` picks vector, full-text or fused (default)."""

    def __init__(
        self,
        store: KnowledgeStore,
        embedder: Embedder,
        mode: Mode = "hybrid",
        rrf_k: int = 60,
        candidates: int = 20,
    ) -> None:
        self.store = store
        self.embedder = embedder
        self.mode: Mode = mode
        self.rrf_k = rrf_k
        self.candidates = candidates
        self.last_latency_s = 0.0

    async def retrieve(
        self,
        query: str,
        k: int = 3,
        filters: SearchFilters | Mapping[str, Any] | None = None,
        mode: Mode | None = None,
    ) -> list[RetrievedChunk]:
        started = time.perf_counter()
        mode = mode or self.mode
        f = SearchFilters.from_any(filters)
        n = max(k, self.candidates)
        if mode == "vector":
            result = await self._vector(query, k, f)
        elif mode == "fulltext":
            result = await self.store.fulltext_search(query, k, f)
        elif mode == "hybrid":
            vector, text = await asyncio.gather(
                self._vector(query, n, f), self.store.fulltext_search(query, n, f)
            )
            result = reciprocal_rank_fusion([vector, text], self.rrf_k)[:k]
        else:
            raise ValueError(f"unknown retrieval mode {mode!r}: use hybrid, vector or fulltext")
        self.last_latency_s = time.perf_counter() - started
        RETRIEVAL_SECONDS.labels(mode).observe(self.last_latency_s)
        log.debug(
            "retrieve %r mode=%s k=%d: %d hits in %.3fs", query, mode, k, len(result), self.last_latency_s
        )
        return result

    async def _vector(self, query: str, k: int, f: SearchFilters) -> list[RetrievedChunk]:
        vectors = await self.embedder.embed([query])
        return await self.store.vector_search(vectors[0], k, f)


class TenantRetriever:
    """A retriever that only ever searches ``tenant``'s documents, whatever filters its caller passes
    (a call's conversation gets one for the tenant of its caller's token)."""

    def __init__(self, retriever: Any, tenant: str) -> None:
        self.retriever = retriever
        self.tenant = tenant
        self.embedder = getattr(retriever, "embedder", None)

    async def retrieve(
        self, query: str, k: int = 3, filters: SearchFilters | Mapping[str, Any] | None = None, **kwargs: Any
    ) -> list[RetrievedChunk]:
        f = SearchFilters.from_any(filters)
        scoped: dict[str, Any] = {"tenant": self.tenant}  # a mapping: what agent.retrieval.Retriever takes
        if f.source:
            scoped["source"] = f.source
        if f.tags:
            scoped["tags"] = list(f.tags)
        return list(await self.retriever.retrieve(query, k=k, filters=scoped, **kwargs))
