"""Topic ``voice_proactive``: what the agent should say first to a user (the scheduler produces, every node
consumes; see ``server/proactive/README.md`` for the delivery rules)."""

from __future__ import annotations

import time
import uuid

from pydantic import Field, model_validator

from messaging.schemas.base import BusModel


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
    # Keys that answer the prompt ("press 1 to confirm, 2 to cancel": "12"); the key pressed (or none) is
    # recorded with the delivery. Optional and additive: schema_version stays 1.
    expect_digits: str | None = Field(None, pattern=r"^[0-9*#A-D]{1,12}$")

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
