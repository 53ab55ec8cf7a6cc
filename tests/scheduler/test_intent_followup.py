"""The intent-analysis job: ended/idle conversations -> analyser -> stored result -> proactive prompt.

``FakeIntentAnalyzer`` stands in for the LLM (the agent's own tests cover ``analyze_intent`` on a real
model); what is tested here is the orchestration: which conversations are analysed, what is stored, and
when a prompt is published.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from scheduler.conversations import ConversationForAnalysis
from scheduler.intent_followup import follow_up_time
from tests.scheduler.conftest import PromptCollector, ServiceFactory


@dataclass
class FakeIntentResult:
    label: str
    confidence: float
    follow_up: bool
    prompt: str | None
    when: Any = None
    fallback: bool = False


class FakeIntentAnalyzer:
    """Returns a canned result per user and records the transcripts it was shown."""

    def __init__(self, results: dict[str, FakeIntentResult]) -> None:
        self.results = results
        self.seen: list[ConversationForAnalysis] = []

    async def analyze(self, conversation: ConversationForAnalysis) -> FakeIntentResult:
        self.seen.append(conversation)
        return self.results[conversation.user_id]


def now() -> datetime:
    return datetime.now(UTC)


def talk(service: Any, conversation_id: str, user_id: str, ended: bool = True, age_s: float = 0) -> None:
    at = now() - timedelta(seconds=age_s)
    log = service.conversation_log
    log.record_turn(conversation_id, user_id, "user", "I want to upgrade my plan but not today.", at)
    log.record_turn(conversation_id, user_id, "agent", "Sure, I can help with that later.", at)
    if ended:
        log.record_end(conversation_id, user_id, at)


async def test_follow_up_is_published_and_results_are_stored(
    make_service: ServiceFactory, collector: PromptCollector
) -> None:
    analyzer = FakeIntentAnalyzer(
        {
            "kim": FakeIntentResult("sales", 0.9, True, "Shall we finish your upgrade now?"),
            "lee": FakeIntentResult("support", 0.9, False, None),
            "max": FakeIntentResult("sales", 0.2, True, "Low confidence: not sent"),
            "ned": FakeIntentResult("sales", 0.9, True, "Fallback: not sent", fallback=True),
        }
    )
    service = make_service(
        intent_analyzer=analyzer,
        conversation_idle_s=600,
        intent_min_confidence=0.5,
        follow_up_on_fallback=False,
    )
    await service.start()
    for user in ("kim", "lee", "max", "ned"):
        talk(service, f"call-{user}", user)
    talk(service, "call-live", "kim", ended=False)  # still going: not analysed yet

    assert await service.run_intent_analysis() == 4

    bodies = await collector.wait_for(1, timeout_s=3)
    assert [b["user_id"] for b in bodies] == ["kim"]
    assert bodies[0]["text"] == "Shall we finish your upgrade now?"
    assert bodies[0]["intent"] == "sales" and bodies[0]["idempotency_key"].startswith("intent:call-kim:")
    assert "upgrade my plan" in analyzer.seen[0].transcript_text()
    stored = service.conversation_log.intent_results(conversation_id="call-kim")
    assert [(r["label"], r["follow_up"]) for r in stored] == [("sales", True)]
    assert len(service.conversation_log.intent_results()) == 4
    assert service.conversation_log.users_with_latest_intent("sales") == ["kim", "max", "ned"]

    assert await service.run_intent_analysis() == 0  # nothing new to analyse
    assert len(collector.messages) == 1


async def test_idle_conversations_are_analysed_and_new_turns_trigger_a_new_analysis(
    make_service: ServiceFactory,
) -> None:
    analyzer = FakeIntentAnalyzer({"ora": FakeIntentResult("other", 0.9, False, None)})
    service = make_service(intent_analyzer=analyzer, conversation_idle_s=60)
    await service.start()
    talk(service, "call-ora", "ora", ended=False, age_s=120)
    assert await service.run_intent_analysis() == 1
    talk(service, "call-ora", "ora", ended=True)
    assert await service.run_intent_analysis() == 1
    assert len(analyzer.seen[1].turns) == 4


async def test_periodic_job_runs_the_analysis(
    make_service: ServiceFactory, collector: PromptCollector
) -> None:
    analyzer = FakeIntentAnalyzer({"pat": FakeIntentResult("billing", 0.8, True, "About your invoice...")})
    service = make_service(intent_analyzer=analyzer, intent_interval_s=1)
    await service.start()
    talk(service, "call-pat", "pat")
    bodies = await collector.wait_for(1, timeout_s=5)
    assert bodies[0]["user_id"] == "pat"


async def test_follow_up_time_from_the_analyser_defers_the_prompt(
    make_service: ServiceFactory, collector: PromptCollector
) -> None:
    analyzer = FakeIntentAnalyzer({"quin": FakeIntentResult("sales", 0.9, True, "Later!", when=1)})
    service = make_service(intent_analyzer=analyzer)
    await service.start()
    talk(service, "call-quin", "quin")
    await service.run_intent_analysis()
    assert collector.messages == []
    bodies = await collector.wait_for(1, timeout_s=5)
    assert bodies[0]["text"] == "Later!"


def test_follow_up_time_accepts_the_usual_shapes() -> None:
    t = datetime(2030, 1, 1, tzinfo=UTC)
    assert follow_up_time(None, t) is None
    assert follow_up_time(90, t) == t + timedelta(seconds=90)
    assert follow_up_time(timedelta(minutes=5), t) == t + timedelta(minutes=5)
    assert follow_up_time("2030-01-02T00:00:00+00:00", t) == t + timedelta(days=1)
    assert follow_up_time("tomorrow-ish", t) is None


class FakeLLM:
    """Streams one canned JSON answer, like a model constrained by the intent schema."""

    def __init__(self, answer: str) -> None:
        self.answer = answer
        self.prompts: list[Any] = []

    async def stream_chat(
        self, messages: Any, tools: Any = None, max_tokens: Any = None, **kwargs: Any
    ) -> Any:
        from agent.llm.base import LLMChunk

        self.prompts.append(messages)
        for i in range(0, len(self.answer), 8):
            yield LLMChunk(text=self.answer[i : i + 8])
        yield LLMChunk(done=True)


async def test_agent_intent_analysis_through_the_llm_adapter(
    make_service: ServiceFactory, collector: PromptCollector
) -> None:
    from agent.config import AgentConfig
    from scheduler.intent_followup import LLMIntentAnalyzer

    llm = FakeLLM(
        '{"label": "sales", "confidence": 0.9, "follow_up": true, '
        '"prompt": "Ready to upgrade now?", "delay_minutes": 30}'
    )
    service = make_service(intent_analyzer=LLMIntentAnalyzer(llm, AgentConfig()))
    await service.start()
    talk(service, "call-rae", "rae")
    assert await service.run_intent_analysis() == 1
    assert "upgrade my plan" in llm.prompts[0][-1].content
    stored = service.conversation_log.intent_results()[0]
    assert (stored["label"], stored["prompt"]) == ("sales", "Ready to upgrade now?")
    # The follow-up waits for the model's delay: a job in the persistent store, nothing published yet.
    jobs = [j for j in service.scheduler.get_jobs() if j.id.startswith("prompt:intent:call-rae:")]
    assert len(jobs) == 1
    assert timedelta(minutes=29) < jobs[0].next_run_time - now() <= timedelta(minutes=30)
    assert jobs[0].args[1]["text"] == "Ready to upgrade now?"
    assert collector.messages == []


async def test_conversation_events_from_the_bus_feed_the_analysis(
    make_service: ServiceFactory, collector: PromptCollector, bus: Any
) -> None:
    import asyncio

    from messaging.schemas import ConversationEvent
    from scheduler.conversation_events import subscribe_conversation_log

    analyzer = FakeIntentAnalyzer({"vic": FakeIntentResult("billing", 0.9, True, "About that invoice...")})
    service = make_service(intent_analyzer=analyzer)
    await service.start()
    await subscribe_conversation_log(bus, "voice_conversation", "scheduler", service.conversation_log)
    events = [
        ConversationEvent(event="call_started", call_id="c-vic", user_id="vic"),
        ConversationEvent(
            event="final_turn", call_id="c-vic", user_id="vic", role="user", text="My invoice is wrong"
        ),
        ConversationEvent(
            event="final_turn", call_id="c-vic", user_id="vic", role="agent", text="Let me check."
        ),
        ConversationEvent(event="final_turn", call_id="c-anon", role="user", text="anonymous: ignored"),
        ConversationEvent(event="call_ended", call_id="c-vic", user_id="vic"),
    ]
    for event in events:
        await bus.publish("voice_conversation", event.to_bytes(), key=event.call_id)
    await bus.publish("voice_conversation", b'{"event": "bogus"}')

    for _ in range(100):  # the bus hands events to the handler asynchronously
        if await service.run_intent_analysis():
            break
        await asyncio.sleep(0.02)
    assert [(t.role, t.text) for t in analyzer.seen[0].turns] == [
        ("user", "My invoice is wrong"),
        ("agent", "Let me check."),
    ]
    bodies = await collector.wait_for(1, timeout_s=3)
    assert bodies[0]["user_id"] == "vic" and bodies[0]["text"] == "About that invoice..."
    for _ in range(100):
        if bus.dead_letters.get("voice_conversation_dlq"):
            break
        await asyncio.sleep(0.02)
    assert len(bus.dead_letters["voice_conversation_dlq"]) == 1  # the unparseable event, not retried
