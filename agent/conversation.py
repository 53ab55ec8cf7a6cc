"""``Conversation``: one caller's dialog with the agent — prompt, history, RAG, tools, memory, failures.

``respond(user_text)`` streams speakable text deltas. Whatever goes wrong inside (LLM down or slow, a tool
failing, retrieval too slow) the caller hears something sensible and the conversation stays usable. With
``agent.grounding`` on (the default) every sentence is grounded (``agent.grounded``): the turn record says how
each was produced and from which evidence.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import AsyncIterator
from typing import Any

from agent.config import AgentConfig
from agent.errors import AgentError
from agent.evidence import EvidenceSelector, SentenceEmbedder, combine_parts
from agent.first_token import with_first_token_deadline
from agent.grounded import GroundedReply, ReplyContext
from agent.llm.base import LLM, LLMChunk, Message, ToolCall, ToolSpec
from agent.memory import MemoryStore, UserMemory, extract_facts
from agent.question import Question, analyse
from agent.retrieval import Retriever
from agent.spoken import SpokenTextFilter
from agent.tools import ToolBox, ToolOutcome, arguments_from_text
from agent.turn import SpokenSentence, TurnRecord, Utterance, estimate_tokens

__all__ = ["Conversation", "TurnRecord", "Utterance", "estimate_tokens"]

log = logging.getLogger(__name__)


class Conversation:
    """One user's conversation with the agent. Not safe for concurrent ``respond()`` calls."""

    def __init__(
        self,
        llm: LLM,
        config: AgentConfig,
        retriever: Retriever | None = None,
        tools: ToolBox | None = None,
        memory: MemoryStore | None = None,
        user_id: str = "anonymous",
        call_id: str | None = None,
        embedder: SentenceEmbedder | None = None,
    ) -> None:
        """``embedder``: embeds evidence sentences for ranking by meaning (the knowledge base's embedder; by
        default the retriever's own ``embedder`` when it has one). Without any, sentences are ranked on words
        only, which the tuned threshold does not expect: most questions would be refused (logged)."""
        self.llm = llm
        self.config = config
        self.retriever = retriever
        self.tools = tools
        self.memory = memory
        self.user_id = user_id
        self.call_id = call_id
        self.transcript: list[Utterance] = []
        self.last_turn: TurnRecord | None = None
        # Loaded by ``recall()`` (a worker thread): the memory database may be slow or locked, and the
        # conversation is built on the event loop that carries every call's audio.
        self._remembered: UserMemory | None = None
        self._recalled = memory is None
        embedder = embedder if embedder is not None else getattr(retriever, "embedder", None)
        if retriever is not None and embedder is None and config.grounding.enabled:
            log.warning(
                "call %s: no embedder for evidence sentences; grounded answers will mostly refuse", call_id
            )
        self.selector = EvidenceSelector.for_config(config.grounding, embedder)
        self._last_question: Question | None = None  # the topic a follow-up ("and on Sundays?") refers to
        # What ``retract_last_turn`` restores: transcript length, last turn and question before the turn.
        self._before_turn: tuple[int, TurnRecord | None, Question | None] | None = None

    # -- public API -------------------------------------------------------------------------------------------

    async def recall(self) -> None:
        """Load what memory holds about the user (once; ``respond`` does it too). A memory that cannot be
        read gives a conversation without memory, never a failed call."""
        if self._recalled:
            return
        self._recalled = True
        assert self.memory is not None
        try:
            self._remembered = await asyncio.to_thread(self.memory.load, self.user_id)
        except AgentError:
            log.exception("call %s user %s: memory unreadable; answering without it", self.call_id, self.user_id)

    def greeting(self) -> str:
        """The opening line (addressing a remembered user by name); recorded in the transcript."""
        text = self.config.greeting
        name = self._remembered_name()
        if name and text.startswith("Hello!"):
            text = f"Hello {name}!" + text[len("Hello!") :]
        self.add_agent_utterance(text, source="greeting")
        return text

    def add_agent_utterance(self, text: str, source: str = "proactive") -> None:
        """Record something the agent said outside ``respond()`` (a proactive prompt, the greeting)."""
        self.transcript.append(Utterance("agent", text, source))

    def mark_interrupted(self, spoken_text: str) -> None:
        """The caller barged in: keep only what was actually heard, so history matches the caller's view."""
        heard = spoken_text.strip()
        last = self.transcript[-1] if self.transcript else None
        # Only the reply to the latest user turn can be cut off; never rewrite an older agent line.
        if last is not None and last.role == "agent":
            last.text, last.interrupted = heard, True
            if not heard:
                self.transcript.pop()
        elif heard:
            self.transcript.append(Utterance("agent", heard, "reply", interrupted=True))
        if self.last_turn is not None:
            self.last_turn.interrupted = True

    def retract_last_turn(self) -> None:
        """Forget the latest ``respond()`` as if it never happened: its reply was prepared before the caller's
        turn had ended (speculatively) or superseded before the caller heard a word of it, and the caller went
        on. Facts it stored in memory stay (the caller did say them)."""
        if self._before_turn is None:
            return
        length, self.last_turn, self._last_question = self._before_turn
        del self.transcript[length:]
        self._before_turn = None

    async def respond(self, user_text: str) -> AsyncIterator[str]:
        """Stream the agent's reply to ``user_text`` as speakable text deltas. Never raises AgentError."""
        self._before_turn = (len(self.transcript), self.last_turn, self._last_question)
        turn = TurnRecord(user_text=user_text)
        self.last_turn = turn
        self.transcript.append(Utterance("user", user_text, "user"))
        await self.recall()
        await self._remember(user_text)
        spoken: list[str] = []
        try:
            async for piece in self._reply(turn):
                spoken.append(piece)
                yield piece
        except Exception as exc:
            if isinstance(exc, AgentError):
                log.warning(
                    "call %s user %s: reply failed (%s); speaking apology", self.call_id, self.user_id, exc
                )
            else:
                log.exception(
                    "call %s user %s: unexpected error in reply; speaking apology", self.call_id, self.user_id
                )
            turn.error = f"{type(exc).__name__}: {exc}"
            turn.apology = True
            apology = self.config.apology
            turn.spoken.append(SpokenSentence(apology, "apology"))
            spoken.append(apology if not spoken else " " + apology)
            yield spoken[-1]
        finally:
            turn.completed = time.monotonic()
            turn.reply_text = "".join(spoken).strip()
            if turn.reply_text and not turn.spoken:  # the ungrounded path: a tool's line or the model's text
                tool = any(o.speak for o in turn.tool_outcomes)
                turn.spoken.append(SpokenSentence(turn.reply_text, "tool" if tool else "model_unchecked"))
            if turn.reply_text:
                source = "apology" if turn.apology else "reply"
                self.transcript.append(Utterance("agent", turn.reply_text, source))

    def save_summary(self) -> str | None:
        """Persist a short summary of this conversation as the user's "last summary" (call at hang-up)."""
        if self.memory is None:
            return None
        said = [u.text for u in self.transcript if u.role == "user"]
        if not said:
            return None
        summary = "Last time the user said: " + " / ".join(s[:120] for s in said[-3:])
        self.memory.save_summary(self.user_id, summary)
        return summary

    # -- one turn -----------------------------------------------------------------------------------------------

    async def _reply(self, turn: TurnRecord) -> AsyncIterator[str]:
        forced = self._forced_tool(turn.user_text)
        if self.config.grounding.enabled and (forced is None or forced.name == "search_knowledge"):
            async for piece in self._grounded_reply(turn):  # searching is what a grounded reply does anyway
                yield piece
            return
        knowledge = await self._retrieve(turn, turn.user_text)
        messages = self._build_messages(knowledge)
        offered = self.tools.specs() if self.tools and self.config.tools_in_prompt else []
        specs = [forced] if forced else offered
        if forced:
            # Tiny local models do not decide to call tools; the trigger decides, the grammar fills arguments.
            outcome = await self._forced_call(turn, messages, forced)
            if outcome.speak:
                yield outcome.speak
                return
            messages = [*messages, *self._tool_messages(turn.tool_calls[-1], outcome)]
            specs = []
        text_filter = SpokenTextFilter()
        calls: list[ToolCall] = []
        async for chunk in self._stream(turn, messages, specs):
            if chunk.text:
                out = text_filter.push(chunk.text)
                if out.strip():
                    yield out
            calls.extend(chunk.tool_calls)
        tail = text_filter.flush()
        if tail.strip():
            yield tail
        for call in calls[:1]:  # one tool round per turn keeps latency bounded
            turn.tool_calls.append(call)
            outcome = await self._execute(turn, call)
            if outcome.speak:
                yield outcome.speak
                return
            follow = SpokenTextFilter()
            async for chunk in self._stream(turn, [*messages, *self._tool_messages(call, outcome)], []):
                if chunk.text and (out := follow.push(chunk.text)).strip():
                    yield out
            if (tail := follow.flush()).strip():
                yield tail

    def _stream(
        self, turn: TurnRecord, messages: list[Message], tools: list[ToolSpec]
    ) -> AsyncIterator[LLMChunk]:
        """The LLM stream with the first-token deadlines and the holding phrase (``agent.first_token``)."""
        stream = self.llm.stream_chat(messages, tools=tools or None, max_tokens=self.config.llm.max_tokens)
        return with_first_token_deadline(stream, self.config, turn, self.call_id)

    async def _forced_call(self, turn: TurnRecord, messages: list[Message], spec: ToolSpec) -> ToolOutcome:
        if self.config.tool_arguments == "rules":
            args = arguments_from_text(
                spec.name, turn.user_text, self.config.intent_follow_up_delay_min, self.config.transfer_target
            )
            turn.tool_calls.append(ToolCall(spec.name, args))
            return await self._execute(turn, turn.tool_calls[-1])
        call: ToolCall | None = None
        try:
            stream = self.llm.stream_chat(
                messages, tools=[spec], max_tokens=self.config.intent_max_tokens, tool_choice="required"
            )
            async with asyncio.timeout(self.config.llm.timeout_s):
                async for chunk in stream:
                    if turn.llm_first_token is None:
                        turn.llm_first_token = time.monotonic()
                    if chunk.tool_calls:
                        call = chunk.tool_calls[0]
        except (AgentError, TimeoutError) as exc:
            log.warning(
                "call %s user %s: forced %s call failed: %s", self.call_id, self.user_id, spec.name, exc
            )
        if call is None:
            args = arguments_from_text(
                spec.name, turn.user_text, self.config.intent_follow_up_delay_min, self.config.transfer_target
            )
            call = ToolCall(spec.name, args)
        turn.tool_calls.append(call)
        return await self._execute(turn, call)

    async def _execute(self, turn: TurnRecord, call: ToolCall) -> ToolOutcome:
        if self.tools is None:
            outcome = ToolOutcome(call.name, ok=False, speak=self.config.tool_fallback)
        else:
            outcome = await self.tools.execute(call)
        turn.tool_outcomes.append(outcome)
        turn.sources.extend(s for s in outcome.sources if s not in turn.sources)
        return outcome

    @staticmethod
    def _tool_messages(call: ToolCall, outcome: ToolOutcome) -> list[Message]:
        return [
            Message("assistant", tool_calls=(call,)),
            Message("tool", outcome.result or ("done" if outcome.ok else "failed"), name=call.name),
        ]

    def _forced_tool(self, user_text: str) -> ToolSpec | None:
        if self.tools is None:
            return None
        lowered = user_text.lower()
        for name, phrases in self.config.tool_triggers.items():
            spec = self.tools.spec(name)
            if spec is not None and any(re.search(rf"\b{re.escape(p)}\b", lowered) for p in phrases):
                return spec
        return None

    async def _grounded_reply(self, turn: TurnRecord) -> AsyncIterator[str]:
        """Small talk gets a friendly line; a question the evidence answers gets the answer (the evidence
        sentences, or the model's checked sentences); any other question gets the refusal."""
        question = analyse(turn.user_text, self._last_question)
        said_before = [u.text for u in self.transcript if u.role == "agent"]
        ctx = ReplyContext(
            turn,
            question,
            self._build_messages([]),
            self._own_sources(),
            said_before,
            lambda m: self._stream(turn, m, []),
        )
        reply = GroundedReply(self.config, ctx)
        if question.kind == "small_talk" or self.retriever is None:
            # Without a knowledge base a question gets the model's reply only if it states no fact.
            fallback = self.config.grounding.refusal if question.kind == "question" else None
            async for piece in reply.small_talk(fallback):
                yield piece
            return
        self._last_question = question
        grounding = self.config.grounding
        parts = question.parts or [question]  # each part of a two-part question is looked up on its own
        found = await asyncio.gather(*(self._retrieve(turn, part.retrieval_text) for part in parts))
        selections = [await self.selector.select(p, chunks) for p, chunks in zip(parts, found, strict=True)]
        selection = combine_parts(selections, grounding.min_confidence, grounding.part_confidence_ratio)
        turn.confidence = selection.confidence
        if not selection.answer or selection.confidence < grounding.min_confidence:
            pieces = reply.refusal() if question.kind == "question" else reply.small_talk()
        elif grounding.answer_mode == "extractive":
            pieces = reply.extractive(selection)
        else:
            pieces = reply.from_model(selection)
        async for piece in pieces:
            yield piece

    def _own_sources(self) -> list[str]:
        """Texts besides the evidence whose facts the agent may repeat: the persona and fixed phrases, what
        memory holds about the caller, and the caller's own words."""
        memory = (self._remembered.facts + [self._remembered.summary or ""]) if self._remembered else []
        said = [u.text for u in self.transcript if u.role == "user"]
        return [*self.config.fixed_phrases(), *memory, *said]

    async def _retrieve(self, turn: TurnRecord, query: str) -> list[Any]:
        if self.retriever is None:
            return []
        turn.retrieval_queries.append(query)
        budget = self.config.retrieval_budget_ms / 1000
        try:
            chunks = await asyncio.wait_for(
                self.retriever.retrieve(query, k=self.config.retrieval_top_k), budget
            )
        except TimeoutError:
            log.warning(
                "call %s: retrieval exceeded its %.0f ms budget; answering without it",
                self.call_id,
                budget * 1000,
            )
            chunks = []
        except Exception:
            log.exception(
                "call %s: retrieval failed for %r; answering without it", self.call_id, turn.user_text
            )
            chunks = []
        turn.retrieval_done = time.monotonic()
        turn.sources.extend(c.source_id for c in chunks)
        return list(chunks)

    # -- prompt -------------------------------------------------------------------------------------------------

    def _build_messages(self, knowledge: list[Any]) -> list[Message]:
        system = self._system_prompt(knowledge)
        budget = self.config.history_token_budget - estimate_tokens(system)
        history: list[Message] = []
        # Newest first until the budget is spent; the current user message is always kept.
        for utterance in reversed(self.transcript):
            cost = estimate_tokens(utterance.text)
            if history and cost > budget:
                break
            budget -= cost
            history.append(Message("user" if utterance.role == "user" else "assistant", utterance.text))
        return [Message("system", system), *reversed(history)]

    def _system_prompt(self, knowledge: list[Any]) -> str:
        parts = [self.config.persona]
        if self._remembered is not None:
            if self._remembered.facts:
                parts.append("What you know about the user: " + " ".join(self._remembered.facts))
            if self._remembered.summary:
                parts.append(self._remembered.summary)
        if knowledge:
            facts = "\n".join(f"- {c.text}" for c in knowledge)
            parts.append(f"Use these facts to answer:\n{facts}")
        return "\n\n".join(parts)

    async def _remember(self, user_text: str) -> None:
        memory = self.memory
        facts = extract_facts(user_text) if memory is not None else []
        if memory is None or not facts:
            return

        def store() -> UserMemory:
            for fact in facts:
                try:
                    memory.add_fact(self.user_id, fact)
                except AgentError:
                    log.exception("user %s: could not store fact %r", self.user_id, fact)
            return memory.load(self.user_id)

        try:
            self._remembered = await asyncio.to_thread(store)
        except AgentError:
            log.exception("user %s: memory unreadable after storing facts", self.user_id)

    def _remembered_name(self) -> str | None:
        if self._remembered is None:
            return None
        for fact in self._remembered.facts:
            if fact.startswith("The user's name is "):
                return fact.removeprefix("The user's name is ").rstrip(".")
        return None
