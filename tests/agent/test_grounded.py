"""Grounded replies on a real knowledge base (the shop FAQ and a café page, ingested through a watched folder,
MiniLM embeddings, hybrid retrieval) with a real ``Conversation``. The LLM is a ``FakeLLM`` where a test needs
the model to say something precise (a wrong price); the other tests use the default extractive answers."""

from __future__ import annotations

import time
from typing import Any

from agent.config import AgentConfig, GroundingConfig
from agent.conversation import Conversation
from agent.evaluation.scoring import invented_facts, is_refusal
from tests.agent.fakes import FakeLLM


def conversation(kb: Any, llm: Any = None, **grounding: Any) -> Conversation:
    config = AgentConfig(grounding=GroundingConfig(**grounding), first_token_timeout_s=5.0)
    return Conversation(llm or FakeLLM(["unused"]), config, retriever=kb.retriever, embedder=kb.embedder)


async def ask(c: Conversation, text: str) -> str:
    return "".join([piece async for piece in c.respond(text)]).strip()


def sources_of(c: Conversation) -> list[str]:
    """What a spoken fact may come from: the evidence, the conversation and the persona."""
    turn = c.last_turn
    assert turn is not None
    return [
        *c.config.fixed_phrases(),
        *(u.text for u in c.transcript),
        *(e.spoken_text for e in turn.evidence),
    ]


async def test_a_wrong_price_from_the_model_is_never_spoken(shop_kb: Any) -> None:
    """The model says the battery costs 6.90 (and, asked again, 69 cents); the caller hears the FAQ's
    sentence with 69 dollars instead, and the turn records the rejected sentence."""
    llm = FakeLLM(["Sure! A battery replacement costs $6.90 for any phone.", "It is only 69 cents."])
    c = conversation(shop_kb, llm, answer_mode="verified")
    for question in (
        "How much is it to replace the battery in my phone?",
        "What do you charge for a new battery?",
    ):
        reply = await ask(c, question)
        turn = c.last_turn
        assert turn is not None
        assert "69 dollars" in reply and "6.90" not in reply and "cents" not in reply, reply
        assert turn.produced_by == "extractive", turn.grounding()
        assert turn.rejected and turn.rejected[0].unsupported, turn.grounding()
        assert any(e.doc_id == "file:faq.md" and "$69" in e.sentence for e in turn.evidence)
        assert not invented_facts(reply, sources_of(c))
    assert len(llm.calls) == 2  # the model was asked both times; its words just never reached the caller


async def test_a_right_model_answer_is_spoken_as_model_verified(shop_kb: Any) -> None:
    llm = FakeLLM(["A new battery costs $69, whatever the phone model."])
    c = conversation(shop_kb, llm, answer_mode="verified")
    reply = await ask(c, "How much is a battery replacement?")
    assert reply == "A new battery costs 69 dollars, whatever the phone model."
    turn = c.last_turn
    assert turn is not None and turn.produced_by == "model_verified" and not turn.rejected
    record = turn.grounding()
    assert record["produced_by"] == "model_verified" and record["evidence"], record
    assert all({"doc_id", "sentence", "source_id"} <= set(e) for e in record["evidence"])


async def test_true_pieces_recombined_by_the_model_are_not_spoken(shop_kb: Any) -> None:
    """418 is the shop's number on Harbor Street; Elm Lane is the parking entrance. Each is in the evidence,
    no one sentence says "418 Elm Lane"."""
    llm = FakeLLM(["Our shop is at 418 Elm Lane in Portland."])
    c = conversation(shop_kb, llm, answer_mode="verified")
    reply = await ask(c, "Where is your shop?")
    assert "418 Elm Lane" not in reply and "418 Harbor Street" in reply, reply
    assert c.last_turn is not None and c.last_turn.rejected


async def test_a_fact_free_model_reply_gets_the_evidence_added(shop_kb: Any) -> None:
    """The model answers without the fact asked for: the evidence sentence follows, so the caller hears it."""
    llm = FakeLLM(["Sure, I can help you with that."])
    c = conversation(shop_kb, llm, answer_mode="verified")
    reply = await ask(c, "How much does a charging port repair cost?")
    assert reply.startswith("Sure, I can help you with that.") and "59 dollars" in reply, reply
    assert c.last_turn is not None and c.last_turn.produced_by == "extractive"


async def test_unanswerable_question_gets_the_refusal_and_no_invented_fact(shop_kb: Any) -> None:
    llm = FakeLLM(["Gift cards cost $25 and never expire."])
    for mode in ("extractive", "verified"):
        c = conversation(shop_kb, llm, answer_mode=mode)
        reply = await ask(c, "Do you sell gift cards, and do they expire?")
        assert is_refusal(reply) and reply == c.config.grounding.refusal, reply
        assert not invented_facts(reply, sources_of(c))
        turn = c.last_turn
        assert turn is not None and turn.produced_by == "refused" and not turn.evidence
        assert turn.confidence is not None and turn.confidence < c.config.grounding.min_confidence
    assert not llm.calls  # a refusal needs no model


