"""coqui TTS backend: loads a local model directory (``config.json`` + a ``*.pth`` checkpoint).

coqui is an optional extra (``pip install 'voice-agent[coqui]'``, which brings torch), and no pretrained
coqui model can be downloaded on our machines, so both the library and the directory are checked up
front with errors that say exactly what is missing. The import happens here only, so the default
install never pays for torch.

Like Piper, a coqui model makes a whole input's audio in one call, so the text is split here
(``split_for_speech``) and synthesized one piece at a time, each only when the previous one was taken.
The model is loaded once per process and warmed up with one call, so the first caller does not pay
for torch's first run and coqui's lazy imports.
"""

from __future__ import annotations

import functools
import importlib
import logging
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from speech.config import TTSConfig
from speech.errors import BackendUnavailableError, ModelNotFoundError
from speech.frames import AudioFrame
from speech.sentences import split_for_speech
from speech.tts.threaded import synthesize_in_thread

logger = logging.getLogger(__name__)

_load_lock = threading.Lock()
# One torch thread per synthesis: the shared TTS pool runs up to two syntheses at once, one per core, and
# STT and the LLM need cores too. A full-size VITS (36 M parameters, random weights) on 2 cores: real-time
# factor 0.35 with torch's default of 2 threads, 0.70-0.80 with 1; a small model is faster on 1 thread.
TORCH_THREADS = 1
# The number in the warm-up text makes coqui's English cleaner import `inflect` (about 2 s) at load time
# instead of on the first reply that contains a digit.
_WARM_UP_TEXT = "Hello, this is test number 1."


def find_checkpoint(model_dir: Path) -> tuple[Path, Path]:
    """Return (checkpoint, config.json) of a coqui model directory, or raise naming what is missing."""
    config = model_dir / "config.json"
    checkpoints = sorted(model_dir.glob("*.pth"))
    checkpoints = [p for p in checkpoints if not p.name.startswith(("speakers", "optimizer"))]
    if not model_dir.is_dir() or not config.is_file() or not checkpoints:
        raise ModelNotFoundError(
            f"coqui model directory {model_dir} must contain config.json and a model *.pth checkpoint"
        )
    return checkpoints[0], config


def _synthesizer_module() -> Any:
    # TTS.utils.synthesizer, not just TTS: importing it is what fails on a missing torch, torchaudio or
    # torchcodec, or on a dependency coqui-tts forgot to declare (0.28 imports `six`).
    try:
        return importlib.import_module("TTS.utils.synthesizer")
    except ImportError as exc:
        raise BackendUnavailableError(
            "TTS backend 'coqui' needs coqui-tts with torch, torchaudio and torchcodec: "
            f"pip install 'voice-agent[coqui]' (import failed: {exc})"
        ) from exc


@functools.cache
def _load_synthesizer(checkpoint: Path, config: Path) -> Any:
    module = _synthesizer_module()
    import torch

    torch.set_num_threads(TORCH_THREADS)  # process-wide; coqui is the only torch user in the server
    try:
        synth = module.Synthesizer(
            tts_checkpoint=str(checkpoint), tts_config_path=str(config), use_cuda=False
        )
        synth.tts(_WARM_UP_TEXT, split_sentences=False)
    except Exception as exc:  # coqui raises KeyError, ValueError, pickle errors... for a bad directory
        raise ModelNotFoundError(
            f"coqui could not load the model {checkpoint} with {config.name} (is it a coqui TTS model "
            f"directory of coqui-tts 0.28?): {exc!r}"
        ) from exc
    logger.info("coqui model %s loaded, %d Hz", checkpoint, synth.output_sample_rate)
    return synth


class CoquiTTS:
    """coqui TTS voice from ``config.model_dir``; one loaded model per checkpoint shared by all instances.
    See ``TextToSpeech``. ``config.speaker_rate`` is not applied: coqui takes speed from the model config."""

    def __init__(self, config: TTSConfig) -> None:
        if not config.model_dir:
            raise ModelNotFoundError(
                "TTS backend 'coqui' needs speech.tts.model_dir: a local coqui model directory "
                "(config.json + *.pth); no coqui model can be downloaded here, the default voice is 'piper'"
            )
        checkpoint, model_config = find_checkpoint(Path(config.model_dir).expanduser())
        module = _synthesizer_module()
        with _load_lock:
            self._synth = _load_synthesizer(checkpoint, model_config)
        self.sample_rate: int = int(self._synth.output_sample_rate)
        # Synthesizer.tts appends this many zero samples after every sentence; pieces are joined by
        # playback, so the padding would only be a gap (0.45 s at 22 050 Hz) before each next piece.
        self._padding = int(getattr(module, "PAD_SILENCE_SAMPLES", 0))

    def synthesize(self, text: str) -> AsyncIterator[AudioFrame]:
        return synthesize_in_thread(lambda: self._chunks(text), self.sample_rate, text)

    def _chunks(self, text: str) -> Iterator[np.ndarray]:
        for piece in split_for_speech(text):
            # split_sentences=False: the piece is already one sentence or less (coqui would run pysbd again).
            wav = np.asarray(self._synth.tts(piece, split_sentences=False), dtype=np.float32)
            wav = wav[: len(wav) - self._padding]
            yield (np.clip(wav, -1.0, 1.0) * 32767.0).astype(np.int16)
