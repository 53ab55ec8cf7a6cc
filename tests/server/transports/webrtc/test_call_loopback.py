"""A real call on loopback: aiortc caller -> Opus -> server (Whisper, SmolLM2 via llama.cpp, Piper) -> caller.

The question is synthesized at test time; the agent's reply audio received by the caller is transcribed and
must contain the words of the reply text the server logged (tolerance: Whisper tiny.en on Opus audio, so at
least half of the heard words must be words of the reply).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from aiohttp.test_utils import TestServer

from server.http.app import create_app
from server.node import build_call_deps
from server.settings import Settings
from tests.server.caller import (
    TEST_CALL_SECRET,
    RTCCaller,
    synthesize_speech,
    transcribe,
    word_recall,
    words,
)

pytestmark = [pytest.mark.slow]

QUESTION = "What is the capital of France?"


@pytest.fixture(params=[True])
async def live_server(tmp_path: Path, request: pytest.FixtureRequest):
    """The node with default settings; ``grounded=False`` (indirect parameter): the model answers freely."""
    settings = Settings()
    settings.agent.grounding.enabled = request.param
    settings.server.call_tokens.secret = TEST_CALL_SECRET
    settings.storage.records = str(tmp_path / "calls.sqlite3")
    settings.server.rag = False
    settings.agent.memory_path = str(tmp_path / "memory.sqlite3")
    settings.agent.first_token_timeout_s = 20.0  # the machine is shared: do not test the apology path here
    deps = await build_call_deps(settings)
    server = TestServer(create_app(settings, deps), host="127.0.0.1")
    await server.start_server()
    yield server, deps
    await server.close()
    deps.records.close()


async def test_real_call_question_gets_a_spoken_answer(live_server) -> None:
    server, deps = live_server
    question = await synthesize_speech(QUESTION)
    caller = RTCCaller(str(server.make_url("")), user_id="loopback-user")
    try:
        await caller.connect()
        greeting_start = await caller.reply_start(after=0.0, timeout=20)
        await caller.wait_quiet(1.0, timeout=20)
        greeting = await transcribe(caller.audio_since(greeting_start))
        assert word_recall("How can I help you today", greeting) >= 0.6, greeting

        speech_end = await caller.say(question)
        reply_start = await caller.reply_start(after=speech_end + 0.2, timeout=40)
        await caller.wait_quiet(1.5, timeout=60)
        heard = await transcribe(caller.audio_since(reply_start))

        record = await caller.record()
        turns = record["turns"]
        assert len(turns) == 1, record
        assert word_recall(QUESTION, turns[0]["user_text"]) >= 0.8, turns[0]["user_text"]
        agent_text = turns[0]["agent_text"]
        assert agent_text.strip(), "the agent produced no reply text"
        heard_words = words(heard)
        assert len(heard_words) >= 3, f"reply audio transcribed as {heard!r}"
        in_reply = sum(w in set(words(agent_text)) for w in heard_words) / len(heard_words)
        assert in_reply >= 0.5, f"heard {heard!r} but the agent said {agent_text!r}"
        stages = turns[0]["stages"]
        assert set(stages) >= {"stt_final", "llm_first_token", "tts_first_audio", "first_audio_out"}, stages
        print(
            f"\nheard={heard!r} agent={agent_text!r} latency={reply_start - speech_end:.2f}s stages={stages}"
        )
        assert 0 < reply_start - speech_end < 10
        async with caller._http.get(f"{caller.base_url}/metrics") as resp:  # type: ignore[union-attr]
            exposition = await resp.text()
        assert "voice_agent_voice_to_voice_seconds_count" in exposition
        assert [e["text"] for e in caller.events_of("final_transcript")] == [turns[0]["user_text"]]
    finally:
        await caller.hangup()
    stored = await deps.records.get(caller.call_id)
    assert stored is not None and stored.end_reason == "hangup"
    assert [e.role for e in stored.transcript] == ["agent", "user", "agent"]
    assert len(deps.registry) == 0


def _stage_cpu(exposition: str) -> tuple[dict[str, float], float]:
    """(voice_agent_stage_cpu_seconds_total by stage, count of voice_agent_llm_prompt_tokens_evaluated)."""
    from prometheus_client.parser import text_string_to_metric_families

    cpu: dict[str, float] = {}
    prompts = 0.0
    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            if sample.name == "voice_agent_stage_cpu_seconds_total":
                cpu[sample.labels["stage"]] = sample.value
            elif sample.name == "voice_agent_llm_prompt_tokens_evaluated_count":
                prompts = sample.value
    return cpu, prompts


@pytest.mark.parametrize("live_server", [False], indirect=True)  # the model answers: its CPU shows
async def test_a_call_turn_shows_its_cpu_seconds_by_stage(live_server) -> None:
    server, _deps = live_server
    question = await synthesize_speech(QUESTION)
    caller = RTCCaller(str(server.make_url("")), user_id="cpu-user")

    async def metrics() -> tuple[dict[str, float], float]:
        async with caller._http.get(f"{caller.base_url}/metrics") as resp:  # type: ignore[union-attr]
            return _stage_cpu(await resp.text())

    try:
        await caller.connect()
        await caller.reply_start(after=0.0, timeout=20)
        await caller.wait_quiet(1.0, timeout=20)
        before, prompts_before = await metrics()
        speech_end = await caller.say(question)
        await caller.reply_start(after=speech_end + 0.2, timeout=40)
        await caller.wait_quiet(1.5, timeout=60)
        after, prompts_after = await metrics()
    finally:
        await caller.hangup()
    spent = {stage: after[stage] - before.get(stage, 0.0) for stage in after}
    print(f"\nCPU seconds of one turn by stage: {spent}")
    # every stage the turn went through burned CPU, each on its own account
    for stage in ("vad", "stt", "llm_prompt", "tts", "opus_encode", "opus_decode"):
        assert spent[stage] > 0, (stage, spent)
    assert spent["stt"] > 0.02  # Whisper over ~2 s of speech: CTranslate2's threads, not only the pool thread
    assert prompts_after >= prompts_before + 1
