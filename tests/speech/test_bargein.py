"""Barge-in on real audio, in virtual time (20 ms ticks, no sleeping).

Each tick the caller's 20 ms frame is pushed into a TurnListener (real Silero VAD, fake STT) whose VAD
feeds the BargeInDetector, then the PlaybackController gives the frame that plays during the next 20 ms.
Asserted bounds, with onset = true start of the caller's speech:
- the agent goes silent (paused) no later than onset + 150 ms;
- the agent's queued audio is dropped for good no later than onset + guard (200 ms) + 150 ms;
- a 60 ms noise burst, or a 100 ms speech fragment, does not interrupt: every queued sample is played.
"""

from __future__ import annotations

import numpy as np
import pytest

from speech.bargein import BargeInDetector
from speech.config import SpeechConfig
from speech.frames import AudioFrame
from speech.listener import TurnListener
from speech.playback import PlaybackController

from .conftest import piper_sentence
from .helpers import FakeSTT

pytestmark = pytest.mark.slow

TICK = 0.02
ONSET = 1.0
AGENT_TEXT = "Thanks for calling. Your order has shipped and should arrive on Thursday afternoon."


@pytest.fixture(scope="module")
def agent_audio() -> tuple[np.ndarray, int]:
    return piper_sentence(AGENT_TEXT)


