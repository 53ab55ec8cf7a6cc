"""Admission control (``server.max_calls``), node-wide across transports, on real sockets: aiortc callers
over HTTP signaling and a ``websockets`` gateway. Past the limit an offer gets 503 with Retry-After and the
busy message, a gateway's stream is closed with 1013; a slot comes back when a call ends; a prompt for a
user whose call was refused is held and spoken at that user's next call. Fake STT/TTS/conversation: this is
orchestration (who gets a line), not speech."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import aiohttp
import pytest
import websockets
from aiohttp.test_utils import TestServer

from messaging.embedded import EmbeddedBus
from messaging.schemas import ProactivePrompt
from server.calls.admission import CallAdmission
from server.http.app import create_app
from server.proactive import ProactivePromptConsumer
from server.proactive.held_prompts import HeldPromptGreeting
from server.settings import Settings
from server.storage.delivery_ledger import open_delivery_ledger
from tests.server.caller import TEST_CALL_SECRET, RTCCaller, media_url, mint_call_token
from tests.server.fakes import fake_deps


async def _wait(predicate, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not await predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.1)


@pytest.fixture
async def node(tmp_path: Path):  # type: ignore[no-untyped-def]
    """One node with max_calls=1, its proactive consumer and held-prompt greeting on a real ledger."""
    settings = Settings()
    settings.server.call_tokens.secret = TEST_CALL_SECRET  # known callers: a held prompt finds its user
    deps = fake_deps(tmp_path, settings)
    deps.admission = CallAdmission(max_calls=1, retry_after_s=7)
    bus = EmbeddedBus()
    ledger = open_delivery_ledger(tmp_path / "ledger.sqlite3")
    consumer = ProactivePromptConsumer(bus, deps.registry, ledger, "n1")
    deps.on_call_connected.append(HeldPromptGreeting(consumer, ledger, "n1"))
    consumer.subscribe()
    await bus.start()
    server = TestServer(create_app(settings, deps), host="127.0.0.1")
    await server.start_server()
    yield server, deps, bus, ledger
    await server.close()
    await bus.close()
    ledger.close()
    deps.records.close()


async def test_a_full_node_refuses_offers_and_gateways_and_takes_calls_again_when_a_line_frees(node) -> None:  # type: ignore[no-untyped-def]
    server, deps, _, _ = node
    base = str(server.make_url("")).rstrip("/")
    first = RTCCaller(base, user_id="ada")
    await first.connect()
    await first.reply_start(after=0.0, timeout=15)  # the greeting: a line is really in use
    refused = RTCCaller(base, user_id="ben")
    with pytest.raises(RuntimeError, match=r"503.*all lines are busy"):
        await refused.connect()
    offer = {"sdp": refused.pc.localDescription.sdp, "type": "offer"}
    headers = {"Authorization": f"Bearer {mint_call_token('ben')}"}
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{base}/api/calls/offer", json=offer, headers=headers) as resp,
    ):
        assert resp.status == 503 and resp.headers["Retry-After"] == "7"
        body = await resp.json()
        assert body["busy"] is True and body["retry_after_s"] == 7
    await refused.hangup()

    url = await media_url(server, mint_call_token("eve"))
    async with websockets.connect(url) as ws:  # node-wide: the WebSocket transport counts the same lines
        await ws.send(json.dumps({"event": "start", "start": {"streamSid": "S1"}}))
        error = json.loads(await asyncio.wait_for(ws.recv(), 5))
        assert error["event"] == "error" and "all lines are busy" in error["error"]
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 5)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1013

    assert len(deps.registry) == 1 and deps.admission.refused == 3  # two offers, one gateway
    async with aiohttp.ClientSession() as http, http.get(f"{base}/metrics") as resp:
        metrics = await resp.text()
    assert 'voice_agent_call_slots{kind="limit"} 1.0' in metrics
    assert 'voice_agent_call_slots{kind="in_use"} 1.0' in metrics
    assert 'voice_agent_calls_refused_total{transport="webrtc"}' in metrics

    await first.hangup()
    await asyncio.wait_for(_until_free(deps), 10)
    again = RTCCaller(base, user_id="ben")
    await again.connect()  # the line is free again
    await again.hangup()


async def _until_free(deps) -> None:  # type: ignore[no-untyped-def]
    while deps.admission.in_use:
        await asyncio.sleep(0.05)


async def test_a_prompt_for_a_refused_caller_is_held_and_spoken_at_their_next_call(node) -> None:  # type: ignore[no-untyped-def]
    server, deps, bus, ledger = node
    base = str(server.make_url("")).rstrip("/")
    first = RTCCaller(base, user_id="cleo")
    await first.connect()
    await first.reply_start(after=0.0, timeout=15)
    with pytest.raises(RuntimeError, match="503"):
        await RTCCaller(base, user_id="dan").connect()
    prompt = ProactivePrompt(
        message_id="m-dan", idempotency_key="k-dan", user_id="dan", text="Your order has shipped.",
        expires_at=time.time() + 600,
    )
    await bus.publish("voice_proactive", prompt.to_bytes(), key="dan")

    async def held() -> bool:
        row = await ledger.get("k-dan")
        return row is not None and row.status == "pending"

    await _wait(held, 10, "the prompt held for dan")
    await first.hangup()
    await asyncio.wait_for(_until_free(deps), 10)
    second = RTCCaller(base, user_id="dan")
    await second.connect()

    async def spoken() -> bool:
        record = await second.record()
        return any(
            e["source"] == "proactive" and e["text"] == "Your order has shipped." and not e["interrupted"]
            for e in record.get("transcript", [])
        ) and (await ledger.get("k-dan")).status == "delivered"  # type: ignore[union-attr]

    await _wait(spoken, 20, "the held prompt spoken in dan's call")
    await second.hangup()
