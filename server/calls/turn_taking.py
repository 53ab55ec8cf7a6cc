"""Who speaks when, for one call: the caller's turn events in, agent replies and barge-in out.

``TurnTaker`` reads ``speech.listener`` events. A final transcript starts a reply (``Conversation.respond``
-> ``SentenceAggregator`` -> TTS -> playback); a speculative transcript (the caller paused) starts one early,
silent until the final with the same words commits it (``server.calls.reply``). Caller speech while a reply
is being played is the barge-in detector's to judge (``speech.bargein``: a backchannel resumes it, an
interruption cancels it: playback is cut, the LLM and TTS tasks are cancelled, the conversation learns what
was really said). Caller speech while a reply is still silent holds it until the words are known: a
backchannel releases it, anything else replaces it. Fixed utterances (greeting, proactive prompts) go
through ``say``; proactive ones first wait for a natural pause so the agent never talks over the caller.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from agent.tools import ACTION_GATE
from server.calls.reply import ReplyInFlight, ReplyTimeline
from speech.backchannel import BargeInDecision, BargeInKind, classify_barge_in
from speech.events import (
    FinalTranscript,
    ListenerEvent,
    PartialTranscript,
    SpeculativeTranscript,
    SpeechStarted,
    SpeechStopped,
)
from speech.frames import AudioFrame
from speech.sentences import SentenceAggregator
from speech.tts.base import TextToSpeech

log = logging.getLogger(__name__)

DEFAULT_APOLOGY = "Sorry, I'm having trouble answering right now. Could you say that again in a moment?"


class SpeechFailed(Exception):
    """The TTS backend failed on a sentence; the caller heard the apology instead (when it could be said)."""


# A reply held by a caller sound speaks anyway this long after the sound ended if no words came for it.
_HOLD_AFTER_SOUND_S = 3.0


class AgentState(str, enum.Enum):
    LISTENING = "listening"
    THINKING = "thinking"
    SPEAKING = "speaking"


class ReplyConversation(Protocol):
    """What ``TurnTaker`` needs of ``agent.conversation.Conversation``."""

    def respond(self, user_text: str) -> AsyncIterator[str]: ...

    def add_agent_utterance(self, text: str, source: str = "proactive") -> None: ...

    def mark_interrupted(self, spoken_text: str) -> None: ...

    # Optional (looked up with getattr): ``retract_last_turn()`` forgets the latest ``respond()`` as if it
    # never happened (a reply discarded before the caller heard a word of it).


class AudioOut(Protocol):
    """The agent's voice: queue audio, cut it, and await its end. See ``server.calls.playback``."""

    def enqueue(self, frame: AudioFrame) -> None: ...

    def interrupt(self) -> str: ...

    @property
    def has_audio(self) -> bool: ...

    async def wait_done(self) -> bool: ...  # True: everything queued was played; False: interrupted

    def on_first_audio(self, callback: Callable[[float], None]) -> None: ...  # once, for the next audio sent


Emit = Callable[[str, dict[str, Any]], None]


@dataclass
class TurnResult:
    user_text: str
    agent_text: str
    timing: ReplyTimeline
    interrupted: bool
    spoken_text: str = ""
    sources: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None  # what went wrong producing the reply (e.g. the TTS failed); None when fine
    grounding: dict[str, Any] | None = None  # why the agent said it: ``agent.turn.TurnRecord.grounding()``


