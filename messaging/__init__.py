"""Messaging: one `MessageBus` interface with an in-process backend and a RocketMQ 5 backend, and the
versioned schemas of the topics (``messaging.schemas``). ``server``, ``scheduler`` and ``knowledge`` use it;
it imports none of them."""

from messaging.bus import (
    BusClosedError,
    BusError,
    Handler,
    Message,
    MessageBus,
    PoisonMessage,
    PublishError,
    Subscription,
)

__all__ = [
    "BusClosedError",
    "BusError",
    "Handler",
    "Message",
    "MessageBus",
    "PoisonMessage",
    "PublishError",
    "Subscription",
]
