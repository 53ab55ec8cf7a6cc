"""Sends one proactive prompt under the outreach policy and records what happened to it.

Every prompt has a row in the delivery ledger keyed by its idempotency key: ``scheduled`` (known before
its run), ``deferred`` (rate limit or quiet hours; a job publishes it later), ``published`` (on the bus;
from then on the RTC nodes write its state), ``dropped`` (would only be allowed after it expires) or
``failed`` (the bus refused it). A key already published is never published again.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any, Literal

from scheduler.deliveries import SCHEDULER_STATES, PromptDeliveries
from scheduler.policy import OutreachPolicy
from scheduler.publishing import OutgoingPrompt, PromptPublisher, proactive_prompt

log = logging.getLogger(__name__)

SendOutcome = Literal["published", "deferred", "dropped", "duplicate", "failed"]
# Hands a waiting prompt to whatever publishes it later (the service's job store; a client: nothing).
DeferFn = Callable[[OutgoingPrompt, datetime, bool], Awaitable[None] | None]


class OutreachSender:
    def __init__(
        self,
        deliveries: PromptDeliveries,
        policy: OutreachPolicy,
        publisher: PromptPublisher,
        defer: DeferFn,
        publish_retry_s: float = 30.0,
    ) -> None:
        """``publish_retry_s``: a prompt the bus refused (broker away past its publish timeout) is tried
        again this much later, until it expires."""
        self.publish_retry_s = publish_retry_s
        self.deliveries = deliveries
        self._policy = policy
        self._publisher = publisher
        self._defer = defer

    async def send(self, prompt: OutgoingPrompt, now: datetime, respect_policy: bool = True) -> SendOutcome:
        """Publish ``prompt`` now if allowed, else defer it to the earliest allowed time before expiry."""
        status = await self.deliveries.status_of(prompt.idempotency_key)
        if status is not None and status not in SCHEDULER_STATES:
            log.info("prompt already published, not sending again", extra={"key": prompt.idempotency_key})
            return "duplicate"
        if now >= prompt.expires_at:
            await self.record(prompt, "dropped", now, f"expired at {prompt.expires_at.isoformat()} before publish")
            return "dropped"
        if respect_policy:
            allowed = await asyncio.to_thread(self._policy.allowed_at, prompt.user_id, now)
            if allowed > now:
                if allowed >= prompt.expires_at:
                    detail = f"rate limit/quiet hours until {allowed.isoformat()}, after expiry"
                    await self.record(prompt, "dropped", now, detail)
                    return "dropped"
                detail = f"rate limit/quiet hours until {allowed.isoformat()}"
                await self.record(prompt, "deferred", allowed, detail, waiting(prompt, respect_policy))
                await self._hand_over(prompt, allowed, respect_policy)
                return "deferred"
        message = proactive_prompt(prompt)
        if not await self.deliveries.begin_publish(message, prompt.source, now.timestamp()):
            log.info("prompt already published, not sending again", extra={"key": prompt.idempotency_key})
            return "duplicate"
        try:
            await self._publisher.publish_prompt(prompt)
        except Exception as exc:
            log.exception(
                "publishing proactive prompt failed",
                extra={"user_id": prompt.user_id, "key": prompt.idempotency_key},
            )
            await self.deliveries.publish_failed(message, f"publish failed: {exc}")
            await self._retry_later(prompt, now, respect_policy, exc)
            return "failed"
        await asyncio.to_thread(self._policy.record_prompt, prompt.user_id, now)
        return "published"

    async def _retry_later(
        self, prompt: OutgoingPrompt, now: datetime, respect_policy: bool, exc: Exception
    ) -> None:
        """Keep a prompt the bus refused: ``deferred`` to a later attempt (the job store, or the scheduler
        process's sync job, publishes it then), unless it would expire first (then it stays ``failed``)."""
        retry_at = now + timedelta(seconds=self.publish_retry_s)
        if retry_at >= prompt.expires_at:
            return
        detail = f"publish failed ({type(exc).__name__}); retrying at {retry_at.isoformat()}"
        await self.record(prompt, "deferred", retry_at, detail, waiting(prompt, respect_policy))
        await self._hand_over(prompt, retry_at, respect_policy)

    async def defer(self, prompt: OutgoingPrompt, when: datetime, respect_policy: bool, detail: str) -> None:
        """Record ``prompt`` as waiting for ``when`` and hand it to the deferral job."""
        await self.record(prompt, "scheduled", when, detail, waiting(prompt, respect_policy))
        await self._hand_over(prompt, when, respect_policy)

    async def _hand_over(self, prompt: OutgoingPrompt, when: datetime, respect_policy: bool) -> None:
        result = self._defer(prompt, when, respect_policy)
        if inspect.isawaitable(result):
            await result

    async def record(
        self,
        prompt: OutgoingPrompt,
        status: str,
        run_at: datetime,
        detail: str | None,
        waiting: dict[str, Any] | None = None,
        *,
        if_new: bool = False,
    ) -> bool:
        return await self.deliveries.note(
            proactive_prompt(prompt), prompt.source, status, run_at.timestamp(), detail, waiting, if_new=if_new
        )

    async def waiting_prompts(self) -> list[tuple[OutgoingPrompt, float, bool]]:
        """Prompts recorded as waiting (scheduled or deferred): (prompt, when, respect the policy)."""
        rows = await self.deliveries.waiting_prompts()
        return [
            (OutgoingPrompt.from_job_arg(w["prompt"]), run_at, bool(w["respect_policy"])) for w, run_at in rows
        ]


def waiting(prompt: OutgoingPrompt, respect_policy: bool) -> dict[str, Any]:
    return {"prompt": prompt.to_job_arg(), "respect_policy": respect_policy}

