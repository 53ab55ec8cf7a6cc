"""Conversation: real llama.cpp replies, RAG hook, tools, memory, failure behaviour.

Tests of the model's streaming orchestration (deadlines, holding phrase, prompt, history) run on the
ungrounded path (``UNGROUNDED``), where every reply is the model's; grounded replies have their own tests in
``test_grounded.py`` (and ``test_grounded_model.py`` for the model inside the grounded path)."""

from __future__ import annotations

import asyncio
import socket
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from agent.config import AgentConfig, GroundingConfig, LLMConfig, OllamaConfig
from agent.conversation import Conversation, Utterance, estimate_tokens
from agent.llm.ollama import OllamaLLM
from agent.memory import MemoryStore
from agent.tools import ToolBox
from tests.agent import llm_checks
from tests.agent.fakes import FakeLLM, FakeRetriever

UNGROUNDED = GroundingConfig(enabled=False)


async def collect(conversation: Conversation, text: str) -> list[str]:
    return [piece async for piece in conversation.respond(text)]


async def test_reply_streams_speakable_text_and_records_the_turn(
    llamacpp_llm: Any, agent_config: AgentConfig
) -> None:
    agent_config.grounding = UNGROUNDED
    conversation = Conversation(llamacpp_llm, agent_config, user_id="u1")
    greeting = conversation.greeting()
    pieces = await collect(conversation, "What can you help me with?")
    reply = "".join(pieces)
    assert len(pieces) >= 2 and reply.strip()
    assert not any(mark in reply for mark in ("**", "`", "#"))
    turn = conversation.last_turn
    assert turn is not None and turn.reply_text and turn.error is None
    # Loose bound (loaded CI box); the tight figure is bench/agent.py's.
    assert turn.timings["llm_first_token"] is not None
    assert turn.timings["llm_first_token"] < llm_checks.FIRST_TOKEN_BOUND_S
    assert [(u.role, u.source) for u in conversation.transcript] == [
        ("agent", "greeting"),
        ("user", "user"),
        ("agent", "reply"),
    ]
    assert conversation.transcript[0].text == greeting


async def test_ollama_down_gives_apology_within_2s(agent_config: AgentConfig) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here after the block
    llm = OllamaLLM(LLMConfig(backend="ollama", ollama=OllamaConfig(host=f"http://127.0.0.1:{port}")))
    agent_config.first_token_timeout_s = 2.0
    agent_config.grounding = UNGROUNDED  # every turn goes to the model
    conversation = Conversation(llm, agent_config)
    started = time.perf_counter()
    reply = "".join(await collect(conversation, "Hello?"))
    elapsed = time.perf_counter() - started
    assert reply == agent_config.apology and elapsed < 2.0, elapsed
    assert conversation.last_turn is not None and "LLMUnavailableError" in (
        conversation.last_turn.error or ""
    )
    assert str(port) in (conversation.last_turn.error or "")
    # Still usable: the next turn is answered by a working backend.
    conversation.llm = FakeLLM(["Back again."])
    assert "".join(await collect(conversation, "Hello again?")).strip() == "Back again."


async def test_slow_backend_gives_apology_after_first_token_timeout() -> None:
    """Without a holding phrase the apology comes at first_token_timeout_s."""
    config = AgentConfig(first_token_timeout_s=0.3, holding_phrase="", grounding=UNGROUNDED)
    conversation = Conversation(FakeLLM(["Too late."], delay_s=5), config)
    started = time.perf_counter()
    reply = "".join(await collect(conversation, "Are you there?"))
    assert reply == config.apology
    assert 0.3 <= time.perf_counter() - started < 1.0
    assert "LLMTimeoutError" in (conversation.last_turn.error or "")  # type: ignore[union-attr]


async def _timed_pieces(conversation: Conversation, text: str) -> list[tuple[float, str]]:
    started = time.perf_counter()
    return [(time.perf_counter() - started, piece) async for piece in conversation.respond(text)]


async def test_busy_backend_holds_then_answers() -> None:
    """An overloaded backend: the caller hears the holding phrase at first_token_timeout_s, then the answer
    when it comes (before first_token_give_up_s), not an apology asking them to repeat."""
    config = AgentConfig(first_token_timeout_s=0.3, first_token_give_up_s=3.0, grounding=UNGROUNDED)
    conversation = Conversation(FakeLLM(["Paris is the capital."], delay_s=1.0), config)
    pieces = await _timed_pieces(conversation, "What is the capital of France?")
    (held_at, held), *rest = pieces
    assert held.strip() == config.holding_phrase and 0.3 <= held_at < 0.6, pieces
    assert "".join(p for _, p in rest).strip() == "Paris is the capital." and rest[0][0] >= 1.0, pieces
    turn = conversation.last_turn
    assert turn is not None and not turn.apology and turn.error is None
    assert turn.llm_first_token is not None  # the model's first token, not the holding phrase


