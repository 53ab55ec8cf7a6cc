"""One grounded reply: small talk, a refusal, the evidence sentences themselves, or the model's sentences, each
checked against the evidence before it is spoken.

Streaming stays sentence by sentence: a model sentence is held until it is complete, its facts are looked up
in the evidence, the conversation and the persona, and only then is it yielded. The first sentence that
fails ends the model's part of the reply; the caller hears the evidence sentence instead.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass

from agent.config import AgentConfig
from agent.evidence import Evidence, EvidenceSelection
from agent.extractive import extractive_sentences
from agent.facts import FactIndex, extract_facts
from agent.llm.base import LLMChunk, Message
from agent.question import Question, small_talk_kind
from agent.sentences import SentenceBuffer, split_sentences
from agent.spoken import to_spoken
from agent.turn import Production, RejectedSentence, SpokenSentence, TurnRecord
from agent.verification import SentenceCheck

log = logging.getLogger(__name__)

StreamFactory = Callable[[list[Message]], AsyncIterator[LLMChunk]]

ANSWER_INSTRUCTION = (
    "Answer the question in one short sentence, using only the facts above. Speak to the caller as 'you'."
)
SMALL_TALK_INSTRUCTION = "Reply in one short, friendly sentence. Do not state any facts."


@dataclass
class ReplyContext:
    """What one grounded reply needs from its conversation."""

    turn: TurnRecord
    question: Question
    history: list[Message]  # the stable prefix: system (persona, memory) and earlier turns
    sources: list[str]  # persona, memory, the caller's words: each may back a sentence on its own
    said_before: list[str]  # the agent's earlier lines: may supply names only
    stream: StreamFactory  # the LLM stream with the conversation's first-token deadlines


class GroundedReply:
    """Produces one reply's sentences, recording each on ``ctx.turn.spoken``."""

    def __init__(self, config: AgentConfig, ctx: ReplyContext) -> None:
        self.config = config
        self.grounding = config.grounding
        self.ctx = ctx

    # -- the four kinds of reply ---------------------------------------------------------------------------

    def refusal(self) -> AsyncIterator[str]:
        return self._say([self.grounding.refusal], "refused", [])

    async def extractive(self, selection: EvidenceSelection) -> AsyncIterator[str]:
        answer = selection.answer
        async for piece in self._say(extractive_sentences(answer), "extractive", answer):
            yield piece
        async for piece in self._rest_unanswered(selection):
            yield piece

    def _rest_unanswered(self, selection: EvidenceSelection) -> AsyncIterator[str]:
        """For a question asked in parts, some of which the evidence does not answer."""
        lines = [self.grounding.partial_refusal] if selection.unanswered_parts else []
        return self._say(lines, "refused", [])

    async def small_talk(self, fallback: str | None = None) -> AsyncIterator[str]:
        """A friendly line: the model's (``small_talk`` "model") when it states no fact the conversation or
        persona lacks, else the fixed line for this kind of small talk; ``fallback`` replaces the fixed line
        (the refusal, for a question asked with no knowledge base)."""
        if self.grounding.small_talk == "model":
            messages = self._with_final(f"{self.ctx.question.text}\n\n({SMALL_TALK_INSTRUCTION})")
            index = SentenceCheck(self.ctx.sources, self.ctx.said_before)
            spoken = 0
            async for text, ok in self._checked_model_sentences(messages, index, limit=1):
                if ok is None:
                    yield self._record(text, "holding", [])
                    continue
                if not ok:
                    break
                spoken += 1
                yield self._record(text, "small_talk", [])
            if spoken:
                return
        replies = self.grounding.small_talk_replies
        line = fallback or replies.get(
            small_talk_kind(self.ctx.question.text), self.grounding.small_talk_fallback
        )
        async for piece in self._say([line], "refused" if fallback else "small_talk", []):
            yield piece

    async def from_model(self, selection: EvidenceSelection) -> AsyncIterator[str]:
        """The model answers from the evidence sentences; with ``answer_mode`` "verified" a sentence whose
        facts are not all supported ends the model's part and the evidence sentences are spoken instead, as
        they are when the model's reply holds none of the answer's facts."""
        evidence = selection.prompt_sentences(self.grounding.prompt_sentences)
        checked = self.grounding.answer_mode == "verified"
        facts = "\n".join(f"- {e.spoken_text}" for e in evidence)
        messages = self._with_final(
            f"Facts:\n{facts}\n\nQuestion: {self.ctx.question.text}\n{ANSWER_INSTRUCTION}"
        )
        index = SentenceCheck([*(e.spoken_text for e in evidence), *self.ctx.sources], self.ctx.said_before)
        said: list[str] = []
        failed = False
        limit = self.grounding.max_model_sentences
        async for text, ok in self._checked_model_sentences(messages, index, limit, checked):
            if ok is None:
                yield self._record(text, "holding", [])
                continue
            if not ok:
                failed = True
                break
            said.append(text)
            yield self._record(text, "model_verified" if checked else "model_unchecked", evidence)
        if not checked:
            async for piece in self._rest_unanswered(selection):
                yield piece
            return
        if failed or not said or not _holds_answer(" ".join(said), selection.answer):
            extra = [s for s in extractive_sentences(selection.answer) if s not in said]
            async for piece in self._say(extra, "extractive", selection.answer):
                yield piece
        async for piece in self._rest_unanswered(selection):
            yield piece

    # -- helpers ---------------------------------------------------------------------------------------------

    async def _checked_model_sentences(
        self, messages: list[Message], index: SentenceCheck, limit: int, check: bool = True
    ) -> AsyncIterator[tuple[str, bool | None]]:
        """The model's complete sentences (at most ``limit``) with whether every fact in each is supported;
        stops the model after the first unsupported one. The holding phrase comes through with None."""
        buffer = SentenceBuffer()
        count = 0
        turn = self.ctx.turn
        async for chunk in self.ctx.stream(messages):
            if not chunk.text:
                continue
            if turn.llm_first_token is None:  # the holding phrase, said before the model's first token
                yield chunk.text.strip(), None
                continue
            for sentence in buffer.push(chunk.text):
                verdict = self._verdict(sentence, index, check)
                yield sentence, verdict
                count += 1
                if not verdict or count >= limit:
                    return
        for sentence in buffer.flush():
            verdict = self._verdict(sentence, index, check)
            yield sentence, verdict
            count += 1
            if not verdict or count >= limit:
                return

    def _verdict(self, sentence: str, index: SentenceCheck, check: bool) -> bool:
        if not check:
            return True
        unsupported = index.unsupported(sentence)
        if unsupported:
            self.ctx.turn.rejected.append(RejectedSentence(sentence, [f.text for f in unsupported]))
            log.info("model sentence not spoken, unsupported %s: %r", [f.text for f in unsupported], sentence)
            return False
        return True

    def _with_final(self, content: str) -> list[Message]:
        """The stable prefix, then the evidence and the caller's words last (so a backend's KV cache of the
        prefix is reused turn after turn)."""
        history = list(self.ctx.history)
        if history and history[-1].role == "user":
            history = history[:-1]  # the current user text; it comes back inside ``content``
        return [*history, Message("user", content)]

    async def _say(
        self, lines: Sequence[str], how: Production, evidence: list[Evidence]
    ) -> AsyncIterator[str]:
        for line in lines:
            for sentence in split_sentences(line):  # one sentence at a time, as the model path yields
                yield self._record(sentence, how, evidence)

    def _record(self, sentence: str, how: Production, evidence: list[Evidence]) -> str:
        """``sentence`` in speakable form, recorded on the turn; returned with a trailing space for joining."""
        text = to_spoken(sentence).strip()
        self.ctx.turn.spoken.append(SpokenSentence(text, how, list(evidence)))
        return text + " "


def _holds_answer(said: str, answer: list[Evidence]) -> bool:
    """Does the model's reply carry at least one number, amount, time or contact detail of the answer
    sentences (when they have any)? A reply that names the right day but no hours has not answered."""
    wanted = [f for e in answer for f in extract_facts(e.spoken_text) if f.kind not in ("name", "date")]
    if not wanted:
        return True
    index = FactIndex([said])
    return any(index.supports(f) for f in wanted)
