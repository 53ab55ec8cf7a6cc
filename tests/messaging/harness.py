"""Shared test harness: the same behaviour tests run on the embedded bus and on a real RocketMQ.

``bus_factory`` is parametrized over both backends (RocketMQ ones are marked ``integration``); calling it
returns a started-later bus that is closed at teardown. ``bus_topic`` is a fresh topic for the test.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from messaging.bus import MessageBus
from messaging.config import BusConfig, RocketMQConfig
from messaging.registry import create_bus

_embedded_topics = itertools.count()

BACKENDS = ["embedded", pytest.param("rocketmq", marks=pytest.mark.integration)]


@pytest.fixture(params=BACKENDS)
def bus_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def bus_topic(bus_backend: str, request: pytest.FixtureRequest) -> str:
    if bus_backend == "rocketmq":
        return str(request.getfixturevalue("rocketmq_topic"))
    return f"voice_test_embedded_{next(_embedded_topics)}"


@pytest.fixture
async def bus_factory(
    bus_backend: str, request: pytest.FixtureRequest
) -> AsyncIterator[Callable[..., MessageBus]]:
    endpoint = request.getfixturevalue("rocketmq_endpoint") if bus_backend == "rocketmq" else "unused"
    made: list[MessageBus] = []

    def make(**overrides: Any) -> MessageBus:
        rmq = RocketMQConfig(
            endpoints=endpoint,
            receive_wait_s=1,
            invisible_duration_s=overrides.pop("invisible_duration_s", 20),
            publish_timeout_s=overrides.pop("publish_timeout_s", 30),
        )
        # RocketMQ rounds invisible durations up to whole seconds; the embedded bus can retry faster.
        backoff = 1.0 if bus_backend == "rocketmq" else 0.1
        fields: dict[str, Any] = {"max_attempts": 3, "retry_backoff_s": backoff, "close_timeout_s": 5.0}
        fields.update(overrides)
        bus = create_bus(BusConfig(backend=bus_backend, rocketmq=rmq, **fields))  # type: ignore[arg-type]
        made.append(bus)
        return bus

    yield make
    await asyncio.gather(*(b.close() for b in made))


def unique(prefix: str) -> str:
    return f"{prefix}-{time.time_ns()}"


async def wait_until(cond: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.05)
