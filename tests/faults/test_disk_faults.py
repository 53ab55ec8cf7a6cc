"""The disk under the node's SQLite files (call records, delivery ledger, agent memory, job store, phone
directory) and its outage spool fills up mid-call, and is freed ~15 s later (``FULL_S``).

The disk is real: a size-limited tmpfs (``SmallDisk``; mounting needs root or CAP_SYS_ADMIN, else the
test skips and says so), filled to the last byte by a ballast file. Every write on it then fails for real:
SQLite's with "database or disk is full", the spool's with ENOSPC.

While it is full: the caller in a call asks and is answered; a prompt for that caller and one for an
offline user wait for the ledger (not dead-lettered); a second caller hangs up and the record, refused by
the database and by the spool's disk (before: dropped, lost), waits in memory; ``/readyz`` says
"degraded" (200) naming the call records; the node keeps serving. After the space is freed: the record lands,
the prompts are spoken and held, ``/readyz`` is ready again, the record written before the disk filled is
still there, a campaign due after it runs (the scheduler's thread survived), and every prompt is
accounted for. Recovery: seconds from the space being freed to all of
that."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from scheduler.campaigns import CampaignSpec
from tests.faults.accounting import FaultReport, account, ledger_history, spoken_in, times_spoken
from tests.faults.nodes import answered, fault_settings, greeted, http_json, prompt, running_node, until
from tests.faults.services import SmallDisk

pytestmark = [pytest.mark.faults, pytest.mark.slow, pytest.mark.integration]

FULL_S = 15.0
DISK_MB = 24
DURING_TEXT = "Your dentist appointment is confirmed for Monday."
OFFLINE_TEXT = "Your dry cleaning is ready for pick up."
CAMPAIGN_TEXT = "The swimming pool reopens on Wednesday."


@pytest.fixture
def small_disk() -> Iterator[SmallDisk]:
    disk = SmallDisk(DISK_MB)
    why_not = disk.mount()
    if why_not:
        disk.destroy()
        pytest.skip(why_not)
    yield disk
    disk.destroy()


async def run_disk_full(disk: SmallDisk, full_s: float = FULL_S) -> FaultReport:
    report = FaultReport("disk under the SQLite files full mid-call")
    settings = fault_settings(disk.path, "disk-node")
    tag = str(time.monotonic_ns())[-6:]
    ann, bob, cy, dee, eve = (f"disk-{name}-{tag}" for name in ("ann", "bob", "cy", "dee", "eve"))
    async with running_node(settings) as node:
        records = node.deps.records
        earlier = await greeted(node.base_url, dee)
        await earlier.hangup()
        report.checks["record written before the disk filled"] = (
            await until(lambda: _ended(records, earlier.call_id), 30) is not None
        )
        caller = await greeted(node.base_url, ann)
        leaving = await greeted(node.base_url, bob)
        fire_at = datetime.now(UTC) + timedelta(seconds=full_s + 8)  # due once the space is back
        spec = {
            "name": "after the full disk",
            "audience": {"user_ids": [eve]},
            "message": CAMPAIGN_TEXT,
            "schedule": {"at": fire_at.isoformat()},
        }
        campaign = await node.scheduler.create_campaign(CampaignSpec.model_validate(spec))

        filled = await asyncio.to_thread(disk.fill)
        full_at = time.monotonic()
        report.notes.append(f"ballast {filled / 2**20:.1f} MB fills the {DISK_MB} MB disk")
        during, offline = prompt(ann, DURING_TEXT), prompt(cy, OFFLINE_TEXT)
        keys = [during.idempotency_key, offline.idempotency_key]
        report.checks["caller answered while the disk is full"] = await answered(caller)
        topic = settings.bus.topic_proactive
        await node.bus.publish(topic, during.to_bytes(), key=ann)
        await node.bus.publish(topic, offline.to_bytes(), key=cy)
        await leaving.hangup()
        status, body = await http_json(f"{node.base_url}/readyz", None)
        degraded = (body or {}).get("degraded", {})
        # Still 200: the node takes calls (their records wait), so it stays in a load balancer's rotation.
        report.checks["/readyz degraded, naming the call records"] = (
            status == 200 and "call records" in degraded
        )
        report.notes.append(f"/readyz while full: {status} {degraded}")
        health, _ = await http_json(f"{node.base_url}/healthz", None)
        report.checks["node alive while the disk is full"] = health == 200
        await asyncio.sleep(max(0.0, full_s - (time.monotonic() - full_at)))
        await asyncio.to_thread(disk.free)
        freed_at = time.monotonic()
        report.outage_s = freed_at - full_at

        async def recovered() -> bool:
            rows = [await node.ledger.get(k) for k in keys]
            status, body = await http_json(f"{node.base_url}/readyz", None)
            return (
                await _ended(records, leaving.call_id)
                and [r.status if r else None for r in rows] == ["delivered", "pending"]
                and spoken_in(await caller.record(), DURING_TEXT)
                and status == 200
                and (body or {}).get("status") == "ready"
            )

        waited = await until(recovered, 120)
        report.recovery_s = waited
        report.checks["record of the hang-up while full landed, prompts spoken and held, ready"] = (
            waited is not None
        )
        report.checks["record written before the disk filled still there"] = await _ended(
            records, earlier.call_id
        )
        report.checks["caller answered after the space was freed"] = await answered(caller)
        report.checks["prompt spoken once"] = times_spoken(await caller.record(), DURING_TEXT) == 1
        await caller.hangup()
        report.checks["record of the call that lived through it written"] = (
            await until(lambda: _ended(records, caller.call_id), 30) is not None
        )

        async def campaign_held() -> bool:
            rows = await node.ledger.campaign_deliveries(campaign.id)
            return bool(rows) and [r["status"] for r in rows] == ["pending"]

        # Before: the scheduler's thread died on the first job-store write that the full disk refused.
        report.checks["campaign due after the space was freed published (scheduler alive)"] = (
            await until(campaign_held, max(30.0, full_s + 30)) is not None
        )
        keys += [r["idempotency_key"] for r in await node.ledger.campaign_deliveries(campaign.id)]
        report.prompts = await account(node.ledger, keys)
        if not report.survived:
            report.notes += [await ledger_history(node.ledger, key) for key in keys]
    return report


async def _ended(records: object, call_id: str) -> bool:
    saved = await records.get(call_id)  # type: ignore[attr-defined]
    return saved is not None and saved.end_reason == "hangup"


async def test_disk_full_under_the_sqlite_files(small_disk: SmallDisk) -> None:
    report = await run_disk_full(small_disk)
    print(f"\n{report.as_dict()}")
    assert report.survived, report.as_dict()
    assert report.recovery_s is not None and report.recovery_s <= 30, report.as_dict()
