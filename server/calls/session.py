"""CallSession: one call, whatever carries it; the only place that wires caller audio <-> speech <-> agent.

The call core is transport-neutral. A transport (``server.transports``: WebRTC, WebSocket media, SIP) is a
thin adapter that
- hands the caller's audio in as ``speech.frames.AudioFrame``s at any rate: ``listen(frames)``;
- pulls the agent's voice one 20 ms frame at a time at its own output rate: ``read_frame()`` (always a
  frame, silence when the agent is quiet), paced by ``server.calls.pacing.FramePacer``;
- hands control events in: ``await control(Hangup())`` (``server.calls.controls``);
- reads events out: ``events.subscribe()`` (transcripts, state, interruptions, ``ended``);
- calls ``start()`` once the call is accepted and ``connected()`` once media flows both ways, and
  implements ``MediaTransport`` so the session can release it when the call ends.
The session owns the call's tasks; the work is done by collaborators: ``speech.listener.TurnListener``
(turns and transcripts), ``server.calls.turn_taking.TurnTaker`` (replies, barge-in, greeting, proactive
prompts), ``CallEventFeed`` (live events) and ``server.calls.record.CallRecord`` (saved when the call ends).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import numpy as np

from server.calls import metrics
from server.calls.admission import CallAdmission
from server.calls.barge_in import caller_barge_in, is_backchannel_turn
from server.calls.clock import StreamClock
from server.calls.controls import ControlEvent, Dtmf, Hangup, Hold
from server.calls.conversation_events import ConversationEventPublisher
from server.calls.events import CallEventFeed
from server.calls.identity import CallIdentity
from server.calls.keypad import Keypad
from server.calls.playback import PlaybackOutput
from server.calls.record import CallRecord, CallRecordStore, RecordedTurn
from server.calls.registry import SessionRegistry
from server.calls.turn_taking import DEFAULT_APOLOGY, ReplyConversation, TurnResult, TurnTaker
from server.config import CallConfig
from speech.bargein import BargeInDetector
from speech.config import SpeechConfig
from speech.events import FinalTranscript, SpeculativeTranscript
from speech.frames import AudioFrame
from speech.listener import TurnListener
from speech.stt.base import SpeechToText
from speech.timing import STAGES, TurnTimings
from speech.tts.base import TextToSpeech

log = logging.getLogger(__name__)

_GREETING_DELAY_S = 0.3  # let the caller's jitter buffer start before the first words
_HOLD_SILENCE_S = 1.6  # longer than the longest end-of-turn silence (an unfinished clause: 1.5 s)


@dataclass
class CallDeps:
    """Everything a call needs, shared by all calls of the server (models are loaded once)."""

    speech: SpeechConfig
    call: CallConfig
    ice_servers: list[Any]  # for the WebRTC transport
    node_id: str
    greeting: str
    stt: SpeechToText
    tts: TextToSpeech
    new_conversation: Callable[[str | None, Any], ReplyConversation]  # (user_id, session as CallControl)
    records: CallRecordStore
    registry: SessionRegistry
    conversation_events: ConversationEventPublisher | None = None  # ConversationEvents for the scheduler
    # Called with the session once audio flows and the greeting was said (e.g. speak held proactive prompts
    # from ``ProactivePromptConsumer.pop_pending``); runs as a call task, cancelled when the call ends.
    on_call_connected: list[Callable[[Any], Awaitable[None]]] = field(default_factory=list)
    # Called with the session after it ended and its record was saved (e.g. publish a ConversationEvent).
    on_call_ended: list[Callable[[Any], Awaitable[None]]] = field(default_factory=list)
    apology: str = DEFAULT_APOLOGY  # said when the TTS fails mid-reply (``agent.apology``)
    admission: CallAdmission = field(default_factory=CallAdmission)  # ``server.max_calls``, node-wide


class MediaTransport(Protocol):
    """What the session needs of the transport carrying it."""

    kind: str  # "webrtc", "websocket", "sip": in logs and the call's snapshot

    @property
    def connection_state(self) -> str: ...  # shown in the live snapshot ("connected", "closed"...)

    async def close(self) -> None:
        """Release the media (peer connection, socket, RTP session); called once, when the call ends."""
        ...


class CallSession:
    """One call. A transport calls ``start()`` once the call is accepted; ``close(reason)`` ends it
    (idempotent)."""

    def __init__(
        self,
        deps: CallDeps,
        user_id: str | None = None,
        call_id: str | None = None,
        *,
        output_rate: int,
        transport: MediaTransport | None = None,
        identity: CallIdentity | None = None,
        greet: bool = True,
    ) -> None:
        """``output_rate``: the transport's own audio clock (48 kHz for Opus, the gateway's rate for a
        WebSocket stream, 8 kHz for G.711). The agent's voice is resampled once, on enqueue: a track at
        another rate makes aiortc's encoder resample it and buffer up to one more 20 ms frame, which a
        barge-in has to wait out. ``greet``: False for a call the agent placed to say a proactive prompt:
        no greeting, and what the callee says before that prompt was said ("Hello?") is recorded but not
        answered, so the call opens with the prompt.

        Who the call is for: ``identity`` (from a verified call token, ``server.calls.identity``, or the SIP
        bridge's phone directory); else ``user_id`` of the default tenant, which the transport vouches for;
        else a fresh anonymous user that reads no one's memory or held prompts."""
        # 128 random bits: knowing the id is what lets a page watch the call's events
        self.call_id = call_id or uuid.uuid4().hex
        if identity is None:
            identity = CallIdentity(user_id) if user_id else CallIdentity.fresh_anonymous()
        self.identity = identity
        self.user_id: str | None = identity.user_id
        self.tenant = identity.tenant
        self.anonymous = identity.anonymous
        self.deps = deps
        self.transport = transport
        self.output_rate = output_rate
        self.events = CallEventFeed()
        self.record = CallRecord(self.call_id, deps.node_id, self.user_id, tenant=self.tenant)
        self.audio = PlaybackOutput(output_rate)
        self.conversation = deps.new_conversation(self.user_id, self)
        self.turns = TurnTaker(
            self.conversation, deps.tts, self.audio, self.events.emit, self._turn_done, apology=deps.apology
        )
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closing: asyncio.Task[None] | None = None
        self._greeted = False
        self._says_greeting = greet
        self._awaiting_opening = not greet
        self.keypad = Keypad()
        self.on_hold = False
        self._resumed = asyncio.Event()
        self._resumed.set()
        self._listener: TurnListener | None = None
        self._caller_rate = 16_000
        self._prompt_started: dict[str, float] = {}  # message id -> when its words began (keys count since)
        self._answered = False
        self._clock = StreamClock()
        self.ended = asyncio.Event()

    # -- lifecycle ---------------------------------------------------------------------------------
    def admit(self) -> bool:
        """Take one of the node's call slots (``server.max_calls``) before accepting the call; False: the
        node is full and the transport must refuse it (then ``close("busy")``). The slot is released when
        the call ends."""
        kind = self.transport.kind if self.transport is not None else "none"
        return self.deps.admission.try_admit(self.call_id, kind)

    def start(self) -> None:
        """Register the call and start its timers; a transport calls it once the call is accepted."""
        self.deps.registry.register(self)
        self._answered = True
        metrics.CALLS_STARTED.inc()
        metrics.CALLS_ACTIVE.inc()
        self._spawn(self._limit_duration(), "max-duration")
        self._spawn(self._require_connection(), "connect-timeout")
        self._spawn(self.deps.records.save(self.record), "record-open")
        kind = self.transport.kind if self.transport is not None else "no transport"
        log.info("call %s answered over %s (user %s)", self.call_id, kind, self.user_id)
        self._publish("call_started")

    def listen(self, frames: AsyncIterator[AudioFrame]) -> None:
        """Start hearing the caller: ``frames`` is the caller's audio (any rate) until the call ends."""
        barge_in = caller_barge_in(self.deps.speech, self.deps.stt, self.audio, self.turns)
        listener = self._listener = TurnListener(self.deps.stt, self.deps.speech, on_vad=barge_in.on_vad)
        self._spawn(self._feed_listener(frames, listener), "caller-audio")
        self._spawn(self._follow_turns(listener, barge_in), "turns")

    def connected(self) -> None:
        """Media flows both ways: greet the caller (once) and run the on_call_connected hooks."""
        if not self._greeted:
            self._greeted = True
            self._spawn(self._on_connected(), "connected")

    def read_frame(self) -> AudioFrame:
        """The agent's next 20 ms at ``output_rate``: audio, or silence when it has nothing to say."""
        return self.audio.read_frame()

    async def control(self, event: ControlEvent) -> None:
        """A control event from the transport (see ``server.calls.controls``)."""
        if isinstance(event, Hangup):
            await self.close(event.reason)
        elif isinstance(event, Dtmf):
            self._key_pressed(event)
        elif isinstance(event, Hold):
            self._set_hold(event.on_hold)
        else:  # a transport handed in an event this core does not know yet
            raise TypeError(f"unknown control event {event!r}")

    async def close(self, reason: str = "hangup") -> None:
        """End the call: cancel every task, close the connection, save the record. Safe to call twice."""
        if self._closing is None:
            self._closing = asyncio.create_task(self._shutdown(reason))
        await asyncio.shield(self._closing)

    async def _shutdown(self, reason: str) -> None:
        log.info("call %s ending: %s", self.call_id, reason)
        self.deps.admission.release(self.call_id)
        await self.turns.close()
        current = asyncio.current_task()
        tasks = [t for t in self._tasks if t is not current]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self.audio.interrupt()
        self.record.ended_at = time.time()
        self.record.end_reason = reason  # before the transport closes: it may tell the far end why
        self.keypad.close()
        self._resumed.set()
        if self.transport is not None:
            try:
                await self.transport.close()
            except Exception:
                log.exception("call %s: closing the %s transport failed", self.call_id, self.transport.kind)
        self.events.emit("ended", {"reason": reason})
        self.events.close()
        if not self._answered:  # the offer was rejected: there was no call to record
            self.ended.set()
            return
        save_summary = getattr(self.conversation, "save_summary", None)
        if save_summary is not None:
            try:
                await asyncio.to_thread(save_summary)
            except Exception:
                log.exception("call %s: saving the conversation summary failed", self.call_id)
        try:
            await self.deps.records.save(self.record)
        except Exception:
            log.exception("call %s: saving the call record failed", self.call_id)
        self.deps.registry.unregister(self)
        self._publish("call_ended")
        metrics.CALLS_ACTIVE.dec()
        metrics.CALLS_ENDED.labels(reason).inc()
        self.ended.set()
        for hook in self.deps.on_call_ended:
            try:
                await hook(self)
            except Exception:
                log.exception("call %s: on_call_ended hook %r failed", self.call_id, hook)

    def spawn(self, coro: Any, name: str) -> asyncio.Task[Any]:
        """Run ``coro`` as one of this call's tasks: cancelled when the call ends, failures logged."""
        return self._spawn(coro, name)

    def _spawn(self, coro: Any, name: str) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro, name=f"call-{self.call_id}-{name}")
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("call %s: task %s failed", self.call_id, task.get_name(), exc_info=task.exception())

    async def _require_connection(self) -> None:
        """A caller whose media never flows (closed tab, blocked UDP, ICE/DTLS never done) must not hold a
        session."""
        await asyncio.sleep(self.deps.call.connect_timeout_s)
        if not self._greeted:
            self._spawn(self.close("connect_timeout"), "close")

    async def _limit_duration(self) -> None:
        await asyncio.sleep(self.deps.call.max_call_seconds)
        self._spawn(self.close("max_duration"), "close")

    # -- audio in ----------------------------------------------------------------------------------
    async def _feed_listener(self, frames: AsyncIterator[AudioFrame], listener: TurnListener) -> None:
        try:
            async for frame in frames:
                self._caller_rate = frame.sample_rate
                if self.on_hold:  # music on hold is not the caller talking
                    frame = AudioFrame(np.zeros_like(frame.pcm), frame.sample_rate, frame.timestamp)
                await listener.push(frame)
                self._clock.note(listener.stream_time, frame.timestamp + frame.duration)
        finally:
            await listener.close(wait_for_final=False)

    async def _follow_turns(self, listener: TurnListener, barge_in: BargeInDetector) -> None:
        async for event in listener.events():
            if isinstance(event, SpeculativeTranscript):
                if self._awaiting_opening:  # no reply is prepared to a callee's "Hello?" either
                    continue
                event = dataclasses.replace(event, speech_end_t=self._clock.to_wall(event.speech_end_t))
            elif isinstance(event, FinalTranscript):
                if await is_backchannel_turn(barge_in, event, self.deps.speech):
                    await self.turns.drop_speculation()  # "mm-hm" over the agent: nothing to answer
                    continue
                event = dataclasses.replace(event, speech_end_t=self._clock.to_wall(event.speech_end_t))
                if event.text.strip():
                    self.record.add_user(event.text.strip())
                    self._publish("final_turn", event.text.strip(), "user")
                if self._awaiting_opening:  # "Hello?" of a callee: the prompt the call is for comes first
                    self.events.emit("final_transcript", {"text": event.text.strip(), "answered": False})
                    continue
            await self.turns.handle(event)

    # -- audio out ---------------------------------------------------------------------------------
    async def _on_connected(self) -> None:
        if self._says_greeting and self.deps.call.greeting and self.deps.greeting:
            await self._greet()
        for hook in self.deps.on_call_connected:
            try:
                await hook(self)
            except Exception:
                log.exception("call %s: on_call_connected hook %r failed", self.call_id, hook)

    async def _greet(self) -> None:
        recall = getattr(self.conversation, "recall", None)  # memory, read off the loop, names the caller
        await asyncio.gather(asyncio.sleep(_GREETING_DELAY_S), *([recall()] if callable(recall) else []))
        make_greeting = getattr(self.conversation, "greeting", None)  # personalised, and kept in its history
        text = make_greeting() if callable(make_greeting) else self.deps.greeting
        entry = self.record.add_agent(text, source="greeting")
        entry.interrupted = not await self.turns.say(text, "greeting", remember=not callable(make_greeting))

    async def speak_proactive(self, text: str, message_id: str) -> bool:
        """Say ``text`` at the next natural pause (never over the caller); True once it was fully spoken.

        False if no pause came within ``CallConfig.proactive_timeout_s``, the caller cut it off, or the call
        ended: the caller of this method should then keep the message for redelivery. It runs as one of the
        call's tasks, so a hang-up ends the wait (or the playing) at once instead of leaving the bus handler
        waiting for a pause, or for audio nobody reads any more.
        """
        try:
            return await self._speak_proactive_in_call_task(text, message_id)
        finally:
            self._awaiting_opening = False  # said or not, the caller's turns are answered from now on

    async def _speak_proactive_in_call_task(self, text: str, message_id: str) -> bool:
        if self._closing is not None:
            return False
        task = self._spawn(self._speak_proactive(text, message_id), "proactive")
        try:
            await asyncio.wait({task})
        except asyncio.CancelledError:
            task.cancel()
            raise
        if task.cancelled():
            return False
        return task.result() and self._closing is None

    async def _speak_proactive(self, text: str, message_id: str) -> bool:
        cfg = self.deps.call
        deadline = time.monotonic() + cfg.proactive_timeout_s
        if not await self._wait_resumed(cfg.proactive_timeout_s) or not await self.turns.wait_for_pause(
            cfg.proactive_pause_ms / 1000, max(0.0, deadline - time.monotonic())
        ):
            metrics.PROACTIVE_SPOKEN.labels("no_pause").inc()
            return False
        if self._closing is not None:  # the pause was the hang-up cancelling the reply
            return False
        self.events.emit("proactive", {"message_id": message_id, "text": text})
        self._prompt_started[message_id] = time.monotonic()
        entry = self.record.add_agent(text, source="proactive", message_id=message_id)
        try:
            spoken = await self.turns.say(text, "proactive")
        except asyncio.CancelledError:
            spoken = False
            raise
        finally:
            entry.interrupted = not spoken
            if spoken:
                self._publish("final_turn", text, "agent")
            metrics.PROACTIVE_SPOKEN.labels("spoken" if spoken else "interrupted").inc()
        return spoken

    async def await_key(self, message_id: str, timeout_s: float) -> str | None:
        """The first key the caller pressed since the proactive prompt ``message_id`` began, waiting up to
        ``timeout_s`` after now; None when none came (or the prompt was never spoken in this call)."""
        since = self._prompt_started.get(message_id)
        if since is None:
            return None
        return await self.keypad.wait_for(since, timeout_s)

    async def say_goodbye(self, text: str, reason: str) -> None:
        """Say ``text`` (once the agent is quiet), then end the call with ``reason`` (e.g. nobody spoke)."""
        if self._closing is not None:
            return
        entry = self.record.add_agent(text, source="goodbye")
        entry.interrupted = not await self.turns.say(text, "goodbye", remember=False)
        await self.close(reason)

    # -- control events ---------------------------------------------------------------------------
    def _key_pressed(self, event: Dtmf) -> None:
        self.keypad.press(event.digit, event.at)
        self.record.add_key(event.digit)
        self.events.emit("dtmf", {"digit": event.digit})
        log.info("call %s: key %s pressed", self.call_id, event.digit)

    def _set_hold(self, on_hold: bool) -> None:
        if on_hold == self.on_hold:
            return
        self.on_hold = on_hold
        controller = self.audio.controller
        if on_hold:
            controller.pause()  # what the agent was saying waits; nothing is lost or replayed
            self._resumed.clear()
            self._spawn(self._end_open_turn(), "hold-silence")
        else:
            controller.resume()
            self._resumed.set()
        self.events.emit("hold", {"on_hold": on_hold})
        log.info("call %s %s", self.call_id, "put on hold" if on_hold else "resumed")

    async def _end_open_turn(self) -> None:
        """Hold can come mid-sentence and a held phone may send no audio at all: feed the listener silence
        so a turn the caller was in ends (and is answered once the call resumes)."""
        listener, rate = self._listener, self._caller_rate
        frame_samples = rate // 50
        for _ in range(int(_HOLD_SILENCE_S * 50)):
            if listener is None or listener.closed or not self.on_hold:
                return
            await listener.push(AudioFrame(np.zeros(frame_samples, np.int16), rate, time.monotonic()))
            await asyncio.sleep(0)

    async def _wait_resumed(self, timeout_s: float) -> bool:
        try:
            await asyncio.wait_for(self._resumed.wait(), timeout_s)
        except TimeoutError:
            return False
        return self._closing is None

    # -- CallControl for agent tools -----------------------------------------------------------------
    async def end_call(self) -> None:
        """Hang up after the agent finishes its current sentence."""
        self._spawn(self._end_after_speech(), "end-call")

    async def transfer(self, target: str) -> None:
        """Emits a ``transfer`` event; a transport that can transfer (SIP REFER) acts on it."""
        self.events.emit("transfer", {"target": target})
        kind = self.transport.kind if self.transport is not None else "this"
        log.warning("call %s: transfer to %s requested (a %s call)", self.call_id, target, kind)

    async def _end_after_speech(self) -> None:
        await self.audio.wait_done()
        await self.close("agent_ended")

    # -- records -----------------------------------------------------------------------------------
    def _turn_done(self, result: TurnResult) -> None:
        delays = result.timing.as_delays()
        said = result.spoken_text if result.interrupted else result.agent_text
        self.record.add_agent(said).interrupted = result.interrupted
        if said.strip():
            self._publish("final_turn", said.strip(), "agent")
        self.record.turns.append(
            RecordedTurn(
                index=len(self.record.turns),
                user_text=result.user_text,
                agent_text=result.agent_text,
                speech_end=time.time() - (time.monotonic() - result.timing.speech_end),
                stages=delays,
                sources=result.sources,
                interrupted=result.interrupted,
                error=result.error,
                grounding=result.grounding,
            )
        )
        metrics.TURNS.inc()
        if result.interrupted:
            metrics.INTERRUPTIONS.inc()
            self.record.add_interruption(result.spoken_text)
        marks = result.timing.marks
        TurnTimings(result.timing.speech_end, *(marks.get(stage) for stage in STAGES)).observe()

    def _publish(
        self,
        event: Literal["call_started", "call_ended", "final_turn"],
        text: str | None = None,
        role: Literal["user", "agent"] | None = None,
    ) -> None:
        if self.deps.conversation_events is not None:
            # An anonymous caller cannot be contacted again: intent analysis has nothing to follow up.
            user = None if self.anonymous else self.user_id
            self.deps.conversation_events.publish(event, self.call_id, user, text, role, tenant=self.tenant)

    def snapshot(self) -> dict[str, Any]:
        """Live view for the API and the admin dashboard."""
        data = self.record.to_dict()
        connection = self.transport.connection_state if self.transport is not None else "connected"
        data.update(
            state=self.turns.state.value,
            connection=connection,
            live=self._closing is None,
            transport=self.transport.kind if self.transport is not None else None,
            on_hold=self.on_hold,
        )
        return data
