"""Grounded replies with the real SmolLM2-135M on llama.cpp (``answer_mode`` "verified": the model answers
from the evidence sentences and each of its sentences is checked) over a real knowledge base."""

from __future__ import annotations

from typing import Any

import pytest

from agent.config import AgentConfig, GroundingConfig, LLMConfig
from agent.conversation import Conversation
from agent.evaluation.scoring import holds_fact, invented_facts, is_refusal

pytestmark = [pytest.mark.slow]


@pytest.mark.parametrize(
    ("question", "fact"),
    [
        ("How much is a battery replacement?", ["69 dollars"]),
        ("What's the price of a charging port repair?", ["59 dollars"]),
        ("How long is the warranty on a repair?", ["90-day", "90 day"]),
    ],
)
async def test_real_model_answers_hold_the_fact_and_nothing_invented(
    llamacpp_llm: Any, shop_kb: Any, question: str, fact: list[str]
) -> None:
    config = AgentConfig(
        llm=LLMConfig(max_tokens=60),
        grounding=GroundingConfig(answer_mode="verified"),
        first_token_timeout_s=20.0,
    )
    c = Conversation(llamacpp_llm, config, retriever=shop_kb.retriever, embedder=shop_kb.embedder)
    reply = "".join([piece async for piece in c.respond(question)]).strip()
    turn = c.last_turn
    assert turn is not None and turn.error is None
    print(f"\n{question!r} -> {reply!r} [{turn.produced_by}; rejected {[r.text for r in turn.rejected]}]")
    assert holds_fact(reply, fact), reply
    sources = [*config.fixed_phrases(), question, *(e.spoken_text for e in turn.evidence)]
    assert not invented_facts(reply, sources), reply
    assert turn.produced_by in ("model_verified", "extractive")


async def test_real_model_unanswerable_is_refused(llamacpp_llm: Any, shop_kb: Any) -> None:
    config = AgentConfig(grounding=GroundingConfig(answer_mode="verified"), first_token_timeout_s=20.0)
    c = Conversation(llamacpp_llm, config, retriever=shop_kb.retriever, embedder=shop_kb.embedder)
    reply = "".join([piece async for piece in c.respond("Do you sell gift cards?")]).strip()
    assert is_refusal(reply) and c.last_turn is not None and c.last_turn.produced_by == "refused", reply
