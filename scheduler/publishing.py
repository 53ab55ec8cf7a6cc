"""The prompt the scheduler wants spoken, and the port that publishes it to the ``voice_proactive`` topic.

The scheduler builds ``OutgoingPrompt`` values; ``BusPromptPublisher`` turns them into the bus schema
(``messaging.schemas.ProactivePrompt``) so the wire format stays owned by ``messaging``.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from messaging.bus import MessageBus
from messaging.schemas import ProactivePrompt
from scheduler.timeutil import as_utc, utcnow

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class OutgoingPrompt:
    user_id: str
    text: str | None  # words to speak; None when the agent should phrase `intent` itself
    intent: str | None
    source: str  # campaign | intent | callback | admin
    idempotency_key: str
    expires_at: datetime
    campaign_id: str | None = None
    conversation_id: str | None = None
    reason: str | None = None
    prompt_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    created_at: datetime = field(default_factory=utcnow)
    tenant: str = "default"  # user ids are unique within a tenant

    def to_job_arg(self) -> dict[str, Any]:
        """A JSON-serialisable form, so a deferred prompt can sit in the persistent job store."""
        data = asdict(self)
        data["expires_at"] = self.expires_at.isoformat()
        data["created_at"] = self.created_at.isoformat()
        return data

    @classmethod
    def from_job_arg(cls, data: dict[str, Any]) -> OutgoingPrompt:
        values = dict(data)
        values["expires_at"] = as_utc(datetime.fromisoformat(values["expires_at"]))
        values["created_at"] = as_utc(datetime.fromisoformat(values["created_at"]))
        return cls(**values)


class PromptPublisher(Protocol):
    """Publishes one proactive prompt; raising means it was not published."""

    async def publish_prompt(self, prompt: OutgoingPrompt) -> None: ...


class BusPromptPublisher:
    """PromptPublisher on the message bus: one ``ProactivePrompt`` message per prompt, keyed by user id."""

    def __init__(self, bus: MessageBus, topic: str = "voice_proactive") -> None:
        self._bus = bus
        self._topic = topic

    async def publish_prompt(self, prompt: OutgoingPrompt) -> None:
        body = proactive_prompt(prompt).to_bytes()
        await self._bus.publish(
            self._topic,
            body,
            key=prompt.user_id,
            tag=prompt.source,
            properties={"idempotency_key": prompt.idempotency_key, "user_id": prompt.user_id},
        )
        log.info(
            "published proactive prompt",
            extra={"user_id": prompt.user_id, "prompt_id": prompt.prompt_id, "key": prompt.idempotency_key},
        )


def proactive_prompt(prompt: OutgoingPrompt) -> ProactivePrompt:
    """The bus message of ``prompt`` (schema ``messaging.schemas.ProactivePrompt``)."""
    return ProactivePrompt(
        message_id=prompt.prompt_id,
        idempotency_key=prompt.idempotency_key,
        tenant=prompt.tenant,
        user_id=prompt.user_id,
        text=prompt.text,
        intent=prompt.intent,
        priority=_PRIORITY.get(prompt.source, 5),
        created_at=prompt.created_at.timestamp(),
        expires_at=prompt.expires_at.timestamp(),
        campaign_id=prompt.campaign_id,
    )


# 0 = most urgent: a call-back the user asked for beats a follow-up the scheduler guessed.
_PRIORITY = {"callback": 2, "admin": 3, "intent": 5, "campaign": 6}
MAX_KEY_LENGTH = 200  # ProactivePrompt.idempotency_key


def idempotency_key(*parts: str) -> str:
    """``a:b:c`` from ``parts``; when too long for the bus schema, the tail becomes a stable hash."""
    key = ":".join(parts)
    if len(key) <= MAX_KEY_LENGTH:
        return key
    digest = hashlib.sha256(key.encode()).hexdigest()
    return f"{key[: MAX_KEY_LENGTH - len(digest) - 1]}~{digest}"


def admin_prompt(
    user_id: str, text: str | None, intent: str | None, ttl_s: int, now: datetime, tenant: str = "default"
) -> OutgoingPrompt:
    """A prompt an admin sends now from the dashboard."""
    return OutgoingPrompt(
        tenant=tenant,
        user_id=user_id,
        text=text,
        intent=intent,
        source="admin",
        idempotency_key=idempotency_key("admin", uuid.uuid4().hex),
        expires_at=now + timedelta(seconds=ttl_s),
        reason="sent from the admin dashboard",
    )


def callback_prompt(
    user_id: str, at: datetime, reason: str, ttl_s: int, tenant: str = "default"
) -> OutgoingPrompt:
    """The call-back the agent promised (``schedule_callback`` tool).

    ``ProactivePrompt`` has no field for the reason, so it goes into the spoken text.
    """
    return OutgoingPrompt(
        tenant=tenant,
        user_id=user_id,
        text=f"Hello again! You asked me to call you back about {reason.strip().rstrip('.')}.",
        intent="callback",
        source="callback",
        idempotency_key=idempotency_key("callback", uuid.uuid4().hex),
        expires_at=at + timedelta(seconds=ttl_s),
        reason=reason,
    )


def send_result(prompt: OutgoingPrompt, outcome: str) -> dict[str, Any]:
    return {
        "prompt_id": prompt.prompt_id,
        "idempotency_key": prompt.idempotency_key,
        "user_id": prompt.user_id,
        "tenant": prompt.tenant,
        "status": outcome,
        "expires_at": prompt.expires_at.isoformat(),
    }
