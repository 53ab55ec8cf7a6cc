"""Delivery semantics of every `MessageBus` backend: the same tests on the embedded bus and on RocketMQ."""

from __future__ import annotations

import asyncio

from messaging.bus import DLQ_ATTEMPTS, DLQ_GROUP, DLQ_REASON, Message, PoisonMessage
from messaging.embedded import EmbeddedBus
from tests.messaging.harness import unique, wait_until

# RocketMQ redelivers through its revive service: a 1 s backoff shows up after ~3-5 s.
RETRY_WAIT_S = 40


async def test_publish_consume_round_trip(bus_factory, bus_topic) -> None:
    bus = bus_factory()
    got: list[Message] = []

    async def handler(m: Message) -> None:
        got.append(m)

    sub = bus.subscribe(bus_topic, unique("g"), handler)
    await bus.start()
    await asyncio.wait_for(sub, 60)
    message_id = await bus.publish(bus_topic, b'{"hello": 1}', key="k-1", tag="greet", properties={"p": "v"})
    await wait_until(lambda: len(got) == 1, 30, "the message")
    m = got[0]
    assert (m.topic, m.body, m.key, m.tag, m.properties.get("p")) == (
        bus_topic,
        b'{"hello": 1}',
        "k-1",
        "greet",
        "v",
    )
    assert m.message_id == message_id and m.attempt == 1 and m.publish_time > 0


async def test_each_group_gets_each_message_once(bus_factory, bus_topic) -> None:
    bus = bus_factory()
    got: dict[str, list[bytes]] = {"a": [], "b": []}

    def handler_for(name: str):
        async def handler(m: Message) -> None:
            got[name].append(m.body)

        return handler

    subs = [bus.subscribe(bus_topic, unique(name), handler_for(name)) for name in got]
    await bus.start()
    await asyncio.gather(*(asyncio.wait_for(s, 60) for s in subs))
    for i in range(3):
        await bus.publish(bus_topic, f"m{i}".encode())
    await wait_until(lambda: all(len(v) == 3 for v in got.values()), 30, "3 messages in both groups")
    await asyncio.sleep(1)
    assert sorted(got["a"]) == sorted(got["b"]) == [b"m0", b"m1", b"m2"]


async def test_tag_filter(bus_factory, bus_topic) -> None:
    bus = bus_factory()
    got: list[bytes] = []

    async def handler(m: Message) -> None:
        got.append(m.body)

    sub = bus.subscribe(bus_topic, unique("g"), handler, tag="wanted||also")
    await bus.start()
    await asyncio.wait_for(sub, 60)
    await bus.publish(bus_topic, b"skip-1", tag="other")
    await bus.publish(bus_topic, b"skip-2")
    await bus.publish(bus_topic, b"take-1", tag="wanted")
    await bus.publish(bus_topic, b"take-2", tag="also")
    await wait_until(lambda: len(got) == 2, 30, "the two tagged messages")
    await asyncio.sleep(1.5)
    assert sorted(got) == [b"take-1", b"take-2"]


async def test_handler_exception_is_retried_then_succeeds(bus_factory, bus_topic) -> None:
    bus = bus_factory(max_attempts=4)
    attempts: list[int] = []
    done = asyncio.Event()

    async def handler(m: Message) -> None:
        attempts.append(m.attempt)
        if len(attempts) < 3:
            raise RuntimeError("transient failure")
        done.set()

    sub = bus.subscribe(bus_topic, unique("g"), handler)
    await bus.start()
    await asyncio.wait_for(sub, 60)
    await bus.publish(bus_topic, b"flaky")
    await asyncio.wait_for(done.wait(), RETRY_WAIT_S)
    await asyncio.sleep(1.5)
    assert attempts == [1, 2, 3]


