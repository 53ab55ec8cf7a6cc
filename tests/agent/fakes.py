"""Fakes of the agent's collaborators, named as fakes (deterministic; for orchestration logic only)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from agent.llm.base import LLMChunk, Message, ToolSpec


@dataclass
class FakeChunk:
    text: str
    score: float
    source_id: str
    doc_id: str


class FakeRetriever:
    """In-memory retriever: returns the stored chunks whose words overlap the query."""

    def __init__(self, chunks: list[FakeChunk], delay_s: float = 0.0) -> None:
        self.chunks = chunks
        self.delay_s = delay_s
        self.queries: list[str] = []

    async def retrieve(
        self, query: str, k: int = 3, filters: Mapping[str, Any] | None = None
    ) -> list[FakeChunk]:
        self.queries.append(query)
        await asyncio.sleep(self.delay_s)
        words = set(query.lower().split())
        return [c for c in self.chunks if words & set(c.text.lower().split())][:k]


class FakeLLM:
    """Scripted LLM: yields ``replies`` in order (one per call), optionally slowly (``delay_s`` before the
    first word, ``word_delay_s`` between words); records the prompts and whether each stream was closed."""

    def __init__(self, replies: list[str], delay_s: float = 0.0, word_delay_s: float = 0.0) -> None:
        self.replies = replies
        self.delay_s = delay_s
        self.word_delay_s = word_delay_s
        self.calls: list[Sequence[Message]] = []
        self.words_sent = 0

    async def stream_chat(
        self,
        messages: Sequence[Message],
        tools: Sequence[ToolSpec] | None = None,
        max_tokens: int | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[LLMChunk]:
        self.calls.append(messages)
        await asyncio.sleep(self.delay_s)
        reply = self.replies[min(len(self.calls), len(self.replies)) - 1]
        for i, word in enumerate(reply.split(" ")):
            if i and self.word_delay_s:
                await asyncio.sleep(self.word_delay_s)
            self.words_sent += 1
            yield LLMChunk(text=word + " ")
        yield LLMChunk(done=True)
