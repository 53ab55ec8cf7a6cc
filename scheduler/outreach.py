"""Sends one proactive prompt under the outreach policy and records what happened to it.

Every prompt has a delivery row keyed by its idempotency key: ``scheduled`` (known before its run),
``deferred`` (rate limit or quiet hours; a job publishes it later), ``published`` (on the bus; from then
on the RTC server's delivery ledger knows better), ``dropped`` (would only be allowed after it expires)
or ``failed`` (the bus refused it). A key already published is never published again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from scheduler import db
from scheduler.policy import OutreachPolicy
from scheduler.publishing import OutgoingPrompt, PromptPublisher
from scheduler.timeutil import as_utc, utcnow

log = logging.getLogger(__name__)

SendOutcome = Literal["published", "deferred", "dropped", "duplicate", "failed"]
DeferFn = Callable[[OutgoingPrompt, datetime, bool], None]


class OutreachSender:
    def __init__(
        self, engine: Engine, policy: OutreachPolicy, publisher: PromptPublisher, defer: DeferFn
    ) -> None:
        self._engine = engine
        self._policy = policy
        self._publisher = publisher
        self._defer = defer

    async def send(self, prompt: OutgoingPrompt, now: datetime, respect_policy: bool = True) -> SendOutcome:
        """Publish ``prompt`` now if allowed, else defer it to the earliest allowed time before expiry."""
        if self.status_of(prompt.idempotency_key) == "published":
            log.info("prompt already published, not sending again", extra={"key": prompt.idempotency_key})
            return "duplicate"
        if now >= prompt.expires_at:
            self.record(prompt, "dropped", now, f"expired at {prompt.expires_at.isoformat()} before publish")
            return "dropped"
        if respect_policy:
            allowed = self._policy.allowed_at(prompt.user_id, now)
            if allowed > now:
                if allowed >= prompt.expires_at:
                    detail = f"rate limit/quiet hours until {allowed.isoformat()}, after expiry"
                    self.record(prompt, "dropped", now, detail)
                    return "dropped"
                detail = f"rate limit/quiet hours until {allowed.isoformat()}"
                record_delivery(
                    self._engine, prompt, "deferred", allowed, detail, _payload(prompt, respect_policy)
                )
                self._defer(prompt, allowed, respect_policy)
                return "deferred"
        try:
            await self._publisher.publish_prompt(prompt)
        except Exception as exc:
            log.exception(
                "publishing proactive prompt failed",
                extra={"user_id": prompt.user_id, "key": prompt.idempotency_key},
            )
            self.record(prompt, "failed", now, f"publish failed: {exc}")
            return "failed"
        self.record(prompt, "published", now, None)
        self._policy.record_prompt(prompt.user_id, now)
        return "published"

    def defer(self, prompt: OutgoingPrompt, when: datetime, respect_policy: bool, detail: str) -> None:
        """Record ``prompt`` as waiting for ``when`` and hand it to the deferral job."""
        record_delivery(self._engine, prompt, "scheduled", when, detail, _payload(prompt, respect_policy))
        self._defer(prompt, when, respect_policy)

    def status_of(self, idempotency_key: str) -> str | None:
        with self._engine.connect() as conn:
            return conn.execute(
                sa.select(db.deliveries.c.status).where(db.deliveries.c.idempotency_key == idempotency_key)
            ).scalar()

    def record(self, prompt: OutgoingPrompt, status: str, run_at: datetime, detail: str | None) -> None:
        record_delivery(self._engine, prompt, status, run_at, detail)


def _payload(prompt: OutgoingPrompt, respect_policy: bool) -> dict[str, Any]:
    return {"prompt": prompt.to_job_arg(), "respect_policy": respect_policy}


def record_delivery(
    engine: Engine,
    prompt: OutgoingPrompt,
    status: str,
    run_at: datetime,
    detail: str | None,
    payload: dict[str, Any] | None = None,
) -> None:
    """Upsert the delivery row of ``prompt``; ``payload`` is kept only while the prompt waits."""
    values = {
        "campaign_id": prompt.campaign_id,
        "source": prompt.source,
        "user_id": prompt.user_id,
        "prompt_id": prompt.prompt_id,
        "status": status,
        "detail": detail[:500] if detail else None,
        "run_at": run_at,
        "updated_at": utcnow(),
        "payload": payload,
    }
    table = db.deliveries
    with engine.begin() as conn:
        updated = conn.execute(
            table.update().where(table.c.idempotency_key == prompt.idempotency_key).values(**values)
        ).rowcount
        if not updated:
            conn.execute(table.insert().values(idempotency_key=prompt.idempotency_key, **values))


def waiting_prompts(engine: Engine) -> list[tuple[OutgoingPrompt, datetime, bool]]:
    """Prompts recorded as waiting (scheduled or deferred, with their payload): (prompt, when, policy)."""
    table = db.deliveries
    query = sa.select(table.c.run_at, table.c.payload).where(
        table.c.payload.is_not(None), table.c.status.in_(("scheduled", "deferred"))
    )
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    return [
        (
            OutgoingPrompt.from_job_arg(r.payload["prompt"]),
            as_utc(r.run_at),
            bool(r.payload["respect_policy"]),
        )
        for r in rows
    ]