async def test_poison_goes_to_dead_letter_and_consumer_keeps_going(bus_factory, bus_topic) -> None:
    bus = bus_factory()
    handled: list[bytes] = []
    dead: list[Message] = []

    async def handler(m: Message) -> None:
        if m.body == b"poison":
            raise PoisonMessage("cannot parse")
        handled.append(m.body)

    async def dlq_handler(m: Message) -> None:
        dead.append(m)

    group = unique("g")
    subs = [
        bus.subscribe(bus_topic, group, handler),
        bus.subscribe(f"{bus_topic}_dlq", unique("dlq-reader"), dlq_handler),
    ]
    await bus.start()
    await asyncio.gather(*(asyncio.wait_for(s, 60) for s in subs))
    await bus.publish(bus_topic, b"poison", key="bad-1")
    await bus.publish(bus_topic, b"fine")
    await wait_until(lambda: handled == [b"fine"] and len(dead) == 1, 30, "good message and dead letter")
    d = dead[0]
    assert d.body == b"poison" and d.key == "bad-1"
    assert d.properties[DLQ_GROUP] == group and "poison: cannot parse" in d.properties[DLQ_REASON]
    assert d.properties[DLQ_ATTEMPTS] == "1"  # straight to the dead letter, no retries
    if isinstance(bus, EmbeddedBus):
        assert [m.body for m in bus.dead_letters[f"{bus_topic}_dlq"]] == [b"poison"]


async def test_gives_up_after_max_attempts(bus_factory, bus_topic) -> None:
    bus = bus_factory(max_attempts=2)
    attempts: list[int] = []
    dead: list[Message] = []

    async def handler(m: Message) -> None:
        attempts.append(m.attempt)
        raise RuntimeError("always broken")

    async def dlq_handler(m: Message) -> None:
        dead.append(m)

    subs = [
        bus.subscribe(bus_topic, unique("g"), handler),
        bus.subscribe(f"{bus_topic}_dlq", unique("dlq-reader"), dlq_handler),
    ]
    await bus.start()
    await asyncio.gather(*(asyncio.wait_for(s, 60) for s in subs))
    await bus.publish(bus_topic, b"doomed")
    await wait_until(lambda: len(dead) == 1, RETRY_WAIT_S, "the dead letter")
    await asyncio.sleep(1.5)
    assert attempts == [1, 2]
    assert "gave up after 2 attempts: RuntimeError: always broken" in dead[0].properties[DLQ_REASON]


async def test_close_waits_for_running_handler(bus_factory, bus_topic) -> None:
    bus = bus_factory()
    started, finished = asyncio.Event(), asyncio.Event()

    async def handler(m: Message) -> None:
        started.set()
        await asyncio.sleep(0.5)
        finished.set()

    sub = bus.subscribe(bus_topic, unique("g"), handler)
    await bus.start()
    await asyncio.wait_for(sub, 60)
    await bus.publish(bus_topic, b"slow")
    await asyncio.wait_for(started.wait(), 30)
    await bus.close()
    assert finished.is_set()


async def test_handler_slower_than_invisible_duration_is_not_redelivered(bus_factory, bus_topic) -> None:
    bus = bus_factory(invisible_duration_s=2)
    attempts: list[int] = []

    async def handler(m: Message) -> None:
        attempts.append(m.attempt)
        await asyncio.sleep(5)  # e.g. waiting for a pause in the conversation before speaking

    sub = bus.subscribe(bus_topic, unique("g"), handler)
    await bus.start()
    await asyncio.wait_for(sub, 60)
    await bus.publish(bus_topic, b"slow")
    await wait_until(lambda: len(attempts) == 1, 30, "the delivery")
    await asyncio.sleep(8)
    assert attempts == [1]


async def test_empty_body_and_use_after_close_are_refused(bus_factory, bus_topic) -> None:
    import pytest

    from messaging.bus import BusClosedError

    bus = bus_factory()
    await bus.start()
    with pytest.raises(ValueError, match="empty body"):
        await bus.publish(bus_topic, b"")
    await bus.close()
    with pytest.raises(BusClosedError, match="after close"):
        await bus.publish(bus_topic, b"{}")
    with pytest.raises(BusClosedError, match="after close"):
        bus.subscribe(bus_topic, unique("g"), lambda m: asyncio.sleep(0))
