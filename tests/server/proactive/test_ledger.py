"""DeliveryLedger on its own: atomic claims across ledgers sharing one SQLite file, pending and expiry."""

from __future__ import annotations

import asyncio
import time

from server.bus.schemas import ProactivePrompt
from server.proactive.ledger import DeliveryLedger


def _prompt(key: str, user: str = "u1", **kw: object) -> ProactivePrompt:
    return ProactivePrompt(idempotency_key=key, user_id=user, text=f"hello {key}", **kw)  # type: ignore[arg-type]


async def test_only_one_of_many_nodes_wins_the_claim(tmp_path) -> None:
    ledgers = [DeliveryLedger(tmp_path / "ledger.sqlite3") for _ in range(4)]
    p = _prompt("k1")
    results = await asyncio.gather(
        *(led.claim(p, f"node-{i}") for i, led in enumerate(ledgers) for _ in range(3))
    )
    assert results.count(None) == 1
    assert sorted({r for r in results if r}) == ["claimed"]
    events = await ledgers[0].events("k1")
    assert [e.status for e in events].count("claimed") == 1
    assert [e.status for e in events].count("duplicate") == 11


async def test_pending_is_held_once_and_popped_once(tmp_path) -> None:
    led = DeliveryLedger(tmp_path / "l.sqlite3")
    now = time.time()
    assert await led.hold_pending(_prompt("k1", priority=5), "node-a")
    assert not await led.hold_pending(_prompt("k1", priority=5), "node-b")  # one row per key
    await led.hold_pending(_prompt("k2", priority=1), "node-a")
    await led.hold_pending(_prompt("old", created_at=now - 100, expires_at=now - 1), "node-a")
    await led.hold_pending(_prompt("other-user", user="u2"), "node-a")
    popped = await led.pop_pending("u1", "node-c")
    assert [p.idempotency_key for p in popped] == ["k2", "k1"]  # most urgent first
    assert await led.pop_pending("u1", "node-c") == []
    assert (await led.get("old")).status == "expired"  # type: ignore[union-attr]
    rec = await led.get("k1")
    assert rec is not None and rec.status == "delivered" and rec.node_id == "node-c"
    assert (await led.get("other-user")).status == "pending"  # type: ignore[union-attr]


async def test_a_pending_prompt_can_be_claimed_by_the_node_holding_the_user(tmp_path) -> None:
    led = DeliveryLedger(tmp_path / "l.sqlite3")
    p = _prompt("k1")
    await led.hold_pending(p, "node-b")
    assert await led.claim(p, "node-a") is None
    await led.mark_delivered(p, "node-a")
    assert await led.claim(p, "node-b") == "delivered"


async def test_abandoned_claim_is_taken_over_after_the_claim_timeout(tmp_path) -> None:
    clock = [1000.0]
    led = DeliveryLedger(tmp_path / "l.sqlite3", claim_timeout_s=60, clock=lambda: clock[0])
    p = _prompt("k1", created_at=900.0)
    assert await led.claim(p, "node-a") is None
    assert await led.claim(p, "node-a") == "claimed"
    clock[0] += 61
    assert await led.claim(p, "node-b") is None
