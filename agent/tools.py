"""Tools the agent can call, and the protocols of the collaborators behind them.

Every tool returns a ``ToolOutcome``; failures become a spoken fallback sentence, never an exception.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, runtime_checkable

from agent.llm.base import ToolCall, ToolSpec
from agent.retrieval import Retriever

log = logging.getLogger(__name__)


@runtime_checkable
class CallbackScheduler(Protocol):
    """Schedules a call back to the user (the scheduler package implements it). Returns a job id."""

    async def schedule_callback(self, user_id: str, when: datetime, reason: str) -> str: ...


@runtime_checkable
class CallControl(Protocol):
    """Controls the live call (the transport implements it)."""

    async def end_call(self) -> None: ...

    async def transfer(self, target: str) -> None: ...


@dataclass(frozen=True)
class ToolOutcome:
    """What a tool did. ``speak``: say this directly; else ``result`` goes back to the model to phrase."""

    name: str
    ok: bool
    result: str = ""
    speak: str | None = None
    sources: list[str] = field(default_factory=list)
    ends_turn: bool = False  # end_call / transfer: nothing more to generate


SEARCH_KNOWLEDGE = ToolSpec(
    "search_knowledge",
    "Search the knowledge base for facts to answer the user's question.",
    {"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]},
)
SCHEDULE_CALLBACK = ToolSpec(
    "schedule_callback",
    "Schedule a phone call back to the user later.",
    {
        "type": "object",
        "properties": {"minutes_from_now": {"type": "integer"}, "reason": {"type": "string"}},
        "required": ["minutes_from_now", "reason"],
    },
)
END_CALL = ToolSpec(
    "end_call", "End the call when the user says goodbye.", {"type": "object", "properties": {}}
)
TRANSFER = ToolSpec(
    "transfer",
    "Transfer the call to a human agent.",
    {"type": "object", "properties": {"target": {"type": "string"}}, "required": ["target"]},
)


# Tools that change something outside the conversation: a call-back booked, the call hung up or transferred.
ACTING_TOOLS = frozenset({"schedule_callback", "end_call", "transfer"})

# Awaited before an acting tool runs, in the task producing the reply. A reply prepared while the caller only
# paused (``server.calls.reply``, speculative) may be thrown away when the caller goes on: it may look things
# up, but it must not transfer, hang up or book anything until its turn has really ended. The caller of
# ``Conversation.respond`` sets it (``ACTION_GATE.set(...)`` in its own task); unset, tools act at once.
ACTION_GATE: ContextVar[Callable[[], Awaitable[None]] | None] = ContextVar("action_gate", default=None)


class ToolBox:
    """The tools available in one conversation; only tools whose collaborator is present are offered."""

    def __init__(
        self,
        retriever: Retriever | None = None,
        scheduler: CallbackScheduler | None = None,
        call_control: CallControl | None = None,
        *,
        user_id: str = "anonymous",
        fallback: str = "Sorry, I couldn't do that just now.",
        transfer_target: str = "support",
        top_k: int = 3,
    ) -> None:
        self.retriever = retriever
        self.scheduler = scheduler
        self.call_control = call_control
        self.user_id = user_id
        self.fallback = fallback
        self.transfer_target = transfer_target
        self.top_k = top_k
        self._handlers: dict[str, tuple[ToolSpec, Callable[[Mapping[str, Any]], Awaitable[ToolOutcome]]]] = {}
        if retriever is not None:
            self._handlers["search_knowledge"] = (SEARCH_KNOWLEDGE, self._search_knowledge)
        if scheduler is not None:
            self._handlers["schedule_callback"] = (SCHEDULE_CALLBACK, self._schedule_callback)
        if call_control is not None:
            self._handlers["end_call"] = (END_CALL, self._end_call)
            self._handlers["transfer"] = (TRANSFER, self._transfer)

    def specs(self) -> list[ToolSpec]:
        return [spec for spec, _ in self._handlers.values()]

    def spec(self, name: str) -> ToolSpec | None:
        entry = self._handlers.get(name)
        return entry[0] if entry else None

    async def execute(self, call: ToolCall) -> ToolOutcome:
        """Run ``call``; any failure is logged and turned into the spoken fallback."""
        entry = self._handlers.get(call.name)
        if entry is None:
            log.warning("user %s: model called unknown tool %r", self.user_id, call.name)
            return ToolOutcome(call.name, ok=False, speak=self.fallback)
        gate = ACTION_GATE.get()
        if gate is not None and call.name in ACTING_TOOLS:
            await gate()  # cancelled with the reply when its turn never comes
        try:
            return await entry[1](call.arguments)
        except Exception:
            log.exception(
                "user %s: tool %s failed with arguments %r", self.user_id, call.name, call.arguments
            )
            return ToolOutcome(call.name, ok=False, speak=self.fallback)

    async def _search_knowledge(self, args: Mapping[str, Any]) -> ToolOutcome:
        assert self.retriever is not None
        query = str(args.get("query") or "").strip()
        if not query:
            raise ValueError("search_knowledge needs a non-empty query")
        chunks = await self.retriever.retrieve(query, k=self.top_k)
        if not chunks:
            return ToolOutcome("search_knowledge", ok=True, result="No matching information found.")
        text = "\n".join(f"- {c.text}" for c in chunks)
        return ToolOutcome("search_knowledge", ok=True, result=text, sources=[c.source_id for c in chunks])

    async def _schedule_callback(self, args: Mapping[str, Any]) -> ToolOutcome:
        assert self.scheduler is not None
        minutes = int(args.get("minutes_from_now") or 60)
        if not 0 < minutes <= 60 * 24 * 30:
            raise ValueError(f"callback must be within 30 days, got {minutes} minutes")
        reason = str(args.get("reason") or "follow-up")
        when = datetime.now(UTC) + timedelta(minutes=minutes)
        job_id = await self.scheduler.schedule_callback(self.user_id, when, reason)
        return ToolOutcome(
            "schedule_callback",
            ok=True,
            result=f"Callback {job_id} scheduled at {when.isoformat(timespec='minutes')}.",
            speak=f"Sure, I'll call you back in {_spoken_minutes(minutes)}.",
        )

    async def _end_call(self, args: Mapping[str, Any]) -> ToolOutcome:
        assert self.call_control is not None
        await self.call_control.end_call()
        return ToolOutcome("end_call", ok=True, speak="Thanks for calling. Goodbye!", ends_turn=True)

    async def _transfer(self, args: Mapping[str, Any]) -> ToolOutcome:
        assert self.call_control is not None
        target = str(args.get("target") or self.transfer_target)
        await self.call_control.transfer(target)
        return ToolOutcome(
            "transfer", ok=True, speak="One moment, I'm transferring you to a colleague.", ends_turn=True
        )


def _spoken_minutes(minutes: int) -> str:
    if minutes % 1440 == 0:
        days = minutes // 1440
        return "a day" if days == 1 else f"{days} days"
    if minutes % 60 == 0:
        hours = minutes // 60
        return "an hour" if hours == 1 else f"{hours} hours"
    return "a minute" if minutes == 1 else f"{minutes} minutes"


_NUMBER_WORDS = {
    "a": 1,
    "an": 1,
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
    "fifteen": 15,
    "twenty": 20,
    "thirty": 30,
    "forty": 40,
    "forty-five": 45,
    "fifty": 50,
}
_UNIT_MINUTES = {"minute": 1, "min": 1, "hour": 60, "day": 1440, "week": 10080}
_DELAY = re.compile(
    r"\bin (half an hour|a half hour|\d+|" + "|".join(sorted(_NUMBER_WORDS, key=len, reverse=True)) + r")"
    r"(?: (minute|min|hour|day|week)s?)?\b",
    re.IGNORECASE,
)


def callback_minutes(text: str) -> int | None:
    """Delay a caller asked for ("in two hours", "in 30 minutes", "tomorrow"), in minutes; None if unsaid."""
    lowered = text.lower()
    match = _DELAY.search(lowered)
    if match:
        amount, unit = match.group(1), match.group(2)
        if amount in ("half an hour", "a half hour"):
            return 30
        if unit is None:
            return None
        count = int(amount) if amount.isdigit() else _NUMBER_WORDS[amount]
        return count * _UNIT_MINUTES[unit]
    if "tomorrow" in lowered:
        return 1440
    return None


def arguments_from_text(
    name: str, user_text: str, default_minutes: int, transfer_target: str
) -> dict[str, Any]:
    """Arguments of a triggered tool read straight from the caller's words (no model call, exact numbers)."""
    if name == "schedule_callback":
        minutes = callback_minutes(user_text) or default_minutes
        return {"minutes_from_now": minutes, "reason": user_text.strip()[:200]}
    if name == "search_knowledge":
        return {"query": user_text.strip()}
    if name == "transfer":
        return {"target": transfer_target}
    return {}
