"""Picks the message-bus backend named in `BusConfig.backend`."""

from __future__ import annotations

from messaging.bus import MessageBus
from messaging.config import BusConfig


def create_bus(config: BusConfig) -> MessageBus:
    """A new, not yet started bus. The RocketMQ client is imported only when that backend is chosen."""
    if config.backend == "embedded":
        from messaging.embedded import EmbeddedBus

        return EmbeddedBus(config)
    if config.backend == "rocketmq":
        from messaging.rocketmq import RocketMQBus

        return RocketMQBus(config)
    raise ValueError(f"unknown bus backend {config.backend!r}; use 'embedded' or 'rocketmq'")
