"""When a node may ring a user's phone: quiet hours in the user's time zone, a minimum gap between two
attempts to the same user, and a maximum number of attempts per prompt (``phone.outreach``).

Pure functions of the clock and the attempt history; the outreach asks ``first_attempt_at`` before the
first call and ``retry_at`` after an unanswered one (``None``: give up).
"""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from scheduler.policy import end_of_quiet_hours
from server.phone.config import OutreachPolicyConfig
from server.transports.sip import DialOutcome

# A refusal ("603 Decline", "403") is the callee saying no: ringing again soon would be harassment.
_FINAL = {DialOutcome.REJECTED}


class DialPolicy:
    def __init__(self, config: OutreachPolicyConfig) -> None:
        self.config = config

    def allowed_from(self, t: float, zone: ZoneInfo) -> float:
        """``t`` if it is outside the user's quiet hours, else the end of them (epoch seconds)."""
        moment = datetime.fromtimestamp(t, UTC)
        return end_of_quiet_hours(moment, self.config.quiet_hours, zone).timestamp()

    def first_attempt_at(self, now: float, zone: ZoneInfo, last_attempt_at: float | None) -> float:
        """The earliest time the first call for a prompt may ring (``now`` when it may ring at once)."""
        earliest = now
        if last_attempt_at is not None:
            earliest = max(earliest, last_attempt_at + self.config.min_gap_s)
        return self.allowed_from(earliest, zone)

    def retry_at(self, now: float, zone: ZoneInfo, attempts_made: int, outcome: DialOutcome) -> float | None:
        """When to ring again after an unanswered attempt, or None: no more attempts."""
        if outcome in _FINAL or attempts_made >= self.config.max_attempts:
            return None
        return self.allowed_from(now + self.config.min_gap_s, zone)
