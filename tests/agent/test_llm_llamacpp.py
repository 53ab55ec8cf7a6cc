"""The embedded llama.cpp backend with the real SmolLM2-135M GGUF."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from agent.config import LlamaCppConfig, LLMConfig
from agent.errors import LLMError, LLMUnavailableError
from agent.llm.base import LLMChunk, Message
from agent.llm.toolcalls import ToolCallSniffer
from agent.tools import SCHEDULE_CALLBACK
from tests.agent import llm_checks


async def test_streams_reply_incrementally_and_ends(llamacpp_llm: Any) -> None:
    await llm_checks.stream_reply(llamacpp_llm, llm_checks.LONG, max_tokens=4)  # warm-up, other prompt
    stats = await llm_checks.stream_reply(llamacpp_llm)
    llm_checks.assert_incremental(stats)
    print(f"\nllamacpp: first token {stats.first_token_s * 1000:.0f} ms, {stats.tokens_per_s:.0f} tokens/s")
    assert stats.first_token_s < llm_checks.FIRST_TOKEN_BOUND_S


async def test_event_loop_stays_responsive_while_generating(llamacpp_llm: Any) -> None:
    gaps: list[float] = []

    async def ticker() -> None:
        while True:
            t = time.perf_counter()
            await asyncio.sleep(0.01)
            gaps.append(time.perf_counter() - t)

    tick = asyncio.create_task(ticker())
    await llm_checks.stream_reply(llamacpp_llm, max_tokens=40)
    tick.cancel()
    # Generation runs in the worker thread: the loop keeps ticking at its 10 ms pace. Tolerances are for a
    # shared 2-core machine, where the OS alone can starve the loop thread now and then (idle p95 ~25 ms).
    gaps.sort()
    assert len(gaps) > 5 and gaps[int(len(gaps) * 0.95)] < 0.06, gaps[-5:]


async def test_cancel_mid_stream_stops_within_100ms(llamacpp_llm: Any) -> None:
    latencies = [await llm_checks.cancel_latency(llamacpp_llm) for _ in range(3)]
    print(f"\nllamacpp cancel latency: {[round(x * 1000) for x in latencies]} ms")
    assert sorted(latencies)[1] < 0.1, latencies  # median of 3
    # The model is free again at once: a new generation starts immediately.
    stats = await llm_checks.stream_reply(llamacpp_llm, max_tokens=5)
    assert stats.first_token_s < llm_checks.FIRST_TOKEN_BOUND_S


async def test_cancel_during_prompt_processing_is_bounded(llamacpp_llm: Any) -> None:
    """A cancel that lands while llama.cpp is still reading a long prompt (no token yet) stops it within
    milliseconds: the abort callback is checked inside every forward pass, not only between tokens. Without it
    the cancel waited for the whole prompt (about 1,800 tokens here, seconds on this machine)."""
    # A unique start: no prefix of this prompt is in llama-cpp-python's cache from earlier tests.
    filler = " ".join(f"item {i} is {i * 7 % 13}." for i in range(190))  # ~1,700 tokens; n_ctx is 2,048
    messages = [Message("user", f"{time.time_ns()} Read this list and sum it: {filler}")]
    tokens = 0

    async def consume() -> None:
        nonlocal tokens
        async for chunk in llamacpp_llm.stream_chat(messages, max_tokens=5):
            tokens += bool(chunk.text)

    task = asyncio.create_task(consume())
    await asyncio.sleep(0.3)  # the worker is inside prompt processing by now
    started = time.perf_counter()
    task.cancel()
    (outcome,) = await asyncio.gather(task, return_exceptions=True)
    latency = time.perf_counter() - started
    assert isinstance(outcome, asyncio.CancelledError), (
        outcome
    )  # cancelled, not failed (e.g. prompt too long)
    print(f"\nllamacpp cancel during prompt processing: {latency * 1000:.0f} ms, tokens before: {tokens}")
    assert tokens == 0, "the prompt was processed before the cancel; make the prompt longer"
    assert latency < 0.15, latency
    # The model is usable at once, and the aborted decode left no stale state behind.
    stats = await llm_checks.stream_reply(llamacpp_llm, max_tokens=5)
    assert stats.text.strip() and stats.first_token_s < llm_checks.FIRST_TOKEN_BOUND_S


async def test_tool_call_round_trip_via_json_grammar(llamacpp_llm: Any) -> None:
    """SmolLM2-135M does not call tools on its own (it answers in prose or writes code); with
    ``tool_choice="required"`` a GBNF grammar from the tool's JSON schema makes it emit a valid call, which
    is executed and answered. This is the path the Conversation uses when a tool trigger matches."""
    answer = await llm_checks.tool_round_trip(llamacpp_llm)
    assert answer.strip()


async def test_json_schema_output_is_valid_json(llamacpp_llm: Any) -> None:
    import json

    schema = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    text = ""
    async for chunk in llamacpp_llm.stream_chat(
        [Message("user", "Which city is the capital of France? Answer in JSON.")],
        max_tokens=30,
        json_schema=schema,
    ):
        text += chunk.text
    assert isinstance(json.loads(text)["city"], str)


async def test_json_schema_output_keeps_the_schemas_property_order(llamacpp_llm: Any) -> None:
    """Regression: the grammar was built from the sorted cache key, so the model wrote "confidence" before
    "label" and picked the label last, after committing to the other fields."""
    import json

    schema = {
        "type": "object",
        "properties": {"label": {"type": "string", "enum": ["yes", "no"]}, "confidence": {"type": "number"}},
        "required": ["label", "confidence"],
    }
    text = ""
    async for chunk in llamacpp_llm.stream_chat(
        [Message("user", "Is Paris in France? Answer in JSON.")], max_tokens=30, json_schema=schema
    ):
        text += chunk.text
    assert list(json.loads(text)) == ["label", "confidence"], text


def _counting(i: int) -> list[Message]:
    """A prompt with a long reply (at temperature 0: 150 tokens of "1. 1\n2. 2..."), distinct per ``i`` so no
    two requests share a cached prompt."""
    return [
        Message("system", f"You are helpful assistant number {i + 1}."),
        Message("user", "Count from 1 to 300, one number per line."),
    ]


async def _arrivals(llm: Any, messages: list[Message], since: float, max_tokens: int = 150) -> list[float]:
    """Seconds after ``since`` at which each text chunk arrived; the stream must end with ``done``."""
    times: list[float] = []
    last = LLMChunk()
    async for last in llm.stream_chat(messages, max_tokens=max_tokens, temperature=0):
        if last.text:
            times.append(time.perf_counter() - since)
    assert last.done and times, "the stream ended without text or without done"
    return times


async def test_concurrent_generations_interleave(llamacpp_llm: Any) -> None:
    """Four calls at once each get a first token before any reply ends: generations are interleaved token by
    token (one instance each). Before, they ran one after another, so the 4th caller's first token came after
    the other three whole replies (~450 tokens, seconds), past the conversation's 2 s first-token deadline."""
    started = time.perf_counter()
    replies = await asyncio.gather(*(_arrivals(llamacpp_llm, _counting(i), started) for i in range(4)))
    assert all(len(r) >= 100 for r in replies), [len(r) for r in replies]
    firsts, ends = [r[0] for r in replies], [r[-1] for r in replies]
    print(
        f"\nllamacpp 4 concurrent: first tokens {[round(t * 1000) for t in firsts]} ms, 12th tokens "
        f"{[round(r[11] * 1000) for r in replies]} ms, ends {[round(t * 1000) for t in ends]} ms, "
        f"{sum(map(len, replies)) / max(ends):.0f} tokens/s in total"
    )
    assert max(firsts) < min(ends), "a reply finished before another one started"
    # Measured on the 2-core machine: 0.46-0.57 s at load average ~1, 1.04 s at ~3 (serial: after the other
    # three replies, ~7 s): bench/agent.py keeps that figure against the conversation's 2 s
    # first_token_timeout_s. Here, interleaving is what is checked: the last first token comes before any
    # reply ended (above) and well within the time one whole reply takes.
    assert firsts[3] < min(ends) / 2, (firsts, ends)


