"""Runs evaluation cases through fresh conversations and scores the replies (``agent/evaluation/README.md``).

The runner only needs a factory of conversation-like objects (``respond(text)`` streaming text, ``last_turn``
with ``evidence`` and ``retrieval_query`` when the agent records them), and optionally the retriever they
use, so the facts of every passage the agent was handed count as evidence for ``invented_fact_rate``.
"""

from __future__ import annotations

import logging
import re
import statistics
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from agent.config import AgentConfig
from agent.evaluation.dataset import EvalCase
from agent.evaluation.scoring import holds_all, invented_facts, is_refusal
from agent.retrieval import Retriever

log = logging.getLogger(__name__)

ConversationFactory = Callable[[], Any]
_SENTENCE_END = re.compile(r"[.!?](?:[\"')\]]*)(?:\s|$)")


@dataclass
class CaseResult:
    """One scored turn: what was said, how fast, and what it got right or wrong."""

    case: EvalCase
    reply: str
    first_sentence_s: float | None
    refused: bool
    invented: list[str] = field(default_factory=list)
    correct: bool | None = None  # answerable cases only
    produced_by: str | None = None
    confidence: float | None = None
    evidence: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None

    @property
    def passed(self) -> bool:
        if self.invented or self.error:
            return False
        if self.case.category == "answerable":
            return bool(self.correct)
        if self.case.category == "unanswerable":
            return self.refused
        return not self.refused


def _rate(hits: int, total: int) -> float | None:
    return round(hits / total, 4) if total else None


@dataclass
class EvaluationReport:
    results: list[CaseResult]

    def subset(self, split: str | None) -> list[CaseResult]:
        return [r for r in self.results if split in (None, "all") or r.case.split == split]

    def scores(self, split: str | None = None) -> dict[str, Any]:
        """The scores named in issue 14, for ``split`` (None or "all": every case)."""
        rs = self.subset(split)
        answerable = [r for r in rs if r.case.category == "answerable"]
        unanswerable = [r for r in rs if r.case.category == "unanswerable"]
        small_talk = [r for r in rs if r.case.category == "small_talk"]
        times = sorted(r.first_sentence_s for r in rs if r.first_sentence_s is not None)
        produced: dict[str, int] = {}
        for r in rs:
            produced[r.produced_by or "unknown"] = produced.get(r.produced_by or "unknown", 0) + 1
        return {
            "answer_accuracy": _rate(sum(bool(r.correct) for r in answerable), len(answerable)),
            "unanswerable_refusal_rate": _rate(
                sum(r.refused and not r.invented for r in unanswerable), len(unanswerable)
            ),
            "invented_fact_rate": _rate(sum(bool(r.invented) for r in rs), len(rs)),
            "first_sentence_s_p50": round(statistics.median(times), 3) if times else None,
            "first_sentence_s_p90": round(times[min(len(times) - 1, int(0.9 * len(times)))], 3)
            if times
            else None,
            "questions": len(rs),
            "answerable": len(answerable),
            "unanswerable": len(unanswerable),
            "small_talk": len(small_talk),
            # answerable questions answered without the accepted fact, and not refused: confidently wrong
            "wrong_answer_rate": _rate(
                sum(not r.correct and not r.refused for r in answerable), len(answerable)
            ),
            "answerable_refused_rate": _rate(sum(r.refused for r in answerable), len(answerable)),
            "small_talk_refusal_rate": _rate(sum(r.refused for r in small_talk), len(small_talk)),
            "errors": sum(r.error is not None for r in rs),
            "produced_by": dict(sorted(produced.items())),
        }

    def failures(self, split: str | None = None) -> list[CaseResult]:
        return [r for r in self.subset(split) if not r.passed]


EVALUATION_RETRIEVAL_BUDGET_MS = 10_000


