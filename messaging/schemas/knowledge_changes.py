"""Topic ``knowledge_changes``: an upsert or delete of one knowledge document (change data capture).

The one schema of the topic: producers build it, the knowledge base's change handler parses it
(``knowledge.events.DocumentEvent`` extends it with the in-process ``path`` of a watched file). Unknown
fields are rejected, so a producer bug becomes a dead-lettered message with a reason instead of a
half-applied change. Older producers' shape is still read (see ``prepare``): ``text`` for ``content``,
``ts`` (seconds) as the version when there is none, a version as a string of digits, ``null`` for an
absent optional field.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from typing import Any, ClassVar, Literal

from pydantic import ConfigDict, Field, model_validator

from messaging.bus import PoisonMessage
from messaging.schemas.base import BusModel


class KnowledgeChange(BusModel):
    """``version`` orders changes of one document: a change whose version is not newer than the stored one
    is ignored, so replayed or concurrent updates end with the latest searchable. Without a producer
    version the wall-clock nanoseconds at creation are used."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    op: Literal["upsert", "delete"]
    doc_id: str = Field(min_length=1, max_length=512, pattern=r"^[^\x00-\x1f]+$")
    tenant: str = Field(default="default", min_length=1, max_length=128)
    source: str = Field(default="cdc", min_length=1, max_length=64)
    tags: list[str] = Field(default_factory=list, max_length=64)
    title: str | None = None
    content: str | None = None
    content_base64: str | None = None
    uri: str | None = None  # where the document lives upstream; informational
    content_type: str | None = None
    version: int = Field(default_factory=time.time_ns, ge=0)

    # The fields that can carry the document; an upsert needs exactly one, a delete none.
    BODY_FIELDS: ClassVar[tuple[str, ...]] = ("content", "content_base64")

    @model_validator(mode="after")
    def _check_body(self) -> KnowledgeChange:
        bodies = [name for name in self.BODY_FIELDS if getattr(self, name) is not None]
        names = ", ".join(self.BODY_FIELDS[:-1]) + " or " + self.BODY_FIELDS[-1]
        if self.op == "upsert" and len(bodies) != 1:
            raise ValueError(f"an upsert needs exactly one of {names}")
        if self.op == "delete" and bodies:
            raise ValueError(f"a delete carries no {names}")
        if self.content_base64 is not None:
            try:
                base64.b64decode(self.content_base64, validate=True)
            except binascii.Error as exc:
                raise ValueError(f"content_base64 is not valid base64: {exc}") from exc
        return self

    @classmethod
    def prepare(cls, body: bytes) -> bytes:
        try:
            data = json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise PoisonMessage(f"KnowledgeChange body is not JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise PoisonMessage(f"KnowledgeChange body must be a JSON object, got {type(data).__name__}")
        return json.dumps(_read_older_shape(data)).encode()


def _read_older_shape(data: dict[str, Any]) -> dict[str, Any]:
    data = {k: v for k, v in data.items() if v is not None}
    if data.get("path") is not None:
        # A producer must not make a consumer read arbitrary local files.
        raise PoisonMessage("'path' is not allowed in change events; send content or content_base64")
    if "text" in data:
        if "content" in data:
            raise PoisonMessage("give either 'text' or 'content', not both")
        data["content"] = data.pop("text")
    ts = data.pop("ts", None)
    if "version" not in data and isinstance(ts, int | float) and ts >= 0:
        data["version"] = int(ts * 1_000_000_000)
    version = data.get("version")
    if isinstance(version, str):
        if not version.isdigit():
            raise PoisonMessage(f"version must be an integer or a string of digits, got {version!r}")
        data["version"] = int(version)
    if "uri" in data and data.get("op") == "upsert" and "content" not in data and "content_base64" not in data:
        raise PoisonMessage("an upsert by 'uri' alone is not supported: send the text in 'content'")
    return data
