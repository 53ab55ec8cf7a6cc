"""PostgreSQL stops mid-call and comes back ~15 s later (``OUTAGE_S``). Everything the node keeps there is
in it: the delivery ledger, the call records, the knowledge store and the scheduler's job store.

While it is down: the caller in a call asks a question and is answered (without retrieval); a prompt
published for that caller waits for the ledger instead of failing (before: dead-lettered for good after the
bus's five attempts, ~15 s); a prompt for an offline user waits to be held; a second caller hangs up and the
record goes to the spool (before: lost); a campaign falls due while the job store is away. After the
restart: the waiting prompt is spoken in the call, the other one is held, the campaign's prompt is
published and held, the spooled record is in the database; every prompt is accounted for."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from scheduler.campaigns import CampaignSpec
from tests.faults.accounting import FaultReport, account, spoken_in, times_spoken
from tests.faults.nodes import answered, fault_settings, greeted, http_json, prompt, running_node, until
from tests.faults.services import OwnPostgres

pytestmark = [pytest.mark.faults, pytest.mark.slow, pytest.mark.integration]

OUTAGE_S = 15.0
BEFORE_TEXT = "Your prescription is ready for collection."
DURING_TEXT = "Your appointment moved to Thursday at ten."
OFFLINE_TEXT = "Your parcel is waiting at the post office."
CAMPAIGN_TEXT = "The library opens late on Friday."


@pytest.fixture(scope="module")
def postgres() -> Iterator[OwnPostgres]:
    pg = OwnPostgres()
    pg.start()
    yield pg
    pg.destroy()


async def run_database_restart(pg: OwnPostgres, workdir: Path, outage_s: float = OUTAGE_S) -> FaultReport:
    report = FaultReport("postgresql stop/restart mid-call")
    settings = fault_settings(workdir, "db-node")
    for field in ("records", "delivery_ledger"):
        setattr(settings.storage, field, pg.dsn)
    settings.storage.connect_timeout_s = 2
    # The bus's own redeliveries must not bridge the outage (its defaults span ~25 s): the ledger's
    # waiting it out must. Before that fix, these two attempts failed and the prompt was dead-lettered.
    settings.bus.max_attempts, settings.bus.retry_backoff_s = 2, 0.5
    settings.storage.statement_timeout_s = 5
    settings.scheduler.jobstore_url = pg.dsn
    settings.scheduler.connect_timeout_s, settings.scheduler.statement_timeout_s = 2, 5
    settings.server.rag = True
    settings.knowledge.store, settings.knowledge.postgres_dsn = "postgres", pg.dsn
    settings.knowledge.connect_timeout_s, settings.knowledge.statement_timeout_s = 2, 5
    tag = str(time.monotonic_ns())[-6:]
    ann, bob, cy, dee = (f"db-{name}-{tag}" for name in ("ann", "bob", "cy", "dee"))
    async with running_node(settings) as node:
        keys: list[str] = []
        topic = settings.bus.topic_proactive
        caller = await greeted(node.base_url, ann)
        leaving = await greeted(node.base_url, bob)
        before = prompt(ann, BEFORE_TEXT)
        keys.append(before.idempotency_key)
        await node.bus.publish(topic, before.to_bytes(), key=ann)
        await until(lambda: _delivered(node.ledger, before.idempotency_key), 40)
        await caller.wait_quiet(1.0, timeout=40)
        fire_at = datetime.now(UTC) + timedelta(seconds=5)
        spec = {"name": "db outage", "audience": {"user_ids": [dee]}, "message": CAMPAIGN_TEXT,
                "schedule": {"at": fire_at.isoformat()}}
        campaign = await node.scheduler.create_campaign(CampaignSpec.model_validate(spec))

        down_at = time.monotonic()
        await asyncio.to_thread(pg.stop)
        during, offline = prompt(ann, DURING_TEXT), prompt(cy, OFFLINE_TEXT)
        keys += [during.idempotency_key, offline.idempotency_key]
        await node.bus.publish(topic, during.to_bytes(), key=ann)
        await node.bus.publish(topic, offline.to_bytes(), key=cy)
        await leaving.hangup()
        report.checks["caller answered while the database is down"] = await answered(caller)
        status, _ = await http_json(f"{node.base_url}/readyz", None)
        report.checks["node still serving while the database is down"] = status in (200, 503)
        await asyncio.sleep(max(0.0, outage_s - (time.monotonic() - down_at)))
        await asyncio.to_thread(pg.start)
        report.outage_s = time.monotonic() - down_at

        async def recovered() -> bool:
            record = await caller.record()
            rows = [await node.ledger.get(k) for k in (during.idempotency_key, offline.idempotency_key)]
            saved = await node.deps.records.get(leaving.call_id)
            return (
                spoken_in(record, DURING_TEXT)
                and [r.status if r else None for r in rows] == ["delivered", "pending"]
                and saved is not None and saved.end_reason == "hangup"
            )

        report.recovery_s = await until(recovered, 120)
        report.checks["prompt published during the outage spoken after it"] = report.recovery_s is not None
        campaign_keys = await until(lambda: _campaign_keys(node, campaign.id), 60)
        rows = await node.ledger.campaign_deliveries(campaign.id)
        keys += [r["idempotency_key"] for r in rows]
        report.checks["campaign due during the outage published after it"] = campaign_keys is not None
        report.checks["call record of the hang-up during the outage kept"] = (
            await node.deps.records.get(leaving.call_id) is not None
        )
        report.checks["caller answered after the restart"] = await answered(caller)
        record = await caller.record()
        report.checks["each prompt spoken once"] = [
            times_spoken(record, text) for text in (BEFORE_TEXT, DURING_TEXT)
        ] == [1, 1]
        await caller.hangup()
        await until(lambda: _all_final(node.ledger, keys), 30)
        report.prompts = await account(node.ledger, keys, _dead_letters(node))
    return report


async def _delivered(ledger: object, key: str) -> bool:
    row = await ledger.get(key)  # type: ignore[attr-defined]
    return row is not None and row.status == "delivered"


async def _campaign_keys(node: object, campaign_id: str) -> bool:
    rows = await node.ledger.campaign_deliveries(campaign_id)  # type: ignore[attr-defined]
    return bool(rows) and all(r["status"] not in ("scheduled", "deferred") for r in rows)


async def _all_final(ledger: object, keys: list[str]) -> bool:
    rows = [await ledger.get(k) for k in keys]  # type: ignore[attr-defined]
    return all(r is not None and r.status in ("delivered", "pending", "expired", "dropped") for r in rows)


def _dead_letters(node: object) -> dict[str, str]:
    """Dead letters of the embedded bus's proactive topic: idempotency key -> reason."""
    import json

    from messaging.bus import DLQ_REASON

    bus = node.bus  # type: ignore[attr-defined]
    found: dict[str, str] = {}
    for message in bus.dead_letters.get("voice_proactive_dlq", []):
        try:
            key = json.loads(message.body)["idempotency_key"]
        except (ValueError, KeyError):
            continue
        found[key] = message.properties.get(DLQ_REASON, "")
    return found


async def test_postgresql_restart_mid_call(postgres: OwnPostgres, tmp_path: Path) -> None:
    report = await run_database_restart(postgres, tmp_path)
    print(f"\n{report.as_dict()}")
    assert report.survived, report.as_dict()
    assert report.prompts.spoken >= 2 and report.prompts.held >= 2, report.as_dict()
    assert report.recovery_s is not None and report.recovery_s <= 30, report.as_dict()
