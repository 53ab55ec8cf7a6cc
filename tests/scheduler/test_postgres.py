"""The scheduler on PostgreSQL (job store and campaign store), for multi-node deployments."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from scheduler.campaigns import CampaignSpec
from tests.scheduler.conftest import PromptCollector, ServiceFactory

pytestmark = [pytest.mark.integration]


@pytest.fixture
def pg_url(postgres_dsn: str) -> Iterator[str]:
    """A fresh database per test on the session's PostgreSQL server."""
    import psycopg

    name = f"scheduler_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield postgres_dsn.rsplit("/", 1)[0] + f"/{name}"
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def test_campaign_survives_a_restart_on_postgresql(
    make_service: ServiceFactory, collector: PromptCollector, pg_url: str
) -> None:
    first = make_service(jobstore_url=pg_url)
    await first.start()
    at = datetime.now(UTC) + timedelta(seconds=2)
    created = await first.create_campaign(
        CampaignSpec.model_validate(
            {
                "name": "pg",
                "audience": {"user_ids": ["ann", "ben"]},
                "message": "hi",
                "schedule": {"at": at.isoformat()},
            }
        )
    )
    await first.stop()

    second = make_service(jobstore_url=pg_url)
    await second.start()
    assert second.scheduler.get_job(f"campaign:{created.id}") is not None
    bodies = await collector.wait_for(2, timeout_s=8)
    assert sorted(b["user_id"] for b in bodies) == ["ann", "ben"]
    assert {d["status"] for d in await second.campaign_deliveries(created.id)} == {"published"}
