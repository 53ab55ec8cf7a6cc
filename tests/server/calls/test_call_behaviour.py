"""Call behaviour over real aiortc connections on loopback: barge-in timing, hang-up clean-up, call isolation.

The server runs in this process (``create_app``), so the tests can watch its frames and tasks directly.
Models are fakes (``tests.server.fakes``) except where a test says otherwise: VAD is always the real Silero
model inside ``TurnListener``, and the isolation test uses the real Whisper STT.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from aiohttp.test_utils import TestServer

import server.transports.webrtc.call as webrtc_call_module
from server.calls.playback import PlaybackOutput
from server.calls.session import CallSession
from server.calls.turn_taking import AgentState
from server.http.app import create_app
from server.settings import Settings
from speech.bargein import BargeInDetector
from speech.config import STTConfig
from speech.frames import AudioFrame
from speech.stt.registry import create_stt
from speech.vad import VadChunk
from tests.server.caller import TEST_CALL_SECRET, RTCCaller, synthesize_speech, word_recall
from tests.server.fakes import FakeConversation, fake_deps

LONG_GREETING = " ".join(["Welcome to the voice agent test line, we are glad you called today."] * 3)
VOICED_RMS = 300.0  # int16 RMS of a 20 ms frame that counts as speech (Piper speech: thousands; silence: 0)


class ServerSideAudio:
    """Timestamps, inside the server, of every caller frame received and every agent frame sent."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.inbound: list[tuple[float, float]] = []  # (monotonic time the frame reached the session, rms)
        self.outbound: list[tuple[float, bool]] = []  # (monotonic time the track took it, carries speech)
        self.voiced_vad: list[float] = []  # monotonic times the barge-in detector got a voiced VAD chunk
        real_caller_audio = webrtc_call_module.caller_audio
        real_read_frame = PlaybackOutput.read_frame
        real_on_vad = BargeInDetector.on_vad

        async def watched_caller_audio(track: Any) -> AsyncIterator[AudioFrame]:
            async for frame in real_caller_audio(track):
                self.inbound.append((time.monotonic(), _rms(frame.pcm)))
                yield frame

        def watched_read_frame(output: PlaybackOutput) -> Any:
            frame = real_read_frame(output)
            self.outbound.append((time.monotonic(), bool(frame.meta.get("speech"))))
            return frame

        def watched_on_vad(detector: BargeInDetector, chunk: VadChunk) -> None:
            if chunk.probability >= detector.threshold:
                self.voiced_vad.append(time.monotonic())
            real_on_vad(detector, chunk)

        monkeypatch.setattr(webrtc_call_module, "caller_audio", watched_caller_audio)
        monkeypatch.setattr(BargeInDetector, "on_vad", watched_on_vad)
        monkeypatch.setattr(PlaybackOutput, "read_frame", watched_read_frame)

    def caller_onset(self, after: float) -> float:
        """When the first voiced caller frame after ``after`` reached the session."""
        return next(t for t, rms in self.inbound if t > after and rms > VOICED_RMS)

    def agent_stop(self, after: float, run: int = 5) -> float:
        """When the track took the first of ``run`` consecutive silent frames after ``after``."""
        frames = [(t, speech) for t, speech in self.outbound if t >= after]
        for i in range(len(frames) - run):
            if not any(speech for _, speech in frames[i : i + run]):
                return frames[i][0]
        raise AssertionError("the agent never went quiet")


def _rms(pcm: np.ndarray) -> float:
    return float(np.sqrt(np.mean(pcm.astype(np.float64) ** 2))) if len(pcm) else 0.0


async def _server(settings: Settings, deps: Any) -> TestServer:
    server = TestServer(create_app(settings, deps), host="127.0.0.1")
    await server.start_server()
    return server


# Interruptions starting with fricatives ("Stop", "Sorry": weak VAD onsets), a glide, a vowel and an /h/.
BARGE_INS = [
    "Sorry, can I ask you something?",
    "Hold on, that is not what I asked.",
    "Stop, I have a question about my order please.",
    "Wait, I have a question about my order.",
    "Excuse me, one question about my order.",
]
CHROMIUM_BUFFER_FRAMES = 2  # Chromium's getStats() jitterBufferDelay on this loopback: 42-45 ms per frame


