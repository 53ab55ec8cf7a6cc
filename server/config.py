"""Typed settings of the server and its transports (section ``server``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field

from server.security.config import CallTokenConfig, RateLimitConfig, TenantAdminToken, TurnConfig


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
    # The admin API and dashboard refuse requests without it. A placeholder is refused beyond loopback and
    # replaced by a random token printed at start on loopback (server.security.startup).
    admin_token: str = "change-me"
    tenant_admin_tokens: list[TenantAdminToken] = []  # admin tokens that see and change one tenant only
    call_tokens: CallTokenConfig = CallTokenConfig()  # caller identity; no secret: anonymous calls
    ice_servers: list[IceServer] = []  # static STUN/TURN servers
    turn: TurnConfig = TurnConfig()  # TURN with ephemeral credentials, handed to authorised callers only
    allowed_origins: list[str] = []  # browser origins allowed on call endpoints besides the server's own
    rate_limits: RateLimitConfig = RateLimitConfig()
    trust_forwarded_for: bool = False  # behind a reverse proxy: the client is X-Forwarded-For's first hop
    metrics_public: bool = True  # /metrics for Prometheus scrapers; false: it needs an admin token
    call: CallConfig = CallConfig()
    rag: bool = True  # start the knowledge base in `serve` and give calls retrieval; off: LLM only
    # Calls this node carries at once, over every transport; past it a caller gets "all lines are busy"
    # (HTTP/SIP 503 + Retry-After, WebSocket close 1013). 0 refuses every call (draining a node).
    # Measured on 2 cores with the default models (bench/capacity.py, 2026-11-29, quiet machine): 4 realistic
    # callers keep p95 voice-to-voice at 0.81 s, 6 reach 1.75 s (over the 1.5 s bar). Set it per machine.
    max_calls: int = Field(4, ge=0)
    busy_retry_after_s: int = Field(5, ge=1)
    # After calls end, give the heap they freed back to the OS (glibc malloc_trim; server/calls/memory_trim.py),
    # at most once per this many seconds; 0: never.
    heap_trim_interval_s: float = Field(10.0, ge=0)
    # glibc's allocator for a long-running node (server/allocator.py), both off by default (measured trade-offs
    # there): at most heap_arena_max arenas; blocks from heap_mmap_threshold_kb up on mmap, returned to the OS
    # when freed (less RSS growth, but each Whisper transcription then faults its work tensors in afresh:
    # ~+0.05 CPU s). 0: glibc's default (8 arenas per core; a threshold rising up to 32 MB).
    heap_arena_max: int = Field(0, ge=0)
    heap_mmap_threshold_kb: int = Field(0, ge=0, le=32 * 1024)


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
    # Call records and conversation events that could not be written (database or broker away) wait here
    # and are replayed every spool_retry_s; past spool_max_mb new ones are refused (counted, logged).
    spool_dir: str | None = None  # default: "spool" next to a SQLite records file, else data/spool
    spool_max_mb: float = Field(default=64.0, gt=0)
    spool_retry_s: float = Field(default=5.0, gt=0)

    def spool_root(self) -> str:
        """The folder of the outage spools (``spool_dir``, or ``spool`` next to a SQLite records file)."""
        if self.spool_dir is not None:
            return self.spool_dir
        records = str(self.records)
        return str(Path(records).parent / "spool") if "://" not in records else "data/spool"
