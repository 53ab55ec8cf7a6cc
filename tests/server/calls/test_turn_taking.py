"""TurnTaker with fake STT/TTS/LLM and the real PlaybackController drained at 10x real time."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from server.calls import turn_taking
from server.calls.playback import PlaybackOutput
from server.calls.turn_taking import AgentState, TurnResult, TurnTaker
from speech.events import (
    FinalTranscript,
    PartialTranscript,
    SpeculativeTranscript,
    SpeechStarted,
    SpeechStopped,
)
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


async def test_caller_going_on_before_any_audio_gets_one_answer_to_all_their_words() -> None:
    """Round 1 dropped the reply at the caller's first sound, so a "mm-hm" while the agent was thinking lost
    the answer; now the silent reply is held until the sound's words are known, and a real continuation
    replaces it with one reply to everything the caller said."""
    h = Harness(FakeConversation("Sure.", token_delay=0.3), FakeTTS())
    await h.turns.handle(final("I want to"))
    await wait_until(lambda: h.turns.state is AgentState.THINKING)
    await h.turns.handle(SpeechStarted(1.0))
    await asyncio.sleep(0.5)  # the reply's words are ready by now: held, not spoken
    assert h.frames_with_speech == 0 and h.results == []
    await h.turns.handle(SpeechStopped(2.0))
    await h.turns.handle(final("book a table for four."))
    await wait_until(lambda: len(h.results) == 1)
    assert h.conversation.heard == ["I want to", "I want to book a table for four."]
    assert h.conversation.retracted == ["I want to"]
    assert h.results[0].user_text == "I want to book a table for four." and not h.results[0].interrupted
    await asyncio.sleep(0.1)
    assert 0 < h.frames_with_speech <= 5  # "Sure." once (0.1 s): the held reply's audio was never played
    await h.close()


@pytest.mark.parametrize("sound", ["Mm-hmm.", "Okay.", ""])
async def test_backchannel_while_the_agent_thinks_keeps_the_reply(sound: str) -> None:
    h = Harness(FakeConversation("We open at nine.", token_delay=0.1), FakeTTS())
    await h.turns.handle(final("When do you open?"))
    await wait_until(lambda: h.turns.state is AgentState.THINKING)
    await h.turns.handle(SpeechStarted(1.0))
    await h.turns.handle(SpeechStopped(1.3))
    await h.turns.handle(final(sound))
    await wait_until(lambda: len(h.results) == 1)
    assert h.conversation.heard == ["When do you open?"] and h.conversation.retracted == []
    assert not h.results[0].interrupted and h.tts.spoken == ["We open at nine."]
    assert ("backchannel" in h.kinds()) == bool(sound)
    await h.close()


async def test_a_held_reply_speaks_when_no_words_come_for_the_sound(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(turn_taking, "_HOLD_AFTER_SOUND_S", 0.2)
    h = Harness(FakeConversation("We open at nine.", token_delay=0.05), FakeTTS())
    await h.turns.handle(final("When do you open?"))
    await h.turns.handle(SpeechStarted(1.0))
    await h.turns.handle(SpeechStopped(1.3))  # ... and the sound's transcription failed: no final
    await wait_until(lambda: len(h.results) == 1)
    assert not h.results[0].interrupted and h.frames_with_speech > 0
    await h.close()


def speculative(text: str) -> SpeculativeTranscript:
    return SpeculativeTranscript(text, time.monotonic() - 0.15, 0.3)


async def test_speculative_reply_is_ready_but_silent_until_the_final_commits_it() -> None:
    h = Harness(FakeConversation("Paris is the capital."), FakeTTS(delay=0.05))
    await h.turns.handle(SpeechStopped(1.0))
    await h.turns.handle(speculative("What is the capital of France?"))
    await wait_until(lambda: h.tts.spoken == ["Paris is the capital."])
    await asyncio.sleep(0.2)
    assert h.frames_with_speech == 0 and h.results == []
    assert "agent_text" not in h.kinds() and h.turns.state is AgentState.LISTENING
    await h.turns.handle(final("What is the capital of France?"))
    await wait_until(lambda: len(h.results) == 1)
    result = h.results[0]
    assert h.conversation.heard == ["What is the capital of France?"] and h.conversation.retracted == []
    assert result.agent_text == "Paris is the capital." and not result.interrupted
    delays = result.timing.as_delays()
    # prepared during the pause: the first audio was synthesized before the final came
    assert delays["tts_first_audio"] < delays["stt_final"] <= delays["first_audio_out"]
    assert h.kinds().index("final_transcript") < h.kinds().index("agent_text")
    assert h.states() == ["thinking", "speaking", "listening"]
    assert h.turns.speculative_replies == {"started": 1, "used": 1, "discarded": 0}
    await h.close()


async def test_speculative_reply_is_discarded_when_the_caller_goes_on() -> None:
    h = Harness(FakeConversation("Sure."), FakeTTS())
    await h.turns.handle(speculative("I'd like to book a table for"))
    await wait_until(lambda: h.tts.spoken == ["Sure."])
    await h.turns.handle(SpeechStarted(1.5))
    assert h.conversation.retracted == ["I'd like to book a table for"]
    await h.turns.handle(SpeechStopped(2.5))
    await h.turns.handle(speculative("I'd like to book a table for four."))
    await h.turns.handle(final("I'd like to book a table for four."))
    await wait_until(lambda: len(h.results) == 1)
    assert h.conversation.heard == ["I'd like to book a table for", "I'd like to book a table for four."]
    assert h.results[0].user_text == "I'd like to book a table for four."
    assert [d["text"] for k, d in h.events if k == "final_transcript"] == [
        "I'd like to book a table for four."
    ]
    assert h.turns.speculative_replies == {"started": 2, "used": 1, "discarded": 1}
    await h.close()


async def test_a_final_with_other_words_than_the_speculation_is_answered_on_its_own() -> None:
    h = Harness(FakeConversation("Sure."), FakeTTS())
    await h.turns.handle(speculative("Can I pay by"))
    await wait_until(lambda: h.conversation.heard == ["Can I pay by"])
    await h.turns.handle(final("Can I pay by card?"))
    await wait_until(lambda: len(h.results) == 1)
    assert h.conversation.retracted == ["Can I pay by"] and h.results[0].user_text == "Can I pay by card?"
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


async def test_a_speculation_whose_final_has_no_words_is_dropped_and_frees_the_voice() -> None:
    """The caller's pause was guessed as words but the whole turn transcribed empty (a filtered
    hallucination): the prepared reply is retracted, never spoken, and does not keep the agent's voice (a
    proactive prompt after it is said). Before, the uncommitted reply held the speech lock until the caller
    spoke again."""
    h = Harness(FakeConversation("Sure."), FakeTTS())
    await h.turns.handle(speculative("Thank you for"))
    await wait_until(lambda: h.tts.spoken == ["Sure."])
    await h.turns.handle(final(""))
    assert h.conversation.retracted == ["Thank you for"]
    assert await asyncio.wait_for(h.turns.say("Is there anything else?", "proactive"), 5) is True
    assert h.results == [] and h.turns.speculative_replies == {"started": 1, "used": 0, "discarded": 1}
    await h.close()


class RecordingCallControl:
    """The call's controls as the agent's tools see them; records what the tools did."""

    def __init__(self) -> None:
        self.transfers: list[str] = []

    async def end_call(self) -> None:
        raise AssertionError("not asked to hang up")

    async def transfer(self, target: str) -> None:
        self.transfers.append(target)


async def test_a_speculative_reply_does_not_transfer_before_the_turn_ends(tmp_path: Any) -> None:
    """A reply prepared in the caller's pause may be thrown away: it must not act (transfer, hang up, book a
    call-back) until the caller's turn has ended with its words. CI saw a REFER sent for a reply that was
    discarded, and the transfer announcement never said."""
    from agent.config import AgentConfig
    from agent.conversation import Conversation
    from agent.tools import ToolBox
    from tests.agent.fakes import FakeLLM

    control = RecordingCallControl()
    config = AgentConfig(memory_path=str(tmp_path / "memory.sqlite3"), tool_arguments="rules")
    conversation = Conversation(FakeLLM(["unused"]), config, tools=ToolBox(call_control=control))
    h = Harness(conversation, FakeTTS())  # type: ignore[arg-type]
    await h.turns.handle(speculative("Can I speak to a human"))
    await asyncio.sleep(0.3)  # the prepared reply got as far as it may
    assert control.transfers == [] and h.tts.spoken == []
    await h.turns.handle(SpeechStarted(1.5))  # the caller goes on: the prepared reply is discarded
    await h.turns.handle(SpeechStopped(2.5))
    assert control.transfers == []
    await h.turns.handle(final("Can I speak to a human, please?"))
    await wait_until(lambda: len(h.results) == 1)
    assert control.transfers == [config.transfer_target]  # once, for the turn that ended
    assert "transferring you" in h.results[0].agent_text and not h.results[0].interrupted
    await h.close()


async def test_a_committed_speculative_reply_transfers_once(tmp_path: Any) -> None:
    from agent.config import AgentConfig
    from agent.conversation import Conversation
    from agent.tools import ToolBox
    from tests.agent.fakes import FakeLLM

    control = RecordingCallControl()
    config = AgentConfig(memory_path=str(tmp_path / "memory.sqlite3"), tool_arguments="rules")
    conversation = Conversation(FakeLLM(["unused"]), config, tools=ToolBox(call_control=control))
    h = Harness(conversation, FakeTTS())  # type: ignore[arg-type]
    await h.turns.handle(speculative("Can I speak to a human?"))
    await asyncio.sleep(0.3)
    assert control.transfers == []
    await h.turns.handle(final("Can I speak to a human?"))
    await wait_until(lambda: len(h.results) == 1)
    assert control.transfers == [config.transfer_target]
    assert h.turns.speculative_replies == {"started": 1, "used": 1, "discarded": 0}
    await h.close()