async def test_hung_backend_holds_then_apologises_at_give_up() -> None:
    config = AgentConfig(first_token_timeout_s=0.3, first_token_give_up_s=1.0, grounding=UNGROUNDED)
    conversation = Conversation(FakeLLM(["Too late."], delay_s=5), config)
    pieces = await _timed_pieces(conversation, "Are you there?")
    assert [p.strip() for _, p in pieces] == [config.holding_phrase, config.apology], pieces
    assert 1.0 <= pieces[-1][0] < 1.5, pieces
    assert "LLMTimeoutError" in (conversation.last_turn.error or "")  # type: ignore[union-attr]


async def test_rag_chunks_reach_the_prompt_and_sources_the_turn(
    llamacpp_llm: Any, agent_config: AgentConfig, fake_retriever: FakeRetriever
) -> None:
    agent_config.grounding = UNGROUNDED
    conversation = Conversation(llamacpp_llm, agent_config, retriever=fake_retriever)
    seen: list[Any] = []
    original = llamacpp_llm.stream_chat

    def spy(messages: Any, *args: Any, **kwargs: Any) -> Any:
        seen.append(messages)
        return original(messages, *args, **kwargs)

    conversation.llm = type("SpyLLM", (), {"stream_chat": staticmethod(spy)})()
    reply = "".join(await collect(conversation, "How much does the Basic plan cost per month?"))
    assert reply.strip()
    assert "12 dollars per month" in seen[0][0].content
    assert conversation.last_turn is not None and conversation.last_turn.sources == ["pricing.md#0"]
    assert conversation.last_turn.timings["retrieval"] is not None


async def test_slow_retriever_is_skipped_after_its_budget(agent_config: AgentConfig) -> None:
    """Grounded: no evidence in time means the refusal, promptly; ungrounded: the model answers without it."""
    agent_config.retrieval_budget_ms = 100
    slow = FakeRetriever([], delay_s=2)
    conversation = Conversation(FakeLLM(["Fine."]), agent_config, retriever=slow)
    started = time.perf_counter()
    reply = "".join(await collect(conversation, "Anything?")).strip()
    assert reply == agent_config.grounding.refusal and time.perf_counter() - started < 0.5
    assert conversation.last_turn is not None and conversation.last_turn.produced_by == "refused"
    agent_config.grounding = UNGROUNDED
    conversation = Conversation(FakeLLM(["Fine."]), agent_config, retriever=slow)
    started = time.perf_counter()
    assert "".join(await collect(conversation, "Anything?")).strip() == "Fine."
    assert time.perf_counter() - started < 0.5


class FakeScheduler:
    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.calls: list[tuple[str, datetime, str]] = []

    async def schedule_callback(self, user_id: str, when: datetime, reason: str) -> str:
        if self.fail:
            raise ConnectionError("scheduler database is down")
        self.calls.append((user_id, when, reason))
        return "job-1"


class FakeCallControl:
    def __init__(self) -> None:
        self.ended = False
        self.transferred_to: str | None = None

    async def end_call(self) -> None:
        self.ended = True

    async def transfer(self, target: str) -> None:
        self.transferred_to = target


async def test_callback_trigger_schedules_with_the_callers_time(
    llamacpp_llm: Any, agent_config: AgentConfig
) -> None:
    """Default ``tool_arguments="rules"``: the trigger picks the tool, the arguments come from the words."""
    scheduler = FakeScheduler()
    conversation = Conversation(llamacpp_llm, agent_config, tools=ToolBox(scheduler=scheduler, user_id="u7"))
    before = datetime.now(UTC)
    reply = "".join(await collect(conversation, "Can you call me back in two hours about my bill?"))
    assert reply == "Sure, I'll call you back in 2 hours."
    ((user_id, when, reason),) = scheduler.calls
    assert user_id == "u7" and "bill" in reason
    assert abs((when - before - timedelta(hours=2)).total_seconds()) < 5


async def test_callback_tool_round_trip_with_llamacpp_grammar(
    llamacpp_llm: Any, agent_config: AgentConfig
) -> None:
    """``tool_arguments="llm"``: SmolLM2 fills the call under a JSON grammar (it never calls tools natively)."""
    agent_config.tool_arguments = "llm"
    scheduler = FakeScheduler()
    tools = ToolBox(scheduler=scheduler, user_id="u7")
    conversation = Conversation(llamacpp_llm, agent_config, tools=tools, user_id="u7")
    reply = "".join(await collect(conversation, "Can you call me back in two hours about my bill?"))
    assert len(scheduler.calls) == 1 and scheduler.calls[0][0] == "u7"
    assert reply.startswith("Sure, I'll call you back in")
    turn = conversation.last_turn
    assert turn is not None and turn.tool_calls[0].name == "schedule_callback" and turn.tool_outcomes[0].ok
    assert isinstance(turn.tool_calls[0].arguments["minutes_from_now"], int)


