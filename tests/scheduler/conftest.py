"""Fixtures of the scheduler tests: a real embedded bus, a prompt collector and a service factory."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from messaging.bus import Message
from messaging.config import BusConfig
from messaging.embedded import EmbeddedBus
from scheduler.config import SchedulerConfig
from scheduler.publishing import BusPromptPublisher
from scheduler.service import SchedulerService
from server.storage.delivery_ledger import SqlDeliveryLedger, open_delivery_ledger

PROACTIVE = "voice_proactive"


@dataclass
class PromptCollector:
    """Subscribes to ``voice_proactive`` like the RTC server does and keeps what arrives."""

    messages: list[Message] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, message: Message) -> None:
        self.messages.append(message)
        self.arrived.set()

    def bodies(self) -> list[dict[str, Any]]:
        return [json.loads(m.body) for m in self.messages]

    async def wait_for(self, count: int, timeout_s: float) -> list[dict[str, Any]]:
        async def enough() -> None:
            while len(self.messages) < count:
                self.arrived.clear()
                await self.arrived.wait()

        await asyncio.wait_for(enough(), timeout_s)
        return self.bodies()


@pytest.fixture
async def bus() -> AsyncIterator[EmbeddedBus]:
    bus = EmbeddedBus(BusConfig(retry_backoff_s=0.05))
    yield bus
    await bus.close()


@pytest.fixture
async def collector(bus: EmbeddedBus) -> PromptCollector:
    collector = PromptCollector()
    bus.subscribe(PROACTIVE, "test-rtc", collector.handle)
    await bus.start()
    return collector


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'scheduler.sqlite3'}"


@pytest.fixture
def deliveries(tmp_path: Path) -> Iterator[SqlDeliveryLedger]:
    """The delivery ledger the scheduler shares with the RTC nodes (what ``server.node`` hands in)."""
    ledger = open_delivery_ledger(tmp_path / "ledger.sqlite3")
    yield ledger
    ledger.close()


ServiceFactory = Callable[..., SchedulerService]


@pytest.fixture
async def make_service(
    db_url: str, bus: EmbeddedBus, deliveries: SqlDeliveryLedger
) -> AsyncIterator[ServiceFactory]:
    started: list[SchedulerService] = []

    def factory(**kwargs: Any) -> SchedulerService:
        values: dict[str, Any] = {"jobstore_url": db_url, "per_user_min_interval_s": 0}
        values.update({k: kwargs.pop(k) for k in list(kwargs) if k in SchedulerConfig.model_fields})
        config = SchedulerConfig(**values)
        service = SchedulerService(config, BusPromptPublisher(bus, PROACTIVE), deliveries, **kwargs)
        started.append(service)
        return service

    yield factory
    for service in started:
        await service.stop()


async def eventually(check: Callable[[], Any], timeout_s: float = 5.0) -> Any:
    """``check()`` (run in a worker thread: it may query the database) until it returns something truthy.

    A job's last steps (marking a campaign run, completing it) happen after its prompts are on the bus."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not (value := await asyncio.to_thread(check)):
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"not true within {timeout_s} s: {check}")
        await asyncio.sleep(0.05)
    return value

