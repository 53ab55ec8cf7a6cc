"""The WebSocket media stream, driven by a gateway written with the ``websockets`` client package."""

from __future__ import annotations

import asyncio
import base64
import json
from pathlib import Path

import numpy as np
import websockets
from aiohttp.test_utils import TestServer

from messaging.schemas import ConversationEvent
from server.calls.conversation_events import ConversationEventPublisher
from server.http.app import create_app
from server.settings import Settings
from server.transports.ws_media import mulaw_decode, mulaw_encode
from speech.frames import AudioFrame
from speech.resample import Resampler
from tests.server.caller import TEST_CALL_SECRET, media_url, mint_call_token, synthesize_speech
from tests.server.fakes import fake_deps


class RecordingBus:
    """Stands in for the message bus: keeps what was published."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, bytes]] = []

    async def publish(self, topic: str, body: bytes, key: str | None = None, **_: object) -> str:
        self.messages.append((topic, body))
        return str(len(self.messages))


def test_mulaw_round_trip_is_within_g711_error() -> None:
    pcm = (np.sin(np.linspace(0, 40 * np.pi, 8000)) * 20000).astype(np.int16)
    decoded = mulaw_decode(mulaw_encode(pcm))
    assert np.max(np.abs(decoded.astype(int) - pcm)) <= 0.04 * 20000  # mu-law: ~3 % relative step at the top
    assert mulaw_encode(np.array([0], np.int16)) == b"\xff"  # G.711: silence is 0xFF


async def test_gateway_call_over_websocket(tmp_path: Path) -> None:
    settings = Settings()
    settings.server.call_tokens.secret = TEST_CALL_SECRET
    deps = fake_deps(tmp_path, settings)
    bus = RecordingBus()
    deps.conversation_events = ConversationEventPublisher(bus, "voice_conversation", "test-node")
    server = TestServer(create_app(settings, deps), host="127.0.0.1")
    await server.start_server()
    url = await media_url(server, mint_call_token("dave"))
    speech16 = await synthesize_speech("Hello, I would like to know my balance please.")
    r = Resampler(48_000, 8000)
    speech8k = np.concatenate([r.process(AudioFrame(speech16, 48_000)).pcm, r.flush().pcm])
    received: list[np.ndarray] = []
    events: list[str] = []

    async def read(ws: websockets.ClientConnection) -> None:
        async for raw in ws:
            message = json.loads(raw)
            events.append(message["event"])
            if message["event"] == "media":
                received.append(mulaw_decode(base64.b64decode(message["media"]["payload"])))

    async with websockets.connect(url) as ws:
        await ws.send(json.dumps({"event": "connected"}))
        start = {
            "streamSid": "MZ1",
            "customParameters": {"user_id": "dave"},
            "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000},
        }
        await ws.send(json.dumps({"event": "start", "start": start}))
        reader = asyncio.create_task(read(ws))
        await asyncio.sleep(2.0)  # the greeting (FakeTTS tone) plays
        assert deps.registry.find_by_user("dave") is not None
        silence = np.zeros(160, np.int16)
        audio = np.concatenate([speech8k, np.tile(silence, 60)])  # the question, then 1.2 s of silence
        for i in range(0, len(audio), 160):
            payload = base64.b64encode(mulaw_encode(audio[i : i + 160])).decode()
            await ws.send(json.dumps({"event": "media", "media": {"payload": payload}}))
            await asyncio.sleep(0.02)
        session = deps.registry.find_by_user("dave")
        assert session is not None
        for _ in range(500):  # the reply to the question: up to 10 s on a loaded machine
            if session.record.turns:  # type: ignore[attr-defined]
                break
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.5)
        await ws.send(json.dumps({"event": "stop"}))
        await asyncio.wait_for(reader, 5)
    assert events[0] == "start" and events.count("media") >= 150  # paced 20 ms frames for the whole call
    frames = np.stack([f for f in received if len(f) == 160])
    voiced = np.sqrt(np.mean(frames.astype(np.float64) ** 2, axis=1)) > 500
    assert voiced.sum() >= 30, "neither the greeting nor the reply came back"
    await asyncio.sleep(0.2)
    calls = await deps.records.recent()
    record = await deps.records.get(calls[0]["call_id"])
    assert record is not None and record.user_id == "dave" and record.end_reason == "hangup"
    # FakeSTT's transcript of the question; a long comma pause may end a turn early and make it two.
    assert 1 <= len(record.turns) <= 2 and {t.user_text for t in record.turns} == {"hello there"}
    published = [
        ConversationEvent.parse(body) for topic, body in bus.messages if topic == "voice_conversation"
    ]
    # The bus carries what the record says was said, in order: every caller turn, and every reply the
    # caller heard some of (a first reply superseded by the rest of a split question before a word of it
    # was heard has nothing to publish). The greeting is not a conversation turn.
    said = [("final_turn", e.role) for e in record.transcript if e.text.strip() and e.source == "reply"]
    assert [(e.event, e.role) for e in published] == [("call_started", None), *said, ("call_ended", None)]
    assert said.count(("final_turn", "user")) == len(record.turns) and ("final_turn", "agent") in said
    assert published[1].text == "hello there" and {e.user_id for e in published} == {"dave"}
    await server.close()
    deps.records.close()


async def test_a_call_ended_by_the_server_closes_the_gateway_socket(tmp_path: Path) -> None:
    """The agent (or an admin, or max_call_seconds) ends the call: the gateway's socket is closed with a
    normal closure and a reason, instead of staying open with no media flowing until the gateway gives up."""
    settings = Settings()
    deps = fake_deps(tmp_path, settings)
    server = TestServer(create_app(settings, deps), host="127.0.0.1")
    await server.start_server()
    try:
        url = await media_url(server)  # anonymous mode: a ticket without a call token
        async with websockets.connect(url) as ws:
            start = {"streamSid": "MZ2"}
            await ws.send(json.dumps({"event": "start", "start": start}))
            started = json.loads(await asyncio.wait_for(ws.recv(), 5))
            assert started["event"] == "start"
            session = deps.registry.get(started["callId"])
            assert session is not None
            await session.close("agent_ended")  # ended on the server's side
            closed = asyncio.get_running_loop().create_future()

            async def drain() -> None:
                try:
                    async for _ in ws:
                        pass
                finally:
                    closed.set_result((ws.close_code, ws.close_reason))

            reader = asyncio.create_task(drain())
            code, reason = await asyncio.wait_for(closed, 5)
            reader.cancel()
        assert code == 1000 and "agent_ended" in reason, (code, reason)
        assert deps.registry.get(started["callId"]) is None
    finally:
        await server.close()
        deps.records.close()
