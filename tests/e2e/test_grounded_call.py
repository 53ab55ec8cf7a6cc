"""A real call asks a knowledge-base question; the reply audio the caller receives holds the right fact.

aiortc caller -> Opus -> server (Whisper tiny.en, grounded Conversation over a knowledge base fed through a
watched folder with the shop FAQ, Piper) -> caller. The question is synthesized at test time; the reply audio
is transcribed with Whisper. The FAQ says a battery replacement costs $69: the caller must hear 69 (the
transcript may spell it "69", "$69" or "sixty-nine"), and the turn's grounding record names the FAQ sentence,
in the call-record API and in the stored record.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestServer

from agent.conversation import Conversation
from agent.evaluation.scoring import holds_fact
from knowledge.config import KnowledgeConfig
from knowledge.knowledge_base import KnowledgeBase
from server.http.app import create_app
from server.node import build_call_deps
from server.settings import Settings
from tests.server.caller import TEST_CALL_SECRET, RTCCaller, synthesize_speech, transcribe, word_recall

pytestmark = [pytest.mark.slow]

FAQ = Path(__file__).resolve().parents[2] / "bench" / "data" / "answers" / "shop" / "faq.md"
QUESTION = "How much does a battery replacement cost?"


@pytest.fixture
async def grounded_server(tmp_path: Path) -> AsyncIterator[tuple[TestServer, Any, list[Conversation]]]:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "faq.md").write_bytes(FAQ.read_bytes())
    settings = Settings()
    settings.server.call_tokens.secret = TEST_CALL_SECRET
    settings.storage.records = str(tmp_path / "calls.sqlite3")
    settings.agent.memory_path = str(tmp_path / "memory.sqlite3")
    settings.agent.first_token_timeout_s = 20.0  # the machine is shared: do not test the holding phrase here
    knowledge = KnowledgeConfig(embedded_path=str(tmp_path / "kb.sqlite3"), watch_dir=str(inbox))
    async with KnowledgeBase(knowledge) as kb:
        await kb.ingestor.wait_idle()
        deps = await build_call_deps(settings, retriever=kb.retriever, embedder=kb.embedder)
        made: list[Conversation] = []
        server_factory = deps.new_conversation

        def new_conversation(user_id: str | None, control: Any) -> Conversation:
            made.append(server_factory(user_id, control))
            return made[-1]

        deps.new_conversation = new_conversation
        server = TestServer(create_app(settings, deps), host="127.0.0.1")
        await server.start_server()
        try:
            yield server, deps, made
        finally:
            await server.close()
            deps.records.close()


async def test_call_hears_the_price_from_the_knowledge_base(grounded_server: Any) -> None:
    server, deps, made = grounded_server
    question = await synthesize_speech(QUESTION)
    caller = RTCCaller(str(server.make_url("")), user_id="grounded-caller")
    try:
        await caller.connect()
        await caller.reply_start(after=0.0, timeout=30)  # the greeting
        await caller.wait_quiet(1.0, timeout=30)
        speech_end = await caller.say(question)
        reply_start = await caller.reply_start(after=speech_end + 0.2, timeout=40)
        await caller.wait_quiet(1.5, timeout=60)
        heard = await transcribe(caller.audio_since(reply_start))
        record = await caller.record()
    finally:
        await caller.hangup()
    (turn,) = record["turns"]
    assert word_recall(QUESTION, turn["user_text"]) >= 0.7, turn["user_text"]
    print(f"\nheard={heard!r} agent={turn['agent_text']!r} latency={reply_start - speech_end:.2f}s")
    assert "69 dollars" in turn["agent_text"], turn["agent_text"]
    assert holds_fact(heard, ["69", "sixty-nine", "sixty nine"]), f"the caller heard {heard!r}"
    grounding = made[0].last_turn.grounding()  # type: ignore[union-attr]
    assert grounding["produced_by"] == "extractive", grounding
    assert any(e["doc_id"] == "file:faq.md" and "$69" in e["sentence"] for e in grounding["evidence"]), (
        grounding
    )
    assert any(s["source_id"].startswith("file:faq.md#") for s in turn["sources"]), turn["sources"]
    # The call-record API and the stored record carry the same account of the reply.
    assert turn["grounding"] == grounding, turn.get("grounding")
    stored = await deps.records.get(caller.call_id)
    assert stored is not None and any("69 dollars" in e.text for e in stored.transcript if e.role == "agent")
    assert stored.turns[0].grounding == grounding
