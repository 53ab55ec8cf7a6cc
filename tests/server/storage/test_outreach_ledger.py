"""The phone side of the delivery ledger and the presence table, on SQLite and PostgreSQL: exactly one of
many nodes wins a dial claim; a fresh presence row of the user on any node blocks it (a stale one does
not); a prompt is dialled once, however often it arrives; due retries are claimed once; held retries are
spoken at the user's next call."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from messaging.schemas import ProactivePrompt
from server.storage.delivery_ledger import SqlDeliveryLedger, open_delivery_ledger
from server.storage.outreach_ledger import SqlOutreachLedger
from server.storage.presence import SqlPresence
from tests.fixtures.postgres import database_target

Stores = Callable[..., tuple[SqlDeliveryLedger, SqlOutreachLedger, SqlPresence]]


@pytest.fixture(params=["sqlite", "postgres"])
def stores(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Stores]:
    """Each call opens the stores of one more node on the same database."""
    target = database_target(request, tmp_path, "ledger.sqlite3")
    opened: list[SqlDeliveryLedger] = []

    def node(**kw: Any) -> tuple[SqlDeliveryLedger, SqlOutreachLedger, SqlPresence]:
        ledger = open_delivery_ledger(target, **kw)
        opened.append(ledger)
        return ledger, SqlOutreachLedger(ledger), SqlPresence(ledger.engine, ledger.clock)

    yield node
    for ledger in opened:
        ledger.close()


def _user() -> str:
    return f"user-{uuid.uuid4().hex[:8]}"


def _prompt(user: str, **kw: Any) -> ProactivePrompt:
    return ProactivePrompt(
        idempotency_key=f"k-{uuid.uuid4().hex}", user_id=user, text="Your parcel is here.", expires_at=time.time() + 600, **kw
    )


async def test_exactly_one_of_many_nodes_wins_the_dial_claim(stores: Stores) -> None:
    nodes = [stores() for _ in range(6)]
    prompt = _prompt(_user())
    results = await asyncio.gather(
        *(outreach.claim_dial(prompt, f"node-{i}", "+15550001", time.time() - 15) for i, (_, outreach, _) in enumerate(nodes))
    )
    winners = [i for i, why in enumerate(results) if why is None]
    assert len(winners) == 1, results
    assert all(why is not None and why.startswith("already") for why in results if why is not None)
    ledger = nodes[0][0]
    record = await ledger.get(prompt.idempotency_key)
    assert record is not None and record.status == "dialing" and record.node_id == f"node-{winners[0]}"
    assert [e.status for e in await ledger.events(prompt.idempotency_key)] == ["dial_claimed"]


async def test_a_fresh_presence_on_any_node_blocks_the_dial_and_a_stale_one_does_not(stores: Stores) -> None:
    _, outreach, presence = stores()
    user = _user()
    await presence.join("call-1", user, "node-b")
    assert await outreach.claim_dial(_prompt(user), "node-a", "+15550001", time.time() - 15) == "in a call on node-b"
    assert await presence.where(user, time.time() - 15) == ["node-b"]
    assert await outreach.claim_dial(_prompt(user), "node-a", "+15550001", time.time() + 1) is None  # node-b died
    await presence.leave("call-1")
    assert await presence.where(user, 0) == []


async def test_a_node_heartbeat_keeps_its_calls_and_drops_the_rest(stores: Stores) -> None:
    _, _, presence = stores()
    a, b = _user(), _user()
    await presence.join("call-a", a, "node-x")
    await presence.join("call-b", b, "node-x")
    await presence.refresh("node-x", [("call-b", b), ("call-c", a)])
    assert await presence.where(a, 0) == ["node-x"]  # call-c written, call-a gone
    await presence.refresh("node-x", [])
    assert await presence.where(a, 0) == [] and await presence.where(b, 0) == []


async def test_a_prompt_is_dialled_once_and_a_claimed_or_delivered_one_never(stores: Stores) -> None:
    ledger, outreach, _ = stores()
    user = _user()
    prompt = _prompt(user)
    assert await outreach.claim_dial(prompt, "node-a", "+15550001", 0) is None
    await outreach.give_up(prompt, "node-a", "pending", "held for the next call: 3 attempt(s)")
    assert await outreach.claim_dial(prompt, "node-b", "+15550001", 0) == "already dialled"  # held: not rung again
    spoken = _prompt(user)
    assert await ledger.claim(spoken, "node-c") is None  # said in a live call
    assert await outreach.claim_dial(spoken, "node-a", "+15550001", 0) == "already claimed"


async def test_attempts_retries_and_due_claims(stores: Stores) -> None:
    (ledger, outreach, _), (_, other, _) = stores(), stores()
    user = _user()
    prompt = _prompt(user, expect_digits="12")
    assert await outreach.claim_dial(prompt, "node-a", "sip:u@127.0.0.1:9", 0) is None
    assert await outreach.attempt_started(prompt, "node-a", "sip:u@127.0.0.1:9") == 1
    await outreach.attempt_ended(prompt, "node-a", "busy", "486 Busy Here")
    due_at = time.time() + 0.3
    await outreach.schedule_retry(prompt, "node-a", due_at, "attempt 1: busy")
    assert await outreach.due(time.time(), 0) == []  # not yet
    assert (await outreach.last_attempt_at(user) or 0) > time.time() - 5
    await asyncio.sleep(0.4)
    (due,) = [d for d in await outreach.due(time.time(), 0) if d.prompt.idempotency_key == prompt.idempotency_key]
    assert (due.status, due.attempts, due.target) == ("retry", 1, "sip:u@127.0.0.1:9")
    wins = await asyncio.gather(
        outreach.claim_retry(due, "node-a", "dialing", 0, time.time() - 15),
        other.claim_retry(due, "node-b", "dialing", 0, time.time() - 15),
    )
    assert sorted(wins) == [False, True]
    assert await outreach.attempt_started(prompt, "node-x", "sip:u@127.0.0.1:9") == 2
    await outreach.attempt_ended(prompt, "node-x", "answered", "answered after 1.0 s")
    await ledger.mark_delivered(prompt, "node-x")
    await outreach.record_response(prompt, "node-x", "1")
    (row,) = [r for r in await outreach.recent(50) if r["idempotency_key"] == prompt.idempotency_key]
    assert (row["attempts"], row["last_outcome"], row["response"], row["status"]) == (2, "answered", "1", "delivered")
    events = [e.status for e in await ledger.events(prompt.idempotency_key)]
    assert events == ["dial_claimed", "dialing", "busy", "retry", "dial_claimed", "dialing", "answered", "delivered", "response"]
    assert (await ledger.get(prompt.idempotency_key)).detail == "pressed 1"  # type: ignore[union-attr]


async def test_a_retry_waiting_for_its_time_is_said_at_the_users_next_call_instead(stores: Stores) -> None:
    ledger, outreach, _ = stores()
    user = _user()
    prompt = _prompt(user)
    assert await outreach.claim_dial(prompt, "node-a", "+15550001", 0) is None
    await outreach.schedule_retry(prompt, "node-a", time.time() + 3600, "quiet hours")
    (popped,) = await ledger.pop_pending(user, "node-b")
    assert popped.idempotency_key == prompt.idempotency_key
    assert [d for d in await outreach.due(time.time() + 7200, 0) if d.prompt.user_id == user] == []


async def test_retries_past_their_expiry_expire(stores: Stores) -> None:
    ledger, outreach, _ = stores()
    prompt = ProactivePrompt(idempotency_key=f"k-{uuid.uuid4().hex}", user_id=_user(), text="x", expires_at=time.time() + 0.2)
    assert await outreach.claim_dial(prompt, "node-a", "+15550001", 0) is None
    await outreach.schedule_retry(prompt, "node-a", time.time() + 60, "busy")
    await asyncio.sleep(0.3)
    assert await outreach.expire_due(time.time(), "node-b") >= 1
    record = await ledger.get(prompt.idempotency_key)
    assert record is not None and record.status == "expired"


async def test_a_claim_whose_node_no_longer_holds_the_users_call_is_released_once(stores: Stores) -> None:
    """A node claimed a prompt (it speaks it in the user's call) and died: its presence row of the user
    goes stale, and the claim goes back to ``pending`` (before: ``claimed`` for good, the prompt lost).
    A claim whose node still refreshes the user's call is left alone; of two sweeping nodes one gets it."""
    now = [1000.0]
    (ledger, _, presence), (_, _, other) = stores(clock=lambda: now[0]), stores(clock=lambda: now[0])
    alive_user, dead_user = _user(), _user()
    alive, dead = _prompt(alive_user), _prompt(dead_user)
    await presence.join("call-alive", alive_user, "node-a")
    await presence.join("call-dead", dead_user, "node-b")
    assert await ledger.claim(alive, "node-a") is None and await ledger.claim(dead, "node-b") is None
    assert await presence.release_abandoned_claims("node-a", fresh_after=990, claimed_before=1001) == []
    now[0] = 1010.0
    await presence.refresh("node-a", [("call-alive", alive_user)])  # node-a lives; node-b stopped refreshing
    swept = await asyncio.gather(
        *(p.release_abandoned_claims(name, fresh_after=1005, claimed_before=1005)
          for p, name in ((presence, "node-a"), (other, "node-c")))
    )
    released = [p for found in swept for p in found]
    assert [p.idempotency_key for p in released] == [dead.idempotency_key]
    row = await ledger.get(dead.idempotency_key)
    assert row is not None and row.status == "pending"
    assert [e.status for e in await ledger.events(dead.idempotency_key)] == ["claimed", "released"]
    kept = await ledger.get(alive.idempotency_key)
    assert kept is not None and kept.status == "claimed" and kept.node_id == "node-a"
    assert [p.idempotency_key for p in await ledger.pop_pending(dead_user, "node-a")] == [dead.idempotency_key]
