"""Conversation events survive a bus that refuses them: they wait in the on-disk spool and reach the
scheduler's topic, all of them, once the bus takes messages again. The refusal is real: the embedded bus
is bounded and its consumer group is stuck, so publishes fail with ``PublishError`` as they would while a
broker is away."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from messaging.bus import Message
from messaging.config import BusConfig
from messaging.embedded import EmbeddedBus
from server.calls.conversation_events import ConversationEventPublisher
from server.storage.spool import DiskSpool
from tests.messaging.harness import wait_until


async def test_events_refused_by_the_bus_are_spooled_and_replayed(tmp_path: Path) -> None:
    bus = EmbeddedBus(BusConfig(embedded_queue_size=3, embedded_publish_wait_s=0.1, handler_concurrency=1))
    flowing = asyncio.Event()
    got: list[dict[str, object]] = []

    async def scheduler(message: Message) -> None:
        await flowing.wait()
        got.append(json.loads(message.body))

    bus.subscribe("voice_conversation", "scheduler", scheduler)
    await bus.start()
    publisher = ConversationEventPublisher(
        bus, "voice_conversation", "n1", queue_size=4, spool=DiskSpool(tmp_path, "events"), retry_s=0.2
    )
    publisher.start()
    for i in range(40):  # far more than the bus and the publisher's queue hold
        publisher.publish("final_turn", "call-1", "ann", f"turn {i}", "user")
        await asyncio.sleep(0.005)
    await wait_until(lambda: len(publisher.spool or []) > 0, 5, "events in the spool")
    flowing.set()  # the scheduler's group drains again: the bus has room
    await wait_until(lambda: len(got) == 40, 20, "all 40 events at the scheduler")
    assert sorted(int(str(e["text"]).split()[1]) for e in got) == list(range(40))
    await publisher.drain()
    await bus.close()
