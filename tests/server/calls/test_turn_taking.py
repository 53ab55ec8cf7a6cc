"""TurnTaker with fake STT/TTS/LLM and the real PlaybackController drained at 10x real time."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from server.calls.playback import PlaybackOutput
from server.calls.turn_taking import AgentState, TurnResult, TurnTaker
from speech.events import FinalTranscript, PartialTranscript, SpeechStarted, SpeechStopped
from tests.server.fakes import FakeConversation, FakeTTS


class Harness:
    def __init__(self, conversation: FakeConversation, tts: FakeTTS) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.results: list[TurnResult] = []
        self.conversation = conversation
        self.tts = tts
        self.audio = PlaybackOutput(tts.sample_rate)
        self.turns = TurnTaker(
            conversation, tts, self.audio, lambda k, d: self.events.append((k, d)), self.results.append
        )
        self._drain = asyncio.create_task(self._drain_audio())
        self.frames_with_speech = 0

    async def _drain_audio(self) -> None:
        while True:  # the transport pulls one 20 ms frame every 2 ms: playback at 10x speed
            frame = self.audio.read_frame()
            self.frames_with_speech += bool(frame.meta.get("speech"))
            await asyncio.sleep(0.002)

    def kinds(self) -> list[str]:
        return [k for k, _ in self.events]

    def states(self) -> list[str]:
        return [d["state"] for k, d in self.events if k == "state"]

    async def close(self) -> None:
        await self.turns.close()
        self._drain.cancel()


def final(text: str) -> FinalTranscript:
    now = time.monotonic()
    return FinalTranscript(text, now - 0.4, now)


async def wait_until(predicate: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.005)


async def test_final_transcript_gets_a_spoken_reply_with_timings() -> None:
    h = Harness(FakeConversation("Paris is the capital. It is in France."), FakeTTS())
    await h.turns.handle(SpeechStarted(0.0))
    await h.turns.handle(PartialTranscript("what is", 0.5))
    await h.turns.handle(SpeechStopped(1.0))
    await h.turns.handle(final("What is the capital of France?"))
    await wait_until(lambda: len(h.results) == 1)
    result = h.results[0]
    assert h.conversation.heard == ["What is the capital of France?"]
    assert h.tts.spoken == ["Paris is the capital.", "It is in France."]
    assert result.agent_text == "Paris is the capital. It is in France." and not result.interrupted
    assert set(result.timing.as_delays()) == {
        "stt_final",
        "llm_first_token",
        "tts_first_audio",
        "first_audio_out",
    }
    assert h.states() == ["thinking", "speaking", "listening"]
    assert h.kinds()[:2] == ["partial_transcript", "final_transcript"] and "turn" in h.kinds()
    assert h.frames_with_speech >= 35  # 7 words x 0.1 s = 0.7 s of tone
    await h.close()


async def test_barge_in_stops_audio_and_cancels_the_reply() -> None:
    h = Harness(FakeConversation("One two three four five. " * 6, token_delay=0.01), FakeTTS())
    await h.turns.handle(final("Tell me a long story"))
    await wait_until(lambda: h.turns.state is AgentState.SPEAKING and h.frames_with_speech > 5)
    heard = h.audio.interrupt()  # what BargeInDetector does on a confirmed interruption ...
    h.turns.on_barge_in(heard)  # ... then tells the turn taker
    cut_at = h.frames_with_speech
    await wait_until(lambda: len(h.results) == 1)
    await asyncio.sleep(0.1)
    assert h.frames_with_speech - cut_at <= 1, "audio kept playing after the barge-in"
    assert h.results[0].interrupted and h.conversation.cancelled
    assert h.conversation.interrupted == [heard] and heard.startswith("One")
    assert len(h.tts.spoken) < 6, "the rest of the reply was still synthesized"
    assert h.turns.state is AgentState.LISTENING
    assert "interrupted" in h.kinds()
    await h.close()


async def test_caller_resuming_before_any_audio_drops_the_pending_reply() -> None:
    h = Harness(FakeConversation("Sure.", token_delay=0.3), FakeTTS())
    await h.turns.handle(final("I want to"))
    await wait_until(lambda: h.turns.state is AgentState.THINKING)
    await h.turns.handle(SpeechStarted(1.0))
    await wait_until(lambda: len(h.results) == 1)
    assert h.results[0].interrupted and h.tts.spoken == [] and h.frames_with_speech == 0
    await h.close()


async def test_say_waits_for_the_end_and_reports_interruption() -> None:
    h = Harness(FakeConversation(), FakeTTS())
    assert await h.turns.say("Hello! How can I help you today?", "greeting") is True
    assert h.conversation.agent_utterances == [("Hello! How can I help you today?", "greeting")]
    task = asyncio.create_task(h.turns.say("This is a rather long proactive reminder for you.", "proactive"))
    await wait_until(lambda: h.frames_with_speech > 40)
    h.turns.on_barge_in(h.audio.interrupt())
    assert await task is False
    assert h.conversation.agent_utterances[-1][1] == "proactive"
    assert h.conversation.agent_utterances[-1][0] != "This is a rather long proactive reminder for you."
    await h.close()


@pytest.mark.parametrize("pause_s", [0.2])
async def test_wait_for_pause_never_talks_over_the_caller(pause_s: float) -> None:
    h = Harness(FakeConversation(), FakeTTS())
    await h.turns.handle(SpeechStarted(0.0))
    assert await h.turns.wait_for_pause(pause_s, timeout_s=0.3) is False  # caller still talking
    waiter = asyncio.create_task(h.turns.wait_for_pause(pause_s, timeout_s=3.0))
    await asyncio.sleep(0.1)
    stopped = time.monotonic()
    await h.turns.handle(SpeechStopped(1.0))
    assert await waiter is True
    assert time.monotonic() - stopped >= pause_s - 0.01
    await h.close()