async def run_call(agent: tuple[np.ndarray, int], caller: np.ndarray) -> dict[str, object]:
    config = SpeechConfig()
    playback = PlaybackController(16_000, frame_ms=20)
    heard: list[str] = []
    detector = BargeInDetector(playback, config.barge_in, on_barge_in=heard.append)
    listener = TurnListener(FakeSTT(), config, on_vad=detector.on_vad)
    pcm, rate = agent
    for i in range(0, len(pcm), rate // 10):  # TTS-like 100 ms chunks
        playback.enqueue(AudioFrame(pcm[i : i + rate // 10], rate, meta={"text": AGENT_TEXT}))
    played = 0
    first_silent = last_audio = dropped_at = None
    step = int(16_000 * TICK)
    for k in range(len(caller) // step):
        await listener.push(AudioFrame(caller[k * step : (k + 1) * step], 16_000, 100.0 + k * TICK))
        out = playback.read_frame()
        plays_at = (k + 1) * TICK
        speech = int(out.meta["audio_samples"])  # type: ignore[call-overload]
        played += speech
        if dropped_at is None and detector.barge_ins:
            dropped_at = plays_at  # interrupt() ran during this tick: nothing queued plays from here on
        if speech:
            last_audio = plays_at
        elif first_silent is None and plays_at > ONSET - 0.1:
            first_silent = plays_at
        if not playback.has_audio and last_audio is not None and last_audio < plays_at - 1.0:
            break
    await listener.close(wait_for_final=False)
    return {
        "playback": playback,
        "detector": detector,
        "heard": heard,
        "played": played,
        "first_silent": first_silent,
        "dropped_at": dropped_at,
    }


def caller_stream(burst: np.ndarray, seconds: float = 8.0) -> np.ndarray:
    stream = np.zeros(int(seconds * 16_000), np.int16)
    at = int(ONSET * 16_000)
    stream[at : at + len(burst)] = burst
    return stream


async def test_caller_speech_stops_the_agent_within_bounds(agent_audio, caller_utterance) -> None:  # type: ignore[no-untyped-def]
    caller, _ = caller_utterance
    result = await run_call(agent_audio, caller_stream(caller, seconds=4.0))
    paused, dropped = result["first_silent"], result["dropped_at"]
    print(
        f"\nbarge-in: agent silent {paused - ONSET:.3f}s after onset, audio dropped {dropped - ONSET:.3f}s after"
    )
    assert paused is not None and paused - ONSET <= 0.150
    assert dropped is not None and dropped - ONSET <= 0.200 + 0.150
    detector = result["detector"]
    assert detector.barge_ins == 1  # type: ignore[attr-defined]
    heard = result["heard"][0]  # type: ignore[index]
    assert heard and len(heard) < len(AGENT_TEXT) and AGENT_TEXT.startswith(heard.split()[0])
    assert not result["playback"].has_audio  # type: ignore[attr-defined]


@pytest.mark.parametrize("kind", ["noise_60ms", "speech_100ms"])
async def test_click_or_fragment_does_not_stop_the_agent(agent_audio, caller_utterance, kind: str) -> None:  # type: ignore[no-untyped-def]
    if kind == "noise_60ms":
        burst = (np.random.default_rng(1).standard_normal(960) * 12_000).clip(-32767, 32767).astype(np.int16)
    else:
        burst = caller_utterance[0][1600:3200]
    result = await run_call(agent_audio, caller_stream(burst))
    pcm, rate = agent_audio
    expected = len(pcm) * 16_000 / rate
    detector = result["detector"]
    assert detector.barge_ins == 0  # type: ignore[attr-defined]
    assert abs(int(result["played"]) - expected) <= 2, (result["played"], expected)  # type: ignore[call-overload]
    print(f"\n{kind}: false triggers={detector.false_triggers}, all {result['played']} samples played")  # type: ignore[attr-defined]


def test_without_pause_the_agent_keeps_talking_during_the_guard() -> None:
    from speech.config import BargeInConfig
    from speech.vad import VadChunk

    playback = PlaybackController(16_000)
    playback.enqueue(AudioFrame(np.ones(16_000, np.int16), 16_000, meta={"text": "a b c d"}))
    detector = BargeInDetector(playback, BargeInConfig(min_speech_ms=200, pause_on_speech=False))
    for i in range(6):  # 192 ms of voice: below the guard
        detector.on_vad(VadChunk(i * 0.032, 0.9))
        assert playback.is_speaking
    detector.on_vad(VadChunk(0.192, 0.9))  # 224 ms: confirmed
    assert detector.barge_ins == 1 and not playback.has_audio


def test_speech_while_agent_is_quiet_is_not_a_barge_in() -> None:
    from speech.config import BargeInConfig
    from speech.vad import VadChunk

    playback = PlaybackController(16_000)
    detector = BargeInDetector(playback, BargeInConfig())
    for i in range(20):
        detector.on_vad(VadChunk(i * 0.032, 0.9))
    assert detector.barge_ins == 0 and not playback.is_paused


def test_a_weak_onset_after_quiet_pauses_but_steady_murmur_does_not_keep_pausing() -> None:
    """Through Opus, "St" of "Stop" scores 0.1-0.3: after quiet, a chunk at pause_threshold pauses at once.
    A steady murmur between the two thresholds pauses once, resumes after the gap, and then cannot pause
    again until the caller was quiet: the agent is never left silent by noise."""
    from speech.config import BargeInConfig
    from speech.vad import VadChunk

    playback = PlaybackController(16_000)
    playback.enqueue(AudioFrame(np.ones(160_000, np.int16), 16_000, meta={"text": "a long reply"}))
    detector = BargeInDetector(playback, BargeInConfig(pause_threshold=0.2, false_trigger_gap_ms=150))
    t = 0.0

    def feed(probability: float, n: int = 1) -> None:
        nonlocal t
        for _ in range(n):
            detector.on_vad(VadChunk(t, probability))
            t += 0.032

    feed(0.01, 10)  # 320 ms of quiet
    feed(0.25)
    assert playback.is_paused  # weak onset after quiet
    feed(0.7, 7)  # 224 ms voiced: confirmed
    assert detector.barge_ins == 1 and not playback.has_audio

    playback.enqueue(AudioFrame(np.ones(160_000, np.int16), 16_000, meta={"text": "the next reply"}))
    feed(0.01, 10)
    feed(0.3, 5)  # murmur: paused, then the 150 ms gap without a voiced chunk resumes playback
    assert detector.false_triggers == 1 and not playback.is_paused
    feed(0.3, 30)  # still murmuring: no quiet before it, so no new pause
    assert detector.false_triggers == 1 and playback.is_speaking
    feed(0.6)  # a voiced chunk still pauses at once
    assert playback.is_paused