async def test_tool_error_becomes_spoken_fallback(agent_config: AgentConfig) -> None:
    tools = ToolBox(scheduler=FakeScheduler(fail=True), fallback=agent_config.tool_fallback)
    llm = FakeLLM(['{"name": "schedule_callback", "arguments": {"minutes_from_now": 10, "reason": "x"}}'])
    conversation = Conversation(llm, agent_config, tools=tools)
    reply = "".join(await collect(conversation, "Please call me back later."))
    assert reply == agent_config.tool_fallback
    assert conversation.last_turn is not None and not conversation.last_turn.tool_outcomes[0].ok


async def test_end_call_and_transfer_use_call_control(agent_config: AgentConfig) -> None:
    control = FakeCallControl()
    conversation = Conversation(FakeLLM(["{}"]), agent_config, tools=ToolBox(call_control=control))
    assert "Goodbye" in "".join(await collect(conversation, "Thanks, goodbye!"))
    assert control.ended
    assert "transferring" in "".join(await collect(conversation, "Let me speak to a real person."))
    assert control.transferred_to == agent_config.transfer_target


async def test_memory_persists_across_conversations(tmp_path: Any) -> None:
    config = AgentConfig(memory_path=str(tmp_path / "mem.sqlite3"), grounding=UNGROUNDED)
    first = Conversation(
        FakeLLM(["Nice to meet you."]), config, memory=MemoryStore(config.memory_path), user_id="alice"
    )
    await collect(first, "Hi, my name is Alice and I live in Lisbon.")
    first.save_summary()
    first.memory.close()  # type: ignore[union-attr]

    llm = FakeLLM(["Welcome back."])
    second = Conversation(llm, config, memory=MemoryStore(config.memory_path), user_id="alice")
    await second.recall()
    assert second.greeting().startswith("Hello Alice!")
    await collect(second, "Do you remember me?")
    system = llm.calls[0][0].content
    assert "The user's name is Alice." in system and "The user lives in Lisbon." in system
    assert "Last time the user said" in system
    other = Conversation(FakeLLM(["Hi."]), config, memory=MemoryStore(config.memory_path), user_id="bob")
    await other.recall()
    assert not other.greeting().startswith("Hello Alice")


async def test_history_is_trimmed_to_the_token_budget() -> None:
    config = AgentConfig(history_token_budget=200, grounding=UNGROUNDED)
    llm = FakeLLM(["ok"])
    conversation = Conversation(llm, config)
    for i in range(30):
        conversation.add_agent_utterance(f"Proactive note number {i} with some words in it.")
    await collect(conversation, "Latest question?")
    messages = llm.calls[0]
    assert messages[-1].content == "Latest question?"
    assert sum(estimate_tokens(m.content) for m in messages) <= 200 + 20
    assert "number 29" in messages[-2].content and not any("number 0 " in m.content for m in messages)


def test_mark_interrupted_keeps_only_what_was_heard() -> None:
    conversation = Conversation(FakeLLM(["x"]), AgentConfig())
    conversation.add_agent_utterance("Your appointment is on Monday at nine, and also", source="reply")
    conversation.mark_interrupted("Your appointment is on Monday")
    assert conversation.transcript[-1].text == "Your appointment is on Monday"
    assert conversation.transcript[-1].interrupted
    # Cut off before anything was recorded for this turn: the older agent line stays as it was.
    conversation.transcript.append(Utterance("user", "Wait", "user"))
    conversation.mark_interrupted("")
    assert [u.text for u in conversation.transcript][-2:] == ["Your appointment is on Monday", "Wait"]


async def test_cancelled_reply_stops_generation_quickly(llamacpp_llm: Any, agent_config: AgentConfig) -> None:
    agent_config.llm.max_tokens = 300
    conversation = Conversation(llamacpp_llm, agent_config)
    first = asyncio.Event()

    async def speak() -> None:
        async for _ in conversation.respond("Count from 1 to 300, one number per line."):
            first.set()

    task = asyncio.create_task(speak())
    await asyncio.wait_for(first.wait(), 10)
    started = time.perf_counter()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert time.perf_counter() - started < 0.3


async def test_a_retracted_turn_leaves_no_trace_in_history() -> None:
    """A reply prepared on a speculative transcript is retracted when the caller goes on: the next prompt
    holds the caller's full words once, not the fragment and its discarded answer."""
    llm = FakeLLM(["First answer.", "Discarded answer.", "Real answer."])
    conversation = Conversation(llm, AgentConfig(grounding=UNGROUNDED))
    await collect(conversation, "Hello there.")
    kept = conversation.last_turn
    await collect(conversation, "I'd like to book a table for")
    conversation.retract_last_turn()
    assert conversation.last_turn is kept
    assert [u.text for u in conversation.transcript] == ["Hello there.", "First answer."]
    await collect(conversation, "I'd like to book a table for four.")
    contents = [m.content for m in llm.calls[-1]]
    assert not any("Discarded" in c or c == "I'd like to book a table for" for c in contents)
    assert contents[-1] == "I'd like to book a table for four."
    conversation.retract_last_turn()
    conversation.retract_last_turn()  # only the latest turn can be retracted; a second call changes nothing
    assert [u.text for u in conversation.transcript] == ["Hello there.", "First answer."]
