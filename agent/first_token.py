"""The first-token deadlines of an LLM stream: a backend that is slow to start gets the holding phrase at
``first_token_timeout_s`` (the wait goes on) and an ``LLMTimeoutError`` at ``first_token_give_up_s``, which
the conversation turns into its apology. Cancelling or closing the stream stops the backend's generation."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator

from agent.config import AgentConfig
from agent.errors import LLMTimeoutError
from agent.llm.base import LLMChunk
from agent.turn import TurnRecord

log = logging.getLogger(__name__)


async def with_first_token_deadline(
    stream: AsyncIterator[LLMChunk], config: AgentConfig, turn: TurnRecord, call_id: str | None = None
) -> AsyncIterator[LLMChunk]:
    """``stream``, with a deadline on the first chunk: ``first_token_timeout_s``, then (after the holding
    phrase, yielded as text before ``turn.llm_first_token`` is set) ``first_token_give_up_s`` in all."""
    iterator = stream.__aiter__()
    try:
        waiting = asyncio.ensure_future(iterator.__anext__())
        try:
            first = await _first_chunk(waiting, config, call_id)
            if isinstance(first, str):  # the holding phrase; the real first chunk follows
                yield LLMChunk(text=first)
                first = await _first_chunk(waiting, config, call_id, holding=False)
        except StopAsyncIteration:
            return
        finally:
            if not waiting.done():  # cancelled or timed out while waiting: stop the backend's stream
                waiting.cancel()
                await asyncio.wait({waiting})
            if not waiting.cancelled():
                waiting.exception()  # retrieved here (raised above if it mattered)
        if turn.llm_first_token is None:
            turn.llm_first_token = time.monotonic()
        assert isinstance(first, LLMChunk)  # the holding phrase (a str) was handled above
        yield first
        async for chunk in iterator:
            yield chunk
    finally:
        aclose = getattr(iterator, "aclose", None)
        if aclose is not None:
            await aclose()


async def _first_chunk(
    waiting: asyncio.Future[LLMChunk], config: AgentConfig, call_id: str | None, holding: bool = True
) -> LLMChunk | str:
    """The stream's first chunk; or, the first time its deadline passes with a holding phrase set, that
    phrase (the wait goes on); or LLMTimeoutError once the caller was kept waiting long enough."""
    hold = (
        holding
        and bool(config.holding_phrase)
        and config.first_token_give_up_s > config.first_token_timeout_s
    )
    limit = (
        config.first_token_timeout_s
        if holding
        else config.first_token_give_up_s - config.first_token_timeout_s
    )
    done, _ = await asyncio.wait({waiting}, timeout=limit)
    if done:
        return waiting.result()
    if hold:
        log.warning(
            "call %s: no first token within %.1fs; holding phrase spoken, waiting up to %.1fs in all",
            call_id,
            config.first_token_timeout_s,
            config.first_token_give_up_s,
        )
        return config.holding_phrase + " "
    waited = config.first_token_give_up_s if not holding else config.first_token_timeout_s
    raise LLMTimeoutError(f"no first token within {waited}s (backend {config.llm.backend})")
