"""RocketMQ's broker+proxy killed with SIGKILL (no shutdown hook), mid-call and during a campaign, then
started again. The node (this process, RocketMQ bus) and ``voice-agent scheduler`` (a task of this process,
the same code as the command) share the broker, a ledger file and the scheduler's database.

While it is down: the caller in a call asks and is answered (the call path needs no broker); a prompt
sent from the admin API cannot be published and is kept for a retry (before: left ``failed``); a
campaign falls due and its prompts are kept likewise; the call's conversation events go to the node's
spool. After the restart: the prompts are published, spoken in the live call or held for the offline
user, the conversation events reach the scheduler; every prompt is accounted for."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
import sqlalchemy as sa

from server.node import VoiceNode, run_scheduler_process
from server.settings import Settings
from tests.faults.accounting import FaultReport, account, spoken_in, times_spoken
from tests.faults.nodes import ADMIN_TOKEN, answered, broker_settings, greeted, until
from tests.faults.services import OwnBroker

pytestmark = [pytest.mark.faults, pytest.mark.slow, pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]

BEFORE_TEXT = "Hello from before the crash."
MID_CALL_TEXT = "Your repair is booked for Monday morning."
CAMPAIGN_TEXT = "The pool is closed for cleaning on Saturday."


@dataclass
class BrokerDeployment:
    broker: OwnBroker
    node: VoiceNode
    settings: Settings

    async def admin(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        async with aiohttp.ClientSession(headers=headers) as http, http.request(
            method, f"{self.node.base_url}/api/admin{path}", json=body
        ) as resp:
            return resp.status, await resp.json()


@pytest.fixture(scope="module")
def broker() -> Iterator[OwnBroker]:
    own = OwnBroker()
    own.start()
    yield own
    own.destroy()


@contextlib.asynccontextmanager
async def broker_deployment(broker: OwnBroker, workdir: Path) -> AsyncIterator[BrokerDeployment]:
    """A node and ``voice-agent scheduler`` (a task here) on ``broker``, sharing files under ``workdir``."""
    settings = broker_settings(workdir, broker.endpoint, "rmq-node")
    stop = asyncio.Event()
    scheduler = asyncio.create_task(run_scheduler_process(broker_settings(workdir, broker.endpoint, "sched"), stop))
    node = VoiceNode(settings)
    await node.start()
    try:
        yield BrokerDeployment(broker, node, settings)
    finally:
        await node.stop()
        stop.set()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(scheduler, 30)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def deployment(broker: OwnBroker, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[BrokerDeployment]:
    async with broker_deployment(broker, tmp_path_factory.mktemp("broker-faults")) as d:
        yield d


async def _restart_broker(broker: OwnBroker) -> float:
    """Starts the broker again; returns when it answers (monotonic time)."""
    await asyncio.to_thread(broker.start_broker)
    return time.monotonic()


async def run_broker_kill_mid_call(d: BrokerDeployment) -> FaultReport:
    report = FaultReport("rocketmq broker SIGKILL mid-call")
    user = f"rmq-ann-{time.monotonic_ns() % 10**6}"
    caller = await greeted(d.node.base_url, user)
    status, first = await d.admin("POST", "/prompts", {"user_id": user, "text": BEFORE_TEXT})
    keys = [first["idempotency_key"]]
    report.checks["prompt before the crash published"] = status == 202
    report.checks["prompt before the crash spoken"] = (
        await until(lambda: _status_is(d.node, keys[0], "delivered"), 60) is not None
    )
    await caller.wait_quiet(1.0, timeout=60)

    down_at = time.monotonic()
    await asyncio.to_thread(d.broker.kill_broker)
    report.checks["caller answered while the broker is down"] = await answered(caller)
    status, during = await d.admin("POST", "/prompts", {"user_id": user, "text": MID_CALL_TEXT})
    keys.append(during["idempotency_key"])
    report.checks["admin send during the outage answered (502, kept for retry)"] = status == 502
    row = await d.node.ledger.get(during["idempotency_key"])
    report.checks["refused prompt kept for a retry"] = row is not None and row.status == "deferred"
    back_at = await _restart_broker(d.broker)
    report.outage_s = back_at - down_at

    async def spoken() -> bool:  # to its end: the ledger says delivered once the line was heard out
        return await _status_is(d.node, keys[1], "delivered") and spoken_in(await caller.record(), MID_CALL_TEXT)

    waited = await until(spoken, 120)
    report.recovery_s = waited
    report.checks["prompt from the outage spoken after the restart"] = waited is not None
    report.checks["conversation events of the outage reach the scheduler"] = (
        await until(lambda: _turn_recorded(d.settings, caller.call_id), 60) is not None
    )
    report.checks["caller answered after the restart"] = await answered(caller)
    record = await caller.record()
    report.checks["each prompt spoken once"] = [
        times_spoken(record, text) for text in (BEFORE_TEXT, MID_CALL_TEXT)
    ] == [1, 1]
    await caller.hangup()
    report.prompts = await account(d.node.ledger, keys)
    return report


async def run_broker_kill_during_campaign(d: BrokerDeployment) -> FaultReport:
    report = FaultReport("rocketmq broker SIGKILL during a campaign")
    tag = time.monotonic_ns() % 10**6
    online, offline = f"rmq-bo-{tag}", f"rmq-cy-{tag}"
    caller = await greeted(d.node.base_url, online)
    at = time.time() + 6
    at_iso = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(at)) + "+00:00"
    spec = {"name": "crash campaign", "audience": {"user_ids": [online, offline]}, "message": CAMPAIGN_TEXT,
            "schedule": {"at": at_iso}}
    status, campaign = await d.admin("POST", "/campaigns", spec)
    report.checks["campaign created"] = status == 201
    await asyncio.sleep(1)
    down_at = time.monotonic()
    await asyncio.to_thread(d.broker.kill_broker)
    await asyncio.sleep(max(0.0, at + 8 - time.time()))  # the run falls due and its publishes fail
    report.checks["caller answered while the broker is down"] = await answered(caller)
    back_at = await _restart_broker(d.broker)
    report.outage_s = back_at - down_at

    async def settled() -> bool:
        _, data = await d.admin("GET", f"/campaigns/{campaign['id']}/deliveries")
        statuses = {row["user_id"]: row["status"] for row in data["deliveries"]}
        return statuses == {online: "delivered", offline: "pending"} and spoken_in(await caller.record(), CAMPAIGN_TEXT)

    report.recovery_s = await until(settled, 150)
    report.checks["campaign spoken to the caller and held for the offline user"] = report.recovery_s is not None
    _, data = await d.admin("GET", f"/campaigns/{campaign['id']}/deliveries")
    keys = [row["idempotency_key"] for row in data["deliveries"]]
    report.checks["one prompt per audience user"] = len(keys) == 2
    report.checks["campaign prompt spoken once"] = times_spoken(await caller.record(), CAMPAIGN_TEXT) == 1
    await caller.hangup()
    report.prompts = await account(d.node.ledger, keys)
    return report


async def _status_is(node: VoiceNode, key: str, status: str) -> bool:
    row = await node.ledger.get(key)
    return row is not None and row.status == status


async def _turn_recorded(settings: Settings, call_id: str) -> bool:
    """The scheduler's conversation log has the caller's words of ``call_id`` (sent as events): the
    question asked during the outage, the caller's only words so far (``call_started`` records no turn)."""
    from scheduler.db import conversation_turns, create_engine

    def query() -> int:
        engine = create_engine(settings.scheduler.jobstore_url)
        try:
            with engine.connect() as conn:
                return int(conn.execute(
                    sa.select(sa.func.count()).where(
                        conversation_turns.c.conversation_id == call_id, conversation_turns.c.role == "user"
                    )
                ).scalar_one())
        finally:
            engine.dispose()

    return await asyncio.to_thread(query) >= 1


async def test_broker_killed_mid_call(deployment: BrokerDeployment) -> None:
    report = await run_broker_kill_mid_call(deployment)
    print(f"\n{report.as_dict()}")
    assert report.survived, report.as_dict()
    assert report.recovery_s is not None and report.recovery_s <= 30, report.as_dict()


async def test_broker_killed_during_a_campaign(deployment: BrokerDeployment) -> None:
    report = await run_broker_kill_during_campaign(deployment)
    print(f"\n{report.as_dict()}")
    assert report.survived, report.as_dict()
    assert report.recovery_s is not None and report.recovery_s <= 30, report.as_dict()
