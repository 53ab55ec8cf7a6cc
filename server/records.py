"""Call records: transcript with timestamps, per-turn timings, sources and interruptions.

A ``CallRecord`` is filled in by the call session while the call runs and saved when it ends (and on
start, so a crashed node still leaves a row). One row per call; the variable parts are JSON, because they
are read whole (call page, admin dashboard) and never queried field by field. Stores: a SQLite file here
(one node), PostgreSQL in ``server/records_postgres.py`` (several nodes, one database); ``server.records_db``
picks one: a path, or a ``postgresql://`` DSN.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sqlite3
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS calls (
    call_id TEXT PRIMARY KEY,
    user_id TEXT,
    node_id TEXT NOT NULL,
    started_at REAL NOT NULL,
    ended_at REAL,
    end_reason TEXT,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS calls_started ON calls (started_at DESC);
CREATE INDEX IF NOT EXISTS calls_user ON calls (user_id, started_at DESC);
"""


@dataclass
class TranscriptEntry:
    role: str  # "user" | "agent"
    text: str
    t: float  # unix time the utterance ended (user) or started playing (agent)
    source: str = "reply"  # agent: "reply" | "greeting" | "proactive"
    interrupted: bool = False
    message_id: str | None = None


@dataclass
class TurnRecord:
    """Timings of one reply; stage values are seconds after the end of the caller's speech."""

    index: int
    user_text: str
    agent_text: str = ""
    speech_end: float = 0.0  # unix time
    stages: dict[str, float] = field(
        default_factory=dict
    )  # stt_final, llm_first_token, tts_first_audio, first_audio_out
    sources: list[dict[str, Any]] = field(default_factory=list)
    interrupted: bool = False


@dataclass
class CallRecord:
    call_id: str
    node_id: str
    user_id: str | None = None
    started_at: float = field(default_factory=time.time)
    ended_at: float | None = None
    end_reason: str | None = None
    transcript: list[TranscriptEntry] = field(default_factory=list)
    turns: list[TurnRecord] = field(default_factory=list)
    interruptions: list[dict[str, Any]] = field(default_factory=list)

    def add_user(self, text: str) -> None:
        self.transcript.append(TranscriptEntry("user", text, time.time()))

    def add_agent(self, text: str, source: str = "reply", message_id: str | None = None) -> TranscriptEntry:
        entry = TranscriptEntry("agent", text, time.time(), source=source, message_id=message_id)
        self.transcript.append(entry)
        return entry

    def add_interruption(self, spoken_text: str) -> None:
        self.interruptions.append({"t": time.time(), "spoken_text": spoken_text})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CallRecord:
        record = cls(**{k: v for k, v in data.items() if k not in ("transcript", "turns")})
        record.transcript = [TranscriptEntry(**e) for e in data.get("transcript", [])]
        record.turns = [TurnRecord(**t) for t in data.get("turns", [])]
        return record


class CallRecordStore(Protocol):
    """Where call records live. ``recent`` gives summaries (newest first) without the transcript body."""

    async def save(self, record: CallRecord) -> None: ...

    async def get(self, call_id: str) -> CallRecord | None: ...

    async def recent(self, limit: int = 50, user_id: str | None = None) -> list[dict[str, Any]]: ...

    def close(self) -> None: ...


def open_call_record_store(target: str | Path) -> CallRecordStore:
    """A PostgreSQL store for a ``postgresql://`` DSN, else a SQLite file at that path."""
    if str(target).startswith(("postgresql://", "postgres://")):
        from server.records_postgres import PostgresCallRecordStore

        return PostgresCallRecordStore(str(target))
    return SqliteCallRecordStore(target)


