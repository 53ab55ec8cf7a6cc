"""One of two server nodes SIGKILLed with calls in progress. Both nodes share a RocketMQ broker and one
PostgreSQL (delivery ledger, presence, call records); the survivor runs in this process, the victim is
``voice-agent serve`` in a child process, so it can die for real (``kill -9``: no shutdown hook clears
its presence rows or releases its ledger claims).

At the kill the victim is in the middle of speaking a prompt to its caller: the ledger row is ``claimed``
by a node that will never finish it. Before the fix that row stayed ``claimed`` for good (only the dead
node's own consumer group would have seen the message again): the prompt was lost. Now a claim whose node
no longer shows the user's call in the presence table (the victim's rows stop being refreshed) is
released by the survivor and spoken in the user's next call.

Checks: the survivor's caller is answered after the kill and hears a prompt published after it; a
prompt published for the dead node's user after the kill is held (not lost, not dead-lettered); the
user calls back, reaching the survivor, and hears both the interrupted prompt and the held one; the dead
node's presence rows stop counting; every prompt is accounted for. Recovery: seconds from the kill to
the dead node's user having heard both prompts in the new call."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from tests.faults.accounting import FaultReport, account, ledger_history, spoken_in
from tests.faults.nodes import answered, broker_settings, greeted, prompt, running_node, until
from tests.server.caller import RTCCaller, ServerProcess

pytestmark = [pytest.mark.faults, pytest.mark.slow, pytest.mark.integration]

HEARTBEAT_S = 2.0  # presence heartbeat of both nodes: a dead node's rows stop counting after 3 of them
INTERRUPTED_TEXT = (
    "Your quarterly statement is ready. It lists every payment from the last three months, "
    "the interest earned, and the fees we waived for you this year."
)
HELD_TEXT = "Your new card will arrive on Tuesday."
SURVIVOR_TEXT = "The branch closes early on Friday."


def victim_env(workdir: Path, endpoint: str, dsn: str) -> dict[str, str]:
    """``voice-agent serve`` on the survivor's broker and database (``broker_settings`` as variables)."""
    return {
        "VOICE_AGENT__SERVER__NODE_ID": "victim",
        "VOICE_AGENT__BUS__BACKEND": "rocketmq",
        "VOICE_AGENT__BUS__ROCKETMQ__ENDPOINTS": endpoint,
        "VOICE_AGENT__BUS__ROCKETMQ__RECEIVE_WAIT_S": "2",
        "VOICE_AGENT__STORAGE__DELIVERY_LEDGER": dsn,
        "VOICE_AGENT__STORAGE__RECORDS": dsn,
        "VOICE_AGENT__STORAGE__PHONE_DIRECTORY": str(workdir / "phone.sqlite3"),
        "VOICE_AGENT__STORAGE__SPOOL_DIR": str(workdir / "spool"),
        "VOICE_AGENT__SCHEDULER__JOBSTORE_URL": f"sqlite:///{workdir / 'jobs.sqlite3'}",
        "VOICE_AGENT__PHONE__PRESENCE_HEARTBEAT_S": str(HEARTBEAT_S),
        "VOICE_AGENT__AGENT__FIRST_TOKEN_TIMEOUT_S": "20",
    }


