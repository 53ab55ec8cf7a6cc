"""SchedulerClient (the RTC process's view) writes; a separate SchedulerService picks the work up."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from messaging.embedded import EmbeddedBus
from scheduler.campaigns import CampaignSpec
from scheduler.client import SchedulerClient
from scheduler.config import SchedulerConfig
from scheduler.publishing import BusPromptPublisher
from server.storage.delivery_ledger import SqlDeliveryLedger
from tests.scheduler.conftest import PROACTIVE, PromptCollector, ServiceFactory, eventually


async def test_campaigns_and_callbacks_written_elsewhere_are_scheduled_by_the_sync_job(
    make_service: ServiceFactory, collector: PromptCollector, bus: EmbeddedBus, db_url: str,
    deliveries: SqlDeliveryLedger,
) -> None:
    service = make_service(campaign_sync_interval_s=1)
    await service.start()
    client = SchedulerClient(SchedulerConfig(jobstore_url=db_url), BusPromptPublisher(bus, PROACTIVE), deliveries)
    try:
        soon = datetime.now(UTC) + timedelta(seconds=1)
        created = await client.create_campaign(
            CampaignSpec.model_validate(
                {
                    "name": "n",
                    "audience": {"user_ids": ["sam"]},
                    "message": "hi",
                    "schedule": {"at": soon.isoformat()},
                }
            )
        )
        assert client.next_run_time(created.id) == soon
        key = await client.schedule_callback("tia", soon, "asked for a call back")

        bodies = await collector.wait_for(2, timeout_s=8)
        assert sorted(b["user_id"] for b in bodies) == ["sam", "tia"]
        assert key in {b["idempotency_key"] for b in bodies}
        await eventually(lambda: client.get_campaign(created.id).status == "completed")
    finally:
        client.close()


async def test_client_send_now_publishes_directly(
    collector: PromptCollector, bus: EmbeddedBus, db_url: str,
    deliveries: SqlDeliveryLedger,
) -> None:
    client = SchedulerClient(SchedulerConfig(jobstore_url=db_url), BusPromptPublisher(bus, PROACTIVE), deliveries)
    try:
        result = await client.send_prompt_now("uma", text="Hello from the admin")
        assert result["status"] == "published"
        assert (await collector.wait_for(1, timeout_s=3))[0]["text"] == "Hello from the admin"
    finally:
        client.close()


async def test_a_campaign_cancelled_elsewhere_loses_its_job_at_the_next_sync(
    make_service: ServiceFactory, bus: EmbeddedBus, db_url: str,
    deliveries: SqlDeliveryLedger,
) -> None:
    service = make_service()
    await service.start()
    client = SchedulerClient(SchedulerConfig(jobstore_url=db_url), BusPromptPublisher(bus, PROACTIVE), deliveries)
    try:
        spec = CampaignSpec.model_validate(
            {"name": "n", "audience": {"user_ids": ["a"]}, "intent": "x", "schedule": {"cron": "0 9 * * *"}}
        )
        created = await service.create_campaign(spec)
        assert service.next_run_time(created.id) is not None
        await client.pause_campaign(created.id)
        await service.sync_campaigns()
        assert service.scheduler.get_job(f"campaign:{created.id}").next_run_time is None  # type: ignore[union-attr]
        await client.cancel_campaign(created.id)
        await service.sync_campaigns()
        assert service.scheduler.get_job(f"campaign:{created.id}") is None
    finally:
        client.close()
