"""Typed settings of the message bus (section ``bus`` of the YAML config)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class RocketMQConfig(BaseModel):
    endpoints: str = "127.0.0.1:8081"
    access_key: str | None = None
    secret_key: str | None = None
    request_timeout_s: float = Field(default=5.0, gt=0)
    # A received message stays hidden from the group this long (extended while its handler runs).
    invisible_duration_s: float = Field(default=60.0, ge=1)
    receive_wait_s: float = Field(default=5.0, ge=1)  # long-polling wait; also bounds how long close() takes
    receive_batch: int = Field(default=16, ge=1, le=32)
    publish_timeout_s: float = Field(default=30.0, gt=0)  # retry a publish this long (broker restarts)


class BusConfig(BaseModel):
    backend: Literal["embedded", "rocketmq"] = "embedded"
    rocketmq: RocketMQConfig = RocketMQConfig()
    topic_proactive: str = "voice_proactive"
    topic_conversation: str = "voice_conversation"
    topic_knowledge: str = "knowledge_changes"
    max_attempts: int = Field(default=5, ge=1)
    retry_backoff_s: float = Field(default=1.0, ge=0)  # delay before the 2nd delivery; doubles per attempt
    retry_backoff_max_s: float = Field(default=60.0, ge=0)
    dead_letter_suffix: str = "_dlq"  # dead letters of <topic> go to <topic>_dlq
    handler_concurrency: int = Field(default=16, ge=1)  # handlers running at once per subscription
    close_timeout_s: float = Field(default=10.0, ge=0)
    # Embedded bus: messages waiting per consumer group. A publish to a full group waits up to
    # embedded_publish_wait_s for room, then fails with PublishError (the publisher keeps the message).
    embedded_queue_size: int = Field(default=10_000, ge=1)
    embedded_publish_wait_s: float = Field(default=5.0, ge=0)
    embedded_dead_letters_kept: int = Field(default=1000, ge=0)  # newest dead letters kept for inspection
