"""Typed settings of the server, its transports and the message bus (sections ``server`` and ``bus``)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class IceServer(BaseModel):
    urls: list[str]
    username: str | None = None
    credential: str | None = None


class CallConfig(BaseModel):
    """Per-call behaviour of the RTC transport."""

    greeting: bool = True  # speak AgentConfig.greeting when the caller's audio starts flowing
    proactive_pause_ms: int = Field(700, ge=0)  # caller silence needed before a proactive prompt starts
    proactive_timeout_s: float = Field(60.0, gt=0)  # give up waiting for a pause after this long
    max_call_seconds: int = Field(3600, ge=10)
    ice_gather_timeout_s: float = Field(5.0, gt=0)
    connect_timeout_s: float = Field(30.0, gt=0)  # answered but ICE/DTLS never connected -> end the call
    # Caller audio frames held for reordering before VAD sees them (aiortc's default: 4 = 80 ms of delay).
    receive_buffer_frames: int = Field(1, ge=1, le=8)


class ServerConfig(BaseModel):
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    node_id: str = "node-1"
    admin_token: str = "change-me"  # the admin API and dashboard refuse requests without it
    call_token: str | None = None  # when set, call endpoints require it
    ice_servers: list[IceServer] = []
    records_db: str = "data/calls.sqlite3"  # a SQLite path, or a postgresql:// DSN (several nodes)
    call: CallConfig = CallConfig()
    rag: bool = True  # start the knowledge base in `serve` and give calls retrieval; off: LLM only


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
    proactive_ledger: str = "data/proactive_ledger.sqlite3"  # delivery ledger: SQLite path or postgresql:// DSN
