"""The scheduler never holds the event loop while its database is slow: conversation events, the
campaign sync, jobs added to the persistent job store and the client's writes all wait in worker threads
(or APScheduler's own thread). In ``serve`` on the embedded profile the scheduler shares the loop with
every call's audio, so a scheduler query that waits for a lock or a PostgreSQL timeout on the loop would
freeze every call for as long.

The slow database is real: another connection holds the SQLite file's exclusive lock for ``LOCK_S``."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

from messaging.embedded import EmbeddedBus
from messaging.schemas import ConversationEvent
from scheduler.campaigns import CampaignSpec
from scheduler.client import SchedulerClient
from scheduler.config import SchedulerConfig
from scheduler.conversation_events import subscribe_conversation_log
from scheduler.publishing import BusPromptPublisher
from server.storage.delivery_ledger import SqlDeliveryLedger
from tests.loop_lag import LoopLag
from tests.scheduler.conftest import PROACTIVE, ServiceFactory, eventually
from tests.sqlite_lock import hold_write_lock

LOCK_S = 1.5
MAX_LAG_S = 0.5  # a loaded CI box adds tens of ms; a query on the loop would add ~LOCK_S


def _db_path(db_url: str) -> Path:
    return Path(db_url.removeprefix("sqlite:///"))


async def test_conversation_events_are_recorded_off_the_loop(
    make_service: ServiceFactory, bus: EmbeddedBus, db_url: str
) -> None:
    service = make_service()
    subscribe_conversation_log(bus, "voice_conversation", "scheduler", service.conversation_log)
    await bus.start()
    await service.start()
    holder = hold_write_lock(_db_path(db_url), LOCK_S)
    async with LoopLag() as lag:
        for i in range(3):
            event = ConversationEvent(
                event="final_turn", call_id="c1", user_id="ida", node_id="n", text=f"turn {i}", role="user"
            )
            await bus.publish("voice_conversation", event.to_bytes(), key="ida")
        await asyncio.sleep(LOCK_S + 0.2)
    await asyncio.to_thread(holder.join)
    assert lag.max_s < MAX_LAG_S, f"the loop was held {lag.max_s:.2f} s by the conversation log"
    await eventually(lambda: len(service.conversation_log.pending_analysis(datetime.now(UTC) + timedelta(hours=1), 1, 5)))


async def test_campaign_sync_and_job_store_writes_happen_off_the_loop(
    make_service: ServiceFactory, db_url: str
) -> None:
    service = make_service()
    await service.start()
    spec = CampaignSpec.model_validate(
        {"name": "w", "audience": {"user_ids": ["jo"]}, "intent": "x", "schedule": {"cron": "0 9 * * *"}}
    )
    holder = hold_write_lock(_db_path(db_url), LOCK_S)
    async with LoopLag() as lag:
        created = await service.create_campaign(spec)  # campaign row + a job in the job store
        await service.sync_campaigns()
        key = await service.schedule_callback("jo", datetime.now(UTC) + timedelta(hours=2), "a quote")
    await asyncio.to_thread(holder.join)
    assert lag.max_s < MAX_LAG_S, f"the loop was held {lag.max_s:.2f} s by the scheduler's database"
    assert await asyncio.to_thread(service.next_run_time, created.id) is not None
    assert await asyncio.to_thread(service.scheduler.get_job, f"prompt:{key}") is not None


async def test_client_writes_happen_off_the_loop(
    bus: EmbeddedBus, db_url: str, deliveries: SqlDeliveryLedger
) -> None:
    client = SchedulerClient(SchedulerConfig(jobstore_url=db_url), BusPromptPublisher(bus, PROACTIVE), deliveries)
    spec = CampaignSpec.model_validate(
        {"name": "w", "audience": {"user_ids": ["kai"]}, "intent": "x", "schedule": {"cron": "0 9 * * *"}}
    )
    try:
        holder = hold_write_lock(_db_path(db_url), LOCK_S)
        async with LoopLag() as lag:
            created = await client.create_campaign(spec)
            await client.pause_campaign(created.id)
        await asyncio.to_thread(holder.join)
        assert lag.max_s < MAX_LAG_S, f"the loop was held {lag.max_s:.2f} s by the scheduler client"
    finally:
        client.close()


async def test_the_job_store_is_polled_off_the_loop(make_service: ServiceFactory, db_url: str) -> None:
    """APScheduler wakes up every second here (the campaign sync job) and reads its due jobs from the job
    store; with the file locked that read waits, in APScheduler's thread."""
    service = make_service(campaign_sync_interval_s=1)
    await service.start()
    holder = hold_write_lock(_db_path(db_url), 2.5)
    async with LoopLag() as lag:
        await asyncio.sleep(3)
    await asyncio.to_thread(holder.join)
    assert lag.max_s < MAX_LAG_S, f"the loop was held {lag.max_s:.2f} s by the job store"
