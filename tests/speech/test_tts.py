from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path
from typing import Any

import jiwer
import numpy as np
import pytest

from speech.config import STTConfig, TTSConfig
from speech.errors import BackendUnavailableError, ModelNotFoundError
from speech.frames import AudioFrame
from speech.resample import resample_array
from speech.stt.registry import create_stt
from speech.tts.registry import create_tts

from .helpers import normalize

pytestmark = pytest.mark.slow

TEXT = "Your appointment is on Monday at ten. Please bring your passport."


async def synthesize(backend: str) -> tuple[list[AudioFrame], float, float]:
    tts = create_tts(TTSConfig(backend=backend))  # type: ignore[arg-type]
    frames = []
    started = time.perf_counter()
    first = 0.0
    async for frame in tts.synthesize(TEXT):
        first = first or time.perf_counter() - started
        frames.append(frame)
    return frames, first, time.perf_counter() - started


async def transcribe(frames: list[AudioFrame]) -> str:
    pcm = np.concatenate([f.pcm for f in frames])
    audio = resample_array(pcm, frames[0].sample_rate, 16_000).astype(np.float32) / 32768
    # As a caller hears it: line silence before the reply. TTS output now starts on its first word (its
    # leading silence is trimmed) and tiny.en then sometimes stops after the first sentence.
    audio = np.concatenate([np.zeros(4800, np.float32), audio])
    result = await create_stt(STTConfig()).transcribe(audio)
    assert result is not None
    return normalize(result.text)


@pytest.mark.parametrize("backend", ["piper", "espeak"])
async def test_synthesized_speech_transcribes_back_to_the_words(backend: str) -> None:
    frames, first, total = await synthesize(backend)
    assert len(frames) >= 2, "audio must stream in pieces, not arrive as one block"
    assert first < total
    assert all(f.sample_rate == create_tts(TTSConfig(backend=backend)).sample_rate for f in frames)  # type: ignore[arg-type]
    assert frames[0].meta["text"] == TEXT
    text = await transcribe(frames)
    # Content words must survive; WER <= 0.25 tolerates one or two short words misheard by tiny.en.
    for word in ("appointment", "monday", "passport"):
        assert word in text, text
    assert jiwer.wer(normalize(TEXT), text) <= 0.25, text


async def test_piper_stops_when_consumer_stops_early() -> None:
    """A reply cut off after its first frame frees the voice: closing the stream returns promptly and the
    next sentence is synthesised in full (a worker left running the old one would block or interleave)."""
    tts = create_tts(TTSConfig(backend="piper"))
    stream = tts.synthesize("One. Two. Three. Four. Five. Six. Seven.")
    async for _ in stream:
        break
    await asyncio.wait_for(stream.aclose(), 10)  # type: ignore[attr-defined]
    frames = await asyncio.wait_for(_collect(tts.synthesize("Eight.")), 30)
    seconds = sum(len(f.pcm) / f.sample_rate for f in frames)
    assert 0.2 < seconds < 3.0, seconds  # "Eight." alone, not the rest of the cut-off reply


async def _collect(stream: Any) -> list[Any]:
    return [frame async for frame in stream]


def test_coqui_without_model_dir_says_what_is_missing() -> None:
    with pytest.raises(ModelNotFoundError, match="model_dir"):
        create_tts(TTSConfig(backend="coqui"))


def test_coqui_with_a_missing_model_directory_names_what_it_needs(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match="config.json"):
        create_tts(TTSConfig(backend="coqui", model_dir=str(tmp_path / "missing")))
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ModelNotFoundError, match=r"\*\.pth"):
        create_tts(TTSConfig(backend="coqui", model_dir=str(tmp_path)))


def test_coqui_with_simulated_missing_library_names_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Simulated fault: the test set-up installs coqui-tts, so its absence is simulated. None in
    sys.modules makes ``import TTS.utils.synthesizer`` raise ImportError even after an earlier import."""
    monkeypatch.setitem(sys.modules, "TTS", None)
    monkeypatch.setitem(sys.modules, "TTS.utils.synthesizer", None)
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "model.pth").write_bytes(b"")
    with pytest.raises(BackendUnavailableError, match=r"coqui-tts.*voice-agent\[coqui\]"):
        create_tts(TTSConfig(backend="coqui", model_dir=str(tmp_path)))


def test_coqui_with_a_broken_model_directory_names_the_checkpoint(tmp_path: Path) -> None:
    # Needs the real library (installed by the test set-up): coqui itself rejects the files.
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "model.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(ModelNotFoundError, match="could not load the model .*model.pth"):
        create_tts(TTSConfig(backend="coqui", model_dir=str(tmp_path)))


async def test_piper_first_audio_is_the_first_phrase_not_the_whole_sentence() -> None:
    """A 12-word sentence: the first frame is "I found three open slots" (~1.5 s of audio) so it is ready
    after a fraction of the whole sentence's synthesis time; the rest follows as a second piece."""
    tts = create_tts(TTSConfig(backend="piper"))
    frames = [
        f async for f in tts.synthesize("I found three open slots for you on Monday morning next week.")
    ]
    total = sum(f.duration for f in frames)
    assert len(frames) == 2 and frames[0].duration < 0.6 * total, [f.duration for f in frames]
    text = await transcribe(frames)
    for word in ("found", "three", "slots", "monday", "morning", "week"):
        assert word in text, text


def _rss_anon_mb() -> float:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("RssAnon:")) / 1024


async def test_a_long_reply_does_not_leave_piper_holding_its_memory() -> None:
    """ONNX Runtime's arena kept the memory of the longest input for good: a 96-word reply left the process
    ~150-250 MB larger. Long runs now shrink the arena when they end."""
    tts = create_tts(TTSConfig(backend="piper"))
    await _collect(tts.synthesize("Sure, I can help with that."))
    before = _rss_anon_mb()
    long_reply = " ".join(["The courier will text you a delivery window"] * 12)
    frames = await _collect(tts.synthesize(long_reply))
    assert sum(len(f.pcm) for f in frames) / tts.sample_rate > 20  # the whole reply was spoken
    assert _rss_anon_mb() - before < 100, f"{_rss_anon_mb() - before:.0f} MB more after one long reply"
