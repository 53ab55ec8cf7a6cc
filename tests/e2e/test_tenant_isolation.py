"""Tenants and identity through the real call path.

1. Two tenants hold conflicting facts under the same document id (acme's clinic opens at 7 am, globex's at
   11 am), on both knowledge stores. A caller with an acme token asks "What time does the clinic open on
   weekdays?" over a real aiortc call (Piper speech -> Opus -> Whisper -> grounded answer -> Piper ->
   Opus) and is answered from acme's document only; a globex caller from globex's.
2. On a real node with a call-token secret, a token for one user never gets another user's memory or held
   prompts: not by naming the other user in the offer, not as the same user id of another tenant.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from aiohttp.test_utils import TestServer

from agent.memory import MemoryStore
from knowledge.config import KnowledgeConfig
from knowledge.events import DocumentEvent
from knowledge.knowledge_base import KnowledgeBase
from messaging.schemas import ProactivePrompt
from server.http.app import create_app
from server.node import build_call_deps
from server.settings import Settings, load_settings
from tests.server.caller import (
    TEST_CALL_SECRET,
    RTCCaller,
    free_port,
    mint_call_token,
    real_offer,
    synthesize_speech,
    transcribe,
)

pytestmark = [pytest.mark.slow]

QUESTION = "What time does the clinic open on weekdays?"
FAQ = {
    "acme": "# Opening hours\n\nThe clinic opens at 7 am on weekdays.\n\n# Parking\n\nParking is free for patients.\n",
    "globex": "# Opening hours\n\nThe clinic opens at 11 am on weekdays.\n\n# Parking\n\nParking costs 5 dollars an hour.\n",
}
ANSWER = {"acme": ("7", "seven"), "globex": ("11", "eleven")}


@pytest.fixture(params=["embedded", pytest.param("postgres", marks=pytest.mark.integration)])
async def two_tenant_server(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[TestServer]:
    if request.param == "embedded":
        knowledge = KnowledgeConfig(embedded_path=str(tmp_path / "kb.sqlite3"))
    else:
        knowledge = KnowledgeConfig(store="postgres", postgres_dsn=request.getfixturevalue("postgres_dsn"))
    settings = Settings()
    settings.server.call_tokens.secret = TEST_CALL_SECRET
    settings.storage.records = str(tmp_path / "calls.sqlite3")
    settings.agent.memory_path = str(tmp_path / "memory.sqlite3")
    settings.agent.first_token_timeout_s = 20.0
    async with KnowledgeBase(knowledge) as kb:
        if request.param == "postgres":
            with kb.store.engine.begin() as conn:  # type: ignore[attr-defined]
                conn.exec_driver_sql("TRUNCATE knowledge_chunks, knowledge_documents")
        for tenant, text in FAQ.items():  # the same document id in both tenants
            await kb.ingestor.submit(
                DocumentEvent(
                    op="upsert", doc_id="faq", tenant=tenant, content=text, content_type="text/markdown"
                )
            )
        await kb.ingestor.wait_idle()
        deps = await build_call_deps(settings, retriever=kb.retriever, embedder=kb.embedder)
        server = TestServer(create_app(settings, deps), host="127.0.0.1")
        await server.start_server()
        try:
            yield server
        finally:
            await server.close()
            deps.records.close()


async def ask(base_url: str, tenant: str, question: Any) -> tuple[str, str, str]:
    """(what the server heard, the agent's reply text, what the caller heard) of one question."""
    caller = RTCCaller(base_url, token=mint_call_token("pat", tenant))
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
    assert record["tenant"] == tenant and record["user_id"] == "pat"
    (turn,) = record["turns"]
    return turn["user_text"], turn["agent_text"], heard


def _says(text: str, number: str) -> bool:
    return re.search(rf"(?<!\d){number}(?!\d)", text) is not None


async def test_each_tenant_hears_its_own_fact(two_tenant_server: TestServer) -> None:
    question = await synthesize_speech(QUESTION)
    base_url = str(two_tenant_server.make_url(""))
    for tenant, other in (("acme", "globex"), ("globex", "acme")):
        said, reply, heard = await ask(base_url, tenant, question)
        print(f"\n{tenant}: asked {said!r}; agent {reply!r}; heard {heard!r}")
        assert _says(reply, ANSWER[tenant][0]) or ANSWER[tenant][1] in reply.lower(), reply
        assert not _says(reply, ANSWER[other][0]) and ANSWER[other][1] not in reply.lower(), reply
        assert _says(heard, ANSWER[tenant][0]) or ANSWER[tenant][1] in heard.lower(), (
            f"{tenant} heard {heard!r}"
        )


# --- identity: memory and held prompts -----------------------------------------------------------------

ADMIN_TOKEN = "tenant-isolation-admin"


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def node(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Any]:
    from server.node import VoiceNode

    work = tmp_path_factory.mktemp("identity")
    memory = MemoryStore(work / "memory.sqlite3")
    memory.add_fact("alice", "The user's name is Alice.")
    memory.add_fact("alice", "The user's account is ACC-1111.")
    memory.for_tenant("acme").add_fact("alice", "The user's name is Alicia.")
    memory.close()
    settings = load_settings(None, environ={})
    s = settings.server
    s.host, s.port, s.node_id, s.admin_token = "127.0.0.1", free_port(), "identity", ADMIN_TOKEN
    s.call_tokens.secret = TEST_CALL_SECRET
    s.rag = False
    settings.agent.memory_path = str(work / "memory.sqlite3")
    settings.storage.records = str(work / "calls.sqlite3")
    settings.storage.delivery_ledger = str(work / "ledger.sqlite3")
    settings.scheduler.jobstore_url = f"sqlite:///{work / 'jobs.sqlite3'}"
    voice_node = VoiceNode(settings)
    await voice_node.start()
    made: list[Any] = []
    factory = voice_node.deps.new_conversation

    def capture(user_id: str | None, control: Any) -> Any:
        made.append(factory(user_id, control))
        return made[-1]

    voice_node.deps.new_conversation = capture
    voice_node.conversations = made
    try:
        yield voice_node
    finally:
        await voice_node.stop()


async def greeted(node: Any, token: str) -> RTCCaller:
    caller = RTCCaller(node.base_url, token=token)
    await caller.connect()
    await caller.reply_start(after=0.0, timeout=30)
    await caller.wait_quiet(2.0, timeout=60)  # the greeting, then any held prompt
    return caller


@pytest.mark.asyncio(loop_scope="module")
async def test_a_token_never_gets_another_users_memory_or_prompts(node: Any) -> None:
    import aiohttp

    prompt = ProactivePrompt(idempotency_key=f"held-{time.time_ns()}", user_id="alice", text="Your parcel arrived.",
                             expires_at=time.time() + 600)  # fmt: skip
    assert await node.ledger.hold_pending(prompt, "elsewhere")
    bob_token = mint_call_token("bob")
    async with aiohttp.ClientSession() as http:  # naming alice in the offer is refused, not obeyed
        body = {"sdp": await real_offer(), "type": "offer", "user_id": "alice"}
        async with http.post(f"{node.base_url}/api/calls/offer", json=body,
                             headers={"Authorization": f"Bearer {bob_token}"}) as resp:  # fmt: skip
            assert resp.status == 400
    for token, user, tenant in (
        (bob_token, "bob", "default"),
        (mint_call_token("alice", "acme"), "alice", "acme"),
    ):
        caller = await greeted(node, token)
        try:
            record = await caller.record()
            conversation = node.conversations[-1]
        finally:
            await caller.hangup()
        greeting = record["transcript"][0]["text"]
        assert (record["user_id"], record["tenant"]) == (user, tenant)
        assert "Alice!" not in greeting and not caller.events_of("proactive"), (greeting, caller.events)
        remembered = " ".join(conversation._remembered.facts)
        assert "ACC-1111" not in remembered and ("Alicia" in remembered) == (tenant == "acme")
        assert (await node.ledger.get(prompt.idempotency_key)).status == "pending"
    caller = await greeted(node, mint_call_token("alice"))
    try:
        for _ in range(100):
            if caller.events_of("proactive"):
                break
            await asyncio.sleep(0.1)
        record = await caller.record()
    finally:
        await caller.hangup()
    assert record["transcript"][0]["text"].startswith("Hello Alice!")  # her memory, her greeting
    assert [e["text"] for e in caller.events_of("proactive")] == ["Your parcel arrived."]
    assert "ACC-1111" in " ".join(node.conversations[-1]._remembered.facts)
    assert (await node.ledger.get(prompt.idempotency_key)).status == "delivered"


@pytest.mark.asyncio(loop_scope="module")
async def test_a_live_prompt_reaches_the_users_tenant_only(node: Any) -> None:
    """alice of acme is in a call; a prompt for alice of the default tenant is held, not spoken to her."""
    caller = await greeted(node, mint_call_token("alice", "acme"))
    try:
        other = ProactivePrompt(idempotency_key=f"live-{time.time_ns()}", user_id="alice", text="Default news.",
                                expires_at=time.time() + 600)  # fmt: skip
        mine = ProactivePrompt(idempotency_key=f"live-{time.time_ns()}-acme", user_id="alice", tenant="acme",
                               text="Acme news.", expires_at=time.time() + 600)  # fmt: skip
        for p in (other, mine):
            await node.bus.publish(node.settings.bus.topic_proactive, p.to_bytes(), key=p.user_id)
        for _ in range(300):  # spoken (and acknowledged) before the call ends
            row = await node.ledger.get(mine.idempotency_key)
            if row is not None and row.status == "delivered":
                break
            await asyncio.sleep(0.1)
        await asyncio.sleep(1.0)
    finally:
        await caller.hangup()
    assert [e["text"] for e in caller.events_of("proactive")] == ["Acme news."]
    assert (await node.ledger.get(other.idempotency_key)).status == "pending"
    assert (await node.ledger.get(mine.idempotency_key)).status == "delivered"
