"""A call over a real aiortc connection (WebRTCCall around CallSession) with fake models: greeting,
proactive prompt, clean hang-up."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
from aiohttp.test_utils import TestServer

from server.calls.session import CallSession
from server.http.app import create_app
from server.settings import Settings
from tests.server.caller import TEST_CALL_SECRET, RTCCaller
from tests.server.fakes import fake_deps


async def test_greeting_proactive_prompt_and_clean_hangup(tmp_path: Path) -> None:
    settings = Settings()
    settings.server.call_tokens.secret = TEST_CALL_SECRET  # carol is a user: she calls with a token
    settings.server.call.proactive_pause_ms = 100
    deps = fake_deps(tmp_path, settings)
    connected: list[str] = []

    async def on_connected(session: CallSession) -> None:
        connected.append(session.call_id)

    deps.on_call_connected.append(on_connected)
    server = TestServer(create_app(settings, deps), host="127.0.0.1")
    await server.start_server()
    caller = RTCCaller(str(server.make_url("")), user_id="carol")
    try:
        call_id = await caller.connect()
        greeting_start = await caller.reply_start(after=0.0, timeout=10)
        await caller.wait_quiet(0.5, timeout=10)
        session = deps.registry.find_by_user("carol")
        assert isinstance(session, CallSession) and session.call_id == call_id
        assert connected == [call_id]
        greeting_s = len(caller.audio_since(greeting_start)) / 48_000
        assert greeting_s >= 0.6  # 7 words x 0.1 s of tone (FakeTTS)

        before = asyncio.get_running_loop().time()
        assert await session.speak_proactive("Your order has shipped today.", "msg-1") is True
        assert asyncio.get_running_loop().time() - before >= 0.45  # returns after its 0.5 s were played
        await asyncio.sleep(0.3)
        kinds = [e["type"] for e in caller.events]
        assert "proactive" in kinds and kinds.count("state") >= 4
        snapshot = (await caller.record())["transcript"]
        assert [(e["source"], e["text"]) for e in snapshot] == [
            ("greeting", "Hello! How can I help you today?"),
            ("proactive", "Your order has shipped today."),
        ]
    finally:
        await caller.hangup()
    await asyncio.wait_for(session.ended.wait(), 5)
    assert deps.registry.find_by_user("carol") is None
    assert session.transport is not None and session.transport.connection_state == "closed"
    assert not session._tasks
    assert await session.speak_proactive("too late", "msg-2") is False
    stored = await deps.records.get(call_id)
    assert stored is not None and stored.end_reason == "hangup" and stored.ended_at is not None
    await server.close()
    deps.records.close()


async def test_server_stop_ends_live_calls(tmp_path: Path) -> None:
    settings = Settings()
    deps = fake_deps(tmp_path, settings)
    server = TestServer(create_app(settings, deps), host="127.0.0.1")
    await server.start_server()
    caller = RTCCaller(str(server.make_url("")))
    call_id = await caller.connect()
    await caller.reply_start(after=0.0, timeout=10)
    await server.close()  # runs the app's on_shutdown: every call is ended and saved
    stored = await deps.records.get(call_id)
    assert stored is not None and stored.end_reason == "server_stop"
    assert len(deps.registry) == 0
    await caller.hangup()
    deps.records.close()


LONG_GREETING = " ".join(["Welcome to the voice agent test line, we are glad you called today."] * 3)


async def _call_with_long_greeting(
    tmp_path: Path, stt: object = None
) -> tuple[TestServer, object, RTCCaller, float]:
    settings = Settings()
    settings.agent.greeting = LONG_GREETING  # 3 x 12 words of FakeTTS tone: 3.6 s
    deps = fake_deps(tmp_path, settings)
    if stt is not None:
        deps.stt = stt  # type: ignore[assignment]
    server = TestServer(create_app(settings, deps), host="127.0.0.1")
    await server.start_server()
    caller = RTCCaller(str(server.make_url("")))
    await caller.connect()
    start = await caller.reply_start(after=0.0, timeout=10)
    return server, deps, caller, start


async def test_a_cough_does_not_cut_the_agent_off(tmp_path: Path) -> None:
    """A cough (bursts of noise, no words) pauses the agent, which then resumes the greeting: the backchannel
    decider hears no words in it with the real Whisper (the fake STT would put words in any sound)."""
    from speech.stt.registry import create_stt
    from tests.speech.bargein_set import coughs

    stt = create_stt(Settings().speech.stt)
    server, deps, caller, greeting_start = await _call_with_long_greeting(tmp_path, stt)
    try:
        cough = np.repeat(coughs(1)[0].pcm, 3)  # 16 -> 48 kHz (a noise burst: no band to keep)
        await asyncio.sleep(max(0.0, greeting_start + 0.8 - asyncio.get_running_loop().time()))
        await caller.say(cough)
        await caller.wait_quiet(0.5, timeout=15)
        heard_s = sum(len(p) for a, rms, p in caller.received if rms > 300) / 48_000
        record = await caller.record()
        greeting = record["transcript"][0]
        assert greeting["interrupted"] is False, record
        assert heard_s >= 3.3, f"only {heard_s:.2f} s of the 3.6 s greeting was played"
    finally:
        await caller.hangup()
        await server.close()
        deps.records.close()  # type: ignore[attr-defined]
