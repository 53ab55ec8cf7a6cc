"""TurnListener: caller audio in, turn events and transcripts out.

Pipeline per frame: resample to 16 kHz -> Silero VAD (32 ms chunks) -> EndOfTurnDetector. While a turn
is open the audio is buffered; partial transcripts are requested every ``partial_interval_ms`` of audio
(at most one in flight, and the backend may skip them when busy); at the end of the turn the buffered
audio is transcribed once more for the final transcript. ``push`` never waits for the model.

Speculative final: once the caller has been silent for the post-roll (200 ms), the turn's audio is already
what the final would use, so its transcription starts then instead of after the full end-of-turn silence
(400 ms); if the caller goes on speaking the guess is dropped. This hides most of the model time inside
the end-of-turn wait. Partials are only started while the caller is voiced, so they rarely hold up a final.

Adaptive end of turn (``speech.end_of_turn.adaptive``): the speculative transcription starts earlier
(``speculative_after_ms`` into the silence) and its words set how long this silence must last to end the
turn (``speech.endpointing``): short after a question, longer after a statement, long after "and", "um"
or "for". Until the words are known only ``words_timeout_ms`` of silence ends the turn, so a busy machine
delays turn ends a little instead of cutting callers off. With ``adaptive: false`` the fixed
``vad.end_of_turn_silence_ms`` applies, as before.

Stream time: the first frame's ``timestamp`` (or ``time.monotonic()`` if it is 0) plus the number of
samples received since, so event times are exact even when audio is pushed faster than real time.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Callable

import numpy as np

from speech.config import SpeechConfig
from speech.endpointing import EndOfTurnPolicy
from speech.events import (
    FinalTranscript,
    ListenerEvent,
    PartialTranscript,
    SpeculativeTranscript,
    SpeechStarted,
    SpeechStopped,
)
from speech.frames import AudioFrame
from speech.resample import Resampler
from speech.stt.base import SpeechToText, Transcript
from speech.turns import EndOfTurnDetector, TurnEnd, TurnStart
from speech.vad import SAMPLE_RATE, SileroVAD, VadChunk, VoiceActivityDetector

log = logging.getLogger(__name__)

_PRE_ROLL_SECONDS = 0.3  # audio kept before the detected onset: Whisper misses clipped first phonemes
_POST_ROLL_SECONDS = 0.2  # audio kept after the speech end, for trailing consonants
_MAX_TURN_SECONDS = 30.0  # Whisper's window; longer turns are transcribed on their last 30 s
_MAX_TURN_SAMPLES = int((_MAX_TURN_SECONDS + 1) * SAMPLE_RATE)
_EVENT_QUEUE_SIZE = 256


class TurnListener:
    """Listens to one caller stream. Use ``await push(frame)`` and iterate ``events()``.

    ``on_vad`` receives every VAD chunk (e.g. ``BargeInDetector.on_vad``), synchronously inside ``push``.
    """

    def __init__(
        self,
        stt: SpeechToText,
        config: SpeechConfig,
        *,
        vad: VoiceActivityDetector | None = None,
        on_vad: Callable[[VadChunk], None] | None = None,
    ) -> None:
        self.stt = stt
        self.config = config
        self._vad = vad or SileroVAD()
        self._policy = EndOfTurnPolicy(config.end_of_turn, config.vad.end_of_turn_silence_ms)
        # Adaptive: until a pause's words are known, only the words timeout ends the turn.
        self._detector = EndOfTurnDetector(config.vad, end_silence=self._policy.words_timeout)
        self._speculate_after = self._policy.transcribe_after if self._policy.adaptive else _POST_ROLL_SECONDS
        self._on_vad = on_vad
        self._resampler: Resampler | None = None
        self._events: asyncio.Queue[ListenerEvent | None] = asyncio.Queue(_EVENT_QUEUE_SIZE)
        self._t0: float | None = None
        self._samples = 0  # 16 kHz samples received
        self._recent: deque[np.ndarray] = deque()  # rolling audio, enough for pre-roll before an onset
        self._recent_samples = 0
        self._turn: deque[np.ndarray] | None = None  # audio of the open turn
        self._turn_samples = 0
        self._turn_start_t = 0.0
        self._next_partial_t = 0.0
        self._partial_task: asyncio.Task[None] | None = None
        self._partials: set[asyncio.Task[None]] = set()  # including those of turns that already ended
        # Grows to twice the last partial's compute time on a slow or busy machine, so partials take at most
        # half of the STT worker and a final rarely waits behind one.
        self._partial_interval = config.stt.partial_interval_ms / 1000
        self._turns_opened = 0
        self._finals_sent = 0  # a partial of turn n is dropped once turn n's final went out
        self._speculative: tuple[float, asyncio.Task[Transcript | None]] | None = None
        self._finals: list[asyncio.Task[None]] = []
        self._last_final: asyncio.Task[None] | None = None
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def in_turn(self) -> bool:
        return self._detector.in_turn

    @property
    def stream_time(self) -> float:
        return (self._t0 or 0.0) + self._samples / SAMPLE_RATE

    async def push(self, frame: AudioFrame) -> None:
        """Feed one frame of any sample rate; returns as soon as VAD ran on it."""
        if self._closed:
            raise RuntimeError("TurnListener.push() after close()")
        pcm16k = self._to_16k(frame)
        if self._t0 is None:
            self._t0 = frame.timestamp or time.monotonic()
        t = self.stream_time
        samples = pcm16k.astype(np.float32) / 32768.0
        self._samples += len(samples)
        self._remember(samples)
        for chunk in self._vad.process(samples, t):
            if self._on_vad is not None:
                self._on_vad(chunk)
            for event in self._detector.update(chunk):
                self._on_turn_event(event)
        if self._turn is not None:
            self._maybe_speculate()
            self._maybe_partial()

    async def events(self) -> AsyncIterator[ListenerEvent]:
        """Events in order until ``close()``; one consumer per listener."""
        while (event := await self._events.get()) is not None:
            yield event

    async def close(self, *, wait_for_final: bool = True) -> None:
        """Stop listening; by default waits for finals of turns that already ended, then ends ``events()``."""
        self._closed = True
        for partial in self._partials:
            partial.cancel()
        self._drop_speculative()
        if wait_for_final and self._finals:
            await asyncio.gather(*self._finals, return_exceptions=True)
        for task in self._finals:
            task.cancel()
        self._put(None, force=True)

    def _to_16k(self, frame: AudioFrame) -> np.ndarray:
        if frame.sample_rate == SAMPLE_RATE:
            return frame.pcm
        if self._resampler is None or self._resampler.src_rate != frame.sample_rate:
            self._resampler = Resampler(frame.sample_rate, SAMPLE_RATE)
        return self._resampler.process(frame).pcm

    def _remember(self, samples: np.ndarray) -> None:
        if self._turn is not None:
            self._turn.append(samples)
            self._turn_samples += len(samples)
            # Memory stays bounded on an endless "turn" (music on hold, a TV): keep Whisper's window only.
            while self._turn_samples - len(self._turn[0]) > _MAX_TURN_SAMPLES:
                self._turn_samples -= len(self._turn.popleft())
        self._recent.append(samples)
        self._recent_samples += len(samples)
        keep = int((_PRE_ROLL_SECONDS + self.config.vad.min_speech_ms / 1000 + 0.6) * SAMPLE_RATE)
        while self._recent_samples - len(self._recent[0]) >= keep:
            self._recent_samples -= len(self._recent.popleft())

    def _on_turn_event(self, event: TurnStart | TurnEnd) -> None:
        if isinstance(event, TurnStart):
            self._open_turn(event.t)
        else:
            self._close_turn(event.t)

    def _open_turn(self, onset: float) -> None:
        buffered = np.concatenate(list(self._recent))
        start = max(0, len(buffered) - int((self.stream_time - onset + _PRE_ROLL_SECONDS) * SAMPLE_RATE))
        self._turn = deque([buffered[start:]])
        self._turn_samples = len(buffered) - start
        self._turn_start_t = onset
        self._turns_opened += 1
        self._next_partial_t = onset + self._partial_interval
        self._put(SpeechStarted(onset))

    def _close_turn(self, speech_end: float) -> None:
        audio = self._turn_audio(until=speech_end + _POST_ROLL_SECONDS)
        self._turn = None
        self._partial_task = None  # may still finish: shown if it beats this turn's final (slow machines)
        self._put(SpeechStopped(speech_end))
        transcribing = self._take_speculative(speech_end) or asyncio.ensure_future(self.stt.transcribe(audio))
        task = asyncio.create_task(
            self._final(transcribing, self._turn_start_t, speech_end, self._last_final)
        )
        self._last_final = task
        self._finals.append(task)
        task.add_done_callback(self._finals.remove)

    def _turn_audio(self, until: float | None = None) -> np.ndarray:
        audio = np.concatenate(self._turn or [np.zeros(0, np.float32)])
        if until is not None:
            extra = int((self.stream_time - until) * SAMPLE_RATE)
            if extra > 0:
                audio = audio[: max(0, len(audio) - extra)]
        return audio[-int(_MAX_TURN_SECONDS * SAMPLE_RATE) :]

    def _maybe_speculate(self) -> None:
        silence_start = self._detector.silence_start
        if silence_start is None:
            self._drop_speculative()  # caller spoke again: the guess lacks words
            return
        if self._speculative is None and self.stream_time - silence_start >= self._speculate_after:
            audio = self._turn_audio(until=silence_start + self._speculate_after)
            task = asyncio.ensure_future(self.stt.transcribe(audio))
            self._speculative = (silence_start, task)
            task.add_done_callback(lambda done: self._decide_silence(silence_start, done))

    def _decide_silence(self, silence_start: float, done: asyncio.Future[Transcript | None]) -> None:
        """The words of the turn so far are known: set how long this pause must last to end the turn."""
        if done.cancelled() or done.exception() is not None:
            return
        if self._speculative is None or self._speculative[0] != silence_start:
            return  # the caller spoke again (or the turn already ended): this pause is over
        result = done.result()
        text = result.text if result is not None else ""
        wait = self._policy.silence_for(text)
        if self._policy.adaptive:
            self._detector.require_silence(wait)
        if self._detector.in_turn and text:
            self._put(SpeculativeTranscript(text, silence_start, wait))

    def _take_speculative(self, speech_end: float) -> asyncio.Future[Transcript | None] | None:
        speculative, self._speculative = self._speculative, None
        if speculative is not None and abs(speculative[0] - speech_end) < 1e-6:
            return speculative[1]
        if speculative is not None:
            speculative[1].cancel()
        return None

    def _drop_speculative(self) -> None:
        if self._speculative is not None:
            self._speculative[1].cancel()
            self._speculative = None

    def _maybe_partial(self) -> None:
        if self._detector.silence_start is not None or self.stream_time < self._next_partial_t:
            return
        if self._partial_task is not None and not self._partial_task.done():
            return
        self._next_partial_t = self.stream_time + self._partial_interval
        self._partial_task = asyncio.create_task(
            self._partial(self._turn_audio(), self.stream_time, self._turns_opened)
        )
        self._partials.add(self._partial_task)
        self._partial_task.add_done_callback(self._partials.discard)

    async def _partial(self, audio: np.ndarray, t: float, turn: int) -> None:
        try:
            result = await self.stt.transcribe(audio, partial=True)
        except Exception:
            log.exception("partial transcription failed (%.2fs of audio)", len(audio) / SAMPLE_RATE)
            return
        if result is not None:
            self._partial_interval = max(
                self.config.stt.partial_interval_ms / 1000, 2 * result.compute_seconds
            )
        if result is not None and result.text and self._finals_sent < turn:
            self._put(PartialTranscript(result.text, t))

    async def _final(
        self,
        transcribing: asyncio.Future[Transcript | None],
        start: float,
        end: float,
        previous: asyncio.Task[None] | None,
    ) -> None:
        if previous is not None:
            await asyncio.gather(previous, return_exceptions=True)  # keep finals in turn order
        try:
            result = await transcribing
        except Exception:
            self._finals_sent += 1
            log.exception("final transcription failed (turn %.2f-%.2f)", start, end)
            return
        text = result.text if result is not None else ""
        compute = result.compute_seconds if result is not None else 0.0
        self._finals_sent += 1
        self._put(FinalTranscript(text, end, time.monotonic(), start, compute))

    def _put(self, event: ListenerEvent | None, *, force: bool = False) -> None:
        try:
            self._events.put_nowait(event)
        except asyncio.QueueFull:
            if not force and isinstance(event, PartialTranscript):
                return  # nobody reads partials fast enough; dropping them is harmless
            self._events.get_nowait()  # make room: the consumer is stuck, keep the newest state
            self._events.put_nowait(event)
