"""Checks every LLM backend must pass; the per-backend test modules call them with a real model."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

from agent.llm.base import LLMChunk, Message
from agent.tools import SCHEDULE_CALLBACK

# First-token bound for tests: seconds, generous enough for a loaded 2-core CI box (6.5 s was seen with
# other test suites running), still far below what a broken path takes (no streaming: the whole reply;
# a model loaded per request; a prompt queued behind other callers' whole replies). The tight figure
# (about 0.15 s cold, 0.8 s with a 300-token prompt on an idle machine) is measured by bench/agent.py.
FIRST_TOKEN_BOUND_S = 8.0

QUESTION = [
    Message("system", "You are a concise voice assistant."),
    Message("user", "Tell me a short story about a cat."),
]
LONG = [
    Message("system", "You are a helpful assistant."),
    Message("user", "Count from 1 to 300, one number per line."),
]


@dataclass
class StreamStats:
    chunks: list[LLMChunk]
    first_token_s: float
    total_s: float

    @property
    def text(self) -> str:
        return "".join(c.text for c in self.chunks)

    @property
    def tokens_per_s(self) -> float:
        n = sum(1 for c in self.chunks if c.text)
        return (n - 1) / max(self.total_s - self.first_token_s, 1e-6)


async def stream_reply(llm: Any, messages: list[Message] = QUESTION, max_tokens: int = 40) -> StreamStats:
    started = time.perf_counter()
    first: float | None = None
    chunks: list[LLMChunk] = []
    async for chunk in llm.stream_chat(messages, max_tokens=max_tokens):
        if chunk.text and first is None:
            first = time.perf_counter() - started
        chunks.append(chunk)
    assert first is not None, "no text at all"
    return StreamStats(chunks, first, time.perf_counter() - started)


def assert_incremental(stats: StreamStats) -> None:
    text_chunks = [c for c in stats.chunks if c.text]
    assert len(text_chunks) >= 5, f"reply not streamed incrementally: {stats.chunks}"
    assert stats.chunks[-1].done and not any(c.done for c in stats.chunks[:-1])
    assert stats.text.strip()


async def cancel_latency(llm: Any, after_chunks: int = 5) -> float:
    """Seconds from ``task.cancel()`` mid-stream until the consuming task (and generation) has ended."""
    got = asyncio.Event()
    seen = 0

    async def consume() -> None:
        nonlocal seen
        async for chunk in llm.stream_chat(LONG, max_tokens=600):
            if chunk.text:
                seen += 1
                if seen >= after_chunks:
                    got.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(got.wait(), 30)
    started = time.perf_counter()
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        pass
    latency = time.perf_counter() - started
    assert seen < 300, "generation finished before it could be cancelled"
    return latency


async def forced_tool_call(llm: Any) -> Any:
    """The model fills in a schedule_callback call (output constrained to the tool's JSON schema)."""
    messages = [
        Message("system", "You are a phone assistant."),
        Message("user", "Please call me back in 30 minutes about my invoice."),
    ]
    calls = []
    async for chunk in llm.stream_chat(
        messages, tools=[SCHEDULE_CALLBACK], max_tokens=80, tool_choice="required"
    ):
        calls.extend(chunk.tool_calls)
    assert len(calls) == 1
    call = calls[0]
    assert call.name == "schedule_callback"
    assert isinstance(call.arguments["minutes_from_now"], int)
    assert isinstance(call.arguments["reason"], str)
    return call


async def tool_round_trip(llm: Any) -> str:
    """Call -> tool result message -> the model's spoken answer that uses the result."""
    call = await forced_tool_call(llm)
    messages = [
        Message("system", "You are a phone assistant. Tell the user the result of the tool in one sentence."),
        Message("user", "Please call me back in 30 minutes about my invoice."),
        Message("assistant", tool_calls=(call,)),
        Message("tool", "Callback scheduled for 15:30 today.", name="schedule_callback"),
    ]
    stats = await stream_reply(llm, messages, max_tokens=40)
    assert stats.chunks[-1].done
    return stats.text
