"""The call core when things go wrong around it: the caller hangs up while a proactive prompt waits or
plays, the TTS backend fails mid-reply. Fake STT/TTS/conversation (orchestration only); the faults are
real exceptions and real hang-ups through the session's public interface."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from server.calls.controls import Hangup
from server.calls.session import CallSession
from server.settings import Settings
from speech.events import FinalTranscript, SpeechStarted
from speech.frames import AudioFrame
from tests.server.calls.test_session import FakeTransport
from tests.server.fakes import FakeTTS, fake_deps


def _session(tmp_path: Path, tts: FakeTTS | None = None, reply: str | None = None, **call: Any) -> CallSession:
    settings = Settings()
    settings.server.call.greeting = False
    for key, value in call.items():
        setattr(settings.server.call, key, value)
    deps = fake_deps(tmp_path, settings, **({"reply": reply} if reply else {}))
    deps.tts = tts or deps.tts
    return CallSession(deps, "ann", output_rate=16_000, transport=FakeTransport())


async def test_hangup_while_a_prompt_waits_for_a_pause_returns_not_spoken(tmp_path: Path) -> None:
    """The caller is talking, so the prompt waits for a pause; the caller hangs up. The bus handler must
    get False at once (the prompt is then held), not wait out ``proactive_timeout_s``."""
    session = _session(tmp_path, proactive_timeout_s=30)
    session.start()
    session.connected()
    await session.turns.handle(SpeechStarted(time.monotonic()))  # the caller talks: no pause yet
    speak = asyncio.create_task(session.speak_proactive("Your parcel has arrived.", "m-1"))
    await asyncio.sleep(0.2)
    assert not speak.done()
    await session.control(Hangup())
    spoken = await asyncio.wait_for(speak, 2)
    assert spoken is False
    assert session.deps.tts.spoken == []  # type: ignore[attr-defined]
    session.deps.records.close()


async def test_hangup_while_a_prompt_is_playing_returns_not_spoken(tmp_path: Path) -> None:
    """A prompt is being spoken when the caller hangs up: nothing reads the audio any more, yet the handler
    must get False promptly (the bus message is then settled, not kept invisible for ever)."""
    # nobody reads frames: this audio never drains
    session = _session(tmp_path, FakeTTS(seconds_per_word=0.5), proactive_pause_ms=0)
    session.start()
    session.connected()
    speak = asyncio.create_task(session.speak_proactive("Your parcel has arrived at the depot.", "m-2"))
    while not session.audio.has_audio:
        await asyncio.sleep(0.01)
    await session.control(Hangup())
    assert await asyncio.wait_for(speak, 2) is False
    session.deps.records.close()


async def test_a_prompt_after_the_reply_that_was_cut_by_the_hangup_is_not_spoken(tmp_path: Path) -> None:
    """The caller hangs up while the agent is still answering and a prompt waits for the reply to end: the
    reply is cancelled, which looks like a pause; the prompt must not then be queued into a dead call."""
    session = _session(tmp_path, FakeTTS(seconds_per_word=0.5), proactive_pause_ms=0)
    session.start()
    session.connected()
    await session.turns.handle(FinalTranscript("what is new", time.monotonic() - 0.3, time.monotonic()))
    while not session.audio.has_audio:
        await asyncio.sleep(0.01)
    speak = asyncio.create_task(session.speak_proactive("Your parcel has arrived.", "m-3"))
    await asyncio.sleep(0.1)
    await session.control(Hangup())
    assert await asyncio.wait_for(speak, 2) is False
    assert "Your parcel has arrived." not in session.deps.tts.spoken  # type: ignore[attr-defined]
    session.deps.records.close()


class BrokenTTS(FakeTTS):
    """Synthesis raises for every sentence that contains ``fail_on`` (a backend crash mid-reply)."""

    def __init__(self, fail_on: str) -> None:
        super().__init__(seconds_per_word=0.05)
        self.fail_on = fail_on

    async def synthesize(self, text: str) -> AsyncIterator[AudioFrame]:
        if self.fail_on in text:
            self.spoken.append(f"<failed: {text}>")
            raise RuntimeError("piper: voice model crashed")
        async for frame in super().synthesize(text):
            yield frame


async def _drain(session: CallSession) -> None:
    while True:
        session.read_frame()
        await asyncio.sleep(0.002)


async def test_tts_failure_mid_reply_apologises_and_keeps_the_call(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The second sentence of a reply cannot be synthesised: the caller hears the first sentence and the
    apology, the turn is recorded with the failure, the agent listens again and the next turn works."""
    tts = BrokenTTS(fail_on="capital")
    session = _session(tmp_path, tts, reply="Hello there. Paris is the capital. It is in France.")
    events = session.events.subscribe()
    session.start()
    session.connected()
    drain = asyncio.create_task(_drain(session))
    try:
        await session.turns.handle(FinalTranscript("capital of France", time.monotonic() - 0.3, time.monotonic()))
        turn = await _next_event(events, "turn")
        assert session.turns.state.value == "listening"
        assert tts.spoken[0] == "Hello there."
        assert tts.spoken[1].startswith("<failed")
        assert any("sorry" in s.lower() for s in tts.spoken[2:]), tts.spoken
        assert "tts failed" in (turn.get("error") or "").lower(), turn
        tts.fail_on = "never"
        session.conversation.reply = "Fine again."  # type: ignore[attr-defined]
        await session.turns.handle(FinalTranscript("and now", time.monotonic() - 0.3, time.monotonic()))
        second = await _next_event(events, "turn")
        assert second["agent_text"] == "Fine again." and not second.get("error")
    finally:
        await session.control(Hangup())
        drain.cancel()
        session.deps.records.close()
    assert "never retrieved" not in caplog.text


async def _next_event(queue: asyncio.Queue[dict[str, Any] | None], kind: str) -> dict[str, Any]:
    while (event := await asyncio.wait_for(queue.get(), 10)) is not None:
        if event["type"] == kind:
            return event
    raise AssertionError(f"call ended before a {kind!r} event")
