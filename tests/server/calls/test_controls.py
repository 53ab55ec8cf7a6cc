"""The call core's control events besides hang-up: keys (DTMF) and hold, and the two ways a call can open
or close without the caller (a call placed for a prompt, a goodbye). Orchestration only: the STT,
TTS and conversation are fakes (named as such); the VAD is real, fed Piper speech at 8 kHz."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest

from server.calls.controls import Dtmf, Hangup, Hold
from server.calls.pacing import FramePacer
from server.calls.session import CallSession
from server.settings import Settings
from speech.frames import AudioFrame
from tests.server.caller import synthesize_speech
from tests.server.calls.test_session import FRAME, RATE, FakeTransport, to_rate
from tests.server.fakes import fake_deps


class Line:
    """A phone line: 20 ms frames in real time, silence unless ``say()`` queued speech."""

    def __init__(self) -> None:
        self._queue: list[np.ndarray] = []

    def say(self, pcm: np.ndarray) -> None:
        self._queue.append(pcm)

    async def frames(self) -> AsyncIterator[AudioFrame]:
        pacer = FramePacer(RATE)
        pending = np.zeros(0, np.int16)
        while True:
            await pacer.next_slot()
            if not len(pending) and self._queue:
                pending = self._queue.pop(0)
            chunk, pending = pending[:FRAME], pending[FRAME:]
            if len(chunk) < FRAME:
                chunk = np.pad(chunk, (0, FRAME - len(chunk)))
            yield AudioFrame(chunk.astype(np.int16), RATE, asyncio.get_running_loop().time())


async def pull_audio(session: CallSession, voiced: list[float]) -> None:
    """Plays the agent's voice out at real-time pace; ``voiced`` gets the times of non-silent frames."""
    pacer = FramePacer(session.output_rate)
    while not session.ended.is_set():
        await pacer.next_slot()
        if session.read_frame().pcm.any():
            voiced.append(asyncio.get_running_loop().time())


@pytest.fixture
async def speech() -> np.ndarray:
    return to_rate(await synthesize_speech("What time do you open tomorrow?"), RATE)


async def started(
    tmp_path: Path, placed_for_prompt: bool = False, **conversation: object
) -> tuple[CallSession, Line, list[float]]:
    """A session on a fake line; no greeting. ``placed_for_prompt``: a call the agent placed for a prompt."""
    settings = Settings()
    settings.server.call.greeting = False
    settings.server.call.proactive_pause_ms = 200
    deps = fake_deps(tmp_path, settings, **conversation)
    session = CallSession(deps, "ursula", output_rate=RATE, transport=FakeTransport(), greet=not placed_for_prompt)
    line, voiced = Line(), []
    session.start()
    session.listen(line.frames())
    session.spawn(pull_audio(session, voiced), "test-audio-out")
    session.connected()
    return session, line, voiced


async def test_keys_are_recorded_and_answer_the_prompt_they_follow(tmp_path: Path) -> None:
    session, _, _ = await started(tmp_path)
    events = session.events.subscribe()
    await session.control(Dtmf("9"))  # before any prompt: recorded, but it answers nothing
    assert await session.speak_proactive("Press one to confirm.", "m-1")
    answer = asyncio.create_task(session.await_key("m-1", timeout_s=5))
    await asyncio.sleep(0.1)
    await session.control(Dtmf("1"))
    assert await answer == "1"
    assert await session.await_key("m-1", timeout_s=0.1) == "1"  # asked again: the same first key
    assert await session.await_key("never-spoken", timeout_s=0.1) is None
    with pytest.raises(ValueError, match="not a DTMF key"):
        Dtmf("x")
    await session.control(Hangup())
    assert [e.text for e in session.record.transcript if e.source == "dtmf"] == ["9", "1"]
    kinds = []
    while (event := events.get_nowait()) is not None:
        kinds.append(event.get("digit")) if event["type"] == "dtmf" else None
    assert kinds == ["9", "1"]