async def test_cancelling_one_of_several_generations_stops_it_and_spares_the_others(
    llamacpp_llm: Any,
) -> None:
    """Cancelling one of four concurrent generations ends its consumer within 50 ms (measured 0-1 ms: the
    worker is running another request's step, or the abort callback stops this one's), its instance goes to
    the next request, and the other three stream on to their ends."""
    started = time.perf_counter()
    others = [asyncio.create_task(_arrivals(llamacpp_llm, _counting(i), started)) for i in (1, 2, 3)]
    got = asyncio.Event()
    seen = 0

    async def victim() -> None:
        nonlocal seen
        async for chunk in llamacpp_llm.stream_chat(_counting(0), max_tokens=150, temperature=0):
            seen += bool(chunk.text)
            if seen == 5:
                got.set()

    task = asyncio.create_task(victim())
    await asyncio.wait_for(got.wait(), 60)
    cancelled_at = time.perf_counter()
    task.cancel()
    (outcome,) = await asyncio.gather(task, return_exceptions=True)
    latency = time.perf_counter() - cancelled_at
    # Its instance is free at once: a new request starts while the others are still streaming.
    newcomer = await _arrivals(llamacpp_llm, _counting(4), started, max_tokens=5)
    replies = await asyncio.gather(*others)
    after = [sum(t > cancelled_at - started for t in r) for r in replies]
    print(
        f"\nllamacpp cancel 1 of 4: {latency * 1000:.0f} ms; the others' tokens after it {after}, "
        f"a newcomer's first token at {newcomer[0] * 1000:.0f} ms, the others end at "
        f"{[round(r[-1] * 1000) for r in replies]} ms"
    )
    assert isinstance(outcome, asyncio.CancelledError), outcome
    assert seen < 20, seen
    assert latency < 0.05, latency
    assert all(n >= 50 for n in after), after  # the others kept streaming to the end
    assert newcomer[0] < min(r[-1] for r in replies)


