"""Validation of campaign specs and the campaign store's state machine (no scheduler running)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from scheduler.campaigns import CampaignSpec, CampaignStore
from scheduler.db import create_store_engine
from scheduler.errors import CampaignNotFound, CampaignStateError


def spec(**overrides: object) -> CampaignSpec:
    data: dict[str, object] = {
        "name": "renewal",
        "audience": {"user_ids": ["u1", "u2", "u1"]},
        "message": "Your plan renews tomorrow.",
        "schedule": {"at": "2030-01-01T09:00:00+00:00"},
    }
    data.update(overrides)
    return CampaignSpec.model_validate(data)


def test_audience_is_deduplicated() -> None:
    assert spec().audience.user_ids == ["u1", "u2"]


@pytest.mark.parametrize(
    "overrides, fragment",
    [
        ({"audience": {}}, "exactly one of 'user_ids'"),
        ({"audience": {"user_ids": ["a"], "intent_label": "sales"}}, "exactly one of 'user_ids'"),
        ({"audience": {"user_ids": []}}, "non-empty"),
        ({"message": None}, "needs a 'message'"),
        ({"schedule": {"cron": "not a cron"}}, "invalid cron"),
        ({"schedule": {"at": "2030-01-01T09:00:00", "cron": "0 9 * * *"}}, "exactly one of 'at'"),
        ({"schedule": {"cron": "0 9 * * *", "timezone": "Mars/Olympus"}}, "unknown timezone"),
    ],
)
def test_invalid_specs_are_refused_with_a_reason(overrides: dict[str, object], fragment: str) -> None:
    with pytest.raises(ValidationError) as info:
        spec(**overrides)
    assert fragment in str(info.value)


def test_store_round_trip_and_transitions(tmp_path) -> None:  # type: ignore[no-untyped-def]
    store = CampaignStore(create_store_engine(f"sqlite:///{tmp_path / 's.sqlite3'}"))
    created = store.create(spec(intent="renewal", message=None, schedule={"cron": "0 9 * * MON-FRI"}))
    loaded = store.get(created.id)
    assert loaded.spec == created.spec and loaded.status == "active"
    assert loaded.created_at.tzinfo is not None
    assert store.transition(created.id, "pause").status == "paused"
    with pytest.raises(CampaignStateError):
        store.transition(created.id, "pause")
    assert store.transition(created.id, "resume").status == "active"
    assert store.transition(created.id, "cancel").status == "cancelled"
    with pytest.raises(CampaignStateError):
        store.transition(created.id, "resume")
    assert [c.id for c in store.list_all("cancelled")] == [created.id]
    with pytest.raises(CampaignNotFound):
        store.get("nope")
    assert datetime.now(UTC) >= loaded.created_at
