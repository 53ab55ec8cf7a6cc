"""PlaybackController: the agent's outgoing audio, paced by the transport one frame at a time.

Transports with a fixed clock (RTP every 20 ms, aiortc ``recv``) call ``read_frame`` and always get exactly
one ``frame_ms`` frame: queued audio, or silence, so the line never starves or stutters. ``interrupt``
drops all queued audio at once, which is what makes barge-in immediate, and reports what the caller
actually heard so the conversation history does not claim the agent said the rest.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from speech.frames import AudioFrame
from speech.resample import Resampler

log = logging.getLogger(__name__)


@dataclass(slots=True)
class _Segment:
    """Audio of one piece of text (one sentence from TTS), to know how much of it was heard."""

    text: str
    enqueued: int = 0
    played: int = 0

    def heard_text(self) -> str:
        if self.played >= self.enqueued:
            return self.text
        words = self.text.split()
        return " ".join(words[: round(len(words) * self.played / max(1, self.enqueued))])


class PlaybackController:
    """Queue of outgoing audio at ``sample_rate``; TTS frames of other rates are resampled on enqueue.

    Callbacks: ``on_first_audio(t)`` when audio starts after silence, ``on_finished(text)`` when the queue
    ran dry, ``on_interrupted(text)`` from ``interrupt()``; ``text`` is what was played (see ``interrupt``).
    Thread-safe: a transport thread may read while the event loop enqueues.
    """

    def __init__(
        self,
        sample_rate: int,
        frame_ms: int = 20,
        *,
        on_first_audio: Callable[[float], None] | None = None,
        on_finished: Callable[[str], None] | None = None,
        on_interrupted: Callable[[str], None] | None = None,
    ) -> None:
        self.sample_rate = sample_rate
        self.frame_ms = frame_ms
        self.frame_samples = sample_rate * frame_ms // 1000
        self.on_first_audio = on_first_audio
        self.on_finished = on_finished
        self.on_interrupted = on_interrupted
        self.generation = 0  # bumped by interrupt(); frames enqueued for an older generation are dropped
        self._lock = threading.RLock()
        self._pieces: deque[tuple[np.ndarray, _Segment]] = deque()
        self._offset = 0  # samples of the first piece already played
        self._segments: list[_Segment] = []
        self._resamplers: dict[int, Resampler] = {}
        self._paused = False
        self._playing = False  # audio went out since the last finish/interrupt

    @property
    def has_audio(self) -> bool:
        """Audio is queued (playing or paused)."""
        return bool(self._pieces)

    @property
    def is_speaking(self) -> bool:
        """Audio is queued and not paused: the caller hears the agent."""
        return bool(self._pieces) and not self._paused

    @property
    def is_paused(self) -> bool:
        return self._paused

    def enqueue(self, frame: AudioFrame, generation: int | None = None) -> bool:
        """Queue a frame (``meta["text"]`` groups frames per sentence). Returns False if it was dropped
        because it belongs to an interrupted generation: late TTS output is never replayed."""
        with self._lock:
            if generation is not None and generation != self.generation:
                return False
            pcm = self._resample(frame)
            if len(pcm) == 0:
                return True
            segment = self._segment_for(str(frame.meta.get("text", "")))
            segment.enqueued += len(pcm)
            self._pieces.append((pcm, segment))
            return True

    def read_frame(self) -> AudioFrame:
        """Exactly ``frame_ms`` of audio: queued speech, padded with silence if the queue runs dry."""
        out = np.zeros(self.frame_samples, dtype=np.int16)
        now = time.monotonic()
        with self._lock:
            filled = 0 if self._paused else self._fill(out)
            started = filled > 0 and not self._playing
            self._playing = self._playing or filled > 0
            finished = self._playing and not self._pieces and not self._flush_resamplers()
            text = self._take_heard_text() if finished else ""
            if finished:
                self._playing = False
        if started and self.on_first_audio is not None:
            self.on_first_audio(now)
        if finished and self.on_finished is not None:
            self.on_finished(text)
        return AudioFrame(out, self.sample_rate, now, {"speech": filled > 0, "audio_samples": filled})

    def interrupt(self) -> str:
        """Drop all queued audio now; return the text heard so far (sentences played in full, plus the
        words of the cut sentence in proportion to its audio played). Calls ``on_interrupted``."""
        with self._lock:
            was_active = self._playing or bool(self._pieces)
            text = self._take_heard_text()
            self._pieces.clear()
            self._offset = 0
            self._resamplers.clear()
            self._paused = False
            self._playing = False
            self.generation += 1
        if was_active and self.on_interrupted is not None:
            self.on_interrupted(text)
        return text

    def pause(self) -> None:
        """Hold queued audio (silence goes out) without losing it, e.g. while a possible barge-in is checked."""
        with self._lock:
            self._paused = True

    def resume(self) -> None:
        with self._lock:
            self._paused = False

    def _fill(self, out: np.ndarray) -> int:
        filled = 0
        while filled < len(out) and self._pieces:
            pcm, segment = self._pieces[0]
            take = min(len(out) - filled, len(pcm) - self._offset)
            out[filled : filled + take] = pcm[self._offset : self._offset + take]
            filled += take
            segment.played += take
            self._offset += take
            if self._offset >= len(pcm):
                self._pieces.popleft()
                self._offset = 0
        return filled

    def _resample(self, frame: AudioFrame) -> np.ndarray:
        if frame.sample_rate == self.sample_rate:
            return frame.pcm
        resampler = self._resamplers.setdefault(
            frame.sample_rate, Resampler(frame.sample_rate, self.sample_rate)
        )
        return resampler.process(frame).pcm

    def _flush_resamplers(self) -> bool:
        """Queue the filter tails once the queue is dry; True if that added audio."""
        added = False
        for resampler in self._resamplers.values():
            tail = resampler.flush().pcm
            if len(tail) and self._segments:
                self._segments[-1].enqueued += len(tail)
                self._pieces.append((tail, self._segments[-1]))
                added = True
        return added

    def _segment_for(self, text: str) -> _Segment:
        if self._segments and self._segments[-1].text == text:
            return self._segments[-1]  # next chunk of the same sentence
        segment = _Segment(text)
        self._segments.append(segment)
        return segment

    def _take_heard_text(self) -> str:
        heard = [s.heard_text() for s in self._segments if s.played > 0]
        self._segments = []
        return " ".join(t for t in heard if t)
