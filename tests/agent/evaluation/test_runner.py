"""The runner on a scripted conversation (orchestration only: replies, turns and timings are faked)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from agent.evaluation import EvalCase, evaluate, format_failures, format_scores
from agent.evaluation.cli import below_minimum


@dataclass
class FakeEvidence:
    sentence: str

    def as_dict(self) -> dict[str, Any]:
        return {"doc_id": "faq.md", "source_id": "faq.md#0", "sentence": self.sentence}


@dataclass
class FakeTurn:
    evidence: list[Any] = field(default_factory=list)
    retrieval_queries: list[str] = field(default_factory=list)
    produced_by: str | None = "extractive"
    confidence: float | None = 0.8


class FakeConversation:
    """Answers from a script keyed by the caller's words; the first sentence after ``delay_s``."""

    def __init__(self, script: dict[str, str], delay_s: float = 0.0) -> None:
        self.script = script
        self.delay_s = delay_s
        self.heard: list[str] = []
        self.last_turn: FakeTurn | None = None

    async def respond(self, text: str) -> AsyncIterator[str]:
        self.heard.append(text)
        self.last_turn = FakeTurn([FakeEvidence(e) for e in EVIDENCE.get(text, [])])
        await asyncio.sleep(self.delay_s)
        for sentence in self.script.get(text, "Sorry?").split(". "):
            yield sentence.rstrip(".") + ". "


REFUSAL = "I don't have that information. I can have someone call you back."
SCRIPT = {
    "How much is a battery?": "A battery costs $69.",
    "When are you open on Saturday?": "Saturday: 10 am to 5 pm.",
    "And on Sundays?": "Sunday: closed.",
    "How much is a screen?": "A screen costs $99.",  # wrong: the accepted answer is 149
    "Do you sell gift cards?": REFUSAL,
    "Do you sell cases?": "Yes, cases cost $15.",  # must refuse; invents a price
    "Thanks!": "You're welcome.",
}
EVIDENCE = {  # what the fake agent says it found (the screen's real price is 149)
    "How much is a battery?": ["A battery replacement costs $69."],
    "And on Sundays?": ["Sunday: closed."],
    "How much is a screen?": ["A screen replacement costs $149."],
}
CASES = [
    EvalCase("a1", "How much is a battery?", expect=(("69",),)),
    EvalCase("a2", "And on Sundays?", expect=(("closed",),), after=("When are you open on Saturday?",)),
    EvalCase("a3", "How much is a screen?", expect=(("149",),), split="dev"),
    EvalCase("u1", "Do you sell gift cards?", refuse=True),
    EvalCase("u2", "Do you sell cases?", refuse=True),
    EvalCase("s1", "Thanks!"),
]


async def test_scores_and_failures() -> None:
    made: list[FakeConversation] = []

    def factory() -> FakeConversation:
        made.append(FakeConversation(SCRIPT, delay_s=0.02))
        return made[-1]

    report = await evaluate(CASES, factory, known_texts=[REFUSAL])
    assert made[1].heard == [
        "When are you open on Saturday?",
        "And on Sundays?",
    ]  # fresh call, turns replayed
    scores = report.scores()
    assert scores["answer_accuracy"] == round(2 / 3, 4)
    assert scores["unanswerable_refusal_rate"] == 0.5
    assert scores["invented_fact_rate"] == round(2 / 6, 4)  # the $99 screen and the $15 cases
    assert scores["wrong_answer_rate"] == round(1 / 3, 4) and scores["small_talk_refusal_rate"] == 0.0
    assert scores["questions"] == 6 and 0.02 <= scores["first_sentence_s_p50"] < 0.5
    assert report.scores("dev")["questions"] == 1
    assert [r.case.id for r in report.failures()] == ["a3", "u2"]
    table = format_failures(report)
    assert "a3 (dev" in table and "fact missing" in table and "invented $99" in table
    assert "not refused" in table and "expected 149" in table and "said     A screen costs $99." in table
    assert "answer_accuracy" in format_scores(report) and "dev" in format_scores(report)
    assert below_minimum(report, min_accuracy=0.9) == ["answer_accuracy 0.667 (needs >= 0.9)"]
    assert below_minimum(report, min_accuracy=0.5, max_invented_rate=0.5) == []


async def test_a_failing_conversation_is_a_failed_case_not_a_crash() -> None:
    class BrokenConversation(FakeConversation):
        async def respond(self, text: str) -> AsyncIterator[str]:
            raise RuntimeError("model file missing")
            yield ""  # pragma: no cover

    report = await evaluate(CASES[:1], lambda: BrokenConversation({}))
    (result,) = report.results
    assert result.error == "RuntimeError: model file missing" and not result.passed
