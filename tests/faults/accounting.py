"""Where every proactive prompt of a fault scenario ended up: the issue's accounting check.

published = spoken + held + expired + dead-lettered (with a reason), and nothing else: a prompt still
``published``, ``claimed``, ``failed`` or missing from the ledger once the system has recovered is lost.
Spoken means the ledger says ``delivered`` and the call's record holds the words as a proactive line that
was not cut off."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

FINAL = {"delivered": "spoken", "pending": "held", "expired": "expired", "dropped": "expired"}


@dataclass
class PromptAccount:
    published: int = 0
    spoken: int = 0
    held: int = 0
    expired: int = 0
    dead_lettered: int = 0
    lost: list[str] = field(default_factory=list)  # "key: status" of every prompt not accounted for
    dead_letter_reasons: list[str] = field(default_factory=list)

    @property
    def balanced(self) -> bool:
        accounted = self.spoken + self.held + self.expired + self.dead_lettered
        return not self.lost and accounted == self.published

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "balanced": self.balanced}


async def account(ledger: Any, keys: list[str], dead_letters: dict[str, str] | None = None) -> PromptAccount:
    """``keys``: idempotency keys of every prompt the scenario published; ``dead_letters``: key -> the
    dead-letter reason, for prompts found on the dead-letter topic."""
    dead_letters = dead_letters or {}
    result = PromptAccount(published=len(keys))
    for key in keys:
        row = await ledger.get(key)
        status = row.status if row is not None else None
        if key in dead_letters and status not in FINAL:
            reason = dead_letters[key]
            if not reason:
                result.lost.append(f"{key}: dead-lettered without a reason")
                continue
            result.dead_lettered += 1
            result.dead_letter_reasons.append(reason)
        elif status in FINAL:
            setattr(result, FINAL[status], getattr(result, FINAL[status]) + 1)
        else:
            result.lost.append(f"{key}: {status}")
    return result


async def ledger_history(ledger: Any, key: str) -> str:
    """What every node did with prompt ``key`` (for the notes of a failed scenario)."""
    events = await ledger.events(key)
    return f"{key}: " + ", ".join(f"{e.status}@{e.node_id}" + (f" ({e.detail})" if e.detail else "") for e in events)


def times_spoken(record: dict[str, Any], text: str) -> int:
    """How often the call record holds ``text`` as a proactive line heard to the end (a prompt delivered
    again after a recovery shows as 2)."""
    return sum(
        1
        for e in record.get("transcript", [])
        if e.get("source") == "proactive" and e.get("text") == text and not e.get("interrupted")
    )


def spoken_in(record: dict[str, Any], text: str) -> bool:
    """The call record holds ``text`` as a proactive line not cut off. A line still playing looks the same:
    wait for the ledger's ``delivered`` (set once it was heard to the end) before relying on it."""
    return times_spoken(record, text) > 0


@dataclass
class FaultReport:
    """What one fault scenario showed: the conditions checked, the prompt accounting, the recovery time
    (seconds from the service being back to the system working again) and notes."""

    fault: str
    checks: dict[str, bool] = field(default_factory=dict)
    prompts: PromptAccount = field(default_factory=PromptAccount)
    outage_s: float = 0.0
    recovery_s: float | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def survived(self) -> bool:
        return bool(self.checks) and all(self.checks.values()) and self.prompts.balanced

    def as_dict(self) -> dict[str, Any]:
        return {
            "fault": self.fault,
            "survived": self.survived,
            "checks": self.checks,
            "prompts": self.prompts.as_dict(),
            "outage_s": round(self.outage_s, 1),
            "recovery_s": None if self.recovery_s is None else round(self.recovery_s, 1),
            "notes": self.notes,
        }
