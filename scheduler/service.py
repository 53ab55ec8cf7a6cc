"""SchedulerService: the process-level owner of the APScheduler instance and its jobs.

It runs three kinds of jobs with a persistent SQLAlchemy job store: periodic intent analysis over recent
conversations, outreach campaigns (one-off or cron) and callbacks the agent promised. All of them end in
``OutreachSender.send``, which applies the rate limit and quiet hours and publishes a proactive prompt to the
bus. Run it alone (``voice-agent scheduler``) or inside ``serve`` (start/stop); ``server.node`` composes both.

Off the event loop: APScheduler runs in its own thread (``BackgroundScheduler``; the jobs, coroutines, run
on the loop through ``EventLoopExecutor``), and every query of the scheduler's tables or the job store
runs in a worker thread, so a slow or unreachable scheduler database never stalls the calls of a node that
hosts the scheduler.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from apscheduler.jobstores.base import JobLookupError
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.date import DateTrigger
from sqlalchemy.engine import Engine, make_url

from scheduler import jobs
from scheduler.campaigns import (
    Campaign,
    CampaignSpec,
    CampaignStore,
    cron_trigger,
    delivery_report,
)
from scheduler.config import SchedulerConfig
from scheduler.conversations import ConversationLog, ConversationSource
from scheduler.db import create_engine, create_store_engine
from scheduler.deliveries import PromptDeliveries
from scheduler.errors import SchedulerError
from scheduler.intent_followup import IntentAnalyzer, IntentFollowUpJob, follow_up_time
from scheduler.jobstore import OutageTolerantJobStore
from scheduler.loop_executor import EventLoopExecutor
from scheduler.outreach import OutreachSender
from scheduler.policy import OutreachPolicy
from scheduler.publishing import (
    OutgoingPrompt,
    PromptPublisher,
    admin_prompt,
    callback_prompt,
    idempotency_key,
    send_result,
)
from scheduler.timeutil import as_utc, utcnow

log = logging.getLogger(__name__)
# APScheduler logs every run at INFO; the 5 s sync job would flood the log. Our jobs log what they did.
logging.getLogger("apscheduler.executors.default").setLevel(logging.WARNING)

INTENT_JOB_ID = "intent-analysis"
SYNC_JOB_ID = "campaign-sync"


class SchedulerService:
    """Schedules and runs outreach; implements the agent's ``CallbackScheduler`` (``schedule_callback``)."""

    def __init__(
        self,
        config: SchedulerConfig,
        publisher: PromptPublisher,
        deliveries: PromptDeliveries,
        intent_analyzer: IntentAnalyzer | None = None,
        conversations: ConversationSource | None = None,
        engine: Engine | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        """``deliveries``: the delivery ledger shared with the RTC nodes (``server.storage``)."""
        self.config = config
        self._clock = clock
        self._tz = ZoneInfo(config.timezone)
        self.engine = engine or create_store_engine(config.effective_store_url, **config.timeouts)
        self.campaigns = CampaignStore(self.engine)
        self.conversation_log = ConversationLog(self.engine)
        self._conversations = conversations or self.conversation_log
        self.deliveries = deliveries
        self.policy = OutreachPolicy(
            self.engine, config.per_user_min_interval_s, config.quiet_hours, self._tz
        )
        self.sender = OutreachSender(
            deliveries, self.policy, publisher, self._schedule_deferred, config.publish_retry_s
        )
        self._intent_job = (
            IntentFollowUpJob(config, self._conversations, intent_analyzer, self.sender)
            if intent_analyzer is not None
            else None
        )
        self._executor = EventLoopExecutor()
        self.scheduler = BackgroundScheduler(
            jobstores={"default": OutageTolerantJobStore(engine=self._jobstore_engine())},
            executors={"default": self._executor},
            job_defaults={"coalesce": True, "max_instances": 1},
            timezone=self._tz,
        )

    def _jobstore_engine(self) -> Engine:
        if self.config.jobstore_url == self.config.effective_store_url:
            return self.engine
        self._own_jobstore = create_engine(self.config.jobstore_url, **self.config.timeouts)
        return self._own_jobstore

    # lifecycle ---------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the scheduler; its jobs run on the running event loop; persisted jobs resume."""
        jobs.register(self.config.instance_name, self)
        self._executor.bind(asyncio.get_running_loop())
        await asyncio.to_thread(self._start_jobs)
        await self.sync_campaigns()
        log.info("scheduler started: job store %s", make_url(self.config.jobstore_url).render_as_string())

    def _start_jobs(self) -> None:
        self.scheduler.start()
        if self._intent_job is not None:
            self.scheduler.add_job(
                jobs.intent_analysis_job,
                "interval",
                seconds=self.config.intent_interval_s,
                args=[self.config.instance_name],
                id=INTENT_JOB_ID,
                replace_existing=True,
                misfire_grace_time=self.config.intent_interval_s,
            )
        self.scheduler.add_job(
            jobs.campaign_sync_job,
            "interval",
            seconds=self.config.campaign_sync_interval_s,
            args=[self.config.instance_name],
            id=SYNC_JOB_ID,
            replace_existing=True,
        )

    async def stop(self) -> None:
        jobs.unregister(self.config.instance_name, self)
        await asyncio.to_thread(self._stop_jobs)

    def _stop_jobs(self) -> None:
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)
        self.engine.dispose()
        if getattr(self, "_own_jobstore", None) is not None:
            self._own_jobstore.dispose()

    # campaigns ---------------------------------------------------------------------------------------

    async def create_campaign(self, spec: CampaignSpec) -> Campaign:
        at = spec.schedule.at
        if at is not None and self._localize(at) < self._clock() - timedelta(seconds=60):
            raise SchedulerError(f"schedule.at {at.isoformat()} is in the past")
        campaign = await asyncio.to_thread(self.campaigns.create, spec)
        await self._reconcile(campaign)
        return campaign

    def list_campaigns(self, status: str | None = None) -> list[Campaign]:
        """Blocking (a query): call it from a worker thread, as the admin API does."""
        return self.campaigns.list_all(status)

    def get_campaign(self, campaign_id: str) -> Campaign:
        """Blocking (a query): call it from a worker thread, as the admin API does."""
        return self.campaigns.get(campaign_id)

    async def pause_campaign(self, campaign_id: str) -> Campaign:
        return await self._transition(campaign_id, "pause")

    async def resume_campaign(self, campaign_id: str) -> Campaign:
        return await self._transition(campaign_id, "resume")

    async def cancel_campaign(self, campaign_id: str) -> Campaign:
        return await self._transition(campaign_id, "cancel")

    async def campaign_deliveries(self, campaign_id: str) -> list[dict[str, Any]]:
        return await delivery_report(self.campaigns, campaign_id, self.deliveries)

    def next_run_time(self, campaign_id: str) -> datetime | None:
        """Blocking (the job store): call it from a worker thread, as the admin API does."""
        job = self.scheduler.get_job(_campaign_job_id(campaign_id))
        return None if job is None else job.next_run_time

    async def _transition(self, campaign_id: str, action: str) -> Campaign:
        campaign = await asyncio.to_thread(self.campaigns.transition, campaign_id, action)
        await self._reconcile(campaign)
        return campaign

    async def sync_campaigns(self) -> None:
        """Make the job store match the store: campaigns and waiting prompts (maybe written elsewhere)."""
        if not self.scheduler.running:
            return
        live = await asyncio.to_thread(
            lambda: self.campaigns.list_all("active") + self.campaigns.list_all("paused")
        )
        for campaign in live:
            try:
                await self._reconcile(campaign)
            except Exception:
                log.exception("cannot schedule campaign", extra={"campaign_id": campaign.id})
        await asyncio.to_thread(self._remove_jobs_except, {_campaign_job_id(c.id) for c in live})
        for prompt, when, respect_policy in await self.sender.waiting_prompts():
            if await asyncio.to_thread(self.scheduler.get_job, _prompt_job_id(prompt)) is None:
                await self._schedule_deferred(prompt, max(_utc(when), self._clock()), respect_policy)

    def _remove_jobs_except(self, live_ids: set[str]) -> None:
        for job in self.scheduler.get_jobs():
            if job.id.startswith("campaign:") and job.id not in live_ids:
                self._remove_job(job.id)  # cancelled or completed, maybe by another process

    async def _reconcile(self, campaign: Campaign) -> None:
        if not self.scheduler.running:
            return  # start() reconciles every campaign
        added = await asyncio.to_thread(self._reconcile_job, campaign)
        if added is not None:
            await self._mark_scheduled(added)

    def _reconcile_job(self, campaign: Campaign) -> Campaign | None:
        """Make the campaign's job match its status (blocking: a worker thread); the campaign when a job
        was added for it."""
        job_id = _campaign_job_id(campaign.id)
        job = self.scheduler.get_job(job_id)
        if campaign.status == "active" and self._finished(campaign):
            campaign = self.campaigns.transition(campaign.id, "complete")
        if campaign.status == "active":
            if job is None:
                trigger = self._trigger(campaign.spec)
                self.scheduler.add_job(
                    jobs.campaign_job,
                    trigger,
                    args=[self.config.instance_name, campaign.id],
                    id=job_id,
                    misfire_grace_time=self._ttl(campaign.spec),
                    replace_existing=True,
                )
                return campaign
            if job.next_run_time is None:
                self.scheduler.resume_job(job_id)
        elif campaign.status == "paused":
            if job is not None and job.next_run_time is not None:
                self.scheduler.pause_job(job_id)
        elif job is not None:
            self._remove_job(job_id)
        return None

    def _finished(self, campaign: Campaign) -> bool:
        spec = campaign.spec
        if spec.schedule.at is not None and campaign.last_run_at is not None:
            return True
        return spec.ends_at is not None and self._localize(spec.ends_at) <= self._clock()

    def _trigger(self, spec: CampaignSpec) -> BaseTrigger:
        tz = ZoneInfo(spec.schedule.timezone) if spec.schedule.timezone else self._tz
        if spec.schedule.at is not None:
            return DateTrigger(run_date=self._localize(spec.schedule.at, tz))
        assert spec.schedule.cron is not None
        end = self._localize(spec.ends_at, tz) if spec.ends_at else None
        return cron_trigger(spec.schedule.cron, tz, end)

    def _ttl(self, spec: CampaignSpec) -> int:
        return spec.ttl_s or self.config.prompt_ttl_s

    def _localize(self, value: datetime, tz: ZoneInfo | None = None) -> datetime:
        return as_utc(value.replace(tzinfo=tz or self._tz) if value.tzinfo is None else value)

    async def _mark_scheduled(self, campaign: Campaign) -> None:
        """Write ``scheduled`` rows for the next run of an explicit audience, so the dashboard shows them."""
        next_run = await asyncio.to_thread(self.next_run_time, campaign.id)
        users = campaign.spec.audience.user_ids
        if next_run is None or users is None:
            return
        for prompt in self._campaign_prompts(campaign, users, as_utc(next_run)):
            await self.sender.record(prompt, "scheduled", as_utc(next_run), None, if_new=True)

    def _campaign_prompts(
        self, campaign: Campaign, users: list[str], run_at: datetime
    ) -> list[OutgoingPrompt]:
        spec = campaign.spec
        return [
            OutgoingPrompt(
                user_id=user,
                text=spec.message,
                intent=spec.intent,
                source="campaign",
                idempotency_key=idempotency_key("campaign", campaign.id, str(int(run_at.timestamp())), user),
                expires_at=run_at + timedelta(seconds=self._ttl(spec)),
                campaign_id=campaign.id,
                reason=spec.name,
                tenant=spec.tenant,
            )
            for user in users
        ]

    async def run_campaign(self, campaign_id: str) -> int:
        """One run of a campaign: one prompt per audience user; returns how many were published."""
        campaign = await asyncio.to_thread(self.campaigns.get, campaign_id)
        if campaign.status != "active":
            log.info("campaign not active, run skipped", extra={"campaign_id": campaign_id})
            return 0
        now = self._clock()
        spec = campaign.spec
        if spec.schedule.at is not None:
            run_at = self._localize(spec.schedule.at)
        else:
            # Cron fires on whole minutes: the minute identifies the run even if the job starts late.
            run_at = now.replace(second=0, microsecond=0)
        if spec.audience.user_ids is not None:
            users = spec.audience.user_ids
        else:
            assert spec.audience.intent_label is not None
            label, tenant = spec.audience.intent_label, spec.tenant
            users = await asyncio.to_thread(self.conversation_log.users_with_latest_intent, label, tenant)
        published = 0
        for prompt in self._campaign_prompts(campaign, users, run_at):
            if await self.sender.send(prompt, now) == "published":
                published += 1
        await asyncio.to_thread(self.campaigns.mark_run, campaign_id, run_at)
        log.info(
            "campaign run", extra={"campaign_id": campaign_id, "users": len(users), "published": published}
        )
        await self._reconcile(await asyncio.to_thread(self.campaigns.get, campaign_id))
        if spec.schedule.cron is not None:
            await self._mark_scheduled(await asyncio.to_thread(self.campaigns.get, campaign_id))
        return published

    # intent analysis, prompts, callbacks -----------------------------------------------------------------

    async def run_intent_analysis(self) -> int:
        if self._intent_job is None:
            raise SchedulerError("intent analysis job fired but this service has no intent analyzer")
        return await self._intent_job.run(self._clock())

    async def send_prompt_now(
        self,
        user_id: str,
        text: str | None = None,
        intent: str | None = None,
        ttl_s: int | None = None,
        respect_policy: bool = False,
        tenant: str = "default",
    ) -> dict[str, Any]:
        """Publish a prompt to ``user_id`` of ``tenant`` immediately (an admin's explicit action skips the
        policy)."""
        now = self._clock()
        prompt = admin_prompt(user_id, text, intent, ttl_s or self.config.prompt_ttl_s, now, tenant)
        outcome = await self.sender.send(prompt, now, respect_policy=respect_policy)
        return send_result(prompt, outcome)

    async def schedule_callback(
        self, user_id: str, when: datetime | Any, reason: str, tenant: str = "default"
    ) -> str:
        """Agent tool ``schedule_callback``: speak to ``user_id`` (of ``tenant``) at ``when`` about
        ``reason``; returns its id."""
        now = self._clock()
        at = follow_up_time(when, now) or now
        prompt = callback_prompt(user_id, max(at, now), reason, self.config.prompt_ttl_s, tenant)
        # The user asked for this call-back at this time: rate limit and quiet hours do not apply.
        await self.sender.defer(prompt, max(at, now), False, f"callback requested: {reason}")
        return prompt.idempotency_key

    async def deliver_deferred(self, prompt_data: dict[str, Any], respect_policy: bool) -> str:
        prompt = OutgoingPrompt.from_job_arg(prompt_data)
        return await self.sender.send(prompt, self._clock(), respect_policy=respect_policy)

    async def _schedule_deferred(self, prompt: OutgoingPrompt, when: datetime, respect_policy: bool) -> None:
        await asyncio.to_thread(
            self.scheduler.add_job,
            jobs.deferred_prompt_job,
            DateTrigger(run_date=when),
            args=[self.config.instance_name, prompt.to_job_arg(), respect_policy],
            id=_prompt_job_id(prompt),
            replace_existing=True,
            misfire_grace_time=max(1, int((prompt.expires_at - when).total_seconds())),
        )

    def _remove_job(self, job_id: str) -> None:
        try:
            self.scheduler.remove_job(job_id)
        except JobLookupError:
            pass  # already gone: a one-off job is removed by APScheduler after it ran


def _utc(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


def _prompt_job_id(prompt: OutgoingPrompt) -> str:
    return f"prompt:{prompt.idempotency_key}"


def _campaign_job_id(campaign_id: str) -> str:
    return f"campaign:{campaign_id}"
