"""Intent analysis of a finished (or idle) conversation, for proactive follow-ups by the scheduler.

The LLM answers in JSON constrained by a schema (Ollama ``format=``, llama.cpp JSON grammar); invalid output is
retried once, then keyword rules from the config decide and the result is marked ``fallback=True``.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel, Field, ValidationError

from agent.config import AgentConfig
from agent.errors import AgentError, IntentError
from agent.llm.base import LLM, Message

log = logging.getLogger(__name__)

_MAX_DELAY_MIN = 30 * 24 * 60  # a model's "delay" beyond 30 days is noise, not a plan
_MAX_PROMPT_CHARS = 160


class IntentResult(BaseModel):
    """What the conversation was about and whether (and when, in UTC) to follow up."""

    label: str
    confidence: float = Field(ge=0.0, le=1.0)
    follow_up: bool
    prompt: str | None = None
    when: datetime | None = None
    fallback: bool = False


def llm_schema(labels: Sequence[str]) -> dict[str, Any]:
    """JSON schema the model must fill in (``when`` as a delay, which small models get right more often)."""
    return {
        "type": "object",
        "properties": {
            "label": {"type": "string", "enum": list(labels)},
            "confidence": {"type": "number"},
            "follow_up": {"type": "boolean"},
            # Bounded: a tiny model otherwise repeats itself until max_tokens cuts the JSON off.
            "prompt": {"type": "string", "maxLength": _MAX_PROMPT_CHARS},
            "delay_minutes": {"type": "integer"},
        },
        "required": ["label", "confidence", "follow_up", "prompt", "delay_minutes"],
    }


def transcript_text(transcript: str | Sequence[Any]) -> str:
    """Accepts a string, ``Utterance``s / scheduler ``Turn``s (role, text) or ``Message``s (role, content)."""
    if isinstance(transcript, str):
        return transcript
    lines = []
    for item in transcript:
        text = getattr(item, "text", None) or getattr(item, "content", "")
        lines.append(f"{getattr(item, 'role', 'user')}: {text}")
    return "\n".join(lines)


async def analyze_intent(
    llm: LLM, transcript: str | Sequence[Any], config: AgentConfig, now: datetime | None = None
) -> IntentResult:
    """Classify ``transcript`` into ``config.intent_labels``; never raises for bad model output."""
    now = now or datetime.now(UTC)
    text = transcript_text(transcript)
    messages = _prompt(text, config)
    for attempt in (1, 2):
        try:
            raw = await _complete(llm, messages, config)
            return parse_intent(raw, config, now)
        except (AgentError, TimeoutError) as exc:
            log.warning("intent analysis attempt %d failed: %s", attempt, exc)
    return rules_intent(text, config, now)


def parse_intent(raw: str, config: AgentConfig, now: datetime) -> IntentResult:
    """Validate the model's JSON; raises IntentError with the offending output if it does not fit."""
    try:
        data = json.loads(raw)
        if not isinstance(data, dict):
            raise TypeError("not a JSON object")
        label = data.get("label")
        if label not in config.intent_labels:
            raise ValueError(f"label {label!r} not in taxonomy {config.intent_labels}")
        raw_delay = data.get("delay_minutes")
        # 0 means "follow up now"; only an absent value takes the configured default.
        delay = int(config.intent_follow_up_delay_min if raw_delay is None else raw_delay)
        follow_up = bool(data.get("follow_up"))
        prompt = str(data.get("prompt") or "").strip() or config.intent_prompts.get(label)
        return IntentResult(
            label=label,
            confidence=min(max(float(data.get("confidence", 0.5)), 0.0), 1.0),
            follow_up=follow_up,
            prompt=prompt if follow_up else None,
            when=now + timedelta(minutes=min(max(delay, 0), _MAX_DELAY_MIN)) if follow_up else None,
        )
    except (ValueError, TypeError, ValidationError) as exc:
        raise IntentError(f"invalid intent output {raw[:200]!r}: {exc}") from exc


def rules_intent(text: str, config: AgentConfig, now: datetime) -> IntentResult:
    """Keyword rules from ``config.intent_keywords``: the label with most hits wins; marked fallback."""
    user_text = " ".join(
        line.split(":", 1)[1] if line.lower().startswith("user:") else line
        for line in text.splitlines()
        if not line.lower().startswith(("agent:", "assistant:"))
    ).lower()
    hits = {
        label: sum(user_text.count(k) for k in words)
        for label, words in config.intent_keywords.items()
        if label in config.intent_labels
    }
    best = max(hits, key=lambda label: hits[label], default=None)
    other = "other" if "other" in config.intent_labels else config.intent_labels[-1]
    label = best if best is not None and hits[best] > 0 else other
    follow_up = label in config.intent_follow_up_labels
    return IntentResult(
        label=label,
        confidence=0.3 if label != other else 0.1,
        follow_up=follow_up,
        prompt=config.intent_prompts.get(label) if follow_up else None,
        when=now + timedelta(minutes=config.intent_follow_up_delay_min) if follow_up else None,
        fallback=True,
    )


def _prompt(text: str, config: AgentConfig) -> list[Message]:
    labels = "\n".join(
        f"- {label}: {config.intent_descriptions[label]}"
        if label in config.intent_descriptions
        else f"- {label}"
        for label in config.intent_labels
    )
    return [
        Message(
            "system",
            "You analyse customer conversations. Reply with JSON only: label (what the user wanted, one of the "
            "labels below), confidence (0 to 1), follow_up (true if the agent should contact the user again), "
            "prompt (one short friendly sentence the agent says when following up), delay_minutes.\n"
            f"Labels:\n{labels}",
        ),
        Message("user", f"Conversation:\n{text[-3000:]}"),
    ]


async def _complete(llm: LLM, messages: list[Message], config: AgentConfig) -> str:
    parts: list[str] = []
    async with asyncio.timeout(config.llm.timeout_s):
        async for chunk in llm.stream_chat(
            messages,
            max_tokens=config.intent_max_tokens,
            json_schema=llm_schema(config.intent_labels),
            temperature=config.intent_temperature,
        ):
            parts.append(chunk.text)
    return "".join(parts)