async def test_a_slow_consumer_does_not_hold_up_the_others(llamacpp_llm: Any) -> None:
    """A consumer that stops reading fills its bounded queue (``max_queue`` tokens); the worker then skips it
    instead of waiting, so another call's reply completes meanwhile; the slow reply resumes, whole, when read
    again."""
    reference = await _reply_text(llamacpp_llm.stream_chat(_counting(5), max_tokens=40, temperature=0))
    slow = llamacpp_llm.stream_chat(_counting(5), max_tokens=40, temperature=0)
    head = await anext(slow)
    fast = await asyncio.wait_for(_arrivals(llamacpp_llm, _counting(6), time.perf_counter(), 40), 60)
    rest = await _reply_text(slow)
    assert len(fast) >= 30
    assert head.text + rest == reference  # nothing lost or reordered while it waited


async def test_grammar_constrained_generations_interleave_with_free_ones(llamacpp_llm: Any) -> None:
    """Two forced tool calls share one cached grammar while they interleave with a free reply: each
    generation builds its own grammar sampler, so both calls come out valid."""
    free = asyncio.create_task(_arrivals(llamacpp_llm, _counting(8), time.perf_counter(), max_tokens=60))
    calls = await asyncio.gather(*(llm_checks.forced_tool_call(llamacpp_llm) for _ in range(2)))
    assert all(call.name == "schedule_callback" for call in calls)
    assert len(await free) >= 40


