"""Backchannels resume the agent, interruptions stop it: classification, and real audio through the real
VAD, barge-in detector, Whisper and playback (nothing lost, nothing replayed)."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from speech.backchannel import BackchannelDecider, BargeInKind, classify_barge_in, is_clear_interruption
from speech.bargein import BargeInDetector
from speech.config import BargeInConfig, SpeechConfig
from speech.frames import AudioFrame
from speech.playback import PlaybackController
from speech.stt.base import Transcript
from speech.stt.registry import create_stt
from speech.vad import VadChunk

from .bargein_set import AGENT_TEXT, coughs, play_against_agent, real_sounds
from .corpus import synthesize
from .helpers import FakeSTT


@pytest.mark.parametrize(
    "text",
    ["Mm-hmm.", "Uh-huh.", "Yeah.", "Okay.", "Right.", "Oh, I see.", "Got it.", "All right.", "Yeah, yeah.",
     "Hmm", "MMMM", "", "Thank you."],
)  # fmt: skip
def test_acknowledgements_and_wordless_sounds_are_backchannels(text: str) -> None:
    assert classify_barge_in(text) is BargeInKind.BACKCHANNEL


@pytest.mark.parametrize(
    "text",
    ["Wait.", "Stop.", "No.", "Hold on.", "No, I meant Tuesday.", "Okay?", "Really?", "What about Sunday?",
     "Okay, but what about Sunday", "I", "See", "Yeah yeah but I need a refund"],
)  # fmt: skip
def test_everything_else_is_an_interruption(text: str) -> None:
    assert classify_barge_in(text) is BargeInKind.INTERRUPTION


@pytest.mark.parametrize(
    ("partial", "clear"),
    [("No, I", True), ("Wait", True), ("What about", True), ("So", False), ("Oh", False), ("Okay.", False)],
)
def test_only_clear_words_stop_a_sound_that_is_still_going_on(partial: str, clear: bool) -> None:
    """An early look at "Oh, okay" may read "So": that must not stop the reply before the sound ends."""
    assert is_clear_interruption(partial) is clear


class SlowSTT(FakeSTT):
    """A fake STT that takes ``delay`` seconds: the decision must not wait for it past its timeout."""

    def __init__(self, delay: float) -> None:
        super().__init__("Mm-hmm.")
        self.delay = delay

    async def transcribe(self, audio: np.ndarray, *, partial: bool = False) -> Transcript | None:
        await asyncio.sleep(self.delay)
        return await super().transcribe(audio, partial=partial)


async def test_a_late_decision_counts_as_an_interruption() -> None:
    decider = BackchannelDecider(SlowSTT(5.0), BargeInConfig(decision_timeout_ms=100))
    decision = await asyncio.wait_for(decider.decide(np.zeros(8000, np.float32)), 2.0)
    assert decision.kind is BargeInKind.INTERRUPTION and decision.reason == "timeout"


def speaking_agent() -> PlaybackController:
    """Playback with one second of the agent's voice queued."""
    playback = PlaybackController(16_000)
    playback.enqueue(AudioFrame(np.full(16_000, 1000, np.int16), 16_000, meta={"text": AGENT_TEXT}))
    return playback


async def test_a_backchannel_resumes_and_its_turn_is_absorbed() -> None:
    """Words mode with a fake STT: the reply pauses at the sound, resumes after the decision, and the
    listener's turn for that sound (same stream times) is recognised as the backchannel."""
    playback = speaking_agent()
    resumed: list[str] = []
    decider = BackchannelDecider(FakeSTT("Mm-hmm."), BargeInConfig())
    on_backchannel = lambda d: resumed.append(d.text)
    detector = BargeInDetector(playback, BargeInConfig(), decider=decider, on_backchannel=on_backchannel)
    chunk = np.zeros(512, np.float32)
    for i in range(8):  # 0.26 s of voice from stream time 10.0
        detector.on_vad(VadChunk(10 + i * 0.032, 0.9, samples=chunk))
    assert playback.is_paused and detector.deciding
    for i in range(8, 16):  # then quiet: the sound ended, the decision starts
        detector.on_vad(VadChunk(10 + i * 0.032, 0.0, samples=chunk))
    assert await detector.wait_decided(2.0)
    assert resumed == ["Mm-hmm."] and not playback.is_paused and playback.has_audio
    assert detector.absorbs(10.0, 10.3) and not detector.absorbs(20.0, 21.0)


