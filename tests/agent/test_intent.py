"""Intent analysis: real model output validated against the taxonomy; rules fallback on garbage."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from agent.config import AgentConfig
from agent.intent import IntentResult, analyze_intent
from tests.agent.fakes import FakeLLM

TRANSCRIPT = (
    "user: Hi, my invoice shows a double charge this month and I want a refund.\n"
    "agent: I'm sorry about that. I'll look into the payment.\n"
    "user: Please do, I was charged twice."
)


async def test_llamacpp_returns_valid_intent(llamacpp_llm: Any) -> None:
    config = AgentConfig()
    result = await analyze_intent(llamacpp_llm, TRANSCRIPT, config)
    assert isinstance(result, IntentResult)
    assert result.label in config.intent_labels and 0.0 <= result.confidence <= 1.0
    assert result.fallback is False, "the JSON grammar should make the first answer valid"
    if result.follow_up:
        assert result.when is not None and result.prompt


@pytest.mark.integration
async def test_ollama_returns_valid_intent(ollama_llm: Any) -> None:
    config = AgentConfig()
    result = await analyze_intent(ollama_llm, TRANSCRIPT, config)
    assert result.label in config.intent_labels and result.fallback is False


async def test_garbage_output_is_retried_once_then_rules_decide() -> None:
    config = AgentConfig()
    llm = FakeLLM(["I think it is about billing!!", '{"label": "weather", "confidence": 2}'])
    now = datetime(2026, 1, 1, 12, tzinfo=UTC)
    result = await analyze_intent(llm, TRANSCRIPT, config, now=now)
    assert len(llm.calls) == 2  # one retry
    assert result.fallback is True
    assert result.label == "billing" and result.follow_up
    assert result.when == now + timedelta(minutes=config.intent_follow_up_delay_min)
    assert result.prompt == config.intent_prompts["billing"]


async def test_rules_fallback_without_keywords_is_other() -> None:
    result = await analyze_intent(FakeLLM(["nope"]), "user: the weather is nice today", AgentConfig())
    assert result.fallback and result.label == "other" and not result.follow_up and result.when is None


def test_zero_delay_means_follow_up_now() -> None:
    """Regression: ``delay_minutes: 0`` used to be read as missing and became the 60-minute default."""
    from agent.intent import parse_intent

    now = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    raw = '{"label": "billing", "confidence": 0.9, "follow_up": true, "prompt": "Hi again.", "delay_minutes": 0}'
    assert parse_intent(raw, AgentConfig(), now).when == now
    no_delay = '{"label": "billing", "confidence": 0.9, "follow_up": true, "prompt": "Hi again."}'
    assert parse_intent(no_delay, AgentConfig(), now).when == now + timedelta(minutes=AgentConfig().intent_follow_up_delay_min)
