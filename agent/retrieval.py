"""The ``Retriever`` protocol the conversation uses for RAG (``knowledge`` implements it)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class RetrievedChunk(Protocol):
    """One retrieved passage: its text, a relevance score, and where it came from."""

    text: str
    score: float
    source_id: str
    doc_id: str


@runtime_checkable
class Retriever(Protocol):
    """Finds the ``k`` passages most relevant to ``query`` (best first)."""

    async def retrieve(
        self, query: str, k: int = 3, filters: Mapping[str, Any] | None = None
    ) -> list[Any]:  # list of RetrievedChunk; Any keeps structural implementers' own dataclasses assignable
        ...
