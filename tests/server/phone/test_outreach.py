"""Presence-aware outreach on one node, branch by branch: a prompt for a user in a live call is said there;
for a user in no call with a phone in the directory the node rings it (answered: the prompt is heard,
then a polite goodbye when nobody speaks; busy / no answer: retried per policy, then held, expired or
dead-lettered); quiet hours in the user's time zone defer the call; a user without a phone is held.
Real peers (baresip, SIPp), the real pipeline; every attempt and outcome is checked in the ledger."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from messaging.schemas import ProactivePrompt
from tests.server.caller import word_recall
from tests.server.phone.conftest import (
    NodeFactory,
    pause,
    scenario,
    sip_target,
    wait_until,
)
from tests.server.transports.sip.conftest import Whisper
from tests.server.transports.sip.conftest import scenario as sip_scenario
from tests.server.transports.sip.test_dialing import FINAL_487
from tests.speech.conftest import write_wav

pytestmark = [pytest.mark.sip, pytest.mark.slow]

PROMPT = "Your prescription is ready. Press one to confirm you will pick it up today."


def prompt_for(user_id: str, text: str = PROMPT, ttl_s: float = 600, **fields: object) -> ProactivePrompt:
    now = time.time()
    return ProactivePrompt(
        idempotency_key=f"test:{user_id}:{time.monotonic_ns()}",
        user_id=user_id,
        text=text,
        created_at=now,
        expires_at=now + ttl_s,
        **fields,
    )


async def publish(node, prompt: ProactivePrompt) -> None:  # type: ignore[no-untyped-def]
    await node.bus.publish(node.settings.bus.topic_proactive, prompt.to_bytes(), key=prompt.user_id)


async def statuses(node, prompt: ProactivePrompt) -> list[str]:  # type: ignore[no-untyped-def]
    return [e.status for e in await node.ledger.events(prompt.idempotency_key)]


async def status_is(node, prompt: ProactivePrompt, *wanted: str) -> str | None:  # type: ignore[no-untyped-def]
    record = await node.ledger.get(prompt.idempotency_key)
    return record.status if record is not None and record.status in wanted else None


def silent_microphone(directory: Path, seconds: float) -> Path:
    return write_wav(directory / f"silence-{seconds}.wav", np.zeros(int(seconds * 8000), np.int16), 8000)


def entry(user_id: str, number: str, sip_uri: str | None = None, timezone: str = "UTC") -> dict[str, object]:
    return {"number": number, "user_id": user_id, "timezone": timezone, "sip_uri": sip_uri}


async def test_an_offline_user_is_rung_hears_the_prompt_answers_by_key_and_a_silent_line_is_ended_politely(
    phone_node: NodeFactory, baresip, tmp_path: Path, whisper: Whisper
) -> None:
    phone = baresip.start("carol", silent_microphone(tmp_path, 60))  # auto-answers, says nothing
    node = await phone_node(directory=[entry("carol", "+15551230003", phone.uri)], sip__no_speech_hangup_s=9.0)
    prompt = prompt_for("carol", expect_digits="12")
    await publish(node, prompt)

    await phone.expect("CALL_ESTABLISHED", timeout=20)
    await wait_until(lambda: status_is(node, prompt, "delivered"), 40, "the prompt to be said")
    await phone.ask("sndcode", "1")
    await wait_until(lambda: _has(node, prompt, "response"), 20, "the key to be recorded")
    await phone.expect("CALL_CLOSED", timeout=40)  # nobody spoke: goodbye, then the agent hung up

    events = await node.ledger.events(prompt.idempotency_key)
    assert [e.status for e in events if e.status != "duplicate"] == ["dial_claimed", "dialing", "answered", "delivered", "response"]
    assert all(e.node_id == node.node_id for e in events)
    assert events[-1].detail == "pressed 1"
    (row,) = await node.phone.store.recent(5)
    assert (row["attempts"], row["last_outcome"], row["response"]) == (1, "answered", "1")
    heard = await whisper.transcribe(phone.recording())
    assert word_recall(PROMPT, heard) >= 0.6, heard
    (summary,) = await node.deps.records.recent(1)
    record = (await node.deps.records.get(summary["call_id"])).to_dict()
    assert record["user_id"] == "carol" and record["end_reason"] == "no_speech"
    sources = [e["source"] for e in record["transcript"] if e["role"] == "agent"]
    assert sources == ["proactive", "goodbye"], record["transcript"]  # no greeting: the prompt opens the call
    assert [e["text"] for e in record["transcript"] if e["source"] == "dtmf"] == ["1"]


async def _has(node, prompt: ProactivePrompt, status: str) -> bool:  # type: ignore[no-untyped-def]
    return status in await statuses(node, prompt)


async def test_busy_is_retried_per_policy_then_held_and_said_at_the_next_call(
    phone_node: NodeFactory, sipp, tmp_path: Path
) -> None:
    busy = sipp.start(sip_scenario("callee_refuses", tmp_path, status="486 Busy Here"), calls=2)
    node = await phone_node(
        directory=[entry("dave", "+15551230004", f"sip:dave@127.0.0.1:{busy.port}")],
        phone__outreach__max_attempts=2,
    )
    prompt = prompt_for("dave", text="Your parcel is waiting at the post office.")
    await publish(node, prompt)
    await wait_until(lambda: status_is(node, prompt, "pending"), 30, "the prompt to be held after two busy attempts")
    assert await busy.finished(10) == 0, busy.logs()  # exactly two INVITEs, each refusal ACKed

    seen = [s for s in await statuses(node, prompt) if s != "duplicate"]
    assert seen == ["dial_claimed", "dialing", "busy", "retry", "dial_claimed", "dialing", "busy", "pending"], seen
    record = await node.ledger.get(prompt.idempotency_key)
    assert record is not None and "2 attempt(s)" in (record.detail or "") and "busy" in (record.detail or "")
    first, second = [e.at for e in await node.ledger.events(prompt.idempotency_key) if e.status == "busy"]
    assert second - first >= node.settings.phone.outreach.min_gap_s  # the gap between attempts held

    # dave calls in: the held prompt is said after the greeting, and the phone is not rung again.
    caller = scenario("caller", tmp_path, number="+15551230004", codec="PCMU", pt=0, middle=pause(9.0), bye_cseq=2)
    run = sipp.start(caller, sip_target(node))
    assert await run.finished(40) == 0, run.logs()
    (summary,) = await node.deps.records.recent(1)
    call = (await node.deps.records.get(summary["call_id"])).to_dict()
    assert [e["text"] for e in call["transcript"] if e["source"] == "proactive"] == [prompt.text]
    assert await status_is(node, prompt, "delivered")


async def test_no_answer_is_cancelled_and_dead_lettered_with_the_reason(
    phone_node: NodeFactory, sipp, tmp_path: Path
) -> None:
    ringing = sipp.start(sip_scenario("callee_rings", tmp_path, final_exchange=FINAL_487))
    node = await phone_node(
        directory=[entry("erin", "+15551230005", f"sip:erin@127.0.0.1:{ringing.port}")],
        phone__outreach__max_attempts=1,
        phone__outreach__ring_timeout_s=2.0,
        phone__outreach__on_exhausted="dead_letter",
    )
    prompt = prompt_for("erin", text="Your table for two is booked for eight tonight.")
    await publish(node, prompt)
    await wait_until(lambda: status_is(node, prompt, "dead_lettered"), 30, "the prompt to be dead-lettered")
    assert await ringing.finished(10) == 0, ringing.logs()  # it got our CANCEL and its 487 was ACKed

    seen = [s for s in await statuses(node, prompt) if s != "duplicate"]
    assert seen == ["dial_claimed", "dialing", "no_answer", "dead_lettered"], seen
    (dead,) = node.bus.dead_letters["voice_proactive_dlq"]
    assert ProactivePrompt.parse(dead.body).idempotency_key == prompt.idempotency_key
    assert "no_answer" in dead.properties["reason"]


async def test_quiet_hours_in_the_users_time_zone_defer_the_call(phone_node: NodeFactory, tmp_path: Path) -> None:
    hour = datetime.now(UTC).hour  # quiet hours around "now" in UTC; frank lives in UTC
    node = await phone_node(
        directory=[entry("frank", "+15551230006", "sip:frank@127.0.0.1:9")],
        phone__outreach__quiet_hours=(hour, (hour + 2) % 24),
    )
    prompt = prompt_for("frank", ttl_s=6 * 3600)
    await publish(node, prompt)
    await wait_until(lambda: status_is(node, prompt, "retry"), 20, "the call to be deferred")

    record = await node.ledger.get(prompt.idempotency_key)
    assert record is not None and "quiet hours" in (record.detail or "")
    (row,) = await node.phone.store.recent(5)
    end_of_quiet = datetime.now(UTC).replace(minute=0, second=0, microsecond=0).timestamp() + 2 * 3600
    assert row["attempts"] == 0 and abs(row["next_attempt_at"] - end_of_quiet) < 5  # nobody was rung
    assert [s for s in await statuses(node, prompt) if s != "duplicate"] == ["dial_claimed", "retry"]


async def test_a_user_in_a_live_call_hears_it_there_and_is_not_rung(
    phone_node: NodeFactory, sipp, tmp_path: Path
) -> None:
    phone = sipp.start(sip_scenario("callee_refuses", tmp_path, status="486 Busy Here"))  # must never ring
    node = await phone_node(directory=[entry("gina", "+15551230007", f"sip:gina@127.0.0.1:{phone.port}")])
    caller = scenario("caller", tmp_path, number="+15551230007", codec="PCMU", pt=0, middle=pause(14.0), bye_cseq=2)
    run = sipp.start(caller, sip_target(node))

    async def in_call() -> bool:
        return bool(node.registry.find_by_user("gina"))

    await wait_until(in_call, 15, "gina's call")
    prompt = prompt_for("gina", text="Your car has been washed and is ready to collect.")
    await publish(node, prompt)
    await wait_until(lambda: status_is(node, prompt, "delivered"), 40, "the prompt to be said in the call")
    assert await run.finished(40) == 0, run.logs()

    assert [s for s in await statuses(node, prompt) if s != "duplicate"] == ["claimed", "delivered"]
    assert await node.phone.store.recent(5) == []  # no phone attempt at all
    (summary,) = await node.deps.records.recent(1)
    call = (await node.deps.records.get(summary["call_id"])).to_dict()
    assert [e["text"] for e in call["transcript"] if e["source"] == "proactive"] == [prompt.text]
    assert phone.process.running()  # it never got an INVITE


async def test_a_user_without_a_phone_is_held_for_the_next_call(phone_node: NodeFactory) -> None:
    node = await phone_node(directory=[])
    prompt = prompt_for("hank")
    await publish(node, prompt)
    await wait_until(lambda: status_is(node, prompt, "pending"), 20, "the prompt to be held")
    assert await node.phone.store.recent(5) == []
