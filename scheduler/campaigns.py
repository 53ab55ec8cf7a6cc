"""Outreach campaigns: what to say, to whom, when; and the store that keeps them.

A campaign's audience is either an explicit list of user ids or "users whose latest intent label is X"
(resolved at each run from the intent results). Its content is either a message to speak or an intent the
agent turns into words. Its schedule is one datetime or a cron expression. Every prompt it publishes
expires ``ttl_s`` after the run; the campaign itself may end at ``ends_at``.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import sqlalchemy as sa
from apscheduler.triggers.cron import CronTrigger
from pydantic import BaseModel, Field, field_validator, model_validator
from sqlalchemy.engine import Engine

from scheduler import db
from scheduler.deliveries import PromptDeliveries
from scheduler.errors import CampaignNotFound, CampaignStateError
from scheduler.timeutil import as_utc, maybe_utc, utcnow

CampaignStatus = Literal["active", "paused", "cancelled", "completed"]


class Audience(BaseModel, extra="forbid"):
    user_ids: list[str] | None = None
    intent_label: str | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Audience:
        if (self.user_ids is None) == (self.intent_label is None):
            raise ValueError("audience needs exactly one of 'user_ids' (a list) or 'intent_label'")
        if self.user_ids is not None:
            if not self.user_ids or any(not u.strip() for u in self.user_ids):
                raise ValueError("audience.user_ids must be a non-empty list of non-empty user ids")
            self.user_ids = list(dict.fromkeys(self.user_ids))  # de-duplicate, keep order
        return self


class Schedule(BaseModel, extra="forbid"):
    at: datetime | None = None  # one-off run (ISO 8601; without a zone it is read in `timezone`)
    cron: str | None = None  # five-field crontab, e.g. "0 9 * * MON-FRI"
    timezone: str | None = None  # of `cron` and of a naive `at`; default SchedulerConfig.timezone

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                ZoneInfo(value)
            except (ZoneInfoNotFoundError, ValueError) as exc:
                raise ValueError(f"unknown timezone {value!r}") from exc
        return value

    @model_validator(mode="after")
    def _exactly_one(self) -> Schedule:
        if (self.at is None) == (self.cron is None):
            raise ValueError("schedule needs exactly one of 'at' (datetime) or 'cron' (crontab expression)")
        if self.cron is not None:
            try:
                cron_trigger(self.cron, ZoneInfo("UTC"))
            except ValueError as exc:
                raise ValueError(f"invalid cron expression {self.cron!r}: {exc}") from exc
        return self


class CampaignSpec(BaseModel, extra="forbid"):
    """What an admin submits to create a campaign. Its audience's user ids are users of ``tenant``."""

    name: str = Field(min_length=1, max_length=200)
    tenant: str = Field("default", min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    audience: Audience
    message: str | None = Field(None, min_length=1, max_length=2000)
    intent: str | None = Field(None, min_length=1, max_length=200)
    schedule: Schedule
    ttl_s: int | None = Field(None, ge=1)  # prompt lifetime; default SchedulerConfig.prompt_ttl_s
    ends_at: datetime | None = None  # no runs after this time

    @model_validator(mode="after")
    def _content(self) -> CampaignSpec:
        if self.message is None and self.intent is None:
            raise ValueError("a campaign needs a 'message' to speak or an 'intent' for the agent")
        return self


class Campaign(BaseModel):
    id: str
    spec: CampaignSpec
    status: CampaignStatus
    created_at: datetime
    updated_at: datetime
    last_run_at: datetime | None = None

    def public(self) -> dict[str, Any]:
        """JSON-ready view used by the admin API."""
        out = self.spec.model_dump(mode="json")
        out.update(
            id=self.id,
            status=self.status,
            created_at=self.created_at.isoformat(),
            updated_at=self.updated_at.isoformat(),
            last_run_at=self.last_run_at.isoformat() if self.last_run_at else None,
        )
        return out


_TRANSITIONS: dict[str, set[str]] = {
    "pause": {"active"},
    "resume": {"paused"},
    "cancel": {"active", "paused"},
    "complete": {"active"},
}
_TARGET = {"pause": "paused", "resume": "active", "cancel": "cancelled", "complete": "completed"}


class CampaignStore:
    """Campaign rows and their per-user delivery rows, in the scheduler database."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def create(self, spec: CampaignSpec) -> Campaign:
        now = utcnow()
        campaign = Campaign(id=uuid.uuid4().hex, spec=spec, status="active", created_at=now, updated_at=now)
        with self._engine.begin() as conn:
            conn.execute(
                db.campaigns.insert().values(
                    id=campaign.id,
                    name=spec.name,
                    spec=spec.model_dump(mode="json"),
                    status="active",
                    created_at=now,
                    updated_at=now,
                )
            )
        return campaign

    def get(self, campaign_id: str) -> Campaign:
        with self._engine.connect() as conn:
            row = conn.execute(sa.select(db.campaigns).where(db.campaigns.c.id == campaign_id)).first()
        if row is None:
            raise CampaignNotFound(f"no campaign with id {campaign_id!r}")
        return _campaign_from_row(row)

    def list_all(self, status: str | None = None) -> list[Campaign]:
        query = sa.select(db.campaigns).order_by(db.campaigns.c.created_at.desc())
        if status is not None:
            query = query.where(db.campaigns.c.status == status)
        with self._engine.connect() as conn:
            return [_campaign_from_row(r) for r in conn.execute(query)]

    def transition(self, campaign_id: str, action: str) -> Campaign:
        """Apply ``pause``/``resume``/``cancel``/``complete``; raises CampaignStateError if not allowed."""
        campaign = self.get(campaign_id)
        if campaign.status not in _TRANSITIONS[action]:
            raise CampaignStateError(f"cannot {action} campaign {campaign_id} in status {campaign.status!r}")
        with self._engine.begin() as conn:
            conn.execute(
                db.campaigns.update()
                .where(db.campaigns.c.id == campaign_id)
                .values(status=_TARGET[action], updated_at=utcnow())
            )
        return self.get(campaign_id)

    def mark_run(self, campaign_id: str, run_at: datetime) -> None:
        with self._engine.begin() as conn:
            conn.execute(
                db.campaigns.update().where(db.campaigns.c.id == campaign_id).values(last_run_at=run_at)
            )


async def delivery_report(
    store: CampaignStore, campaign_id: str, deliveries: PromptDeliveries
) -> list[dict[str, Any]]:
    """Per-user delivery status of a campaign, from the delivery ledger it shares with the RTC nodes."""
    store.get(campaign_id)  # raises CampaignNotFound
    return [
        {
            "user_id": r["user_id"],
            "run_at": _iso(r["run_at"]),
            "idempotency_key": r["idempotency_key"],
            "prompt_id": r["message_id"],
            "status": r["status"],
            "detail": r["detail"],
            "updated_at": _iso(r["updated_at"]),
        }
        for r in await deliveries.campaign_deliveries(campaign_id)
    ]


def _iso(epoch: float | None) -> str | None:
    return None if epoch is None else datetime.fromtimestamp(epoch, UTC).isoformat()


def cron_trigger(expr: str, tz: ZoneInfo, end: datetime | None = None) -> CronTrigger:
    """The APScheduler trigger of a five-field crontab ``expr`` in ``tz``, ending at ``end``."""
    minute, hour, day, month, day_of_week = expr.split()
    return CronTrigger(
        minute=minute, hour=hour, day=day, month=month, day_of_week=day_of_week, timezone=tz, end_date=end
    )


def _campaign_from_row(row: sa.Row[Any]) -> Campaign:
    return Campaign(
        id=row.id,
        spec=CampaignSpec.model_validate(row.spec),
        status=row.status,
        created_at=as_utc(row.created_at),
        updated_at=as_utc(row.updated_at),
        last_run_at=maybe_utc(row.last_run_at),
    )
