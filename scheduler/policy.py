"""When a proactive prompt may go out: per-user rate limit and quiet hours.

``OutreachPolicy.allowed_at(user_id, now)`` gives the earliest time a prompt to that user is allowed; a
caller publishes when that is ``now`` and otherwise defers to it (quiet hours defer to their end).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from scheduler import db
from scheduler.timeutil import as_utc


def end_of_quiet_hours(now: datetime, quiet_hours: tuple[int, int] | None, tz: ZoneInfo) -> datetime:
    """``now`` if it lies outside quiet hours, else the moment quiet hours end (in UTC).

    ``(22, 7)`` means 22:00 to 07:00 local time, across midnight; ``(13, 14)`` is a window inside one day.
    """
    if quiet_hours is None or quiet_hours[0] == quiet_hours[1]:
        return now
    start, end = quiet_hours
    local = now.astimezone(tz)
    hour = local.hour
    inside = start <= hour < end if start < end else (hour >= start or hour < end)
    if not inside:
        return now
    end_local = local.replace(hour=end, minute=0, second=0, microsecond=0)
    if end_local <= local:
        end_local += timedelta(days=1)
    # Re-localise so a DST change between now and the end of quiet hours keeps the wall-clock hour.
    end_local = end_local.replace(tzinfo=None).replace(tzinfo=tz)
    return as_utc(end_local)


class OutreachPolicy:
    """Per-user rate limit (kept in the scheduler database, so it holds across restarts) and quiet hours."""

    def __init__(
        self, engine: Engine, min_interval_s: int, quiet_hours: tuple[int, int] | None, tz: ZoneInfo
    ) -> None:
        self._engine = engine
        self._min_interval = timedelta(seconds=min_interval_s)
        self._quiet_hours = quiet_hours
        self._tz = tz

    def last_prompt_at(self, user_id: str) -> datetime | None:
        with self._engine.connect() as conn:
            value = conn.execute(
                sa.select(db.user_contacts.c.last_prompt_at).where(db.user_contacts.c.user_id == user_id)
            ).scalar()
        return None if value is None else as_utc(value)

    def allowed_at(self, user_id: str, now: datetime) -> datetime:
        earliest = now
        last = self.last_prompt_at(user_id)
        if last is not None and last + self._min_interval > now:
            earliest = last + self._min_interval
        return end_of_quiet_hours(earliest, self._quiet_hours, self._tz)

    def record_prompt(self, user_id: str, at: datetime) -> None:
        with self._engine.begin() as conn:
            updated = conn.execute(
                db.user_contacts.update()
                .where(db.user_contacts.c.user_id == user_id)
                .values(last_prompt_at=at)
            ).rowcount
            if not updated:
                conn.execute(db.user_contacts.insert().values(user_id=user_id, last_prompt_at=at))
