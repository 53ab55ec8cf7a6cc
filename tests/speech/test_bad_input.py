"""Bad input to the speech pipeline: a clear result or a clear ValueError, never a crash or a hang.

Every awaited call runs under ``asyncio.wait_for`` so a hang fails the test instead of stalling the suite.
Time bounds are generous (a loaded 2-core machine); what they catch is a hang or an unbounded run.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator

import numpy as np
import pytest

from speech.config import SpeechConfig, STTConfig, TTSConfig
from speech.events import FinalTranscript, ListenerEvent
from speech.frames import AudioFrame
from speech.listener import TurnListener
from speech.stt.registry import create_stt
from speech.tts.registry import create_tts
from speech.tts.threaded import stream_in_thread

from .helpers import FakeSTT, frames

TIMEOUT = 30.0


def white_noise(seconds: float, rate: int = 16_000, seed: int = 0) -> np.ndarray:
    """Full-scale white noise, clipped at int16 limits like an overdriven microphone."""
    noise = np.random.default_rng(seed).normal(0.0, 0.9, int(seconds * rate)) * 32767
    return np.clip(noise, -32768, 32767).astype(np.int16)


async def run_listener(pcm_frames: list[AudioFrame], stt: object) -> list[ListenerEvent]:
    listener = TurnListener(stt, SpeechConfig())  # type: ignore[arg-type]
    events: list[ListenerEvent] = []

    async def collect() -> None:
        async for event in listener.events():
            events.append(event)

    collector = asyncio.create_task(collect())
    for frame in pcm_frames:
        await listener.push(frame)
    await asyncio.wait_for(listener.close(), TIMEOUT)
    await asyncio.wait_for(collector, TIMEOUT)
    return events


# --- frames --------------------------------------------------------------------------------------------


def test_frame_with_zero_or_negative_rate_is_a_clear_value_error() -> None:
    for rate in (0, -16_000):
        with pytest.raises(ValueError, match="sample_rate must be positive"):
            AudioFrame(np.zeros(320, np.int16), rate)


@pytest.mark.parametrize(
    "pcm", [np.zeros(320, np.float32), np.zeros(320, np.int32), np.zeros((2, 160), np.int16)]
)
def test_frame_with_wrong_dtype_or_shape_is_a_clear_value_error(pcm: np.ndarray) -> None:
    with pytest.raises(ValueError, match="1-D int16 PCM"):
        AudioFrame(pcm, 16_000)


# --- listener ------------------------------------------------------------------------------------------


async def test_empty_frames_at_any_rate_are_accepted_and_change_nothing() -> None:
    stt = FakeSTT()
    empty = [AudioFrame(np.zeros(0, np.int16), rate, 100.0) for rate in (8_000, 11_025, 16_000, 48_000)]
    assert await run_listener(empty, stt) == []
    assert stt.calls == []


async def test_silence_only_gives_no_turn_and_no_model_call() -> None:
    stt = FakeSTT()
    assert await run_listener(list(frames(np.zeros(3 * 16_000, np.int16), 16_000)), stt) == []
    assert stt.calls == []


async def test_rate_changing_mid_stream_keeps_working() -> None:
    """11 025 Hz then 48 kHz then 16 kHz frames on one listener: each rate is resampled, stream time
    advances by the 16 kHz samples actually received."""
    listener = TurnListener(FakeSTT(), SpeechConfig())
    for rate in (11_025, 48_000, 16_000):
        for frame in frames(np.zeros(rate, np.int16), rate):  # 1 s at each rate
            await listener.push(frame)
    assert abs(listener.stream_time - 100.0 - 3.0) < 0.05  # within the resampler's filter delay
    await listener.close()


@pytest.mark.slow
async def test_clipped_white_noise_never_hangs_and_transcribes_to_little() -> None:
    """Silero VAD may or may not call loud noise speech; if it opens a turn, the final must come back
    promptly and short (no hallucinated paragraph; the decoder's token budget scales with the audio)."""
    stt = create_stt(STTConfig())
    pcm = np.concatenate([np.zeros(8_000, np.int16), white_noise(3.0), np.zeros(16_000, np.int16)])
    started = time.perf_counter()
    events = await run_listener(list(frames(pcm, 16_000)), stt)
    finals = [e for e in events if isinstance(e, FinalTranscript)]
    assert time.perf_counter() - started < TIMEOUT
    assert all(len(f.text.split()) <= 8 for f in finals), [f.text for f in finals]


# --- STT -----------------------------------------------------------------------------------------------


@pytest.mark.slow
async def test_stt_on_empty_silent_short_and_noisy_audio() -> None:
    stt = create_stt(STTConfig())
    await asyncio.wait_for(stt.warm_up(), 60)

    async def text_of(audio: np.ndarray) -> str:
        result = await asyncio.wait_for(stt.transcribe(audio), TIMEOUT)
        assert result is not None
        return result.text

    # Empty and digitally silent audio: empty text without a model call (Whisper would invent "you").
    assert await text_of(np.zeros(0, np.float32)) == ""
    assert await text_of(np.zeros(16_000, np.float32)) == ""
    # 0.1 s of a tone (too short for a word) and 3 s of clipped noise: a string, at most a few words.
    tone = (0.3 * np.sin(np.arange(1_600) * 2 * np.pi * 220 / 16_000)).astype(np.float32)
    assert len((await text_of(tone)).split()) <= 3
    noise = white_noise(3.0).astype(np.float32) / 32768
    assert len((await text_of(noise)).split()) <= 8


@pytest.mark.slow
async def test_stt_input_dtypes_int16_is_scaled_others_are_a_clear_error() -> None:
    stt = create_stt(STTConfig())
    assert (await stt.transcribe(np.zeros(1_600, np.int16))) is not None  # int16 PCM accepted (scaled)
    with pytest.raises(ValueError, match="dtype int32"):
        await stt.transcribe(np.zeros(1_600, np.int32))
    with pytest.raises(ValueError, match="1-D mono"):
        await stt.transcribe(np.zeros((2, 1_600), np.float32))
    with pytest.raises(ValueError, match="NaN"):
        await stt.transcribe(np.full(1_600, np.nan, np.float32))


# --- TTS -----------------------------------------------------------------------------------------------


async def test_tts_worker_stays_at_most_one_piece_ahead_of_a_slow_consumer() -> None:
    produced: list[int] = []
    closed = threading.Event()

    def pieces() -> Iterator[int]:
        try:
            for i in range(1_000):
                produced.append(i)
                yield i
        finally:
            closed.set()

    stream = stream_in_thread(pieces)
    assert await asyncio.wait_for(anext(stream), TIMEOUT) == 0
    await asyncio.sleep(0.2)  # a slow consumer: the worker must wait, not run through all 1,000 pieces
    assert len(produced) <= 2, len(produced)
    await stream.aclose()  # type: ignore[attr-defined]
    assert await asyncio.to_thread(closed.wait, TIMEOUT)  # the generator was closed (its cleanup ran)


@pytest.mark.slow
async def test_piper_streams_a_10000_char_text_with_fast_first_audio_and_stops_on_close() -> None:
    tts = create_tts(TTSConfig(backend="piper"))
    text = ("Your parcel left the depot this morning, and it should reach you before six tonight. " * 120)[
        :10_000
    ]
    stream = tts.synthesize(text)
    started = time.perf_counter()
    first = await asyncio.wait_for(anext(stream), TIMEOUT)  # type: ignore[call-overload]
    first_audio = time.perf_counter() - started
    second = await asyncio.wait_for(anext(stream), TIMEOUT)  # type: ignore[call-overload]
    # The first piece is the first clause only ("Your parcel left the depot this morning,"): about 2 s of
    # audio, not the whole 10,000 characters (~11 minutes) and not the whole first sentence.
    assert 0.5 < first.duration < 4.0, first.duration
    assert first.meta["text"] == text and second.sample_rate == tts.sample_rate
    # Bound: ~10x the unloaded time, for a loaded 2-core machine; synthesizing the whole text takes minutes.
    assert first_audio < 5.0, first_audio
    started = time.perf_counter()
    await asyncio.wait_for(stream.aclose(), TIMEOUT)  # type: ignore[attr-defined]
    assert time.perf_counter() - started < 5.0


@pytest.mark.slow
@pytest.mark.parametrize("text", ["😀🎉👍", "", "   ", "...!?"])
async def test_piper_text_with_nothing_to_say_yields_no_audio(text: str) -> None:
    tts = create_tts(TTSConfig(backend="piper"))

    async def collect() -> list[AudioFrame]:
        return [frame async for frame in tts.synthesize(text)]

    assert await asyncio.wait_for(collect(), TIMEOUT) == []