def summary(
    call_id: str,
    user_id: str | None,
    node_id: str,
    started_at: float,
    ended_at: float | None,
    end_reason: str | None,
    body: dict[str, Any],
) -> dict[str, Any]:
    """The list view of one call (both stores return this shape)."""
    return {
        "call_id": call_id,
        "user_id": user_id,
        "node_id": node_id,
        "started_at": started_at,
        "ended_at": ended_at,
        "end_reason": end_reason,
        "turns": len(body.get("turns", [])),
        "interruptions": len(body.get("interruptions", [])),
    }


class SqliteCallRecordStore:
    """SQLite file of call records; blocking work runs in a thread so the event loop keeps serving audio."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if str(path) != ":memory:":
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False)
        self._db.executescript(_SCHEMA)

    async def save(self, record: CallRecord) -> None:
        await asyncio.to_thread(self._save, record)

    async def get(self, call_id: str) -> CallRecord | None:
        return await asyncio.to_thread(self._get, call_id)

    async def recent(self, limit: int = 50, user_id: str | None = None) -> list[dict[str, Any]]:
        """Newest first; summaries without the transcript body."""
        return await asyncio.to_thread(self._list, limit, user_id)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _save(self, record: CallRecord) -> None:
        body = json.dumps(record.to_dict())
        with self._lock, self._db:
            self._db.execute(
                "INSERT OR REPLACE INTO calls (call_id, user_id, node_id, started_at, ended_at, end_reason, body)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    record.call_id,
                    record.user_id,
                    record.node_id,
                    record.started_at,
                    record.ended_at,
                    record.end_reason,
                    body,
                ),
            )

    def _get(self, call_id: str) -> CallRecord | None:
        with self._lock:
            row = self._db.execute("SELECT body FROM calls WHERE call_id = ?", (call_id,)).fetchone()
        return CallRecord.from_dict(json.loads(row[0])) if row else None

    def _list(self, limit: int, user_id: str | None) -> list[dict[str, Any]]:
        query = "SELECT call_id, user_id, node_id, started_at, ended_at, end_reason, body FROM calls"
        args: tuple[Any, ...] = ()
        if user_id is not None:
            query += " WHERE user_id = ?"
            args = (user_id,)
        query += " ORDER BY started_at DESC LIMIT ?"
        with self._lock:
            rows = self._db.execute(query, (*args, limit)).fetchall()
        return [summary(*row[:6], json.loads(row[6])) for row in rows]


class ConversationEventPublisher:
    """Publishes each call's lifecycle and final turns as ``ConversationEvent``s on the conversation topic,
    which the scheduler's intent analysis reads. One worker per process keeps events in order; publishing
    never blocks a call (a full queue drops the event with a warning)."""

    def __init__(self, bus: Any, topic: str, node_id: str, queue_size: int = 1000) -> None:
        self.bus = bus
        self.topic = topic
        self.node_id = node_id
        self._queue: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue(queue_size)
        self._worker: asyncio.Task[None] | None = None

    def publish(
        self,
        event: Literal["call_started", "call_ended", "final_turn"],
        call_id: str,
        user_id: str | None,
        text: str | None = None,
        role: Literal["user", "agent"] | None = None,
    ) -> None:
        from messaging.schemas import ConversationEvent

        body = ConversationEvent(
            event=event, call_id=call_id, user_id=user_id, node_id=self.node_id, text=text, role=role
        ).to_bytes()
        if self._queue.full():
            log.warning("conversation event queue full; dropping %s of call %s", event, call_id)
            return
        self._queue.put_nowait((user_id or call_id, body))
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._run(), name="conversation-events")

    async def drain(self, timeout: float = 5.0) -> None:
        """Wait until queued events were handed to the bus (server stop)."""
        if self._worker is not None and not self._worker.done():
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._queue.join(), timeout)
            self._worker.cancel()

    async def _run(self) -> None:
        while True:
            key, body = await self._queue.get()
            try:
                await self.bus.publish(self.topic, body, key=key)
            except Exception:
                log.exception("publishing a conversation event to %s failed (key %s)", self.topic, key)
            finally:
                self._queue.task_done()
