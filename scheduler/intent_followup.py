"""The intent-analysis job: analyse ended or idle conversations, store the result, follow up if warranted."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta
from typing import Any, Protocol

from scheduler.config import SchedulerConfig
from scheduler.conversations import ConversationForAnalysis, ConversationSource, IntentOutcome
from scheduler.outreach import OutreachSender
from scheduler.publishing import OutgoingPrompt, idempotency_key
from scheduler.timeutil import as_utc

log = logging.getLogger(__name__)


class IntentAnalyzer(Protocol):
    """Analyses one conversation; ``LLMIntentAnalyzer`` wraps ``agent.intent.analyze_intent``."""

    async def analyze(self, conversation: ConversationForAnalysis) -> IntentOutcome: ...


class LLMIntentAnalyzer:
    """IntentAnalyzer on the agent's LLM intent analysis."""

    def __init__(self, llm: Any, agent_config: Any) -> None:
        self._llm = llm
        self._agent_config = agent_config

    async def analyze(self, conversation: ConversationForAnalysis) -> IntentOutcome:
        from agent.intent import analyze_intent  # the agent owns the prompt and the parsing

        return await analyze_intent(self._llm, conversation.turns, self._agent_config)


def follow_up_time(when: Any, now: datetime) -> datetime | None:
    """The analyser's ``when`` (datetime, ISO string, timedelta or seconds from now) as UTC, or None."""
    if when is None or when == "":
        return None
    if isinstance(when, datetime):
        return as_utc(when)
    if isinstance(when, timedelta):
        return now + when
    if isinstance(when, (int, float)):
        return now + timedelta(seconds=float(when))
    if isinstance(when, str):
        try:
            return as_utc(datetime.fromisoformat(when))
        except ValueError:
            log.warning("intent analysis gave an unreadable follow-up time %r; following up now", when)
    return None


class IntentFollowUpJob:
    def __init__(
        self,
        config: SchedulerConfig,
        source: ConversationSource,
        analyzer: IntentAnalyzer,
        sender: OutreachSender,
    ) -> None:
        self._config = config
        self._source = source
        self._analyzer = analyzer
        self._sender = sender

    async def run(self, now: datetime) -> int:
        """Analyse one batch; returns how many conversations were analysed."""
        batch = await asyncio.to_thread(
            self._source.pending_analysis, now, self._config.conversation_idle_s, self._config.intent_batch_size
        )
        analysed = 0
        for conversation in batch:
            try:
                result = await self._analyzer.analyze(conversation)
            except Exception:
                # Left unanalysed, so the next run retries it.
                log.exception(
                    "intent analysis failed",
                    extra={"conversation_id": conversation.conversation_id, "user_id": conversation.user_id},
                )
                continue
            when = follow_up_time(result.when, now)
            await asyncio.to_thread(self._source.save_intent, conversation, result, when, now)
            analysed += 1
            if self._warrants_follow_up(result):
                await self._follow_up(conversation, result, when, now)
        return analysed

    def _warrants_follow_up(self, result: IntentOutcome) -> bool:
        if result.fallback and not self._config.follow_up_on_fallback:
            return False
        return bool(result.follow_up) and float(result.confidence) >= self._config.intent_min_confidence

    async def _follow_up(
        self,
        conversation: ConversationForAnalysis,
        result: IntentOutcome,
        when: datetime | None,
        now: datetime,
    ) -> None:
        start = max(when or now, now)
        prompt = OutgoingPrompt(
            user_id=conversation.user_id,
            text=result.prompt or None,
            intent=str(result.label),
            source="intent",
            idempotency_key=idempotency_key(
                "intent", conversation.conversation_id, str(conversation.last_event_at.timestamp())
            ),
            expires_at=start + timedelta(seconds=self._config.prompt_ttl_s),
            conversation_id=conversation.conversation_id,
            reason=f"follow-up on {result.label}",
            tenant=conversation.tenant,
        )
        if start > now:
            await self._sender.defer(prompt, start, True, f"follow-up requested for {start.isoformat()}")
        else:
            await self._sender.send(prompt, now)
