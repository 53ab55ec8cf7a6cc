"""The records of a conversation: transcript lines and, per ``respond()``, what happened and why the agent
said what it said (its evidence and how each sentence was produced), for the call record and the dashboard."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Literal

from agent.evidence import Evidence
from agent.llm.base import ToolCall
from agent.tools import ToolOutcome

# model_verified: the model's sentence, every fact found in the evidence/conversation/persona;
# extractive: an evidence sentence, addressed to the caller; refused: the "I don't have that information"
# reply; small_talk: a reply to small talk (no evidence; any fact in it came from the conversation or the
# persona); model_unchecked: the model's sentence, not checked (answer_mode "unchecked" or grounding off);
# tool: a tool's fixed sentence; holding: the holding phrase; apology: the failure apology.
Production = Literal[
    "model_verified", "extractive", "refused", "small_talk", "model_unchecked", "tool", "holding", "apology"
]


@dataclass
class Utterance:
    """One line of the transcript. ``source``: user, reply, greeting, proactive, tool, apology."""

    role: Literal["user", "agent"]
    text: str
    source: str
    at: float = field(default_factory=time.time)
    interrupted: bool = False


@dataclass
class SpokenSentence:
    """One sentence the agent said in a turn, how it was produced and the evidence behind it."""

    text: str
    produced_by: Production
    evidence: list[Evidence] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "produced_by": self.produced_by,
            "evidence": [e.as_dict() for e in self.evidence],
        }


@dataclass
class RejectedSentence:
    """A model sentence that was not spoken because some of its facts are not in the evidence."""

    text: str
    unsupported: list[str]

    def as_dict(self) -> dict[str, Any]:
        return {"text": self.text, "unsupported": self.unsupported}


_PRECEDENCE: tuple[Production, ...] = (
    "apology", "refused", "extractive", "model_unchecked", "model_verified", "tool", "small_talk", "holding"
)  # fmt: skip


@dataclass
class TurnRecord:
    """What happened in one ``respond()``; times are ``time.monotonic()`` seconds."""

    user_text: str
    reply_text: str = ""
    started: float = field(default_factory=time.monotonic)
    retrieval_done: float | None = None
    llm_first_token: float | None = None
    completed: float | None = None
    sources: list[str] = field(default_factory=list)
    tool_calls: list[ToolCall] = field(default_factory=list)
    tool_outcomes: list[ToolOutcome] = field(default_factory=list)
    error: str | None = None
    apology: bool = False
    interrupted: bool = False
    # --- grounding: why the agent said what it said ---
    retrieval_queries: list[str] = field(default_factory=list)  # one per part of a two-part question
    confidence: float | None = None  # evidence confidence (None: no retrieval this turn)
    spoken: list[SpokenSentence] = field(default_factory=list)
    rejected: list[RejectedSentence] = field(default_factory=list)

    @property
    def timings(self) -> dict[str, float | None]:
        """Seconds from the start of the turn to each stage."""

        def rel(t: float | None) -> float | None:
            return None if t is None else t - self.started

        return {
            "retrieval": rel(self.retrieval_done),
            "llm_first_token": rel(self.llm_first_token),
            "completed": rel(self.completed),
        }

    @property
    def retrieval_query(self) -> str | None:
        return " | ".join(self.retrieval_queries) or None

    @property
    def produced_by(self) -> Production | None:
        """How the reply was produced, for the turn as a whole: the least model-made of its sentences
        (a reply that needed one extractive sentence counts as extractive)."""
        kinds = {s.produced_by for s in self.spoken}
        return next((k for k in _PRECEDENCE if k in kinds), None)

    @property
    def evidence(self) -> list[Evidence]:
        """Every evidence sentence behind the reply, without repeats."""
        out: list[Evidence] = []
        for sentence in self.spoken:
            out.extend(e for e in sentence.evidence if e not in out)
        return out

    def grounding(self) -> dict[str, Any]:
        """The JSON-ready account of this reply for the call record: how it was produced and from what."""
        return {
            "produced_by": self.produced_by,
            "confidence": None if self.confidence is None else round(self.confidence, 3),
            "retrieval_queries": list(self.retrieval_queries),
            "evidence": [e.as_dict() for e in self.evidence],
            "sentences": [s.as_dict() for s in self.spoken],
            "rejected": [r.as_dict() for r in self.rejected],
        }


def estimate_tokens(text: str) -> int:
    """Rough token count (about 4 characters per token for English) for budgeting the prompt."""
    return len(text) // 4 + 1
