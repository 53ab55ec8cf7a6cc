"""The proactive loop, end to end: admin API / scheduler -> bus -> node -> words heard by a real caller.

Every check is on content: the caller's received audio is transcribed with faster-whisper (tiny.en, on
Opus audio: at least 60 % of the prompt's words must be heard), and the call records and the shared
delivery ledger must show what happened. Timing tolerances are generous (2 shared cores).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import datetime
from typing import Any

import pytest

from messaging.schemas import ProactivePrompt
from tests.e2e.conftest import NODE_A, NODE_B, Deployment, new_user, wait_for
from tests.server.caller import VOICE_RMS, RTCCaller, transcribe, word_recall, words

pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="session")]

BOTH = [pytest.param("embedded"), pytest.param("rocketmq", marks=pytest.mark.integration)]
ROCKETMQ = [pytest.param("rocketmq", marks=pytest.mark.integration)]

CAMPAIGN_TEXT = "Your library books are due back on Friday."
HELD_TEXT = "Your new bank card was posted this morning."
EXPIRED_TEXT = "The umbrella discount ended at noon."
DUPLICATE_TEXT = "Please remember to water the tomato plants tonight."
CROSS_NODE_TEXT = "Your parcel will arrive tomorrow before lunch."
MIN_RECALL = 0.6


async def greeted_caller(deployment: Deployment, user_id: str) -> tuple[RTCCaller, float]:
    """A caller in a call, after the greeting was heard; returns it and the greeting's first audio."""
    caller = deployment.caller(user_id)
    await caller.connect()
    greeting = await caller.reply_start(after=0.0, timeout=40)
    await caller.wait_quiet(1.0, timeout=40)
    return caller, greeting


async def heard_since(caller: RTCCaller, first: float, quiet_s: float = 1.5) -> str:
    await caller.wait_quiet(quiet_s, timeout=60)
    return await transcribe(caller.audio_since(first))


def proactive_entries(record: dict[str, Any], text: str) -> list[dict[str, Any]]:
    return [e for e in record["transcript"] if e["source"] == "proactive" and e["text"] == text]


def wall_time(monotonic_t: float) -> float:
    return time.time() - (time.monotonic() - monotonic_t)


@pytest.mark.parametrize("deployment", BOTH, indirect=True)
async def test_campaign_is_spoken_in_the_live_call(deployment: Deployment) -> None:
    """(a) A campaign scheduled 'now + 2 s' through the admin API is heard by the user in a call, and the
    admin API reports it delivered."""
    user = new_user("campaign")
    caller, _ = await greeted_caller(deployment, user)
    try:
        campaign = await deployment.admin.create_campaign("e2e library", user, CAMPAIGN_TEXT, time.time() + 2)
        first = await caller.reply_start(after=time.monotonic(), timeout=40)
        heard = await heard_since(caller, first)
        assert word_recall(CAMPAIGN_TEXT, heard) >= MIN_RECALL, heard

        async def delivered() -> list[dict[str, Any]] | None:
            rows = await deployment.admin.deliveries(campaign["id"])
            return rows if rows and all(r["status"] == "delivered" for r in rows) else None

        rows = await wait_for(delivered, 20, "the campaign delivery to show 'delivered'")
        assert [r["user_id"] for r in rows] == [user]
        published = datetime.fromisoformat(rows[0]["run_at"]).timestamp()
        latency = wall_time(first) - published
        print(
            f"\n[{deployment.backend}] campaign publish -> first audio at the caller: {latency:.3f} s; heard {heard!r}"
        )
        assert 0 < latency < 15, latency
        record = await deployment.admin.call_record(caller.call_id)
        assert len(proactive_entries(record, CAMPAIGN_TEXT)) == 1, record["transcript"]
    finally:
        await caller.hangup()


@pytest.mark.parametrize("deployment", BOTH, indirect=True)
async def test_held_prompt_is_spoken_at_the_next_call_and_an_expired_one_is_not(
    deployment: Deployment,
) -> None:
    """(b) Prompts sent while the user is offline are held; at the next call the unexpired one is spoken
    after the greeting, the one that expired meanwhile never is."""
    user = new_user("held")
    sender = deployment.other_admin or deployment.admin  # RocketMQ: published by the node not called
    held = await sender.send_now(user, HELD_TEXT)
    expired = await sender.send_now(user, EXPIRED_TEXT, ttl_s=1)
    ledger = deployment.ledger()
    try:

        async def status(key: str) -> str | None:
            record = await ledger.get(key)
            return None if record is None else record.status

        async def both_held() -> bool:
            return await status(held["idempotency_key"]) == "pending" and await status(
                expired["idempotency_key"]
            ) in ("pending", "expired")

        await wait_for(both_held, 20, "both prompts to be held for the offline user")
        await asyncio.sleep(
            max(0.0, datetime.fromisoformat(expired["expires_at"]).timestamp() - time.time()) + 0.5
        )

        caller = deployment.caller(user)
        await caller.connect()
        try:
            greeting = await caller.reply_start(after=0.0, timeout=40)

            async def spoken() -> bool:
                record = await deployment.admin.call_record(caller.call_id)
                return any(e["source"] == "proactive" for e in record["transcript"])

            await wait_for(spoken, 40, "the held prompt to start after the greeting")
            heard = await heard_since(caller, greeting, quiet_s=2.0)
            record = await deployment.admin.call_record(caller.call_id)
        finally:
            await caller.hangup()
        print(f"\n[{deployment.backend}] heard at connect: {heard!r}")
        assert word_recall("How can I help you today", heard) >= MIN_RECALL, heard
        assert word_recall(HELD_TEXT, heard) >= MIN_RECALL, heard
        assert "umbrella" not in words(heard), heard
        sources = [(e["source"], e["text"]) for e in record["transcript"] if e["role"] == "agent"]
        assert sources[0][0] == "greeting" and ("proactive", HELD_TEXT) in sources, sources
        assert all(text != EXPIRED_TEXT for _, text in sources), sources
        assert await status(held["idempotency_key"]) == "delivered"
        assert await status(expired["idempotency_key"]) == "expired"
    finally:
        ledger.close()


