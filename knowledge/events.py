"""``DocumentEvent``: the one data unit every source (upload, watched folder, CDC topic) produces.

It is the ``knowledge_changes`` topic's schema (``messaging.schemas.KnowledgeChange``) plus what only an
in-process source may say: ``path``, a local file to read (the watched folder), and raw ``bytes`` content
(uploads). See ``knowledge/README.md`` for the field table and examples.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import ClassVar

from pydantic import ConfigDict, Field

from messaging.schemas import KnowledgeChange


class DocumentEvent(KnowledgeChange):
    """An upsert or delete of one document, identified by ``doc_id`` (ordered by ``version``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    BODY_FIELDS: ClassVar[tuple[str, ...]] = ("content", "content_base64", "path")

    source: str = Field(default="api", min_length=1, max_length=64)
    content: str | bytes | None = None  # type: ignore[assignment]  # raw bytes only in process (uploads)
    path: str | None = None

    @classmethod
    def from_change(cls, change: KnowledgeChange) -> DocumentEvent:
        """The event of a change that came over the topic."""
        return cls.model_validate(change.model_dump())

    def payload(self) -> bytes:
        """The raw document bytes (reads ``path`` if the event points at a file)."""
        if isinstance(self.content, bytes):
            return self.content
        if isinstance(self.content, str):
            return self.content.encode()
        if self.content_base64 is not None:
            return base64.b64decode(self.content_base64)
        if self.path is not None:
            return Path(self.path).read_bytes()
        raise ValueError(f"document event {self.doc_id!r} ({self.op}) has no content")

    def display_name(self) -> str:
        return self.title or (Path(self.path).name if self.path else self.uri or self.doc_id)


def change_event_json_schema() -> dict[str, object]:
    """The JSON schema of change events on the CDC topic (``content`` is text there; binary goes base64)."""
    return KnowledgeChange.model_json_schema()
