"""coqui TTS backend: loads a local model directory (``config.json`` + a ``*.pth`` checkpoint).

coqui is an optional extra (``pip install 'voice-agent[coqui]'``, which needs torch), and no pretrained
coqui model can be downloaded on our machines, so both the library and the directory are checked up
front with errors that say exactly what is missing. The import happens here only, so the default
install never pays for torch.
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
from speech.sentences import split_for_speech
from speech.tts.threaded import synthesize_in_thread

_load_lock = threading.Lock()


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


@functools.cache
def _load_synthesizer(checkpoint: Path, config: Path) -> Any:
    from TTS.utils.synthesizer import Synthesizer

    return Synthesizer(tts_checkpoint=str(checkpoint), tts_config_path=str(config), use_cuda=False)


class CoquiTTS:
    """coqui TTS voice from ``config.model_dir``. See ``TextToSpeech``."""

    def __init__(self, config: TTSConfig) -> None:
        if not config.model_dir:
            raise ModelNotFoundError(
                "TTS backend 'coqui' needs speech.tts.model_dir: a local coqui model directory "
                "(config.json + *.pth); no coqui model can be downloaded here, the default voice is 'piper'"
            )
        checkpoint, model_config = find_checkpoint(Path(config.model_dir).expanduser())
        try:
            import TTS  # noqa: F401
        except ImportError as exc:
            raise BackendUnavailableError(
                "TTS backend 'coqui' needs the coqui-tts package with torch: pip install 'voice-agent[coqui]' "
                "(install torch first, e.g. pip install torch==2.13.0)"
            ) from exc
        with _load_lock:
            self._synth = _load_synthesizer(checkpoint, model_config)
        self.sample_rate: int = int(self._synth.output_sample_rate)

    def synthesize(self, text: str) -> AsyncIterator[AudioFrame]:
        return synthesize_in_thread(lambda: self._chunks(text), self.sample_rate, text)

    def _chunks(self, text: str) -> Iterator[np.ndarray]:
        # coqui synthesizes a whole input at once: one piece at a time keeps first audio and memory small.
        for piece in split_for_speech(text):
            wav = np.asarray(self._synth.tts(piece), dtype=np.float32)
            yield (np.clip(wav, -1.0, 1.0) * 32767.0).astype(np.int16)
