"""The dial policy: quiet hours in the user's own time zone, the gap between attempts, the attempt limit,
and refusals that are not retried."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from server.phone.config import OutreachPolicyConfig
from server.phone.policy import DialPolicy
from server.transports.sip import DialOutcome

BERLIN, NEW_YORK = ZoneInfo("Europe/Berlin"), ZoneInfo("America/New_York")


def at(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def test_quiet_hours_are_the_users_local_hours() -> None:
    policy = DialPolicy(OutreachPolicyConfig(quiet_hours=(21, 8), min_gap_s=600))
    now = at("2025-03-10T21:30:00")  # 22:30 in Berlin (quiet), 17:30 in New York (not)
    assert policy.first_attempt_at(now, NEW_YORK, None) == now
    assert policy.first_attempt_at(now, BERLIN, None) == at("2025-03-11T07:00:00")  # 08:00 Berlin


def test_the_gap_since_the_last_call_to_the_user_defers_the_first_attempt() -> None:
    policy = DialPolicy(OutreachPolicyConfig(quiet_hours=None, min_gap_s=600))
    now = at("2025-03-10T12:00:00")
    assert policy.first_attempt_at(now, BERLIN, now - 100) == now + 500
    assert policy.first_attempt_at(now, BERLIN, now - 700) == now


def test_busy_and_no_answer_are_retried_until_the_limit_and_refusals_never() -> None:
    policy = DialPolicy(OutreachPolicyConfig(quiet_hours=None, min_gap_s=300, max_attempts=3))
    now = at("2025-03-10T12:00:00")
    assert policy.retry_at(now, BERLIN, 1, DialOutcome.BUSY) == now + 300
    assert policy.retry_at(now, BERLIN, 2, DialOutcome.NO_ANSWER) == now + 300
    assert policy.retry_at(now, BERLIN, 2, DialOutcome.UNREACHABLE) == now + 300
    assert policy.retry_at(now, BERLIN, 3, DialOutcome.BUSY) is None
    assert policy.retry_at(now, BERLIN, 1, DialOutcome.REJECTED) is None


def test_a_retry_that_falls_into_quiet_hours_waits_for_their_end() -> None:
    policy = DialPolicy(OutreachPolicyConfig(quiet_hours=(21, 8), min_gap_s=1800))
    now = at("2025-07-10T18:45:00")  # 20:45 in Berlin (summer time); + 30 min = 21:15: quiet
    assert policy.retry_at(now, BERLIN, 1, DialOutcome.BUSY) == at("2025-07-11T06:00:00")