async def run_node_kill(endpoint: str, dsn: str, workdir: Path) -> FaultReport:
    report = FaultReport("one of two nodes SIGKILLed with calls in progress")
    settings = broker_settings(workdir / "survivor", endpoint, "survivor")
    settings.storage.delivery_ledger = settings.storage.records = dsn
    settings.storage.spool_dir = str(workdir / "survivor" / "spool")
    settings.phone.presence_heartbeat_s = HEARTBEAT_S
    victim = ServerProcess(workdir / "victim", env=victim_env(workdir / "victim", endpoint, dsn))
    tag = str(time.monotonic_ns())[-6:]
    ann, bob = f"node-ann-{tag}", f"node-bob-{tag}"
    starting = asyncio.create_task(asyncio.to_thread(victim.start))  # models load while the survivor starts
    try:
        async with running_node(settings) as node:
            await starting
            topic = settings.bus.topic_proactive
            staying = await greeted(node.base_url, ann)
            dropped = await greeted(victim.base_url, bob)
            interrupted = prompt(bob, INTERRUPTED_TEXT)
            keys = [interrupted.idempotency_key]
            sent = time.monotonic()
            await node.bus.publish(topic, interrupted.to_bytes(), key=bob)

            async def victim_speaking() -> bool:
                row = await node.ledger.get(interrupted.idempotency_key)
                return row is not None and row.status == "claimed" and row.node_id == "victim"

            report.checks["the victim claimed the prompt"] = await until(victim_speaking, 60) is not None
            await dropped.reply_start(after=sent, timeout=60)
            await asyncio.sleep(1.0)  # mid-sentence
            victim.proc.kill()
            down_at, killed_wall = time.monotonic(), time.time()
            await asyncio.to_thread(victim.proc.wait, 10)
            await dropped.hangup()

            held, for_ann = prompt(bob, HELD_TEXT), prompt(ann, SURVIVOR_TEXT)
            keys += [held.idempotency_key, for_ann.idempotency_key]
            await node.bus.publish(topic, held.to_bytes(), key=bob)
            report.checks["survivor's caller answered after the kill"] = await answered(staying)
            await node.bus.publish(topic, for_ann.to_bytes(), key=ann)  # after the question: not cut off by it

            async def held_for_bob() -> bool:
                row = await node.ledger.get(held.idempotency_key)
                return row is not None and row.status == "pending"

            report.checks["prompt for the dead node's user held"] = await until(held_for_bob, 60) is not None
            report.checks["prompt for the survivor's caller spoken"] = (
                await until(lambda: _spoken(node, staying, for_ann.idempotency_key, SURVIVOR_TEXT), 60)
                is not None
            )

            back = RTCCaller(node.base_url, user_id=bob)  # the user calls again and reaches the survivor
            await back.connect()

            async def both_heard() -> bool:
                return all([
                    await _spoken(node, back, interrupted.idempotency_key, INTERRUPTED_TEXT),
                    await _spoken(node, back, held.idempotency_key, HELD_TEXT),
                ])

            heard = await until(both_heard, 90)
            report.recovery_s = None if heard is None else time.monotonic() - down_at
            report.checks["dead node's user hears the interrupted and the held prompt"] = heard is not None
            window = 3 * HEARTBEAT_S
            report.checks["dead node's presence no longer counts"] = "victim" not in await node.phone.presence_store.where(
                bob, time.time() - window
            )
            report.outage_s = time.monotonic() - down_at
            released = [e.at for e in await node.ledger.events(interrupted.idempotency_key) if e.status == "released"]
            if released:
                report.notes.append(f"dead node's claim released {released[0] - killed_wall:.1f} s after the kill")
            await back.wait_quiet(1.5, timeout=60)  # the greeting's last prompt played out: not cut by the hang-up
            await back.hangup()
            await staying.hangup()
            report.prompts = await account(node.ledger, keys)
            report.checks["every prompt spoken (each user is in a call again)"] = report.prompts.spoken == len(keys)
            report.notes += [await ledger_history(node.ledger, key) for key in keys]
    finally:
        victim.stop()
        if not starting.done():
            starting.cancel()
    return report


async def _spoken(node: object, caller: RTCCaller, key: str, text: str) -> bool:
    row = await node.ledger.get(key)  # type: ignore[attr-defined]
    return row is not None and row.status == "delivered" and spoken_in(await caller.record(), text)


async def test_one_of_two_nodes_killed(rocketmq_endpoint: str, postgres_dsn: str, tmp_path: Path) -> None:
    report = await run_node_kill(rocketmq_endpoint, postgres_dsn, tmp_path)
    print(f"\n{report.as_dict()}")
    assert report.survived, report.as_dict()
    assert report.recovery_s is not None and report.recovery_s <= 60, report.as_dict()
