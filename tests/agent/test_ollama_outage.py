"""Ollama goes away mid-conversation and comes back: the caller hears the apology fast, then real replies.

Uses its own Ollama server on its own port (not the session ``ollama_server``, which other tests share), so
stopping it cannot break them. Started and stopped with ``scripts/ollama.sh`` like the fixture.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator

import pytest

from agent.config import AgentConfig, GroundingConfig, LLMConfig, OllamaConfig
from agent.conversation import Conversation
from agent.llm.ollama import OllamaLLM
from tests.fixtures.ollama import RUN_DIR, _free_port, _log_tail, _run

pytestmark = pytest.mark.integration


@pytest.fixture
def own_ollama() -> Iterator[int]:
    """Port of a dedicated Ollama with model ``smollm2``; stopped at the end whatever the test did."""
    port = _free_port()
    try:
        _run("build", timeout=1800)  # cached
        _run("start", str(port), timeout=90)
        _run("create-model", str(port), timeout=180)
    except (RuntimeError, subprocess.TimeoutExpired) as exc:
        tail = _log_tail(port)
        _run("stop", str(port), timeout=60)
        pytest.fail(f"dedicated Ollama did not come up: {exc}\n--- ollama log ---\n{tail}", pytrace=False)
    try:
        yield port
    finally:
        _run("stop", str(port), timeout=60)
        (RUN_DIR / f"ollama-{port}.log").unlink(missing_ok=True)


async def say(conversation: Conversation, text: str) -> tuple[str, float]:
    started = time.perf_counter()
    reply = "".join([piece async for piece in conversation.respond(text)])
    return reply, time.perf_counter() - started


async def test_stopped_ollama_gives_apology_within_2s_then_recovers(
    own_ollama: int, tmp_path: object
) -> None:
    port = own_ollama
    llm = OllamaLLM(
        LLMConfig(backend="ollama", ollama=OllamaConfig(host=f"http://127.0.0.1:{port}"), max_tokens=30)
    )
    # A generous first-token limit: the apology must come from noticing the dead server (connection
    # refused), not from this timeout; the real turns may be slow on the shared 2-core machine.
    config = AgentConfig(
        memory_path=str(tmp_path) + "/memory.sqlite3",
        first_token_timeout_s=30,
        grounding=GroundingConfig(enabled=False),  # every turn goes to the model
    )
    conversation = Conversation(llm, config, user_id="outage", call_id="call-outage")
    try:
        reply, _ = await say(conversation, "Hi, what can you help me with?")
        assert reply.strip() and reply != config.apology, reply
        assert conversation.last_turn is not None and conversation.last_turn.error is None

        _run("stop", str(port), timeout=60)
        reply, elapsed = await say(conversation, "Are you still there?")
        assert reply == config.apology and elapsed < 2.0, (reply, elapsed)
        print(f"\nollama stopped: apology after {elapsed * 1000:.0f} ms")
        turn = conversation.last_turn
        assert turn is not None and turn.apology and "LLMUnavailableError" in (turn.error or "")

        _run("start", str(port), timeout=90)  # same port, same models dir: the model is still there
        reply, elapsed = await say(conversation, "Hello again, can you hear me now?")
        turn = conversation.last_turn
        assert turn is not None and turn.error is None and not turn.apology, turn.error
        assert reply.strip() and config.apology not in reply, reply
        # The transcript holds the whole story, apology included, and stays usable as history.
        assert [u.source for u in conversation.transcript] == [
            "user",
            "reply",
            "user",
            "apology",
            "user",
            "reply",
        ]
    finally:
        await llm.aclose()
