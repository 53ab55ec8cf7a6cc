"""Deterministic fakes for unit tests of the call server's orchestration (named as fakes on purpose).

Integration tests (``test_call_loopback.py``, ``test_browser_call.py``) use the real STT, TTS and LLM.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np

from server.calls.registry import SessionRegistry
from server.calls.session import CallDeps
from server.settings import Settings
from server.storage.call_records import open_call_record_store
from speech.frames import AudioFrame
from speech.stt.base import Transcript


class FakeSTT:
    sample_rate = 16_000

    def __init__(self, text: str = "hello there") -> None:
        self.text = text

    async def transcribe(self, audio: np.ndarray, *, partial: bool = False) -> Transcript | None:
        return Transcript(self.text, len(audio) / 16_000, 0.0)

    async def warm_up(self) -> None:
        return None


class FakeTTS:
    """A 440 Hz tone (``hz``), ``seconds_per_word`` per word, in 20 ms frames carrying ``meta["text"]``."""

    sample_rate = 16_000

    def __init__(self, seconds_per_word: float = 0.1, delay: float = 0.0, hz: float = 440.0) -> None:
        self.seconds_per_word = seconds_per_word
        self.delay = delay
        self.hz = hz
        self.spoken: list[str] = []

    async def synthesize(self, text: str) -> AsyncIterator[AudioFrame]:
        self.spoken.append(text)
        if self.delay:
            await asyncio.sleep(self.delay)
        n = int(len(text.split()) * self.seconds_per_word * self.sample_rate)
        t = np.arange(n) / self.sample_rate
        pcm = (np.sin(2 * np.pi * self.hz * t) * 8000).astype(np.int16)
        for i in range(0, n, 320):
            yield AudioFrame(pcm[i : i + 320], self.sample_rate, 0.0, {"text": text})
            await asyncio.sleep(0)


class FakeConversation:
    """Streams a fixed reply word by word; records what the session told it."""

    def __init__(
        self, reply: str = "Paris is the capital. It is in France.", token_delay: float = 0.0
    ) -> None:
        self.reply = reply
        self.token_delay = token_delay
        self.heard: list[str] = []
        self.agent_utterances: list[tuple[str, str]] = []
        self.interrupted: list[str] = []
        self.retracted: list[str] = []
        self.cancelled = False

    async def respond(self, user_text: str) -> AsyncIterator[str]:
        self.heard.append(user_text)
        try:
            for i, word in enumerate(self.reply.split(" ")):
                if self.token_delay:
                    await asyncio.sleep(self.token_delay)
                yield word if i == 0 else " " + word
        except (asyncio.CancelledError, GeneratorExit):
            self.cancelled = True
            raise

    def add_agent_utterance(self, text: str, source: str = "proactive") -> None:
        self.agent_utterances.append((text, source))

    def mark_interrupted(self, spoken_text: str) -> None:
        self.interrupted.append(spoken_text)

    def retract_last_turn(self) -> None:
        self.retracted.append(self.heard[-1])


def fake_deps(tmp_path: Path, settings: Settings | None = None, **conversation: Any) -> CallDeps:
    settings = settings or Settings()
    return CallDeps(
        speech=settings.speech,
        call=settings.server.call,
        ice_servers=list(settings.server.ice_servers),
        node_id="test-node",
        greeting=settings.agent.greeting,
        stt=FakeSTT(),
        tts=FakeTTS(),
        new_conversation=lambda user_id, control: FakeConversation(**conversation),
        records=open_call_record_store(tmp_path / "calls.sqlite3"),
        registry=SessionRegistry(),
    )