@dataclass(frozen=True)
class EvaluationTarget:
    """The agent an evaluation runs against, as the composition root builds it (``server.node``): a factory
    of fresh conversations, the retriever they use and the persona's fixed phrases."""

    factory: ConversationFactory
    retriever: Retriever | None = None
    known_texts: tuple[str, ...] = ()
    top_k: int = 3

    @classmethod
    def of_calls(
        cls,
        new_conversation: Callable[[str | None, Any], Any],
        retriever: Retriever | None,
        config: AgentConfig,
    ) -> EvaluationTarget:
        """The agent as calls get it: ``new_conversation(user_id, call_control)`` (a server's conversation
        factory) gives each question a fresh anonymous conversation, with one difference: the retrieval
        budget. A call answers without retrieval past ``retrieval_budget_ms`` (300 ms) to keep the caller
        from waiting; an evaluation measures answers, not speed, so a retrieval slowed by a busy machine
        must not score as a refusal (it did, on a loaded 2-core box: accuracy 0.67 -> 0.0)."""

        def fresh() -> Any:
            conversation = new_conversation(None, None)
            budget = max(conversation.config.retrieval_budget_ms, EVALUATION_RETRIEVAL_BUDGET_MS)
            conversation.config = conversation.config.model_copy(update={"retrieval_budget_ms": budget})
            return conversation

        return cls(
            fresh,
            retriever,
            tuple(config.fixed_phrases()),
            config.retrieval_top_k,
        )

    async def evaluate(
        self, cases: Sequence[EvalCase], on_result: Callable[[CaseResult], None] | None = None
    ) -> EvaluationReport:
        return await evaluate(
            cases,
            self.factory,
            retriever=self.retriever,
            known_texts=self.known_texts,
            top_k=self.top_k,
            on_result=on_result,
        )


async def evaluate(
    cases: Sequence[EvalCase],
    factory: ConversationFactory,
    *,
    retriever: Retriever | None = None,
    known_texts: Iterable[str] = (),
    top_k: int = 3,
    on_result: Callable[[CaseResult], None] | None = None,
) -> EvaluationReport:
    """Each case in a fresh conversation from ``factory``: the ``after`` turns first, then the scored one.
    ``known_texts``: the persona and fixed phrases, whose facts the agent may say."""
    persona = list(known_texts)
    results = []
    for case in cases:
        result = await run_case(case, factory, retriever, persona, top_k)
        results.append(result)
        if on_result is not None:
            on_result(result)
    return EvaluationReport(results)


async def run_case(
    case: EvalCase,
    factory: ConversationFactory,
    retriever: Retriever | None = None,
    persona: Sequence[str] = (),
    top_k: int = 3,
) -> CaseResult:
    conversation = factory()
    said: list[str] = []
    try:
        for turn_text in case.after:
            said.append(turn_text)
            said.append("".join([piece async for piece in conversation.respond(turn_text)]))
        reply, first = await _timed_reply(conversation, case.ask)
    except Exception as exc:  # a broken agent is a failed case, not a failed run
        log.exception("evaluation case %s failed", case.id)
        return CaseResult(case, "", None, False, error=f"{type(exc).__name__}: {exc}")
    turn = getattr(conversation, "last_turn", None)
    evidence = [e.as_dict() for e in getattr(turn, "evidence", [])]
    sources = [*persona, *said, case.ask, *(e["sentence"] for e in evidence)]
    queries = getattr(turn, "retrieval_queries", None) or [
        q for q in [getattr(turn, "retrieval_query", None)] if q
    ]
    if retriever is not None:
        for query in queries:
            sources.extend(c.text for c in await retriever.retrieve(query, k=top_k))
    refused = is_refusal(reply)
    return CaseResult(
        case,
        reply,
        first,
        refused,
        invented=[f.text for f in invented_facts(reply, sources)],
        correct=holds_all(reply, case.expect) if case.category == "answerable" else None,
        produced_by=getattr(turn, "produced_by", None),
        confidence=getattr(turn, "confidence", None),
        evidence=evidence,
    )


async def _timed_reply(conversation: Any, text: str) -> tuple[str, float | None]:
    """The whole reply and the seconds until its first complete sentence was out."""
    started = time.perf_counter()
    first: float | None = None
    pieces: list[str] = []
    async for piece in conversation.respond(text):
        pieces.append(piece)
        if first is None and _SENTENCE_END.search("".join(pieces)):
            first = time.perf_counter() - started
    reply = "".join(pieces).strip()
    if first is None and reply:
        first = time.perf_counter() - started
    return reply, first