async def test_small_talk_is_answered_not_refused(shop_kb: Any) -> None:
    c = conversation(shop_kb)
    replies = [await ask(c, text) for text in ("Hi there!", "How are you today?", "Thanks, that's great.")]
    assert not any(is_refusal(r) for r in replies), replies
    assert replies[0].startswith("Hello") and "thank you" in replies[1].lower() and "welcome" in replies[2]
    assert c.last_turn is not None and c.last_turn.produced_by == "small_talk"


async def test_follow_up_is_answered_from_the_right_document(shop_kb: Any) -> None:
    """ "And on Sundays?" after a question about the repair shop's Saturday hours: the shop is closed on
    Sundays (faq.md); the café next door opens at 9 on Sundays (cafe.md) and must not be the answer."""
    c = conversation(shop_kb)
    first = await ask(c, "When is the repair shop open on Saturday?")
    assert "10 am to 5 pm" in first, first
    reply = await ask(c, "And on Sundays?")
    turn = c.last_turn
    assert turn is not None and "closed" in reply.lower() and "9 am" not in reply, reply
    assert {e.doc_id for e in turn.evidence} == {"file:faq.md"}, turn.grounding()
    assert turn.retrieval_query is not None and "repair shop" in turn.retrieval_query.lower()
    cafe = await ask(conversation(shop_kb), "When is the café open on Sundays?")
    assert "9 am to 3 pm" in cafe, cafe  # the café's Sunday hours are in the knowledge base


async def test_two_part_question_gets_both_facts(shop_kb: Any) -> None:
    c = conversation(shop_kb)
    reply = await ask(c, "How much is a water damage diagnosis, and how long do water damage repairs take?")
    assert "35 dollars" in reply and "two to three business days" in reply, reply
    turn = c.last_turn
    assert turn is not None and len(turn.retrieval_queries) == 2 and not is_refusal(reply)


async def test_two_part_question_with_one_unanswerable_part(shop_kb: Any) -> None:
    c = conversation(shop_kb)
    reply = await ask(c, "How much is a charging port repair, and do you sell gift cards?")
    assert "59 dollars" in reply and reply.endswith(c.config.grounding.partial_refusal), reply
    assert c.last_turn is not None and [s.produced_by for s in c.last_turn.spoken] == [
        "extractive",
        "refused",
    ]


async def test_model_sentences_stream_one_by_one_before_the_model_finishes(shop_kb: Any) -> None:
    """Checking a sentence waits for that sentence only: the first is out while the model still writes."""
    llm = FakeLLM(
        ["A battery replacement costs $69. The price is the same for every phone model."], word_delay_s=0.05
    )
    c = conversation(shop_kb, llm, answer_mode="verified")
    started = time.perf_counter()
    stamps = [
        (time.perf_counter() - started, piece) async for piece in c.respond("How much is a new battery?")
    ]
    assert [p.strip() for _, p in stamps] == [
        "A battery replacement costs 69 dollars.",
        "The price is the same for every phone model.",
    ]
    assert stamps[1][0] - stamps[0][0] >= 0.3, stamps  # nine more words at 50 ms each came after


async def test_busy_model_holding_phrase_then_checked_answer(shop_kb: Any) -> None:
    llm = FakeLLM(["A battery replacement costs $69."], delay_s=1.0)
    c = conversation(shop_kb, llm, answer_mode="verified")
    c.config.first_token_timeout_s = 0.3
    pieces = [p.strip() async for p in c.respond("How much is a new battery?")]
    assert pieces == [c.config.holding_phrase, "A battery replacement costs 69 dollars."], pieces
    assert c.last_turn is not None and [s.produced_by for s in c.last_turn.spoken] == [
        "holding",
        "model_verified",
    ]


async def test_extractive_answer_is_fast_and_records_its_evidence(shop_kb: Any) -> None:
    c = conversation(shop_kb)
    await ask(c, "Where is your shop?")  # warms the sentence-embedding cache
    started = time.perf_counter()
    reply = await ask(c, "Do you take Apple Pay?")
    assert "Apple Pay" in reply and time.perf_counter() - started < 2.0, reply
    record = c.last_turn.grounding()  # type: ignore[union-attr]
    assert record["produced_by"] == "extractive"
    assert (
        record["evidence"][0]["doc_id"] == "file:faq.md" and "Apple Pay" in record["evidence"][0]["sentence"]
    )
    assert record["sentences"][0]["produced_by"] == "extractive"


async def test_the_retrievers_embedder_is_used_when_none_is_given(shop_kb: Any) -> None:
    """The server passes only the retriever: the knowledge base's retriever brings its embedder along."""
    c = Conversation(FakeLLM(["unused"]), AgentConfig(), retriever=shop_kb.retriever)
    assert c.selector.embedder is shop_kb.embedder
    assert "69 dollars" in await ask(c, "How much is a battery replacement?")
