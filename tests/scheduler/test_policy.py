"""Quiet hours and the per-user rate limit."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from scheduler.db import create_store_engine
from scheduler.policy import OutreachPolicy, end_of_quiet_hours

UTC_ZONE = ZoneInfo("UTC")


def at(hour: int, minute: int = 0, day: int = 10) -> datetime:
    return datetime(2030, 6, day, hour, minute, tzinfo=UTC)


def test_quiet_hours_across_midnight_defer_to_their_end() -> None:
    assert end_of_quiet_hours(at(23, 30), (22, 7), UTC) == at(7, day=11)
    assert end_of_quiet_hours(at(3), (22, 7), UTC) == at(7)
    assert end_of_quiet_hours(at(7), (22, 7), UTC) == at(7)
    assert end_of_quiet_hours(at(12), (22, 7), UTC) == at(12)


def test_quiet_hours_inside_one_day_and_in_local_time() -> None:
    assert end_of_quiet_hours(at(13, 20), (13, 14), UTC) == at(14)
    paris = ZoneInfo("Europe/Paris")  # UTC+2 in June: 21:30 UTC is 23:30 local, quiet until 07:00 local
    assert end_of_quiet_hours(at(21, 30), (22, 7), paris) == at(5, day=11)


def test_rate_limit_defers_until_the_interval_passed(tmp_path) -> None:  # type: ignore[no-untyped-def]
    engine = create_store_engine(f"sqlite:///{tmp_path / 'p.sqlite3'}")
    policy = OutreachPolicy(engine, min_interval_s=3600, quiet_hours=None, tz=UTC_ZONE)
    assert policy.allowed_at("u1", at(10)) == at(10)
    policy.record_prompt("u1", at(10))
    assert policy.allowed_at("u1", at(10, 30)) == at(11)
    assert policy.allowed_at("u2", at(10, 30)) == at(10, 30)
    assert policy.allowed_at("u1", at(11) + timedelta(seconds=1)) == at(11) + timedelta(seconds=1)


def test_rate_limit_end_falling_in_quiet_hours_waits_for_morning(tmp_path) -> None:  # type: ignore[no-untyped-def]
    engine = create_store_engine(f"sqlite:///{tmp_path / 'p.sqlite3'}")
    policy = OutreachPolicy(engine, min_interval_s=3600, quiet_hours=(22, 7), tz=UTC_ZONE)
    policy.record_prompt("u1", at(21, 30))
    assert policy.allowed_at("u1", at(21, 45)) == at(7, day=11)
