"""Picks the STT backend named in config and shares one instance per configuration in the process."""

from __future__ import annotations

import threading

from speech.config import STTConfig
from speech.stt.base import SpeechToText

_instances: dict[str, SpeechToText] = {}
_lock = threading.Lock()


def create_stt(config: STTConfig) -> SpeechToText:
    """Return the process-wide STT for ``config``: equal configs share one model and one worker pool."""
    key = config.model_dump_json()
    with _lock:
        if key not in _instances:
            _instances[key] = _build(config)
        return _instances[key]


def _build(config: STTConfig) -> SpeechToText:
    if config.backend == "faster-whisper":
        from speech.stt.faster_whisper import FasterWhisperSTT

        return FasterWhisperSTT(config)
    raise ValueError(f"unknown STT backend {config.backend!r}; known: 'faster-whisper'")
