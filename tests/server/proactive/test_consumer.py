"""ProactivePromptConsumer end to end over a real bus (embedded and RocketMQ): exactly-once speech,
expiry, offline users, several nodes, poison prompts, and a broker restart."""

from __future__ import annotations

import asyncio
import time

import pytest

from messaging.bus import Message
from messaging.schemas import ProactivePrompt
from server.proactive import ProactivePromptConsumer
from server.storage.delivery_ledger import SqlDeliveryLedger, open_delivery_ledger
from tests.messaging.harness import unique, wait_until
from tests.server.proactive.fakes import FakeLiveCall, FakeSessionDirectory


async def _status(ledger: SqlDeliveryLedger, key: str) -> str | None:
    rec = await ledger.get(key)
    return rec.status if rec else None


async def wait_status(ledger: SqlDeliveryLedger, key: str, status: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while (current := await _status(ledger, key)) != status:
        if time.monotonic() > deadline:
            raise AssertionError(f"{key}: status {current!r} after {timeout}s, expected {status!r}")
        await asyncio.sleep(0.05)


def _prompt(user: str = "u1", key: str | None = None, **kw: object) -> ProactivePrompt:
    return ProactivePrompt(idempotency_key=key or unique("k"), user_id=user, text="Shall we continue?", **kw)  # type: ignore[arg-type]


async def _start_node(bus, topic, directory, ledger, node_id: str) -> ProactivePromptConsumer:
    consumer = ProactivePromptConsumer(
        bus, directory, ledger, node_id=node_id, topic=topic, group_prefix=unique("px")
    )
    sub = consumer.subscribe()
    await bus.start()
    await asyncio.wait_for(sub, 60)
    return consumer


async def test_duplicate_idempotency_key_is_spoken_once(bus_factory, bus_topic, tmp_path) -> None:
    bus = bus_factory()
    ledger = open_delivery_ledger(tmp_path / "ledger.sqlite3")
    call = FakeLiveCall("u1")
    await _start_node(bus, bus_topic, FakeSessionDirectory(call), ledger, "node-a")
    first = _prompt(key="campaign-7:u1")
    again = first.model_copy(update={"message_id": "republished"})
    await bus.publish(bus_topic, first.to_bytes(), key=first.idempotency_key)
    await bus.publish(bus_topic, again.to_bytes(), key=first.idempotency_key)
    await wait_status(ledger, first.idempotency_key, "delivered")
    deadline = time.monotonic() + 30
    while "duplicate" not in [e.status for e in await ledger.events(first.idempotency_key)]:
        assert time.monotonic() < deadline, "second copy never reached the consumer"
        await asyncio.sleep(0.05)
    # Spoken once; which copy wins the claim is up to the consumer's concurrency (either is correct).
    assert len(call.spoken) == 1 and call.spoken[0][0] == "Shall we continue?", call.spoken
    assert call.spoken[0][1] in (first.message_id, again.message_id)
    rec = await ledger.get(first.idempotency_key)
    assert rec is not None and rec.node_id == "node-a" and rec.delivered_at is not None


async def test_expired_prompt_is_not_spoken_and_recorded(bus_factory, bus_topic, tmp_path) -> None:
    bus = bus_factory()
    ledger = open_delivery_ledger(tmp_path / "ledger.sqlite3")
    call = FakeLiveCall("u1")
    await _start_node(bus, bus_topic, FakeSessionDirectory(call), ledger, "node-a")
    now = time.time()
    p = _prompt(created_at=now - 120, expires_at=now - 60)
    await bus.publish(bus_topic, p.to_bytes())
    await wait_status(ledger, p.idempotency_key, "expired")
    assert call.spoken == []


async def test_offline_user_gets_prompt_once_at_next_call(bus_factory, bus_topic, tmp_path) -> None:
    bus = bus_factory()
    ledger = open_delivery_ledger(tmp_path / "ledger.sqlite3")
    consumer = await _start_node(bus, bus_topic, FakeSessionDirectory(), ledger, "node-a")
    p = _prompt(user="offline-user", priority=2)
    await bus.publish(bus_topic, p.to_bytes())
    await wait_status(ledger, p.idempotency_key, "pending")
    popped = await consumer.pop_pending("offline-user")
    assert [(q.idempotency_key, q.text) for q in popped] == [(p.idempotency_key, "Shall we continue?")]
    assert await consumer.pop_pending("offline-user") == []
    assert await _status(ledger, p.idempotency_key) == "delivered"


async def test_not_spoken_prompt_is_held_for_the_next_call(bus_factory, bus_topic, tmp_path) -> None:
    bus = bus_factory()
    ledger = open_delivery_ledger(tmp_path / "ledger.sqlite3")
    call = FakeLiveCall("u1", result=False)  # e.g. the caller never paused
    consumer = await _start_node(bus, bus_topic, FakeSessionDirectory(call), ledger, "node-a")
    p = _prompt()
    await bus.publish(bus_topic, p.to_bytes())
    await wait_until(lambda: len(call.spoken) == 1, 30, "the speak attempt")
    await wait_status(ledger, p.idempotency_key, "pending")
    assert [e.status for e in await ledger.events(p.idempotency_key)] == ["claimed", "failed"]
    assert [q.idempotency_key for q in await consumer.pop_pending("u1")] == [p.idempotency_key]


async def test_two_nodes_exactly_one_speaks(bus_factory, bus_backend, bus_topic, tmp_path) -> None:
    """Two nodes, each its own consumer group and directory, one shared ledger. u1 is only on node A;
    u2 is (worst case) on both: each prompt is spoken exactly once and nothing is left pending."""
    ledger_path = tmp_path / "shared.sqlite3"
    bus_a = bus_factory()
    # Nodes share the broker; the embedded bus is per process, so there both "nodes" share one instance.
    bus_b = bus_factory() if bus_backend == "rocketmq" else bus_a
    a_u1, a_u2, b_u2 = FakeLiveCall("u1"), FakeLiveCall("u2"), FakeLiveCall("u2")
    led_a, led_b = open_delivery_ledger(ledger_path), open_delivery_ledger(ledger_path)
    prefix = unique("px")
    nodes = [
        ProactivePromptConsumer(
            bus_a, FakeSessionDirectory(a_u1, a_u2), led_a, "node-a", topic=bus_topic, group_prefix=prefix
        ),
        ProactivePromptConsumer(
            bus_b, FakeSessionDirectory(b_u2), led_b, "node-b", topic=bus_topic, group_prefix=prefix
        ),
    ]
    subs = [n.subscribe() for n in nodes]
    assert nodes[0].group != nodes[1].group
    for bus in [bus_a] if bus_b is bus_a else [bus_a, bus_b]:
        await bus.start()
    await asyncio.gather(*(asyncio.wait_for(s, 60) for s in subs))
    p1, p2 = _prompt("u1"), _prompt("u2")
    for p in (p1, p2):
        await bus_a.publish(bus_topic, p.to_bytes(), key=p.idempotency_key)
    await wait_status(led_a, p1.idempotency_key, "delivered")
    await wait_status(led_a, p2.idempotency_key, "delivered")
    # Both nodes must have seen both prompts (the losing node records a duplicate or holds nothing).
    deadline = time.monotonic() + 30
    while len({e.node_id for e in await led_a.events(p2.idempotency_key)}) < 2:
        assert time.monotonic() < deadline, "node B never saw the u2 prompt"
        await asyncio.sleep(0.05)
    await asyncio.sleep(1)
    assert len(a_u1.spoken) == 1
    assert len(a_u2.spoken) + len(b_u2.spoken) == 1
    assert (await led_a.get(p1.idempotency_key)).node_id == "node-a"  # type: ignore[union-attr]


async def test_poison_prompt_is_dead_lettered_and_delivery_continues(
    bus_factory, bus_topic, tmp_path
) -> None:
    bus = bus_factory()
    ledger = open_delivery_ledger(tmp_path / "ledger.sqlite3")
    call = FakeLiveCall("u1")
    dead: list[Message] = []

    async def on_dead(m: Message) -> None:
        dead.append(m)

    dlq_sub = bus.subscribe(f"{bus_topic}_dlq", unique("dlq"), on_dead)
    await _start_node(bus, bus_topic, FakeSessionDirectory(call), ledger, "node-a")
    await asyncio.wait_for(dlq_sub, 60)
    await bus.publish(bus_topic, b'{"user_id": "u1"}')
    p = _prompt()
    await bus.publish(bus_topic, p.to_bytes())
    await wait_status(ledger, p.idempotency_key, "delivered")
    for _ in range(600):  # the poison goes to the dead-letter topic once, not into a retry loop
        if dead:
            break
        await asyncio.sleep(0.1)
    assert [m.body for m in dead] == [b'{"user_id": "u1"}'], dead
    assert [text for text, _ in call.spoken] == [p.spoken_text]


@pytest.mark.integration
@pytest.mark.parametrize("bus_backend", ["rocketmq"], indirect=True)
async def test_broker_restart_with_prompts_in_flight(
    bus_factory, bus_topic, rocketmq_broker, tmp_path
) -> None:
    """Prompt 1 is being spoken when the broker goes away (its ack fails); prompt 2 is published while the
    broker is down. After the broker is back both are spoken, each once, and nothing crashed."""
    bus = bus_factory(invisible_duration_s=15, publish_timeout_s=120)
    ledger = open_delivery_ledger(tmp_path / "ledger.sqlite3")
    gate = asyncio.Event()
    call = FakeLiveCall("u1", gate=gate)
    await _start_node(bus, bus_topic, FakeSessionDirectory(call), ledger, "node-a")
    p1, p2 = _prompt(), _prompt()
    await bus.publish(bus_topic, p1.to_bytes())
    await asyncio.wait_for(call.speaking.wait(), 30)

    await asyncio.to_thread(rocketmq_broker.stop_broker, 3)  # 3 s of SIGTERM, then killed: like a crash
    late_publish = asyncio.create_task(bus.publish(bus_topic, p2.to_bytes()))
    gate.set()  # prompt 1 finishes speaking while the broker is down
    await wait_status(ledger, p1.idempotency_key, "delivered")
    await asyncio.sleep(2)
    assert not late_publish.done()
    await asyncio.to_thread(rocketmq_broker.start_broker)

    await asyncio.wait_for(late_publish, 120)
    await wait_status(ledger, p2.idempotency_key, "delivered", timeout=90)
    await asyncio.sleep(1)
    assert sorted(m for _, m in call.spoken) == sorted([p1.message_id, p2.message_id])
