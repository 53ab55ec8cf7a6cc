"""Fixtures of the SIP layer's tests: speech made with Piper at test time, Whisper to check it, and a
``SipUserAgent`` factory on free loopback ports (stopped at teardown)."""

from __future__ import annotations

import subprocess
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hypothesis  # noqa: F401  (see below)
import numpy as np
import pytest

from server.transports.sip import SipConfig, SipUserAgent
from speech.frames import AudioFrame
from speech.resample import Resampler
from tests.speech.conftest import piper_sentence, trim, write_wav

# hypothesis' pytest plugin imports hypothesis lazily, in pytest_terminal_summary; under pytest's assertion
# rewriting, on Python 3.11.7, compiling its modules that deep in the stack can fail with "SystemError: AST
# constructor recursion depth mismatch" (a CPython 3.11 bug) and turn a passing run into a crash. Importing
# it here, at collection, compiles it on a shallow stack.
CALLER_TEXT = "I would like to book a table for two people tomorrow evening."
AGENT_TEXT = "Your appointment is confirmed for Monday morning at nine."
SCENARIOS = Path(__file__).parent / "scenarios"
pytestmark = pytest.mark.sip


@dataclass(frozen=True)
class Sentence:
    text: str
    pcm8k: np.ndarray  # int16 at 8 kHz, with 0.4 s of silence before and 0.8 s after
    wav8k: Path
    alaw: Path  # raw A-law (sox -t al), for SIPp's rtp_stream
    ulaw: Path

    @property
    def seconds(self) -> float:
        return len(self.pcm8k) / 8000


def to_rate(pcm: np.ndarray, src: int, dst: int) -> np.ndarray:
    resampler = Resampler(src, dst)
    return np.concatenate([resampler.process(AudioFrame(pcm, src)).pcm, resampler.flush().pcm]).astype(
        np.int16
    )


def _sentence(directory: Path, name: str, text: str) -> Sentence:
    pcm, rate = piper_sentence(text)
    speech = to_rate(trim(pcm, rate), rate, 8000)
    pcm8k = np.concatenate([np.zeros(3200, np.int16), speech, np.zeros(6400, np.int16)])
    wav = write_wav(directory / f"{name}.wav", pcm8k, 8000)
    alaw, ulaw = directory / f"{name}.al", directory / f"{name}.ul"
    for out, kind in ((alaw, "al"), (ulaw, "ul")):
        subprocess.run(
            ["sox", str(wav), "-r", "8000", "-c", "1", "-t", kind, str(out)], check=True, timeout=30
        )
    return Sentence(text, pcm8k, wav, alaw, ulaw)


@pytest.fixture(scope="session")
def sip_audio_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("sip-audio")


@pytest.fixture(scope="session")
def caller_sentence(sip_audio_dir: Path) -> Sentence:
    return _sentence(sip_audio_dir, "caller", CALLER_TEXT)


@pytest.fixture(scope="session")
def agent_sentence(sip_audio_dir: Path) -> Sentence:
    return _sentence(sip_audio_dir, "agent", AGENT_TEXT)


class Whisper:
    """The project's STT (faster-whisper, tiny.en unless ``model`` says "base") on telephone audio."""

    def __init__(self, model: str = "tiny.en") -> None:
        from speech.config import STTConfig
        from speech.stt.registry import create_stt

        self._stt = create_stt(STTConfig(model=model))

    async def transcribe(self, pcm: np.ndarray, rate: int = 8000) -> str:
        pcm16k = to_rate(pcm.astype(np.int16), rate, 16_000)[: 30 * 16_000]
        result = await self._stt.transcribe(pcm16k.astype(np.float32) / 32768.0)
        return result.text if result is not None else ""


@pytest.fixture(scope="session")
def whisper() -> Whisper:
    return Whisper()


UserAgentFactory = Callable[..., Any]


@pytest.fixture
async def user_agent() -> AsyncIterator[UserAgentFactory]:
    """``await user_agent(on_call, **config)`` -> a started ``SipUserAgent`` on a free port."""
    started: list[SipUserAgent] = []

    async def start(on_call: Any = None, **settings: Any) -> SipUserAgent:
        settings.setdefault("udp_port", 0)
        agent = SipUserAgent(SipConfig(enabled=True, **settings), on_call)
        await agent.start()
        started.append(agent)
        return agent

    yield start
    for agent in started:
        await agent.stop()


def scenario(name: str, directory: Path, **values: object) -> Path:
    """A SIPp scenario from ``scenarios/<name>.xml`` with ``{{key}}`` placeholders filled in."""
    text = (SCENARIOS / f"{name}.xml").read_text()
    for key, value in values.items():
        text = text.replace("{{" + key + "}}", str(value))
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.xml"
    path.write_text(text)
    return path
