"""The scheduler's API for a process that does not run the jobs (the RTC server next to ``voice-agent scheduler``).

``SchedulerClient`` writes to the same database the scheduler process uses; that process's sync job
(every ``campaign_sync_interval_s``) turns new campaigns and waiting prompts into jobs. It satisfies the
admin API's ``CampaignAdmin``/``PromptSender`` and the agent's ``CallbackScheduler``.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from scheduler.campaigns import (
    Campaign,
    CampaignSpec,
    CampaignStore,
    cron_trigger,
    delivery_report,
)
from scheduler.config import SchedulerConfig
from scheduler.conversations import ConversationLog
from scheduler.db import create_store_engine
from scheduler.deliveries import PromptDeliveries
from scheduler.errors import SchedulerError
from scheduler.intent_followup import follow_up_time
from scheduler.outreach import OutreachSender
from scheduler.policy import OutreachPolicy
from scheduler.publishing import PromptPublisher, admin_prompt, callback_prompt, send_result
from scheduler.timeutil import as_utc, utcnow


class SchedulerClient:
    def __init__(self, config: SchedulerConfig, publisher: PromptPublisher, deliveries: PromptDeliveries) -> None:
        self.config = config
        self._tz = ZoneInfo(config.timezone)
        self.engine = create_store_engine(config.effective_store_url, **config.timeouts)
        self.campaigns = CampaignStore(self.engine)
        self.conversation_log = ConversationLog(self.engine)
        self.deliveries = deliveries
        policy = OutreachPolicy(self.engine, config.per_user_min_interval_s, config.quiet_hours, self._tz)
        # Deferred prompts are only recorded (with their payload); the scheduler process schedules them.
        self.sender = OutreachSender(
            deliveries, policy, publisher, lambda prompt, when, respect: None, config.publish_retry_s
        )

    def close(self) -> None:
        self.engine.dispose()

    async def create_campaign(self, spec: CampaignSpec) -> Campaign:
        at = spec.schedule.at
        if at is not None and self._utc(at) < utcnow() - timedelta(seconds=60):
            raise SchedulerError(f"schedule.at {at.isoformat()} is in the past")
        return await asyncio.to_thread(self.campaigns.create, spec)

    def list_campaigns(self, status: str | None = None) -> list[Campaign]:
        """Blocking (a query): call it from a worker thread, as the admin API does."""
        return self.campaigns.list_all(status)

    def get_campaign(self, campaign_id: str) -> Campaign:
        """Blocking (a query): call it from a worker thread, as the admin API does."""
        return self.campaigns.get(campaign_id)

    async def pause_campaign(self, campaign_id: str) -> Campaign:
        return await asyncio.to_thread(self.campaigns.transition, campaign_id, "pause")

    async def resume_campaign(self, campaign_id: str) -> Campaign:
        return await asyncio.to_thread(self.campaigns.transition, campaign_id, "resume")

    async def cancel_campaign(self, campaign_id: str) -> Campaign:
        return await asyncio.to_thread(self.campaigns.transition, campaign_id, "cancel")

    async def campaign_deliveries(self, campaign_id: str) -> list[dict[str, Any]]:
        return await delivery_report(self.campaigns, campaign_id, self.deliveries)

    def next_run_time(self, campaign_id: str) -> datetime | None:
        """Computed from the campaign's schedule (the job itself lives in the scheduler process). Blocking
        (a query): call it from a worker thread."""
        campaign = self.campaigns.get(campaign_id)
        schedule = campaign.spec.schedule
        if schedule.at is not None:
            return None if campaign.last_run_at else self._utc(schedule.at)
        tz = ZoneInfo(schedule.timezone) if schedule.timezone else self._tz
        assert schedule.cron is not None
        end = self._utc(campaign.spec.ends_at) if campaign.spec.ends_at else None
        fire = cron_trigger(schedule.cron, tz, end).get_next_fire_time(None, utcnow().astimezone(tz))
        return None if fire is None else as_utc(fire)

    async def send_prompt_now(
        self,
        user_id: str,
        text: str | None = None,
        intent: str | None = None,
        ttl_s: int | None = None,
        tenant: str = "default",
    ) -> dict[str, Any]:
        now = utcnow()
        prompt = admin_prompt(user_id, text, intent, ttl_s or self.config.prompt_ttl_s, now, tenant)
        outcome = await self.sender.send(prompt, now, respect_policy=False)
        return send_result(prompt, outcome)

    async def schedule_callback(
        self, user_id: str, when: datetime | Any, reason: str, tenant: str = "default"
    ) -> str:
        now = utcnow()
        at = max(follow_up_time(when, now) or now, now)
        prompt = callback_prompt(user_id, max(at, now), reason, self.config.prompt_ttl_s, tenant)
        await self.sender.defer(prompt, at, False, f"callback requested: {reason}")
        return prompt.idempotency_key

    def _utc(self, value: datetime) -> datetime:
        return as_utc(value.replace(tzinfo=self._tz) if value.tzinfo is None else value)
