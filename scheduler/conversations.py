"""Conversation log fed by ``voice_conversation`` events, and the intent results of its conversations.

The RTC server publishes turns and call ends; the scheduler keeps just enough of them to analyse a
conversation once it has ended or gone idle, and stores one intent result per analysis.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from scheduler import db
from scheduler.timeutil import as_utc, maybe_utc


@dataclass(frozen=True)
class Turn:
    role: str  # "user" | "agent"
    text: str
    at: datetime


@dataclass(frozen=True)
class ConversationForAnalysis:
    conversation_id: str
    user_id: str
    turns: list[Turn]
    last_event_at: datetime
    tenant: str = "default"

    def transcript_text(self) -> str:
        return "\n".join(f"{t.role}: {t.text}" for t in self.turns)


class IntentOutcome(Protocol):
    """What the agent's intent analysis returns (agent.intent.IntentResult satisfies it)."""

    label: str
    confidence: float
    follow_up: bool
    prompt: str | None
    when: Any  # datetime, seconds from now, or None
    fallback: bool


class ConversationSource(Protocol):
    """Where the intent-analysis job finds conversations to analyse and stores what it found."""

    def pending_analysis(self, now: datetime, idle_s: int, limit: int) -> list[ConversationForAnalysis]: ...

    def save_intent(
        self,
        conversation: ConversationForAnalysis,
        result: IntentOutcome,
        when: datetime | None,
        at: datetime,
    ) -> None: ...


class ConversationLog:
    """SQL-backed ConversationSource plus the queries the admin API and audiences need."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def record_turn(
        self, conversation_id: str, user_id: str, role: str, text: str, at: datetime, tenant: str = "default"
    ) -> None:
        with self._engine.begin() as conn:
            self._touch(conn, conversation_id, user_id, at, tenant)
            if text.strip():
                conn.execute(
                    db.conversation_turns.insert().values(
                        conversation_id=conversation_id, role=role, text=text, at=at
                    )
                )

    def record_end(self, conversation_id: str, user_id: str, at: datetime, tenant: str = "default") -> None:
        with self._engine.begin() as conn:
            self._touch(conn, conversation_id, user_id, at, tenant)
            conn.execute(
                db.conversations.update()
                .where(db.conversations.c.conversation_id == conversation_id)
                .values(ended_at=at)
            )

    def _touch(
        self, conn: sa.Connection, conversation_id: str, user_id: str, at: datetime, tenant: str
    ) -> None:
        table = db.conversations
        row = conn.execute(
            sa.select(table.c.last_event_at).where(table.c.conversation_id == conversation_id)
        ).first()
        if row is None:
            conn.execute(
                table.insert().values(
                    conversation_id=conversation_id,
                    user_id=user_id,
                    tenant=tenant,
                    started_at=at,
                    last_event_at=at,
                )
            )
        elif as_utc(row.last_event_at) < as_utc(at):
            conn.execute(
                table.update().where(table.c.conversation_id == conversation_id).values(last_event_at=at)
            )

    def pending_analysis(self, now: datetime, idle_s: int, limit: int) -> list[ConversationForAnalysis]:
        """Ended or idle conversations with turns that no analysis has seen yet, oldest first."""
        c = db.conversations.c
        idle_before = now - timedelta(seconds=idle_s)
        query = (
            sa.select(db.conversations)
            .where(sa.or_(c.ended_at.is_not(None), c.last_event_at <= idle_before))
            .where(sa.or_(c.analyzed_at.is_(None), c.analyzed_at < c.last_event_at))
            .where(sa.exists().where(db.conversation_turns.c.conversation_id == c.conversation_id))
            .order_by(c.last_event_at)
            .limit(limit)
        )
        with self._engine.connect() as conn:
            rows = conn.execute(query).all()
            out = []
            for row in rows:
                turns = [
                    Turn(t.role, t.text, as_utc(t.at))
                    for t in conn.execute(
                        sa.select(db.conversation_turns)
                        .where(db.conversation_turns.c.conversation_id == row.conversation_id)
                        .order_by(db.conversation_turns.c.at, db.conversation_turns.c.id)
                    )
                ]
                out.append(
                    ConversationForAnalysis(
                        row.conversation_id, row.user_id, turns, as_utc(row.last_event_at), row.tenant
                    )
                )
        return out

    def save_intent(
        self,
        conversation: ConversationForAnalysis,
        result: IntentOutcome,
        when: datetime | None,
        at: datetime,
    ) -> None:
        with self._engine.begin() as conn:
            conn.execute(
                db.intent_results.insert().values(
                    conversation_id=conversation.conversation_id,
                    user_id=conversation.user_id,
                    tenant=conversation.tenant,
                    label=str(result.label),
                    confidence=float(result.confidence),
                    follow_up=bool(result.follow_up),
                    prompt=result.prompt,
                    when=when,
                    fallback=bool(result.fallback),
                    analyzed_at=at,
                )
            )
            # Marked as analysed up to the event it saw, so later turns trigger a new analysis.
            conn.execute(
                db.conversations.update()
                .where(db.conversations.c.conversation_id == conversation.conversation_id)
                .values(analyzed_at=conversation.last_event_at)
            )

    def intent_results(
        self,
        conversation_id: str | None = None,
        user_id: str | None = None,
        limit: int = 100,
        tenant: str | None = None,
    ) -> list[dict[str, Any]]:
        """Newest first; ``tenant`` None: every tenant's."""
        t = db.intent_results
        query = sa.select(t).order_by(t.c.analyzed_at.desc(), t.c.id.desc()).limit(limit)
        if tenant is not None:
            query = query.where(t.c.tenant == tenant)
        if conversation_id is not None:
            query = query.where(t.c.conversation_id == conversation_id)
        if user_id is not None:
            query = query.where(t.c.user_id == user_id)
        with self._engine.connect() as conn:
            rows = conn.execute(query).all()
        return [
            {
                "conversation_id": r.conversation_id,
                "user_id": r.user_id,
                "tenant": r.tenant,
                "label": r.label,
                "confidence": r.confidence,
                "follow_up": r.follow_up,
                "prompt": r.prompt,
                "when": w.isoformat() if (w := maybe_utc(r.when)) else None,
                "fallback": r.fallback,
                "analyzed_at": as_utc(r.analyzed_at).isoformat(),
            }
            for r in rows
        ]

    def users_with_latest_intent(self, label: str, tenant: str = "default") -> list[str]:
        """Users of ``tenant`` whose most recent intent result carries ``label``."""
        t = db.intent_results
        latest = (
            sa.select(t.c.user_id, sa.func.max(t.c.id).label("last_id"))
            .where(t.c.tenant == tenant)
            .group_by(t.c.user_id)
            .subquery()
        )
        query = (
            sa.select(t.c.user_id)
            .join(latest, t.c.id == latest.c.last_id)
            .where(t.c.label == label)
            .order_by(t.c.user_id)
        )
        with self._engine.connect() as conn:
            return [r.user_id for r in conn.execute(query)]
