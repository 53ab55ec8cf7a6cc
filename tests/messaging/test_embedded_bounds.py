"""The embedded bus holds a bounded number of messages: a consumer group that stops keeping up makes
publishers wait, then fail with ``PublishError`` (they keep or spool the message), instead of the bus
growing until the process runs out of memory; the dead letters it keeps for inspection are bounded too."""

from __future__ import annotations

import asyncio

import pytest

from messaging.bus import Message, PoisonMessage, PublishError
from messaging.config import BusConfig
from messaging.embedded import EmbeddedBus
from tests.messaging.harness import wait_until


async def test_a_stuck_consumer_makes_publish_fail_instead_of_growing_the_queue() -> None:
    bus = EmbeddedBus(BusConfig(embedded_queue_size=5, embedded_publish_wait_s=0.2, handler_concurrency=1))
    release = asyncio.Event()
    handled: list[bytes] = []

    async def stuck(message: Message) -> None:
        await release.wait()
        handled.append(message.body)

    bus.subscribe("t", "g", stuck)
    await bus.start()
    accepted = 0
    with pytest.raises(PublishError, match="full"):
        for i in range(50):
            await bus.publish("t", f"m{i}".encode())
            accepted += 1
            await asyncio.sleep(0)
    assert accepted <= 5 + 2  # the queue, plus one in the handler and one waiting for a handler slot
    release.set()
    await wait_until(lambda: len(handled) == accepted, 5, "every accepted message handled")
    await bus.publish("t", b"after")  # room again
    await wait_until(lambda: len(handled) == accepted + 1, 5, "the late message")
    await bus.close()


async def test_dead_letters_kept_for_inspection_are_bounded() -> None:
    bus = EmbeddedBus(BusConfig(embedded_dead_letters_kept=3))

    async def poison(message: Message) -> None:
        raise PoisonMessage("never valid")

    bus.subscribe("t", "g", poison)
    await bus.start()
    for i in range(10):
        await bus.publish("t", f"p{i}".encode())
    await wait_until(lambda: bus.dead_letter_count("t_dlq") == 10, 5, "ten dead letters")
    kept = bus.dead_letters["t_dlq"]
    assert [m.body for m in kept] == [b"p7", b"p8", b"p9"]  # the newest
    await bus.close()
