"""Sentence-by-sentence synthesis: the caller hears the first sentence before the reply text is complete.

Token deltas arrive at 30 ms each (a slow local LLM); SentenceAggregator -> espeak-ng TTS -> playback.
Asserted: the first audio is queued before the last token arrives, and every sentence is queued in order.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from speech.config import TTSConfig
from speech.playback import PlaybackController
from speech.sentences import SentenceAggregator
from speech.tts.registry import create_tts

REPLY = (
    "Sure, I can help with that. Your order shipped on Monday. "
    "It should arrive by Thursday afternoon, and you will get a text message when it is close."
)


async def tokens(text: str, delay: float):  # type: ignore[no-untyped-def]
    for word in text.split(" "):
        await asyncio.sleep(delay)
        yield word + " "


@pytest.mark.slow
async def test_first_sentence_is_audible_before_the_reply_is_complete() -> None:
    tts = create_tts(TTSConfig(backend="espeak"))
    playback = PlaybackController(16_000)
    sentences: asyncio.Queue[str | None] = asyncio.Queue()
    first_audio_at: list[float] = []
    spoken: list[str] = []

    async def speak() -> None:
        while (sentence := await sentences.get()) is not None:
            spoken.append(sentence)
            async for frame in tts.synthesize(sentence):
                playback.enqueue(frame)
                if not first_audio_at:
                    first_audio_at.append(time.perf_counter())

    speaker = asyncio.create_task(speak())
    aggregator = SentenceAggregator()
    async for delta in tokens(REPLY, 0.03):
        for sentence in aggregator.push(delta):
            sentences.put_nowait(sentence)
    last_token_at = time.perf_counter()
    for sentence in aggregator.flush():
        sentences.put_nowait(sentence)
    sentences.put_nowait(None)
    await speaker
    assert first_audio_at and first_audio_at[0] < last_token_at
    assert spoken == [
        "Sure, I can help with that.",
        "Your order shipped on Monday.",
        "It should arrive by Thursday afternoon, and you will get a text message when it is close.",
    ]
    assert playback.has_audio
