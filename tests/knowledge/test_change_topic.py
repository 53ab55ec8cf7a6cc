"""Change data capture over the real message bus: ``knowledge_changes`` -> ``KnowledgeBase.change_handler``.

The same scenario on the embedded bus and on a real RocketMQ (``integration``): a valid upsert becomes
searchable, a delete removes it, a body with a bad schema is dead-lettered to ``<topic>_dlq`` at once
(reason in its properties, no retries) and the consumer goes on with the next good event. The knowledge
base is the real one: MiniLM embeddings, embedded SQLite store.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from knowledge.config import KnowledgeConfig
from knowledge.knowledge_base import KnowledgeBase
from messaging.bus import DLQ_ATTEMPTS, DLQ_GROUP, DLQ_REASON, Message, MessageBus
from messaging.config import BusConfig, RocketMQConfig
from messaging.embedded import EmbeddedBus
from messaging.registry import create_bus
from tests.messaging.harness import unique, wait_until

# RocketMQ: a consumer group's first receive can take a few seconds on a loaded 2-core box.
TIMEOUT_S = 60

LIGHTHOUSE = "The keeper of the Skerryvore lighthouse polishes the brass lamp every Tuesday at dawn."
ORCHARD = "Quince trees in the walled orchard are pruned in February, before the sap rises."


@pytest.fixture(params=["embedded", pytest.param("rocketmq", marks=pytest.mark.integration)])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def topic(backend: str, request: pytest.FixtureRequest) -> str:
    # RocketMQ: a topic (and its _dlq) no other test used, so the new group sees no leftovers.
    return str(request.getfixturevalue("rocketmq_topic")) if backend == "rocketmq" else "knowledge_changes"


@pytest.fixture
async def bus(backend: str, request: pytest.FixtureRequest) -> AsyncIterator[MessageBus]:
    endpoint = request.getfixturevalue("rocketmq_endpoint") if backend == "rocketmq" else "unused"
    rmq = RocketMQConfig(endpoints=endpoint, receive_wait_s=1, invisible_duration_s=20)
    fields: dict[str, Any] = {"max_attempts": 3, "retry_backoff_s": 1.0, "close_timeout_s": 5.0}
    b = create_bus(BusConfig(backend=backend, rocketmq=rmq, **fields))  # type: ignore[arg-type]
    yield b
    await b.close()


@pytest.fixture
async def kb(tmp_path: Path) -> AsyncIterator[KnowledgeBase]:
    cfg = KnowledgeConfig(embedded_path=str(tmp_path / "knowledge.sqlite3"), retry_backoff_s=0.05)
    base = KnowledgeBase(cfg)
    await base.start()
    yield base
    await base.close()


def event(**fields: Any) -> bytes:
    return json.dumps(fields).encode()


async def eventually(check: Callable[[], Any], what: str) -> None:
    """Poll an async ``check`` until it returns truthy (ingestion runs after the handler returned)."""
    deadline = asyncio.get_running_loop().time() + TIMEOUT_S
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out after {TIMEOUT_S}s waiting for {what}")
        await asyncio.sleep(0.05)


async def found(kb: KnowledgeBase, query: str) -> list[str]:
    return [h.doc_id for h in await kb.retriever.retrieve(query, k=3, filters={"source": "cdc"})]


async def test_change_events_on_the_bus_update_the_index_and_bad_ones_are_dead_lettered(
    bus: MessageBus, topic: str, kb: KnowledgeBase
) -> None:
    dead: list[Message] = []

    async def dlq_reader(m: Message) -> None:
        dead.append(m)

    group = unique("knowledge")
    subs = [
        bus.subscribe(topic, group, kb.change_handler),
        bus.subscribe(f"{topic}_dlq", unique("dlq-reader"), dlq_reader),
    ]
    await bus.start()
    await asyncio.gather(*(asyncio.wait_for(s, TIMEOUT_S) for s in subs))

    # 1. A valid upsert becomes searchable.
    await bus.publish(
        topic,
        event(op="upsert", doc_id="lighthouse", title="Keeper", tags=["ops"], content=LIGHTHOUSE, version=1),
        key="lighthouse",
    )

    async def lighthouse_found() -> bool:
        return "lighthouse" in await found(kb, "Skerryvore lighthouse keeper brass lamp")

    await eventually(lighthouse_found, "the upserted document to become searchable")
    record = await kb.ingestor.status("lighthouse")
    assert record is not None and (record.status, record.ready_version, record.source) == ("ready", 1, "cdc")

    # 2. A bad schema goes to the dead-letter topic at once; 3. the next good event is still processed.
    await bus.publish(topic, event(op="merge", doc_id="bad", content="x", version=1), key="bad-1")
    await bus.publish(topic, event(op="upsert", doc_id="orchard", content=ORCHARD, version=1), key="orchard")
    await wait_until(lambda: len(dead) == 1, TIMEOUT_S, "the dead letter")

    async def orchard_found() -> bool:
        return "orchard" in await found(kb, "pruning quince trees in the orchard")

    await eventually(orchard_found, "the good event after the bad one to become searchable")
    d = dead[0]
    assert json.loads(d.body)["op"] == "merge" and d.key == "bad-1"
    assert d.properties[DLQ_GROUP] == group
    assert "op: Input should be 'upsert' or 'delete'" in d.properties[DLQ_REASON]
    assert d.properties[DLQ_ATTEMPTS] == "1"  # permanent: dead-lettered without retries
    assert await kb.ingestor.status("bad") is None
    if isinstance(bus, EmbeddedBus):
        assert [m.body for m in bus.dead_letters[f"{topic}_dlq"]] == [d.body]

    # 4. A delete removes the document from search and from the status table.
    await bus.publish(topic, event(op="delete", doc_id="lighthouse", version=2), key="lighthouse")

    async def lighthouse_gone() -> bool:
        return "lighthouse" not in await found(kb, "Skerryvore lighthouse keeper brass lamp")

    await eventually(lighthouse_gone, "the deleted document to leave the index")
    assert await kb.ingestor.status("lighthouse") is None
    assert "orchard" in await found(kb, "quince orchard")
    await asyncio.sleep(1.0)  # nothing else may reach the dead-letter topic
    assert len(dead) == 1
