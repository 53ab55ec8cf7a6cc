"""``DocumentEvent``: the one data unit every source (upload, watched folder, CDC topic) produces.

The JSON form of this model is the schema of change events on the ``knowledge_changes`` topic; see
``knowledge/README.md`` for the field table and examples. Unknown fields are rejected so a producer bug shows
up as a dead-lettered message with a reason instead of a silently half-applied change.
"""

from __future__ import annotations

import base64
import binascii
import time
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

SCHEMA_VERSION: Literal[1] = 1


class DocumentEvent(BaseModel):
    """An upsert or delete of one document, identified by ``doc_id``.

    ``version`` orders changes of one document: a change whose version is not newer than the stored one is
    ignored, so concurrent or replayed updates end with the latest version searchable. Sources that have no
    natural version (uploads, files) get a wall-clock nanosecond version when the event is created.
    """

    model_config = ConfigDict(extra="forbid")

    schema_version: Literal[1] = SCHEMA_VERSION
    op: Literal["upsert", "delete"]
    doc_id: str = Field(min_length=1, max_length=512, pattern=r"^[^\x00-\x1f]+$")
    tenant: str = Field(default="default", min_length=1, max_length=128)
    source: str = Field(default="api", min_length=1, max_length=64)
    tags: list[str] = Field(default_factory=list, max_length=64)
    title: str | None = None
    content: str | bytes | None = None
    content_base64: str | None = None
    path: str | None = None
    uri: str | None = None  # where the document lives upstream; informational
    content_type: str | None = None
    version: int = Field(default_factory=time.time_ns, ge=0)

    @model_validator(mode="after")
    def _check_body(self) -> DocumentEvent:
        bodies = [b for b in (self.content, self.content_base64, self.path) if b is not None]
        if self.op == "upsert" and len(bodies) != 1:
            raise ValueError("an upsert needs exactly one of content, content_base64 or path")
        if self.op == "delete" and bodies:
            raise ValueError("a delete carries no content, content_base64 or path")
        if self.content_base64 is not None:
            try:
                base64.b64decode(self.content_base64, validate=True)
            except binascii.Error as exc:
                raise ValueError(f"content_base64 is not valid base64: {exc}") from exc
        return self

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
    return DocumentEvent.model_json_schema()
