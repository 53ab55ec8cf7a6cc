"""The call core with no transport at all: 8 kHz frames in, 8 kHz frames out, control events and events.

This is the interface every transport codes against (docs/CONTRACTS.md, "server.calls"): a fake transport
feeds the caller's real speech (Piper, at the 8 kHz of a phone line) through ``listen``, pulls the agent's
voice with ``read_frame`` at its own pace, and hangs up with ``control(Hangup())``. STT (Whisper) and TTS
(Piper) are real; the conversation is a fake with a fixed answer, so the test checks content: what the
session heard, and (transcribed again) what it said.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np

from server.calls.controls import Hangup
from server.calls.pacing import FramePacer
from server.calls.session import CallSession
from server.settings import Settings
from speech.frames import AudioFrame
from speech.resample import Resampler
from speech.stt.registry import create_stt
from speech.tts.registry import create_tts
from tests.server.caller import synthesize_speech, transcribe, word_recall
from tests.server.fakes import fake_deps

RATE = 8000
FRAME = RATE // 50
QUESTION = "What is the capital of France?"
ANSWER = "Paris is the capital. It is in France."


class FakeTransport:
    """A transport reduced to the interface: it only remembers being closed."""

    kind = "fake"

    def __init__(self) -> None:
        self.closed = False

    @property
    def connection_state(self) -> str:
        return "closed" if self.closed else "connected"

    async def close(self) -> None:
        self.closed = True


def to_rate(pcm48k: np.ndarray, rate: int) -> np.ndarray:
    resampler = Resampler(48_000, rate)
    return np.concatenate([resampler.process(AudioFrame(pcm48k, 48_000)).pcm, resampler.flush().pcm])


async def caller_frames(speech: np.ndarray, start: asyncio.Event) -> AsyncIterator[AudioFrame]:
    """Silence until ``start``, then the speech, then silence: 20 ms frames in real time, like a line."""
    pacer = FramePacer(RATE)
    silence = np.zeros(FRAME, np.int16)
    position = 0
    while True:
        await pacer.next_slot()
        if start.is_set() and position < len(speech):
            chunk, position = speech[position : position + FRAME], position + FRAME
        else:
            chunk = silence
        yield AudioFrame(chunk, RATE, asyncio.get_running_loop().time())


async def collect_output(session: CallSession, out: list[np.ndarray]) -> None:
    pacer = FramePacer(session.output_rate)
    while not session.ended.is_set():
        await pacer.next_slot()
        frame = session.read_frame()
        assert frame.sample_rate == RATE and len(frame.pcm) == FRAME
        out.append(frame.pcm)


async def test_frames_in_frames_out_and_a_hangup_without_any_transport(tmp_path: Path) -> None:
    settings = Settings()
    deps = fake_deps(tmp_path, settings, reply=ANSWER)
    deps.stt = create_stt(settings.speech.stt)
    deps.tts = await asyncio.to_thread(create_tts, settings.speech.tts)
    transport = FakeTransport()
    session = CallSession(deps, "dora", output_rate=RATE, transport=transport)
    events = session.events.subscribe()
    speak = asyncio.Event()
    speech = to_rate(await synthesize_speech(QUESTION), RATE)
    output: list[np.ndarray] = []
    session.start()
    session.listen(caller_frames(speech, speak))
    reader = asyncio.create_task(collect_output(session, output))
    session.connected()
    try:
        seen: list[dict] = []

        async def until(kind: str) -> dict:
            while (event := await asyncio.wait_for(events.get(), 60)) is not None:
                seen.append(event)
                if event["type"] == kind:
                    return event
            raise AssertionError(f"the call ended before a {kind!r} event: {seen}")

        await until("state")  # the greeting starts
        while session.turns.state.value != "listening" or session.audio.has_audio:
            await asyncio.sleep(0.05)
        greeting_frames = len(output)
        speak.set()
        heard = await until("final_transcript")
        assert word_recall(QUESTION, heard["text"]) >= 0.6, heard
        turn = await until("turn")
        assert turn["agent_text"] == ANSWER and not turn["interrupted"]
        while session.audio.has_audio:
            await asyncio.sleep(0.05)
        reply = np.concatenate(output[greeting_frames:])
        said = await transcribe(to_rate_48k(reply))
        assert word_recall(ANSWER, said) >= 0.6, said
    finally:
        await session.control(Hangup())
        await asyncio.wait_for(reader, 5)
    assert transport.closed and session.ended.is_set() and not session._tasks
    assert deps.registry.get(session.call_id) is None
    kinds = []
    while not events.empty() and (event := events.get_nowait()) is not None:
        kinds.append(event["type"])
    assert kinds[-1:] == ["ended"]
    stored = await deps.records.get(session.call_id)
    assert stored is not None and stored.end_reason == "hangup"
    assert [t.user_text for t in stored.turns] == [heard["text"]]
    assert not session.read_frame().pcm.any()  # after the end: silence, never an error
    deps.records.close()


def to_rate_48k(pcm: np.ndarray) -> np.ndarray:
    resampler = Resampler(RATE, 48_000)
    return np.concatenate([resampler.process(AudioFrame(pcm, RATE)).pcm, resampler.flush().pcm])
