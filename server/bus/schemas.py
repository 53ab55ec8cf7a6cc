"""Versioned JSON bodies of the bus topics.

Every model carries ``schema_version``; a consumer accepts the versions it knows and dead-letters the rest
(`parse` raises `PoisonMessage` with the reason, never a bare validation error). Bodies are UTF-8 JSON.
"""

from __future__ import annotations

import time
import uuid
from typing import Literal, Self, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from server.bus.base import PoisonMessage

M = TypeVar("M", bound="BusModel")


class BusModel(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    schema_version: int = 1

    def to_bytes(self) -> bytes:
        return self.model_dump_json().encode()

    @classmethod
    def parse(cls, body: bytes) -> Self:
        """Decode a message body; `PoisonMessage` says why it cannot be used."""
        try:
            model = cls.model_validate_json(body)
        except ValidationError as exc:
            raise PoisonMessage(f"invalid {cls.__name__}: {exc.errors(include_url=False)!r}"[:900]) from exc
        except (UnicodeDecodeError, ValueError) as exc:
            raise PoisonMessage(f"{cls.__name__} body is not JSON: {exc}") from exc
        if model.schema_version not in cls.supported_versions():
            raise PoisonMessage(
                f"{cls.__name__} schema_version {model.schema_version} not supported "
                f"(supported: {sorted(cls.supported_versions())})"
            )
        return model

    @classmethod
    def supported_versions(cls) -> set[int]:
        return {1}


class ProactivePrompt(BusModel):
    """Something the agent should say first to a user (topic ``voice_proactive``).

    ``idempotency_key`` identifies the prompt across retries and republishing: it is spoken at most once.
    Either ``text`` (spoken verbatim) or ``intent`` (the agent phrases it) must be set. Times are epoch seconds.
    """

    message_id: str = Field(default_factory=lambda: uuid.uuid4().hex)
    idempotency_key: str = Field(min_length=1, max_length=200)
    tenant: str = "default"
    user_id: str = Field(min_length=1, max_length=200)
    text: str | None = None
    intent: str | None = None
    priority: int = Field(5, ge=0, le=9)  # 0 = most urgent
    created_at: float = Field(default_factory=time.time)
    expires_at: float | None = None
    campaign_id: str | None = None

    @model_validator(mode="after")
    def _needs_text_or_intent(self) -> ProactivePrompt:
        if not (self.text and self.text.strip()) and not (self.intent and self.intent.strip()):
            raise ValueError("a proactive prompt needs text or intent")
        if self.expires_at is not None and self.expires_at < self.created_at:
            raise ValueError("expires_at is before created_at")
        return self

    def expired(self, now: float | None = None) -> bool:
        return self.expires_at is not None and (now if now is not None else time.time()) >= self.expires_at

    @property
    def spoken_text(self) -> str:
        """What to say: the text, else the intent (the agent may rephrase an intent before speaking)."""
        return (self.text or self.intent or "").strip()


class ConversationEvent(BusModel):
    """A call's lifecycle and its final user/agent turns (topic ``voice_conversation``), read by the
    intent-analysis jobs of the scheduler."""

    event: Literal["call_started", "call_ended", "final_turn"]
    call_id: str = Field(min_length=1)
    user_id: str | None = None
    node_id: str | None = None
    text: str | None = None
    role: Literal["user", "agent"] | None = None
    ts: float = Field(default_factory=time.time)


class KnowledgeChange(BusModel):
    """Reference shape of a change event on ``knowledge_changes`` (CDC). The knowledge package owns and
    validates the real model; this one exists so producers in ``server`` and ``scheduler`` agree on it."""

    op: Literal["upsert", "delete"]
    doc_id: str = Field(min_length=1)
    source: str | None = None
    title: str | None = None
    text: str | None = None
    uri: str | None = None
    version: str | None = None
    ts: float = Field(default_factory=time.time)
