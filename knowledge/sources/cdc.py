"""Change events from the ``knowledge_changes`` topic (change data capture) -> ``DocumentEvent``.

The message body is the topic's one schema, ``messaging.schemas.KnowledgeChange`` (field table in
``knowledge/README.md``). A body that is not valid JSON or does not match the schema raises
``InvalidChangeEvent``: a ``messaging.PoisonMessage``, so the bus dead-letters it at once with the reason
instead of retrying.
"""

from __future__ import annotations

from typing import Any, Protocol

from knowledge.errors import KnowledgeError
from knowledge.events import DocumentEvent
from messaging.bus import PoisonMessage
from messaging.schemas import KnowledgeChange


class InvalidChangeEvent(KnowledgeError, PoisonMessage, ValueError):
    """A change event that can never be applied (bad JSON or schema). ``reason`` says what is wrong."""

    permanent = True

    def __init__(self, reason: str, body: bytes = b"") -> None:
        self.reason = reason
        self.body_preview = body[:200]
        super().__init__(f"invalid knowledge change event: {reason}")


def parse_change_event(body: bytes | str) -> DocumentEvent:
    """Validate one message body; raises ``InvalidChangeEvent`` with the reason."""
    raw = body.encode() if isinstance(body, str) else body
    try:
        change = KnowledgeChange.parse(raw)
    except PoisonMessage as exc:
        raise InvalidChangeEvent(str(exc), raw) from exc
    return DocumentEvent.from_change(change)


class _Submitter(Protocol):
    async def submit(self, event: DocumentEvent) -> Any: ...


class ChangeEventHandler:
    """Bus handler for the change topic: ``await handler(message)`` parses ``message.body`` and submits it."""

    def __init__(self, ingestor: _Submitter) -> None:
        self.ingestor = ingestor

    async def __call__(self, message: Any) -> None:
        body = message.body if hasattr(message, "body") else message
        await self.ingestor.submit(parse_change_event(body))
