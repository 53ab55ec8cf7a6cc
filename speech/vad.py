"""Streaming voice activity detection with the Silero VAD model that faster-whisper ships.

The v6 ONNX graph takes 512 new samples at 16 kHz prefixed by the last 64 samples of the previous chunk
(its "context"), plus LSTM state ``h``/``c`` of shape (1, 1, 128); it returns one speech probability per
32 ms chunk. faster-whisper only runs it over whole files, so this module keeps the context and state per
stream to run it incrementally on live audio. The ONNX session is shared (it is stateless and
thread-safe); the state lives in each ``SileroVAD`` instance.
"""

from __future__ import annotations

import functools
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from speech.errors import BackendUnavailableError, ModelNotFoundError

SAMPLE_RATE = 16_000
CHUNK_SAMPLES = 512
CONTEXT_SAMPLES = 64
CHUNK_SECONDS = CHUNK_SAMPLES / SAMPLE_RATE


@dataclass(frozen=True, slots=True)
class VadChunk:
    """Speech probability of one 32 ms chunk starting at stream time ``t``; ``samples`` is its audio
    (16 kHz float32) when the VAD provides it, so a listener of chunks can keep what was said."""

    t: float
    probability: float
    duration: float = CHUNK_SECONDS
    samples: np.ndarray | None = field(default=None, repr=False, compare=False)


class VoiceActivityDetector(Protocol):
    """A streaming VAD: feed 16 kHz float audio of any length, get one result per completed chunk."""

    def process(self, samples: np.ndarray, t: float) -> list[VadChunk]: ...

    def reset(self) -> None: ...


def silero_model_path() -> Path:
    """Path of the Silero VAD ONNX file inside the installed faster-whisper package."""
    try:
        import faster_whisper
    except ImportError as exc:
        raise BackendUnavailableError(
            "Silero VAD needs the 'faster-whisper' package (pip install faster-whisper)"
        ) from exc
    assets = Path(faster_whisper.__file__).parent / "assets"
    candidates = sorted(assets.glob("silero_vad*.onnx"), reverse=True)
    if not candidates:
        raise ModelNotFoundError(
            f"no silero_vad*.onnx under {assets}; reinstall the 'faster-whisper' package"
        )
    return candidates[0]


_cpu_lock = threading.Lock()
_cpu_seconds = 0.0


def vad_cpu_seconds() -> float:
    """CPU seconds every Silero VAD of this process has spent in the model (it runs on the caller's thread,
    one ONNX thread, so the calling thread's CPU clock is the whole cost)."""
    with _cpu_lock:
        return _cpu_seconds


def _count_cpu(seconds: float) -> None:
    global _cpu_seconds
    with _cpu_lock:
        _cpu_seconds += seconds


@functools.cache
def _shared_session() -> Any:
    import onnxruntime

    opts = onnxruntime.SessionOptions()
    # One thread: a 32 ms chunk costs well under 1 ms, and parallelism here would steal cores from STT.
    opts.inter_op_num_threads = 1
    opts.intra_op_num_threads = 1
    opts.log_severity_level = 4
    return onnxruntime.InferenceSession(
        str(silero_model_path()), providers=["CPUExecutionProvider"], sess_options=opts
    )


class SileroVAD:
    """Silero VAD over one audio stream; ``process`` buffers partial chunks between calls."""

    def __init__(self) -> None:
        self._session = _shared_session()
        self.reset()

    def reset(self) -> None:
        self._h = np.zeros((1, 1, 128), dtype=np.float32)
        self._c = np.zeros((1, 1, 128), dtype=np.float32)
        self._context = np.zeros(CONTEXT_SAMPLES, dtype=np.float32)
        self._pending = np.zeros(0, dtype=np.float32)
        self._pending_t = 0.0

    def process(self, samples: np.ndarray, t: float) -> list[VadChunk]:
        """Feed float32 samples in [-1, 1] at 16 kHz starting at stream time ``t``."""
        if len(self._pending) == 0:
            self._pending_t = t
        self._pending = np.concatenate([self._pending, samples.astype(np.float32, copy=False)])
        chunks: list[VadChunk] = []
        while len(self._pending) >= CHUNK_SAMPLES:
            chunk, self._pending = self._pending[:CHUNK_SAMPLES], self._pending[CHUNK_SAMPLES:]
            chunks.append(VadChunk(self._pending_t, self._run(chunk), samples=chunk))
            self._pending_t += CHUNK_SECONDS
        return chunks

    def _run(self, chunk: np.ndarray) -> float:
        started = time.thread_time()
        model_input = np.concatenate([self._context, chunk]).reshape(1, -1)
        prob, self._h, self._c = self._session.run(None, {"input": model_input, "h": self._h, "c": self._c})
        _count_cpu(time.thread_time() - started)
        self._context = chunk[-CONTEXT_SAMPLES:]
        return float(np.asarray(prob).reshape(-1)[0])
