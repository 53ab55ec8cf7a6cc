"""Message bus: one `MessageBus` interface with an in-process backend and a RocketMQ 5 backend."""

from server.bus.base import (
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