@pytest.mark.parametrize("deployment", BOTH, indirect=True)
async def test_duplicate_messages_are_spoken_once(deployment: Deployment) -> None:
    """(c) Three messages with one idempotency key (a redelivered copy and a republished one with a new
    message id) -> one utterance in the call, one claim and one delivery in the ledger."""
    user = new_user("dup")
    caller, _ = await greeted_caller(deployment, user)
    key = f"e2e-dup-{uuid.uuid4().hex}"
    prompt = ProactivePrompt(
        idempotency_key=key, user_id=user, text=DUPLICATE_TEXT, priority=3, expires_at=time.time() + 300
    )
    republished = prompt.model_copy(update={"message_id": uuid.uuid4().hex})
    ledger = deployment.ledger()
    try:
        for copy in (prompt, prompt, republished):
            await deployment.publish(copy)
        first = await caller.reply_start(after=time.monotonic(), timeout=40)
        heard = await heard_since(caller, first, quiet_s=2.0)
        quiet_since = time.monotonic()
        await asyncio.sleep(3.0)  # a second utterance would have started by now
        late = [a for a, rms, _ in caller.received if a > quiet_since and rms > VOICE_RMS]
        record = await deployment.admin.call_record(caller.call_id)

        async def settled() -> list[Any] | None:
            events = await ledger.events(key)
            return events if sum(e.status == "duplicate" for e in events) >= 2 else None

        events = await wait_for(settled, 20, "the two duplicate copies to be recorded")
    finally:
        await caller.hangup()
        ledger.close()
    print(
        f"\n[{deployment.backend}] duplicates: heard {heard!r}; ledger {[(e.status, e.node_id) for e in events]}"
    )
    assert word_recall(DUPLICATE_TEXT, heard) >= MIN_RECALL, heard
    assert words(heard).count("tomato") <= 1, heard
    assert not late, "agent audio after the prompt: spoken twice?"
    assert len([e for e in record["transcript"] if e["source"] == "proactive"]) == 1, record["transcript"]
    statuses = [e.status for e in events]
    assert statuses.count("claimed") == 1 and statuses.count("delivered") == 1, statuses


@pytest.mark.parametrize("deployment", ROCKETMQ, indirect=True)
async def test_two_nodes_only_the_node_holding_the_call_speaks(deployment: Deployment) -> None:
    """(d) Two nodes, one broker, one ledger: the user is in a call on node B; a prompt published by node A
    (admin 'send now' there) is spoken once by node B; node A records no call and never claims it."""
    assert deployment.other_admin is not None
    user = new_user("cross")
    caller, _ = await greeted_caller(deployment, user)
    ledger = deployment.ledger()
    try:
        sent = await deployment.other_admin.send_now(user, CROSS_NODE_TEXT)
        first = await caller.reply_start(after=time.monotonic(), timeout=40)
        heard = await heard_since(caller, first)
        await asyncio.sleep(3.0)  # node A's consumer group gets its own copy: give it time to act on it
        record_b = await deployment.admin.call_record(caller.call_id)
        events = await ledger.events(sent["idempotency_key"])
        final = await ledger.get(sent["idempotency_key"])
    finally:
        await caller.hangup()
        ledger.close()
    print(f"\n[two nodes] heard {heard!r}; ledger {[(e.status, e.node_id) for e in events]}")
    assert word_recall(CROSS_NODE_TEXT, heard) >= MIN_RECALL, heard
    assert len(proactive_entries(record_b, CROSS_NODE_TEXT)) == 1, record_b["transcript"]
    assert record_b["node_id"] == NODE_B
    assert final is not None and final.status == "delivered" and final.node_id == NODE_B
    spoken_by = [(e.status, e.node_id) for e in events if e.status in ("claimed", "delivered")]
    assert spoken_by == [("claimed", NODE_B), ("delivered", NODE_B)], events
    assert all(e.status in ("pending", "duplicate") for e in events if e.node_id == NODE_A), events
    assert await deployment.other_admin.calls_of(user) == []