async def _barge_in_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str) -> dict[str, float]:
    """One call: the agent greets (3.6 s tone), the caller speaks ``text`` 0.8 s into it. Returns delays in s."""
    audio = ServerSideAudio(monkeypatch)
    settings = Settings()
    settings.agent.greeting = LONG_GREETING
    deps = fake_deps(tmp_path, settings)
    server = await _server(settings, deps)
    caller = RTCCaller(str(server.make_url("")), receive_buffer_frames=CHROMIUM_BUFFER_FRAMES)
    try:
        await caller.connect()
        greeting_start = await caller.reply_start(after=0.0, timeout=10)
        speech = await synthesize_speech(text)
        await asyncio.sleep(max(0.0, greeting_start + 0.8 - time.monotonic()))
        send_start = time.monotonic()
        await caller.say(speech)
        await asyncio.sleep(1.0)
        speech_start = caller.said_from
        onset = audio.caller_onset(after=send_start)
        detected = next(t for t in audio.voiced_vad if t >= onset)
        stop = audio.agent_stop(after=onset)
        heard_stop = caller.silence_heard_from(speech_start)
        record = await caller.record()
        assert record["transcript"][0]["source"] == "greeting"
        assert record["transcript"][0]["interrupted"] is True
        return {
            "caller": heard_stop - speech_start,
            "onset_to_stop": stop - onset,
            "voiced_to_stop": stop - detected,
            "inbound": onset - speech_start,
            "outbound": heard_stop - stop,
        }
    finally:
        await caller.hangup()
        await server.close()
        deps.records.close()


