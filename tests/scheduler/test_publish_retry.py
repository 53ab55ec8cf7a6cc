"""A prompt the bus refuses is kept and published again later, not left ``failed`` for ever: a broker
outage during a campaign run must not lose the campaign's prompts. The refusal is real: the embedded bus
is bounded and one consumer group on the proactive topic is stuck, so publishes fail with PublishError
until it drains again."""

from __future__ import annotations

import asyncio

from messaging.bus import Message
from messaging.config import BusConfig
from messaging.embedded import EmbeddedBus
from scheduler.config import SchedulerConfig
from scheduler.publishing import BusPromptPublisher
from scheduler.service import SchedulerService
from server.storage.delivery_ledger import SqlDeliveryLedger
from tests.scheduler.conftest import PROACTIVE, eventually


async def test_a_refused_publish_is_retried_until_the_bus_takes_it(
    db_url: str, deliveries: SqlDeliveryLedger
) -> None:
    bus = EmbeddedBus(BusConfig(embedded_queue_size=1, embedded_publish_wait_s=0.1, handler_concurrency=1))
    stuck = asyncio.Event()
    got: list[bytes] = []

    async def stuck_group(message: Message) -> None:  # an RTC node that stopped consuming
        await stuck.wait()

    async def rtc(message: Message) -> None:
        got.append(message.body)

    bus.subscribe(PROACTIVE, "stuck-node", stuck_group)
    bus.subscribe(PROACTIVE, "rtc", rtc)
    await bus.start()
    for i in range(3):  # fill the stuck group: one in its handler, one waiting for a slot, one queued
        await bus.publish(PROACTIVE, f"filler {i}".encode())
    config = SchedulerConfig(jobstore_url=db_url, per_user_min_interval_s=0, publish_retry_s=1)
    service = SchedulerService(config, BusPromptPublisher(bus, PROACTIVE), deliveries)
    await service.start()
    try:
        result = await service.send_prompt_now("olga", text="Your table is ready.")
        assert result["status"] == "failed"
        key = result["idempotency_key"]
        row = await deliveries.get(key)
        assert row is not None and row.status == "deferred" and "retrying" in (row.detail or ""), row
        stuck.set()  # the broker is back
        await eventually(lambda: any(b"Your table is ready." in body for body in got), 10)
        assert await deliveries.status_of(key) == "published"
    finally:
        await service.stop()
        await bus.close()
