"""The ``KnowledgeStore`` protocol and the records it reads and writes."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import numpy as np

DocumentStatus = Literal["queued", "processing", "ready", "failed"]
DEFAULT_TENANT = "default"


@dataclass
class DocumentRecord:
    """Status of one document. ``version`` is the last submitted version; ``ready_version`` the searchable one."""

    doc_id: str
    tenant: str = "default"
    source: str = "api"
    tags: list[str] = field(default_factory=list)
    title: str | None = None
    content_type: str | None = None
    version: int = 0
    ready_version: int | None = None
    status: DocumentStatus = "queued"
    error: str | None = None
    attempts: int = 0
    chunk_count: int = 0
    updated_at: float = field(default_factory=time.time)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class ChunkRecord:
    """One chunk to index; ``embedding`` is a unit-norm float32 vector."""

    ordinal: int
    text: str
    heading: str | None
    embedding: np.ndarray


@dataclass(frozen=True)
class RetrievedChunk:
    """A search hit; satisfies ``agent.retrieval.RetrievedChunk`` structurally."""

    text: str
    score: float
    source_id: str  # "<doc_id>#<ordinal>": stable for one document version, shown as the turn's source
    doc_id: str
    heading: str | None = None
    title: str | None = None
    tenant: str = "default"
    source: str = "api"
    tags: tuple[str, ...] = ()
    version: int = 0


@dataclass(frozen=True)
class SearchFilters:
    """Metadata filters: exact tenant and source; ``tags`` must all be present on the document."""

    tenant: str | None = None
    source: str | None = None
    tags: tuple[str, ...] = ()

    @classmethod
    def from_any(cls, filters: SearchFilters | Mapping[str, Any] | None) -> SearchFilters:
        if filters is None:
            return cls()
        if isinstance(filters, SearchFilters):
            return filters
        unknown = set(filters) - {"tenant", "source", "tags"}
        if unknown:
            raise ValueError(f"unknown search filters {sorted(unknown)}; use tenant, source, tags")
        tags = filters.get("tags") or ()
        return cls(
            filters.get("tenant"), filters.get("source"), (tags,) if isinstance(tags, str) else tuple(tags)
        )


CHUNK_COLUMNS = "doc_id, version, ordinal, text, heading, title, tenant, source, tags, embedding"


def chunk_row(r: DocumentRecord, c: ChunkRecord, tags: Any, embedding: Any) -> tuple[Any, ...]:
    """Values of one chunk row in ``CHUNK_COLUMNS`` order; ``tags``/``embedding`` as the store keeps them."""
    return (r.doc_id, r.version, c.ordinal, c.text, c.heading, r.title, r.tenant, r.source, tags, embedding)


def metadata_conditions(
    f: SearchFilters, mark: str, column: str = "{}", tag: str = ""
) -> tuple[list[str], list[Any]]:
    """SQL conditions and their arguments for ``f``: exact tenant and source, and ``tag`` once per tag
    (each store says how it tests a tag). ``mark`` is the driver's placeholder, ``column`` qualifies names."""
    where: list[str] = []
    args: list[Any] = []
    for name, value in (("tenant", f.tenant), ("source", f.source)):
        if value:
            where.append(f"{column.format(name)} = {mark}")
            args.append(value)
    for value in f.tags if tag else ():
        where.append(tag)
        args.append(value)
    return where, args


def source_id(doc_id: str, ordinal: int) -> str:
    return f"{doc_id}#{ordinal}"


class KnowledgeStore(Protocol):
    """Chunks of documents, searchable by vector and by full text.

    ``replace_document`` is atomic: either every chunk of the new version becomes searchable and the old
    version's chunks disappear, or nothing changes. It refuses (returns False) a version that is not newer
    than the one already searchable, so concurrent writers end with the latest version.
    """

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def save_status(self, record: DocumentRecord) -> None:
        """Insert or update the status row (does not touch chunks)."""
        ...

    async def get_document(self, doc_id: str, tenant: str = DEFAULT_TENANT) -> DocumentRecord | None:
        """A document is identified by its ``doc_id`` within its tenant."""
        ...

    async def list_documents(
        self, tenant: str | None = None, status: str | None = None, limit: int = 100, offset: int = 0
    ) -> list[DocumentRecord]: ...

    async def replace_document(self, record: DocumentRecord, chunks: Sequence[ChunkRecord]) -> bool: ...

    async def delete_document(
        self, doc_id: str, version: int | None = None, tenant: str = DEFAULT_TENANT
    ) -> bool:
        """Remove the document and its chunks unless a newer version than ``version`` is stored."""
        ...

    async def vector_search(
        self, vector: np.ndarray, k: int, filters: SearchFilters
    ) -> list[RetrievedChunk]: ...

    async def fulltext_search(self, query: str, k: int, filters: SearchFilters) -> list[RetrievedChunk]: ...


_STOPWORDS = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "by",
        "did",
        "do",
        "does",
        "for",
        "from",
        "how",
        "i",
        "in",
        "is",
        "it",
        "its",
        "of",
        "on",
        "or",
        "that",
        "the",
        "this",
        "to",
        "was",
        "what",
        "when",
        "where",
        "which",
        "who",
        "whom",
        "why",
        "will",
        "with",
        "you",
        "your",
        "he",
        "she",
        "they",
        "them",
        "his",
        "her",
        "their",
        "we",
        "our",
        "us",
        "me",
        "my",
        "not",
        "no",
    ]
)


def query_terms(query: str) -> list[str]:
    """Lower-case word terms of a natural-language query, stopwords dropped (OR-ed by the stores)."""
    import re

    words = re.findall(r"[^\W_]+", query.lower())
    terms = [w for w in words if w not in _STOPWORDS]
    return list(dict.fromkeys(terms or words))
