"""Change events from the ``knowledge_changes`` topic (change data capture) -> ``DocumentEvent``.

The message body is the JSON form of ``DocumentEvent`` (schema in ``knowledge/README.md``). A body that is not
valid JSON or does not match the schema raises ``InvalidChangeEvent`` carrying the reason; it is permanent,
so the bus should dead-letter it at once instead of retrying.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, Protocol

from pydantic import ValidationError

from knowledge.errors import KnowledgeError
from knowledge.events import DocumentEvent


class InvalidChangeEvent(KnowledgeError, ValueError):
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
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidChangeEvent(f"body is not JSON: {exc}", raw) from exc
    if not isinstance(data, dict):
        raise InvalidChangeEvent(f"body must be a JSON object, got {type(data).__name__}", raw)
    data = _normalize(data, raw)
    if data.get("path") is not None:
        # A producer must not make a consumer read arbitrary local files.
        raise InvalidChangeEvent(
            "'path' is not allowed in change events; send content or content_base64", raw
        )
    try:
        return DocumentEvent.model_validate({"source": "cdc", **data})
    except ValidationError as exc:
        reasons = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in exc.errors())
        raise InvalidChangeEvent(reasons, raw) from exc


def _normalize(data: dict[str, Any], raw: bytes) -> dict[str, Any]:
    """Accept the producers' reference shape (``server.bus.schemas.KnowledgeChange``): ``text`` for
    ``content``, ``ts`` (seconds) as the version when there is none, a version as a string of digits,
    and null for absent optional fields."""
    data = {k: v for k, v in data.items() if v is not None}
    if "text" in data:
        if "content" in data:
            raise InvalidChangeEvent("give either 'text' or 'content', not both", raw)
        data["content"] = data.pop("text")
    ts = data.pop("ts", None)
    if "version" not in data and isinstance(ts, int | float) and ts >= 0:
        data["version"] = int(ts * 1_000_000_000)
    version = data.get("version")
    if isinstance(version, str):
        if not version.isdigit():
            raise InvalidChangeEvent(
                f"version must be an integer or a string of digits, got {version!r}", raw
            )
        data["version"] = int(version)
    if (
        "uri" in data
        and data.get("op") == "upsert"
        and "content" not in data
        and "content_base64" not in data
    ):
        raise InvalidChangeEvent("an upsert by 'uri' alone is not supported: send the text in 'content'", raw)
    return data


class _Submitter(Protocol):
    async def submit(self, event: DocumentEvent) -> Any: ...


class ChangeEventHandler:
    """Bus handler for the change topic: ``await handler(message)`` parses ``message.body`` and submits it.

    ``poison`` is the bus's "dead-letter at once" exception (``server.bus.PoisonMessage``); knowledge cannot
    import it, so the server passes it in and invalid events are re-raised as ``poison(reason)``.
    """

    def __init__(self, ingestor: _Submitter, poison: Callable[[str], Exception] | None = None) -> None:
        self.ingestor = ingestor
        self.poison = poison

    async def __call__(self, message: Any) -> None:
        body = message.body if hasattr(message, "body") else message
        try:
            event = parse_change_event(body)
        except InvalidChangeEvent as exc:
            if self.poison is None:
                raise
            raise self.poison(str(exc)) from exc
        await self.ingestor.submit(event)
