"""Typed settings of the server, its transports and the message bus (sections ``server`` and ``bus``)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class IceServer(BaseModel):
    urls: list[str]
    username: str | None = None
    credential: str | None = None


class ServerConfig(BaseModel):
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    node_id: str = "node-1"
    admin_token: str = "change-me"  # the admin API and dashboard refuse requests without it
    call_token: str | None = None  # when set, call endpoints require it
    ice_servers: list[IceServer] = []
    records_db: str = "data/calls.sqlite3"


class RocketMQConfig(BaseModel):
    endpoints: str = "127.0.0.1:8081"
    access_key: str | None = None
    secret_key: str | None = None


class BusConfig(BaseModel):
    backend: Literal["embedded", "rocketmq"] = "embedded"
    rocketmq: RocketMQConfig = RocketMQConfig()
    topic_proactive: str = "voice_proactive"
    topic_conversation: str = "voice_conversation"
    topic_knowledge: str = "knowledge_changes"
    max_attempts: int = Field(5, ge=1)