async def test_a_failed_generation_raises_llm_error_and_spares_the_others(llamacpp_llm: Any) -> None:
    """llama-cpp-python refuses a prompt longer than the context (n_ctx 2,048): that consumer gets LLMError,
    a generation running beside it goes on to its end."""
    too_long = [Message("user", " ".join(f"word{i}" for i in range(3000)))]
    other = asyncio.create_task(_arrivals(llamacpp_llm, _counting(7), time.perf_counter(), max_tokens=30))
    with pytest.raises(LLMError, match="exceed context window"):
        async for _chunk in llamacpp_llm.stream_chat(too_long):
            pass
    assert len(await other) >= 20


async def _reply_text(stream: AsyncIterator[LLMChunk]) -> str:
    chunks = [chunk async for chunk in stream]
    assert chunks and chunks[-1].done
    return "".join(c.text for c in chunks)


@pytest.fixture
async def single_instance_llm() -> AsyncIterator[Any]:
    from agent.llm.llamacpp import LlamaCppLLM

    llm = LlamaCppLLM(LLMConfig(backend="llamacpp", llamacpp=LlamaCppConfig(parallel=1)))
    yield llm
    await llm.aclose()


async def test_one_instance_serves_requests_one_after_another(single_instance_llm: Any) -> None:
    """``parallel=1``: requests wait for the instance, first come first served; one cancelled while waiting
    leaves the queue at once."""
    started = time.perf_counter()
    first = asyncio.create_task(_arrivals(single_instance_llm, _counting(0), started, max_tokens=30))
    waiting = asyncio.create_task(_arrivals(single_instance_llm, _counting(1), started, max_tokens=30))
    second = asyncio.create_task(_arrivals(single_instance_llm, _counting(2), started, max_tokens=30))
    await asyncio.sleep(0.05)
    cancelled_at = time.perf_counter()
    waiting.cancel()
    await asyncio.gather(waiting, return_exceptions=True)
    latency = time.perf_counter() - cancelled_at
    a, b = await asyncio.gather(first, second)
    print(f"\nllamacpp parallel=1: first reply {a[0]:.2f}-{a[-1]:.2f} s, second {b[0]:.2f}-{b[-1]:.2f} s")
    assert waiting.cancelled() and latency < 0.05, latency
    assert b[0] > a[-1], "the second request started before the first one ended"


async def test_aclose_fails_open_requests_and_refuses_new_ones(single_instance_llm: Any) -> None:
    generating = asyncio.Event()

    async def consume(messages: list[Message]) -> None:
        async for _chunk in single_instance_llm.stream_chat(messages, max_tokens=150):
            generating.set()

    running = asyncio.create_task(consume(_counting(0)))
    queued = asyncio.create_task(consume(_counting(1)))  # waits: one instance only
    await asyncio.wait_for(generating.wait(), 60)
    await asyncio.wait_for(single_instance_llm.aclose(), 5)
    outcomes = await asyncio.gather(running, queued, return_exceptions=True)
    assert all(isinstance(o, LLMError) for o in outcomes), outcomes
    with pytest.raises(LLMUnavailableError):
        await anext(single_instance_llm.stream_chat([Message("user", "Hello?")]))


def test_prompted_tool_call_is_parsed_from_the_stream() -> None:
    sniffer = ToolCallSniffer()
    out = "".join(
        sniffer.push(d)
        for d in [
            "<tool",
            "_call>\n",
            '{"name": "schedule_callback", ',
            '"arguments": {"minutes_from_now": 5, ',
            '"reason": "invoice"}}',
        ]
    )
    rest, call = sniffer.finish([SCHEDULE_CALLBACK])
    assert out == rest == ""
    assert call is not None and call.arguments == {"minutes_from_now": 5, "reason": "invoice"}
    plain = ToolCallSniffer()
    assert (
        plain.push("<t") == ""
        and plain.push("ab") == "<tab"
        and plain.finish([SCHEDULE_CALLBACK]) == ("", None)
    )