class TurnTaker:
    """Turn-taking state machine of one call; ``on_turn_done`` gets every finished or interrupted reply."""

    def __init__(
        self,
        conversation: ReplyConversation,
        tts: TextToSpeech,
        audio: AudioOut,
        emit: Emit,
        on_turn_done: Callable[[TurnResult], None] | None = None,
        *,
        apology: str = DEFAULT_APOLOGY,
    ) -> None:
        """``apology``: said when the TTS fails mid-reply (``agent.apology``), so the caller never hears a
        reply stop in silence."""
        self.conversation = conversation
        self.apology = apology
        self.tts = tts
        self.audio = audio
        self._emit = emit
        self._on_turn_done = on_turn_done
        self.state = AgentState.LISTENING
        self.caller_speaking = False
        self._last_caller_sound = time.monotonic()
        self._reply: asyncio.Task[None] | None = None
        self._flight: ReplyInFlight | None = None  # the reply of ``_reply``
        self._heard_at_barge_in = ""
        self._speech_lock = asyncio.Lock()  # one utterance at a time: replies and fixed texts never overlap
        self._changed = asyncio.Condition()
        self.speculative_replies = {"started": 0, "used": 0, "discarded": 0}

    # -- caller side -------------------------------------------------------------------------------
    async def handle(self, event: ListenerEvent) -> None:
        if isinstance(event, SpeechStarted):
            await self._caller_started()
        elif isinstance(event, PartialTranscript):
            self._emit("partial_transcript", {"text": event.text})
        elif isinstance(event, SpeculativeTranscript):
            await self._speculate(event)
        elif isinstance(event, SpeechStopped):
            await self._caller_stopped()
        elif isinstance(event, FinalTranscript):
            await self._final(event)

    def on_barge_in(self, heard_text: str) -> None:
        """``speech.bargein.BargeInDetector`` confirmed an interruption (playback is already cut)."""
        self._heard_at_barge_in = heard_text
        if self._reply is not None and not self._reply.done():
            self._reply.cancel()
        self._emit("interrupted", {"spoken_text": heard_text})

    def on_backchannel(self, decision: BargeInDecision) -> None:
        """The barge-in detector judged a caller sound a backchannel and resumed the reply: only noted."""
        self._emit("backchannel", {"text": decision.text, "reason": decision.reason})

    async def _caller_started(self) -> None:
        self.caller_speaking = True
        await self._notify()
        flight = self._active_flight()
        if flight is None:
            return
        if not flight.committed:
            await self._discard(flight)  # the caller went on after the pause: the prepared reply is moot
        elif not flight.made_sound:
            # Silent so far: say nothing over the caller until their words say whether this is a new turn.
            # Audio already playing is the barge-in detector's call (it resumes after "mm-hm" or a cough).
            flight.hold()

    async def _caller_stopped(self) -> None:
        self.caller_speaking = False
        self._last_caller_sound = time.monotonic()
        flight = self._active_flight()
        if flight is not None and flight.held:
            flight.release_after(_HOLD_AFTER_SOUND_S)  # its final may never come (a failed transcription)
        await self._notify()

    async def _speculate(self, event: SpeculativeTranscript) -> None:
        """The caller paused: prepare the reply to the words so far (silent until the final commits it)."""
        text = event.text.strip()
        flight = self._active_flight()
        if flight is not None:
            if flight.committed or flight.user_text == text:
                return  # a reply is under way (this pause is the caller's sound over it), or the same guess
            await self._discard(flight)
        if text and not self._speech_lock.locked():
            self.speculative_replies["started"] += 1
            self._start_reply(text, ReplyTimeline(event.speech_end_t), speculative=True)

    async def _final(self, event: FinalTranscript) -> None:
        text = event.text.strip()
        flight = self._active_flight()
        if not text:
            if flight is not None and not flight.committed:
                await self._discard(flight)  # the words guessed at the pause were not said after all
            elif flight is not None:
                flight.release()  # a breath, a click: nothing was said, the reply goes on
            return
        if flight is not None and flight.committed and classify_barge_in(text) is BargeInKind.BACKCHANNEL:
            flight.release()  # "mm-hm", "okay" while the agent thinks or talks: not a turn of its own
            self._emit("backchannel", {"text": text, "reason": "turn"})
            return
        self._emit("final_transcript", {"text": text})
        if flight is not None and not flight.committed and flight.user_text == text:
            self.speculative_replies["used"] += 1
            if not flight.made_sound:
                await self._set_state(AgentState.THINKING)  # before commit() lets the reply speak
            flight.commit(event.speech_end_t, event.stt_ready_t)
            return
        if flight is not None:
            if flight.committed and not flight.made_sound:
                text = f"{flight.user_text} {text}"  # the caller went on before hearing a word: one turn
            if not flight.committed or not flight.made_sound:
                await self._discard(flight)
            else:  # a newer caller turn supersedes the reply being spoken
                await self._cancel(flight)
        timing = ReplyTimeline(event.speech_end_t)
        timing.mark("stt_final", event.stt_ready_t)
        self._start_reply(text, timing, speculative=False)

    async def drop_speculation(self) -> None:
        """The turn the caller's pause belonged to is not answered (a backchannel): drop its prepared reply."""
        flight = self._active_flight()
        if flight is not None and not flight.committed:
            await self._discard(flight)

    def _active_flight(self) -> ReplyInFlight | None:
        flight = self._flight
        return flight if flight is not None and not flight.done else None

    async def _discard(self, flight: ReplyInFlight) -> None:
        """Drop a reply the caller heard nothing of; its conversation turn is retracted."""
        flight.discarded = True
        if flight.speculative and not flight.committed:
            self.speculative_replies["discarded"] += 1
        await self._cancel(flight)

    async def _cancel(self, flight: ReplyInFlight) -> None:
        if flight.task is not None and not flight.task.done():
            flight.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await flight.task

    def _start_reply(self, text: str, timing: ReplyTimeline, *, speculative: bool) -> None:
        flight = ReplyInFlight(text, timing, self._emit, speculative=speculative)
        flight.task = asyncio.create_task(self._run_reply(flight), name="agent-reply")
        flight.task.add_done_callback(_log_failure)
        self._flight, self._reply = flight, flight.task

    # -- agent side --------------------------------------------------------------------------------
    async def _run_reply(self, flight: ReplyInFlight) -> None:
        timing = flight.timing
        result = TurnResult(flight.user_text, "", timing, interrupted=False)
        sentences: asyncio.Queue[str | None] = asyncio.Queue()
        async with self._speech_lock:
            if flight.committed:
                await self._set_state(AgentState.THINKING)
            producer = asyncio.create_task(self._think(flight, result, sentences))
            try:
                self.audio.on_first_audio(lambda t: timing.mark("first_audio_out", t))
                try:
                    await self._speak_queue(sentences, timing, flight)
                    await producer
                except SpeechFailed as exc:
                    result.error = str(exc)  # the apology is queued: let it play, drop the rest
                result.interrupted = not await self.audio.wait_done()
            except asyncio.CancelledError:
                result.interrupted = True
                raise
            finally:
                producer.cancel()
                await self._finish_turn(result, flight)

    async def _think(self, flight: ReplyInFlight, result: TurnResult, out: asyncio.Queue[str | None]) -> None:
        aggregator = SentenceAggregator()
        ACTION_GATE.set(flight.wait_committed)  # this task's own context: no transfer before the turn ends
        try:
            async for delta in self.conversation.respond(flight.user_text):
                if not delta:
                    continue
                flight.timing.mark("llm_first_token")
                result.agent_text += delta
                flight.emit("agent_text", {"delta": delta})
                for sentence in aggregator.push(delta):
                    out.put_nowait(sentence)
            for sentence in aggregator.flush():
                out.put_nowait(sentence)
        finally:
            out.put_nowait(None)

    async def _speak_queue(
        self,
        sentences: asyncio.Queue[str | None],
        timing: ReplyTimeline | None,
        flight: ReplyInFlight | None = None,
    ) -> None:
        """Synthesise and queue each sentence; raises ``SpeechFailed`` after queueing the apology when the
        TTS backend fails (a failure must never end a reply in silence, nor vanish in a task)."""
        while (sentence := await sentences.get()) is not None:
            try:
                await self._speak_sentence(sentence, timing, flight)
            except Exception as exc:
                log.exception("TTS failed on %r; speaking the apology", sentence[:80])
                try:
                    await self._speak_sentence(self.apology, None, flight)
                except Exception:
                    log.exception("TTS failed on the apology too; the reply ends here")
                raise SpeechFailed(f"tts failed: {type(exc).__name__}: {exc}") from exc

    async def _speak_sentence(
        self, sentence: str, timing: ReplyTimeline | None, flight: ReplyInFlight | None = None
    ) -> None:
        async for frame in self.tts.synthesize(sentence):
            if timing is not None:
                timing.mark("tts_first_audio")
            if flight is not None and not flight.made_sound:
                await flight.wait_voice()  # speculative and not committed yet, or held by a caller sound
                flight.made_sound = True
            if self.state is not AgentState.SPEAKING:
                await self._set_state(AgentState.SPEAKING)
            self.audio.enqueue(frame)

    async def _finish_turn(self, result: TurnResult, flight: ReplyInFlight | None = None) -> None:
        if flight is not None and (flight.discarded or not flight.committed):
            retract = getattr(self.conversation, "retract_last_turn", None)
            if callable(retract):
                with contextlib.suppress(Exception):
                    retract()
            self._heard_at_barge_in = ""
            if flight.committed:
                await self._set_state(AgentState.LISTENING)
            return
        if result.interrupted:
            spoken = self.audio.interrupt()  # a no-op when the barge-in detector already cut playback
            result.spoken_text = self._heard_at_barge_in or spoken
            with contextlib.suppress(Exception):
                self.conversation.mark_interrupted(result.spoken_text)
        self._heard_at_barge_in = ""
        last_turn = getattr(self.conversation, "last_turn", None)
        result.sources = _sources_of(last_turn)
        result.grounding = _grounding_of(last_turn, result.user_text)
        self._emit(
            "turn",
            {
                "user_text": result.user_text,
                "agent_text": result.agent_text,
                "interrupted": result.interrupted,
                "latency": result.timing.as_delays(),
                "sources": result.sources,
                "error": result.error,
                "grounding": result.grounding,
            },
        )
        if self._on_turn_done is not None:
            self._on_turn_done(result)
        await self._set_state(AgentState.LISTENING)

    async def say(self, text: str, source: str, *, remember: bool = True) -> bool:
        """Speak a fixed text (greeting, proactive prompt); True if it was played to the end.

        ``remember``: add it to the conversation history (what was heard, if cut off)."""
        async with self._speech_lock:
            await self._set_state(AgentState.THINKING)
            queue: asyncio.Queue[str | None] = asyncio.Queue()
            queue.put_nowait(text)
            queue.put_nowait(None)
            done = False
            spoken = ""
            try:
                self._emit("agent_text", {"delta": text, "source": source})
                await self._speak_queue(queue, None)
                done = await self.audio.wait_done()
            except SpeechFailed:
                await self.audio.wait_done()  # the apology; the text itself was not said
            finally:
                if not done:
                    spoken = self.audio.interrupt() or self._heard_at_barge_in
                self._heard_at_barge_in = ""
                with contextlib.suppress(Exception):
                    if remember and (done or spoken):
                        self.conversation.add_agent_utterance(text if done else spoken, source)
                await self._set_state(AgentState.LISTENING)
            return done

    async def wait_for_pause(self, pause_s: float, timeout_s: float) -> bool:
        """Wait until the caller has been silent for ``pause_s`` and the agent is idle; False on timeout."""
        deadline = time.monotonic() + timeout_s
        async with self._changed:
            while True:
                now = time.monotonic()
                idle = not self.caller_speaking and self.state is AgentState.LISTENING
                quiet_for = now - self._last_caller_sound
                if idle and quiet_for >= pause_s and not self._speech_lock.locked():
                    return True
                if now >= deadline:
                    return False
                wait = min(deadline - now, max(0.02, pause_s - quiet_for) if idle else deadline - now)
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), wait)

    async def close(self) -> None:
        if self._flight is not None:
            self._flight.release()  # a held reply must not wait for words that will not come
        if self._reply is not None and not self._reply.done():
            self._reply.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reply

    async def _set_state(self, state: AgentState) -> None:
        if state is not self.state:
            self.state = state
            self._emit("state", {"state": state.value})
            await self._notify()

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()


def _log_failure(task: asyncio.Task[None]) -> None:
    """A reply that failed is logged here: nobody awaits a reply task but its successor."""
    if not task.cancelled() and (exc := task.exception()) is not None:
        log.error("agent reply failed", exc_info=exc)


def _sources_of(last_turn: object) -> list[dict[str, Any]]:
    sources = getattr(last_turn, "sources", None) or []
    out: list[dict[str, Any]] = []
    for s in sources:
        if isinstance(s, str):
            out.append({"source_id": s})
        elif isinstance(s, dict):
            out.append(s)
        else:
            out.append({k: getattr(s, k, None) for k in ("source_id", "doc_id", "score")})
    return out


def _grounding_of(last_turn: object, user_text: str) -> dict[str, Any] | None:
    """The conversation's account of this reply (evidence, how each sentence was produced), or None when the
    conversation keeps none or its last turn is not this one (it failed before recording it)."""
    grounding = getattr(last_turn, "grounding", None)
    if not callable(grounding) or getattr(last_turn, "user_text", None) != user_text:
        return None
    try:
        value = grounding()
    except Exception:  # the record must be saved even if the account cannot be made
        log.exception("grounding of the turn %r could not be recorded", user_text[:80])
        return None
    return value if isinstance(value, dict) else None
