"""Picks the TTS backend named in config; one shared instance per configuration in the process."""

from __future__ import annotations

import threading

from speech.config import TTSConfig
from speech.tts.base import TextToSpeech

_instances: dict[str, TextToSpeech] = {}
_lock = threading.Lock()


def create_tts(config: TTSConfig) -> TextToSpeech:
    """Return the TTS for ``config`` (backends import their heavy libraries only when chosen)."""
    key = config.model_dump_json()
    with _lock:
        if key not in _instances:
            _instances[key] = _build(config)
        return _instances[key]


def _build(config: TTSConfig) -> TextToSpeech:
    if config.backend == "piper":
        from speech.tts.piper import PiperTTS

        return PiperTTS(config)
    if config.backend == "espeak":
        from speech.tts.espeak import EspeakTTS

        return EspeakTTS(config)
    if config.backend == "coqui":
        from speech.tts.coqui import CoquiTTS

        return CoquiTTS(config)
    raise ValueError(f"unknown TTS backend {config.backend!r}; known: 'piper', 'espeak', 'coqui'")