@pytest.fixture(scope="module")
def agent() -> tuple[np.ndarray, int]:
    return synthesize(AGENT_TEXT, "piper", "joe"), 16_000


@pytest.mark.slow
@pytest.mark.parametrize(
    ("text", "backend", "voice", "stops"),
    [("Okay.", "espeak", "en-gb", False), ("Yeah.", "piper", "joe", False), ("Right.", "espeak", "en-us+f3", False),
     ("I see.", "piper", "joe", False), ("Wait.", "espeak", "en-gb", True), ("No, I meant Tuesday.", "piper", "joe", True),
     ("What about Sunday?", "espeak", "en-029", True), ("Hold on.", "piper", "joe", True)],
)  # fmt: skip
async def test_backchannels_resume_and_interruptions_stop_the_reply(
    agent: tuple[np.ndarray, int], text: str, backend: str, voice: str, stops: bool
) -> None:
    """The agent goes quiet at once either way; a backchannel then resumes it with every queued sample played
    exactly once (none lost, none replayed), an interruption drops the rest of the reply."""
    config = SpeechConfig()
    outcome = await play_against_agent(
        agent, synthesize(text, backend, voice), create_stt(config.stt), config
    )
    assert outcome.interrupted is stops, outcome.decisions
    assert outcome.paused_after_onset_s is not None and outcome.paused_after_onset_s <= 0.15
    if stops:
        assert outcome.played_samples < outcome.enqueued_samples
    else:
        assert outcome.resumed_after_onset_s is not None
        assert outcome.played_samples == outcome.enqueued_samples


@pytest.mark.slow
async def test_real_recorded_backchannels_and_a_cough_resume(agent: tuple[np.ndarray, int]) -> None:
    """Real "Yeah." and "Okay." from meeting recordings (two speakers), and a synthetic cough."""
    config = SpeechConfig()
    stt = create_stt(config.stt)
    picks = [s for s in real_sounds() if s.name in ("real trn04@26.992", "real trn09@15.726")] + coughs(1)
    assert len(picks) == 3
    for sound in picks:
        outcome = await play_against_agent(agent, sound.pcm, stt, config)
        assert not outcome.interrupted, (sound.name, outcome.decisions)
        assert outcome.played_samples == outcome.enqueued_samples, sound.name


@pytest.mark.slow
async def test_real_recorded_interruptions_stop(agent: tuple[np.ndarray, int]) -> None:
    """A real question ("What's a username?") and a real "No." from meeting recordings."""
    config = SpeechConfig()
    stt = create_stt(config.stt)
    picks = [s for s in real_sounds() if s.name in ("real dev01@19.568", "real tst01@4.773")]
    assert len(picks) == 2
    for sound in picks:
        outcome = await play_against_agent(agent, sound.pcm, stt, config)
        assert outcome.interrupted, (sound.name, outcome.decisions)


class FailingSTT(FakeSTT):
    """A fake STT whose model call fails."""

    async def transcribe(self, audio: np.ndarray, *, partial: bool = False) -> Transcript | None:
        raise RuntimeError("model crashed")


async def test_a_failed_transcription_stops_the_reply_instead_of_leaving_it_paused() -> None:
    playback = speaking_agent()
    stopped: list[str] = []
    decider = BackchannelDecider(FailingSTT(), BargeInConfig())
    detector = BargeInDetector(playback, BargeInConfig(), decider=decider, on_barge_in=stopped.append)
    for i in range(16):
        detector.on_vad(VadChunk(i * 0.032, 0.9 if i < 8 else 0.0, samples=np.zeros(512, np.float32)))
    assert await detector.wait_decided(2.0)
    assert len(stopped) == 1 and not playback.has_audio and not playback.is_paused
    assert detector.decisions[-1].reason == "stt failed"


@pytest.mark.parametrize("text", ["🙂🙂", "?", "...", "a" * 10_000, "Mm-hmm " * 500])
def test_odd_transcripts_classify_without_error(text: str) -> None:
    assert classify_barge_in(text) in (BargeInKind.BACKCHANNEL, BargeInKind.INTERRUPTION)
    assert is_clear_interruption(text) in (True, False)