async def test_a_key_wait_ends_with_the_call(tmp_path: Path) -> None:
    session, _, _ = await started(tmp_path)
    assert await session.speak_proactive("Press one.", "m-2")
    waiting = asyncio.create_task(session.await_key("m-2", timeout_s=30))
    await session.control(Hangup())
    assert await asyncio.wait_for(waiting, 2) is None


async def test_a_held_caller_hears_nothing_and_is_not_listened_to(tmp_path: Path, speech: np.ndarray) -> None:
    session, line, voiced = await started(tmp_path, reply="We open at nine tomorrow.")
    conversation = session.conversation
    await session.control(Hold(True))
    assert session.snapshot()["on_hold"] is True
    line.say(speech)  # music on hold, or the caller talking to someone else: not a turn
    prompt = asyncio.create_task(session.speak_proactive("Your order has shipped.", "m-3"))
    await asyncio.sleep(len(speech) / RATE + 1.5)
    assert conversation.heard == [] and not voiced and not prompt.done()
    await session.control(Hold(False))
    assert await asyncio.wait_for(prompt, 10)  # said once the caller is back
    assert voiced
    line.say(speech)
    for _ in range(100):
        if conversation.heard:
            break
        await asyncio.sleep(0.1)
    assert conversation.heard == ["hello there"]  # the fake STT's words: a turn was taken after the hold
    await session.control(Hangup())


async def test_hold_mid_sentence_ends_the_turn_and_the_reply_waits(tmp_path: Path, speech: np.ndarray) -> None:
    session, line, voiced = await started(tmp_path, reply="We open at nine tomorrow.")
    line.say(speech[: len(speech) - RATE // 4])  # cut off: no silence after the words
    await asyncio.sleep(len(speech) / RATE - 0.3)
    await session.control(Hold(True))
    held_at = asyncio.get_running_loop().time()
    for _ in range(60):
        if session.conversation.heard:
            break
        await asyncio.sleep(0.1)
    assert session.conversation.heard == ["hello there"]  # the turn ended although no audio came
    await asyncio.sleep(1.0)
    assert not [t for t in voiced if t > held_at + 0.1]  # the reply is ready but not played
    await session.control(Hold(False))
    for _ in range(50):
        if voiced and voiced[-1] > held_at + 1:
            break
        await asyncio.sleep(0.1)
    assert [t for t in voiced if t > held_at + 1], "the reply never played after the hold"
    await session.control(Hangup())


async def test_a_call_placed_for_a_prompt_opens_with_it_not_with_a_reply_to_hello(
    tmp_path: Path, speech: np.ndarray
) -> None:
    session, line, _ = await started(tmp_path, placed_for_prompt=True, reply="Sure.")
    line.say(speech)  # the callee's "Hello?"
    for _ in range(80):
        if [e for e in session.record.transcript if e.role == "user"]:
            break
        await asyncio.sleep(0.1)
    assert session.conversation.heard == []  # recorded, not answered
    assert await session.speak_proactive("This is your pharmacy: your prescription is ready.", "m-4")
    line.say(speech)
    for _ in range(80):
        if session.conversation.heard:
            break
        await asyncio.sleep(0.1)
    assert session.conversation.heard == ["hello there"]
    sources = [e.source for e in session.record.transcript if e.role == "agent"]
    assert sources[0] == "proactive" and "greeting" not in sources
    await session.control(Hangup())


async def test_a_goodbye_is_said_before_the_call_ends(tmp_path: Path) -> None:
    session, _, voiced = await started(tmp_path)
    await session.say_goodbye("Nobody is there. Goodbye!", "no_speech")
    assert session.ended.is_set() and voiced
    assert session.record.end_reason == "no_speech"
    (goodbye,) = [e for e in session.record.transcript if e.source == "goodbye"]
    assert goodbye.text == "Nobody is there. Goodbye!" and not goodbye.interrupted
