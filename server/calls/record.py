"""Call records: transcript with timestamps, per-reply timings, sources and interruptions.

A ``CallRecord`` is filled in by the call session while the call runs and saved when it ends (and on
start, so a crashed node still leaves a row). ``CallRecordStore`` is where they live
(``server.storage.call_records``: SQLite or PostgreSQL).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol


@dataclass
class TranscriptEntry:
    role: str  # "user" | "agent"
    text: str
    t: float  # unix time the utterance ended (user) or started playing (agent)
    source: str = "reply"  # agent: "reply" | "greeting" | "proactive" | "goodbye"; user: "reply" (spoken) | "dtmf"
    interrupted: bool = False
    message_id: str | None = None


@dataclass
class RecordedTurn:
    """One reply as the call record keeps it; stage values are seconds after the end of the caller's speech."""

    index: int
    user_text: str
    agent_text: str = ""
    speech_end: float = 0.0  # unix time
    stages: dict[str, float] = field(
        default_factory=dict
    )  # stt_final, llm_first_token, tts_first_audio, first_audio_out
    sources: list[dict[str, Any]] = field(default_factory=list)
    interrupted: bool = False
    error: str | None = None  # e.g. the TTS failed and the caller heard the apology
    # Why the agent said what it said (``agent.turn.TurnRecord.grounding()``): produced_by, confidence,
    # evidence [{doc_id, source_id, sentence, score}], sentences, rejected [{text, unsupported}]. None for
    # turns recorded before it was kept, or by an agent that keeps none.
    grounding: dict[str, Any] | None = None


@dataclass
class CallRecord:
    call_id: str
    node_id: str
    user_id: str | None = None
    started_at: float = field(default_factory=time.time)
    ended_at: float | None = None
    end_reason: str | None = None
    transcript: list[TranscriptEntry] = field(default_factory=list)
    turns: list[RecordedTurn] = field(default_factory=list)
    interruptions: list[dict[str, Any]] = field(default_factory=list)
    tenant: str = "default"

    def add_user(self, text: str) -> None:
        self.transcript.append(TranscriptEntry("user", text, time.time()))

    def add_key(self, key: str) -> None:
        """A key the caller pressed (DTMF), in the transcript as a user entry of source ``dtmf``."""
        self.transcript.append(TranscriptEntry("user", key, time.time(), source="dtmf"))

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
        record.turns = [RecordedTurn(**t) for t in data.get("turns", [])]
        return record


class CallRecordStore(Protocol):
    """Where call records live. ``recent`` gives summaries (newest first) without the transcript body."""

    async def save(self, record: CallRecord) -> None: ...

    async def get(self, call_id: str) -> CallRecord | None: ...

    async def recent(
        self, limit: int = 50, user_id: str | None = None, tenant: str | None = None
    ) -> list[dict[str, Any]]: ...

    def close(self) -> None: ...


def call_summary(
    call_id: str,
    user_id: str | None,
    node_id: str,
    started_at: float,
    ended_at: float | None,
    end_reason: str | None,
    body: dict[str, Any],
    tenant: str = "default",
) -> dict[str, Any]:
    """The list view of one call (both stores return this shape)."""
    return {
        "call_id": call_id,
        "user_id": user_id,
        "tenant": tenant,
        "node_id": node_id,
        "started_at": started_at,
        "ended_at": ended_at,
        "end_reason": end_reason,
        "turns": len(body.get("turns", [])),
        "interruptions": len(body.get("interruptions", [])),
    }
