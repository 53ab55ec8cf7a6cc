"""Whisper repetition loops: the text filter, and real one-word clips that looped before the fix."""

from __future__ import annotations

import re

import numpy as np
import pytest

from speech.config import STTConfig
from speech.stt.registry import create_stt
from speech.stt.repetition import collapse_repetitions

from .corpus import RATE, load_pcm16k, real_speech_dir, synthesize


@pytest.mark.parametrize(
    ("looped", "collapsed"),
    [
        ("Goodbye. Goodbye. Goodbye. Goodbye. Goodbye. Goodbye. Goodbye", "Goodbye."),
        ("10 of clubs 10 of clubs 10 of clubs 10 of clubs 10 of clubs 10 of", "10 of clubs"),
        ("5 5 5 5 5 5 5 5 5 5 5 5 5 5 5 5 5 5 5", "5"),
        ("Console Console Console Console", "Console"),
        ("I said it is the the the thing.", "I said it is the thing."),
    ],
)
def test_loops_collapse_to_one_copy(looped: str, collapsed: str) -> None:
    assert collapse_repetitions(looped) == collapsed


@pytest.mark.parametrize(
    "text",
    ["No, no.", "Bye bye.", "Yes. I want the red one. Red one.", "Go forward 10 meters.", "", "  "],
)
def test_ordinary_text_is_unchanged(text: str) -> None:
    assert collapse_repetitions(text) == " ".join(text.split())


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9']+", text.lower())


def _padded(pcm: np.ndarray, seconds: float = 0.3) -> np.ndarray:
    """The listener keeps ~0.3 s of pre-roll and 0.2 s of post-roll around a turn; the loops need that pad."""
    pad = np.zeros(int(seconds * RATE), np.int16)
    return np.concatenate([pad, pcm, pad])


# Each of these came back as the word repeated 7-14 times with the default decoding before the fix
# (tiny.en, 0.3 s of silence around the word; see bench/stt_loops.py for the whole set).
LOOPED_BEFORE = [
    ("Repeat.", "piper", "joe"),
    ("Goodbye.", "piper", "joe"),
    ("tomorrow", "espeak", "en-us"),
    ("cancel", "espeak", "en-gb"),
    ("twelve", "espeak", "en-gb-scotland"),
]


@pytest.mark.slow
@pytest.mark.parametrize(("word", "backend", "voice"), LOOPED_BEFORE)
async def test_one_word_clips_come_back_as_one_word(word: str, backend: str, voice: str) -> None:
    stt = create_stt(STTConfig())
    result = await stt.transcribe(_padded(synthesize(word, backend, voice)))
    assert result is not None
    words = _words(result.text)
    assert 1 <= len(words) <= 2, result.text  # "Cancel" may come back as "Console": a mishearing, not a loop


@pytest.mark.slow
async def test_real_recordings_that_looped_are_transcribed_once() -> None:
    """Two real human recordings (pocketsphinx test data) that looped: "ten of clubs", "five five"."""
    cards = real_speech_dir() / "pocketsphinx" / "cards"
    stt = create_stt(STTConfig())
    ten = await stt.transcribe(_padded(load_pcm16k(cards / "001.wav")))
    five = await stt.transcribe(_padded(load_pcm16k(cards / "004.wav")))
    assert ten is not None and five is not None
    assert _words(ten.text) == ["10", "of", "clubs"], ten.text
    assert 1 <= len(_words(five.text)) <= 2 and set(_words(five.text)) == {"5"}, five.text
