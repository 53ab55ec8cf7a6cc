"""Typed settings of the server and its transports (section ``server``)."""

from __future__ import annotations

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
    call: CallConfig = CallConfig()
    rag: bool = True  # start the knowledge base in `serve` and give calls retrieval; off: LLM only


class StorageConfig(BaseModel):
    """Where the server's stores live (section ``storage``): each a SQLite path (one machine) or a
    ``postgresql://`` DSN (nodes on several machines share it). The timeouts apply to every database
    connection of the server (``server.storage.engine``)."""

    records: str = "data/calls.sqlite3"  # call records
    # The prompt delivery ledger, shared by the scheduler and every node.
    delivery_ledger: str = "data/proactive_ledger.sqlite3"
    # Phone number <-> user id <-> tenant <-> time zone (server.storage.phone_directory).
    phone_directory: str = "data/phone_directory.sqlite3"
    connect_timeout_s: float = Field(default=5.0, gt=0)  # PostgreSQL: give up connecting after this long
    # PostgreSQL: statement_timeout of every statement; SQLite: how long a writer waits for a lock.
    statement_timeout_s: float = Field(default=30.0, gt=0)
