"""Presence-aware outreach across two nodes on RocketMQ (``voice-agent serve`` child processes, one broker,
one delivery-ledger file, one phone directory; SIP enabled on both): every node receives every prompt,
exactly one node dials a user who is in no call, and no node dials a user who is in a live call on the
other node (that node says it in the call). The phones are SIPp callees; every INVITE they receive is
counted from their message traces."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
import yaml

from messaging.schemas import ProactivePrompt
from server.storage.delivery_ledger import open_delivery_ledger
from server.storage.presence import SqlPresence
from tests.e2e.conftest import NODE_A, NODE_B, common_env, rocketmq_env, wait_for
from tests.fixtures._sip_peers import free_port
from tests.server.caller import ServerProcess
from tests.server.phone.conftest import WAIT_FOR_BYE, scenario
from tests.server.transports.sip.conftest import scenario as sip_scenario

pytestmark = [pytest.mark.slow, pytest.mark.sip, pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]

USERS = ["olga", "oscar", "ola", "otto"]  # each in no call: rung by exactly one node
IN_CALL = "pia"  # in a call on node B: never rung


@pytest.fixture(scope="module")
def phones(tmp_path_factory: pytest.TempPathFactory, sipp_module) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    workdir = tmp_path_factory.mktemp("phones")
    answering = sipp_module.start(
        scenario("callee", workdir, ring_ms=300, middle="", end=WAIT_FOR_BYE), calls=len(USERS), timeout_s=300
    )
    refusing = sipp_module.start(
        scenario("callee", workdir, ring_ms=100, middle="", end=WAIT_FOR_BYE), timeout_s=300
    )  # pia's phone (the caller_silent scenario's number): must never get an INVITE
    return {"answering": answering, "refusing": refusing}


@pytest.fixture(scope="module")
def sipp_module(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from tests.fixtures.sipp import Sipp

    factory = Sipp(tmp_path_factory.mktemp("sipp"))
    try:
        yield factory
    finally:
        factory.stop_all()


@pytest.fixture(scope="module")
def sip_nodes(
    rocketmq_endpoint: str, tmp_path_factory: pytest.TempPathFactory, phones: dict[str, Any]
) -> Iterator[tuple[Path, dict[str, ServerProcess]]]:
    workdir = tmp_path_factory.mktemp("e2e-phone")
    answering, refusing = phones["answering"].port, phones["refusing"].port
    directory = [
        {"number": f"+1555000{i:04d}", "user_id": user, "sip_uri": f"sip:{user}@127.0.0.1:{answering}"}
        for i, user in enumerate(USERS)
    ] + [{"number": "+15551230006", "user_id": IN_CALL, "sip_uri": f"sip:{IN_CALL}@127.0.0.1:{refusing}"}]
    (workdir / "directory.yaml").write_text(yaml.safe_dump(directory))
    env = {
        **common_env(workdir),
        **rocketmq_env(rocketmq_endpoint),
        "VOICE_AGENT__SIP__ENABLED": "true",
        "VOICE_AGENT__SIP__NO_SPEECH_HANGUP_S": "12",
        "VOICE_AGENT__STORAGE__PHONE_DIRECTORY": str(workdir / "directory.sqlite3"),
        "VOICE_AGENT__PHONE__DIRECTORY_FILE": str(workdir / "directory.yaml"),
        "VOICE_AGENT__PHONE__OUTREACH__QUIET_HOURS": "null",
    }
    nodes = {
        node_id: ServerProcess(
            workdir / node_id,
            env={**env, "VOICE_AGENT__SERVER__NODE_ID": node_id, "VOICE_AGENT__SIP__UDP_PORT": str(free_port())},
        )
        for node_id in (NODE_A, NODE_B)
    }
    try:
        with ThreadPoolExecutor(2) as pool:
            for future in [pool.submit(n.start) for n in nodes.values()]:
                future.result()
        yield workdir, nodes
    finally:
        for node in nodes.values():
            node.stop()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def bus(rocketmq_endpoint: str):  # type: ignore[no-untyped-def]
    from messaging.config import BusConfig, RocketMQConfig
    from messaging.registry import create_bus

    bus = create_bus(BusConfig(backend="rocketmq", rocketmq=RocketMQConfig(endpoints=rocketmq_endpoint)))
    await bus.start()
    yield bus
    await bus.close()


def prompt(user_id: str, text: str) -> ProactivePrompt:
    now = time.time()
    return ProactivePrompt(
        idempotency_key=f"e2e-phone:{user_id}:{time.monotonic_ns()}",
        user_id=user_id,
        text=text,
        created_at=now,
        expires_at=now + 600,
    )


def invites(run: Any) -> int:
    """INVITEs a SIPp callee received (its message trace logs every received message)."""
    return run.messages().count("INVITE sip:")


async def test_exactly_one_node_dials_each_offline_user(sip_nodes, phones, bus) -> None:  # type: ignore[no-untyped-def]
    workdir, nodes = sip_nodes
    ledger = open_delivery_ledger(workdir / "ledger.sqlite3")
    prompts = [prompt(user, f"Hello {user}, your order number {i} has shipped.") for i, user in enumerate(USERS)]
    try:
        for p in prompts:
            await bus.publish("voice_proactive", p.to_bytes(), key=p.user_id)

        async def all_delivered() -> bool:
            rows = [await ledger.get(p.idempotency_key) for p in prompts]
            return all(r is not None and r.status == "delivered" for r in rows)

        await wait_for(all_delivered, 120, "every prompt to be said on the phone")
        assert await asyncio.to_thread(phones["answering"].wait, 60) == 0, phones["answering"].logs()
        assert invites(phones["answering"]) == len(USERS)  # one INVITE per prompt, from whichever node
        dialled_by = []
        for p in prompts:
            events = await ledger.events(p.idempotency_key)
            claims = [e for e in events if e.status == "dial_claimed"]
            assert len(claims) == 1, events
            assert [e.status for e in events if e.status == "dialing"] == ["dialing"], events
            dialled_by.append(claims[0].node_id)
        print(f"\nprompts dialled by: {dialled_by}")
        for node_id, node in nodes.items():  # both nodes saw every prompt: the one that lost the claim says so
            log = node.log_path.read_text(errors="replace")
            lost = [p for p, by in zip(prompts, dialled_by, strict=True) if by != node_id]
            for p in lost:
                assert f"not dialling {p.user_id} for prompt {p.idempotency_key}" in log, (node_id, p.user_id)
    finally:
        ledger.close()


async def test_no_node_dials_a_user_in_a_live_call_on_the_other_node(
    sip_nodes, phones, bus, sipp_module, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    workdir, nodes = sip_nodes
    node_b = nodes[NODE_B]
    ledger = open_delivery_ledger(workdir / "ledger.sqlite3")
    presence = SqlPresence(ledger.engine)
    sip_b = f"127.0.0.1:{node_b.env['VOICE_AGENT__SIP__UDP_PORT']}"
    # A caller that never speaks: node B ends the call itself (the polite goodbye after no speech).
    sipp_module.start(sip_scenario("caller_silent", tmp_path, media=""), sip_b)
    try:

        async def present() -> list[str]:
            return await presence.where(IN_CALL, time.time() - 30)

        assert await wait_for(present, 30, "pia's call on node B to show in the presence table") == [NODE_B]
        p = prompt(IN_CALL, "Your library card has been renewed for another year.")
        await bus.publish("voice_proactive", p.to_bytes(), key=p.user_id)

        async def delivered() -> Any:
            record = await ledger.get(p.idempotency_key)
            return record if record is not None and record.status == "delivered" else None

        record = await wait_for(delivered, 60, "the prompt to be said in pia's call on node B")
        assert record.node_id == NODE_B
        events = await ledger.events(p.idempotency_key)
        assert not [e for e in events if e.status in ("dial_claimed", "dialing")], events
        assert invites(phones["refusing"]) == 0 and phones["refusing"].process.running()
    finally:
        ledger.close()
