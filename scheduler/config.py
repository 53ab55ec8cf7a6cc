"""Typed settings of the scheduler (section ``scheduler`` of the YAML config)."""

from __future__ import annotations

from pydantic import BaseModel, Field, field_validator


class SchedulerConfig(BaseModel):
    jobstore_url: str = "sqlite:///data/jobs.sqlite3"
    # Campaigns, conversation log and intent results; None = the same database as the job store.
    store_url: str | None = None
    intent_interval_s: int = Field(300, ge=1)
    per_user_min_interval_s: int = Field(3600, ge=0)
    quiet_hours: tuple[int, int] | None = None  # (start_hour, end_hour) local time; None = no quiet hours
    prompt_ttl_s: int = Field(24 * 3600, ge=1)
    timezone: str = "UTC"  # local time of quiet hours and of cron campaigns without their own timezone
    conversation_idle_s: int = Field(600, ge=1)  # a conversation without events for this long counts as ended
    intent_batch_size: int = Field(20, ge=1)  # conversations analysed per intent-analysis run
    intent_min_confidence: float = Field(0.0, ge=0.0, le=1.0)  # below it a follow-up is not sent
    # The agent's keyword fallback (used when the model's answer is unusable) may ask for a follow-up too.
    follow_up_on_fallback: bool = True
    campaign_sync_interval_s: int = Field(5, ge=1)  # picks up campaigns written by another process
    publish_retry_s: float = Field(30.0, gt=0)  # a prompt the bus refused is tried again this much later
    consumer_group: str = "scheduler"  # bus consumer group of the conversation-event subscription
    instance_name: str = "default"  # names this scheduler in persisted job arguments
    connect_timeout_s: float = Field(default=5.0, gt=0)  # PostgreSQL: give up connecting after this long
    # PostgreSQL: statement_timeout of every statement; SQLite: how long a writer waits for a lock.
    statement_timeout_s: float = Field(default=30.0, gt=0)

    @field_validator("quiet_hours")
    @classmethod
    def _hours_in_range(cls, value: tuple[int, int] | None) -> tuple[int, int] | None:
        if value is not None and not all(0 <= h <= 23 for h in value):
            raise ValueError(f"quiet_hours must be two hours in 0..23, got {value}")
        return value

    @property
    def effective_store_url(self) -> str:
        return self.store_url or self.jobstore_url

    @property
    def timeouts(self) -> dict[str, float]:
        return {"connect_timeout_s": self.connect_timeout_s, "statement_timeout_s": self.statement_timeout_s}