async def test_barge_in_silences_the_agent_on_the_received_track(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Caller's view: first word handed to the Opus encoder -> silence starts on the caller's received track
    (2.5 ms resolution), through Opus, the server's 1-frame receive buffer and a 2-frame (40 ms) caller
    buffer like Chromium's. The mission's 150 ms (measured on 2 idle cores: 93-153 ms, median ~110 ms:
    inbound 20-40 ms, VAD + track slot 0-60 ms, outbound ~50 ms) is ``bench/bargein.py``'s target (there
    with the real Whisper deciding): timing that tight does not hold on a CI box running other suites. Here
    the bounds hold under load and still catch the regressions that matter: the agent talking on until the
    caller's words are transcribed (0.5 s or more after the onset) or until the end of the sentence (seconds).

    Server's view: the agent goes quiet soon after Silero's first voiced chunk (it may be earlier: a weak
    onset pauses it), and soon after the caller's first loud frame reaches the session."""
    runs = []
    for i, text in enumerate(BARGE_INS):
        with monkeypatch.context() as patch:
            runs.append(await _barge_in_once(tmp_path / str(i), patch, text))
    for text, run in zip(BARGE_INS, runs, strict=True):
        print(
            f"\nbarge-in {text.split(',')[0]!r}: "
            + ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in run.items())
        )
    caller = sorted(run["caller"] for run in runs)
    assert caller[len(caller) // 2] <= 0.400, caller
    assert caller[-1] <= 0.800, caller
    assert all(run["voiced_to_stop"] <= 0.200 for run in runs), runs
    assert all(run["onset_to_stop"] <= 0.400 for run in runs), runs


def _call_tasks() -> list[asyncio.Task[Any]]:
    return [t for t in asyncio.all_tasks() if not t.done() and t is not asyncio.current_task()]


async def test_hangup_mid_reply_leaves_no_tasks_behind(tmp_path: Path) -> None:
    """The caller hangs up while the agent is still generating and speaking a long reply: every task the
    call started (session, listener, reply, LLM stream, TTS, aiortc transports) is gone afterwards."""
    settings = Settings()
    reply = " ".join(["This is a long answer that keeps going for a while."] * 8)
    conversations: list[FakeConversation] = []

    def new_conversation(user_id: str | None, control: Any) -> FakeConversation:
        conversations.append(FakeConversation(reply, token_delay=0.03))
        return conversations[-1]

    deps = fake_deps(tmp_path, settings)
    deps.new_conversation = new_conversation
    server = await _server(settings, deps)
    speech = await synthesize_speech("Tell me everything about my account please.")
    await asyncio.sleep(0.2)
    baseline = _call_tasks()
    caller = RTCCaller(str(server.make_url("")))
    try:
        await caller.connect()
        await caller.reply_start(after=0.0, timeout=10)
        await caller.wait_quiet(0.5, timeout=10)
        session = deps.registry.get(caller.call_id)
        assert isinstance(session, CallSession)
        speech_end = await caller.say(speech)
        await caller.reply_start(after=speech_end, timeout=15)
        assert session.turns.state is AgentState.SPEAKING
        assert not conversations[0].cancelled  # the LLM stream is still producing
        during = len(_call_tasks())
    finally:
        await caller.hangup()
    await asyncio.wait_for(session.ended.wait(), 10)
    leaked: list[asyncio.Task[Any]] = []
    for _ in range(100):  # aiortc's transports finish their last tasks shortly after close()
        leaked = [t for t in _call_tasks() if t not in baseline]
        if not leaked:
            break
        await asyncio.sleep(0.05)
    print(f"\ntasks: {len(baseline)} before the call, {during} mid-reply, {len(_call_tasks())} after")
    assert not leaked, [t.get_name() for t in leaked]
    assert not session._tasks and session.turns._reply is not None and session.turns._reply.done()
    assert conversations[0].cancelled, "the LLM stream was not cancelled"
    stored = await deps.records.get(caller.call_id)
    assert stored is not None and stored.end_reason == "hangup"
    assert len(stored.turns) == 1 and stored.turns[0].interrupted
    await server.close()
    deps.records.close()


class EchoConversation(FakeConversation):
    """Replies with what it heard, so a reply shows which caller's words reached which conversation."""

    async def respond(self, user_text: str) -> AsyncIterator[str]:
        self.reply = f"You asked {user_text}"
        async for delta in super().respond(user_text):
            yield delta


@pytest.mark.slow
async def test_two_simultaneous_calls_keep_their_own_transcripts(tmp_path: Path) -> None:
    """Two callers ask different questions at the same time; real Whisper STT (shared by both calls), echo
    replies. Each call record holds only its own caller's words (recall >= 0.6 of its question, <= 0.25 of
    the other's: Whisper tiny on Opus audio), and each caller's event feed only its own transcript."""
    settings = Settings()
    settings.server.call_tokens.secret = TEST_CALL_SECRET  # alice and bob call with their tokens
    deps = fake_deps(tmp_path, settings)
    deps.stt = create_stt(STTConfig())
    await deps.stt.warm_up()
    deps.new_conversation = lambda user_id, control: EchoConversation()
    server = await _server(settings, deps)
    questions = {"alice": "What is the capital of France?", "bob": "How many days are in a week?"}
    speech = {user: await synthesize_speech(q) for user, q in questions.items()}
    callers = {user: RTCCaller(str(server.make_url("")), user_id=user) for user in questions}
    try:
        await asyncio.gather(*(c.connect() for c in callers.values()))
        await asyncio.gather(*(c.reply_start(after=0.0, timeout=20) for c in callers.values()))
        await asyncio.gather(*(c.wait_quiet(0.5, timeout=20) for c in callers.values()))
        await asyncio.gather(*(callers[u].say(speech[u]) for u in questions))
        records: dict[str, dict[str, Any]] = {}
        for _ in range(300):
            records = {u: await c.record() for u, c in callers.items()}
            if all(r["turns"] for r in records.values()):
                break
            await asyncio.sleep(0.1)
        for user, question in questions.items():
            other = next(q for u, q in questions.items() if u != user)
            record = records[user]
            assert record["user_id"] == user and len(record["turns"]) == 1, record
            said = record["turns"][0]["user_text"]
            assert word_recall(question, said) >= 0.6, (user, said)
            assert word_recall(other, said) <= 0.25, (user, said)
            assert record["turns"][0]["agent_text"].startswith("You asked")
            assert word_recall(question, record["turns"][0]["agent_text"]) >= 0.6
            conversation = [e["text"] for e in record["transcript"] if e.get("source") != "greeting"]
            assert word_recall(other, " ".join(conversation)) <= 0.25, (user, conversation)
            finals = [e["text"] for e in callers[user].events_of("final_transcript")]
            assert finals == [said], (user, finals)
    finally:
        await asyncio.gather(*(c.hangup() for c in callers.values()))
        await server.close()
        deps.records.close()
