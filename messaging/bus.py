"""The message bus interface shared by every backend, its message type and its errors.

Delivery semantics (all backends): each consumer group receives each message once; a message is
acknowledged only after its handler returned; a handler that raises is retried with exponential backoff
up to ``max_attempts`` deliveries; after that, or at once when the handler raises `PoisonMessage`, the
message goes to the dead-letter topic ``<topic><dead_letter_suffix>`` (``voice_proactive_dlq``) with the
reason in its properties, and the consumer carries on. Delivery is at-least-once: handlers must be
idempotent (the proactive consumer keys its ledger on the prompt's idempotency key).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Generator
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

# Properties the bus sets on dead-lettered messages.
DLQ_GROUP = "dlq_group"
DLQ_REASON = "dlq_reason"
DLQ_ORIGINAL_ID = "dlq_original_message_id"
DLQ_ATTEMPTS = "dlq_attempts"


class BusError(Exception):
    """Base class of message-bus errors."""


class BusClosedError(BusError):
    """The bus was used after `close()`."""


class PublishError(BusError):
    """A message could not be published (broker unreachable past the publish timeout, topic missing...)."""


class PoisonMessage(BusError):
    """Raised by a handler (or a schema parser) for a message that can never be processed.

    The bus dead-letters it at once instead of retrying.
    """


@dataclass(frozen=True)
class Message:
    """One delivered message. ``attempt`` counts deliveries to this consumer group, starting at 1."""

    topic: str
    body: bytes
    key: str | None = None
    tag: str | None = None
    properties: dict[str, str] = field(default_factory=dict)
    message_id: str = ""
    attempt: int = 1
    publish_time: float = 0.0  # epoch seconds, set by the producer side


Handler = Callable[[Message], Awaitable[None]]


class Subscription:
    """Returned by `MessageBus.subscribe`. Registration happens at call time; ``await sub`` waits until
    the consumer is receiving (after `start()`), so messages published afterwards reach this group."""

    def __init__(self, topic: str, group: str, handler: Handler, tag: str | None) -> None:
        self.topic = topic
        self.group = group
        self.handler = handler
        self.tag = tag
        self.ready = asyncio.Event()

    def matches(self, tag: str | None) -> bool:
        if self.tag is None or self.tag == "*":
            return True
        return tag is not None and tag in self.tag.split("||")

    async def wait_ready(self) -> Subscription:
        await self.ready.wait()
        return self

    def __await__(self) -> Generator[Any, None, Subscription]:
        return self.wait_ready().__await__()


@runtime_checkable
class MessageBus(Protocol):
    """Publish/subscribe with consumer groups, retries and dead letters (see the module docstring)."""

    async def publish(
        self,
        topic: str,
        body: bytes,
        key: str | None = None,
        tag: str | None = None,
        properties: dict[str, str] | None = None,
    ) -> str:
        """Publish and return the message id once the backend has stored the message."""
        ...

    def subscribe(self, topic: str, group: str, handler: Handler, tag: str | None = None) -> Subscription:
        """Register ``handler`` for ``topic`` under consumer ``group``; ``tag`` filters (``"a||b"``)."""
        ...

    async def start(self) -> None: ...

    async def close(self) -> None:
        """Stop receiving, wait for running handlers (bounded), release connections."""
        ...


def check_open(closed: bool, action: str, topic: str, body: bytes | None = None) -> None:
    """The argument checks every backend makes before publishing or subscribing, with one wording."""
    if closed:
        raise BusClosedError(f"{action} {topic!r} after close()")
    if body is not None and not body:
        raise ValueError(f"{action} {topic!r}: empty body")


def backoff_s(attempt: int, base_s: float, max_s: float) -> float:
    """Delay before delivery ``attempt + 1`` after delivery ``attempt`` failed."""
    return float(min(max_s, base_s * (2 ** max(0, attempt - 1))))


def dead_letter_topic(topic: str, suffix: str) -> str:
    return f"{topic}{suffix}"


@dataclass(frozen=True)
class Outcome:
    """What a backend does with a delivery once its handler finished."""

    action: str  # "ack" | "retry" | "dead_letter"
    reason: str = ""


async def run_handler(handler: Handler, message: Message, max_attempts: int) -> Outcome:
    """Run one delivery through its handler and decide ack / retry / dead letter."""
    try:
        await handler(message)
    except PoisonMessage as exc:
        return Outcome("dead_letter", f"poison: {exc}")
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # noqa: BLE001 - any handler failure is retried; the reason goes to the log and the DLQ
        reason = f"{type(exc).__name__}: {exc}"
        if message.attempt >= max_attempts:
            return Outcome("dead_letter", f"gave up after {message.attempt} attempts: {reason}")
        return Outcome("retry", reason)
    return Outcome("ack")


def dead_letter_properties(message: Message, group: str, reason: str) -> dict[str, str]:
    props = dict(message.properties)
    props.update(
        {
            DLQ_GROUP: group,
            DLQ_REASON: reason[:1000] or "unknown",
            DLQ_ORIGINAL_ID: message.message_id or "unknown",
            DLQ_ATTEMPTS: str(message.attempt),
        }
    )
    return props
