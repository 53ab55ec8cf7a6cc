"""The delivery ledger on both stores: atomic claims across ledgers sharing one SQLite file or one PostgreSQL
database, pending and expiry. The PostgreSQL database is shared by the test session: keys and users are
unique per test."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from messaging.schemas import ProactivePrompt
from server.proactive.ledger import DeliveryLedger
from server.storage.delivery_ledger import open_delivery_ledger

LedgerFactory = Callable[..., DeliveryLedger]


@pytest.fixture(params=["sqlite", "postgres"])
def open_ledger(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[LedgerFactory]:
    """Opens ledgers on one shared store (each call a new connection), closes them after the test."""
    target = str(tmp_path / "ledger.sqlite3")
    if request.param == "postgres":
        target = request.getfixturevalue("postgres_dsn")
    opened: list[DeliveryLedger] = []

    def factory(**kw: Any) -> DeliveryLedger:
        ledger = open_delivery_ledger(target, **kw)  # kw: the test's own clock and claim timeout
        opened.append(ledger)
        return ledger

    yield factory
    for ledger in opened:
        ledger.close()


def _unique(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}"


def _prompt(key: str, user: str = "u1", **kw: object) -> ProactivePrompt:
    return ProactivePrompt(idempotency_key=key, user_id=user, text=f"hello {key}", **kw)  # type: ignore[arg-type]


def test_the_target_picks_the_store(tmp_path: Path, postgres_dsn: str) -> None:
    sqlite = open_delivery_ledger(tmp_path / "l.sqlite3")
    postgres = open_delivery_ledger(postgres_dsn)
    try:
        assert sqlite.engine.dialect.name == "sqlite"
        assert postgres.engine.dialect.name == "postgresql"
    finally:
        sqlite.close()
        postgres.close()


async def test_only_one_of_many_nodes_wins_the_claim(open_ledger: LedgerFactory) -> None:
    ledgers = [open_ledger() for _ in range(4)]  # four nodes, four connections
    key = _unique("k1")
    p = _prompt(key)
    results = await asyncio.gather(
        *(led.claim(p, f"node-{i}") for i, led in enumerate(ledgers) for _ in range(3))
    )
    assert results.count(None) == 1
    assert sorted({r for r in results if r}) == ["claimed"]
    events = await ledgers[0].events(key)
    assert [e.status for e in events].count("claimed") == 1
    assert [e.status for e in events].count("duplicate") == 11


async def test_only_one_of_many_nodes_takes_over_a_pending_prompt(open_ledger: LedgerFactory) -> None:
    ledgers = [open_ledger() for _ in range(4)]
    p = _prompt(_unique("held"), user=_unique("u"))
    assert await ledgers[0].hold_pending(p, "node-0")
    results = await asyncio.gather(*(led.claim(p, f"node-{i}") for i, led in enumerate(ledgers)))
    assert results.count(None) == 1 and results.count("claimed") == 3


async def test_pending_is_held_once_and_popped_once(open_ledger: LedgerFactory) -> None:
    led = open_ledger()
    u1, u2 = _unique("u1"), _unique("u2")
    k1, k2, old, other = (_unique(k) for k in ("k1", "k2", "old", "other-user"))
    now = time.time()
    assert await led.hold_pending(_prompt(k1, u1, priority=5), "node-a")
    assert not await led.hold_pending(_prompt(k1, u1, priority=5), "node-b")  # one row per key
    await led.hold_pending(_prompt(k2, u1, priority=1), "node-a")
    await led.hold_pending(_prompt(old, u1, created_at=now - 100, expires_at=now - 1), "node-a")
    await led.hold_pending(_prompt(other, u2), "node-a")
    popped = await led.pop_pending(u1, "node-c")
    assert [p.idempotency_key for p in popped] == [k2, k1]  # most urgent first
    assert await led.pop_pending(u1, "node-c") == []
    assert (await led.get(old)).status == "expired"  # type: ignore[union-attr]
    rec = await led.get(k1)
    assert rec is not None and rec.status == "delivered" and rec.node_id == "node-c"
    assert (await led.get(other)).status == "pending"  # type: ignore[union-attr]
    assert [e.status for e in await led.events(old)] == ["pending", "expired"]
    assert {r.idempotency_key for r in await led.list_recent(1000)} >= {k1, k2, old, other}


async def test_two_nodes_popping_at_once_each_get_a_prompt_at_most_once(open_ledger: LedgerFactory) -> None:
    a, b = open_ledger(), open_ledger()
    user = _unique("u")
    keys = [_unique(f"k{i}") for i in range(5)]
    for key in keys:
        await a.hold_pending(_prompt(key, user), "node-a")
    first, second = await asyncio.gather(a.pop_pending(user, "node-a"), b.pop_pending(user, "node-b"))
    assert sorted(p.idempotency_key for p in first + second) == sorted(keys)


async def test_a_pending_prompt_can_be_claimed_by_the_node_holding_the_user(
    open_ledger: LedgerFactory,
) -> None:
    led = open_ledger()
    p = _prompt(_unique("k1"), _unique("u"))
    await led.hold_pending(p, "node-b")
    assert await led.claim(p, "node-a") is None
    await led.mark_delivered(p, "node-a")
    assert await led.claim(p, "node-b") == "delivered"
    rec = await led.get(p.idempotency_key)
    assert rec is not None and rec.delivered_at is not None


async def test_a_failed_speech_goes_back_to_pending(open_ledger: LedgerFactory) -> None:
    led = open_ledger()
    p = _prompt(_unique("k1"), _unique("u"))
    assert await led.claim(p, "node-a") is None
    await led.mark_failed(p, "node-a", "cut off")
    rec = await led.get(p.idempotency_key)
    assert rec is not None and rec.status == "pending" and rec.detail == "cut off"
    await led.mark_expired(p, "node-a")
    assert (await led.get(p.idempotency_key)).status == "expired"  # type: ignore[union-attr]
    statuses = [e.status for e in await led.events(p.idempotency_key)]
    assert statuses == ["claimed", "failed", "expired"]


async def test_abandoned_claim_is_taken_over_after_the_claim_timeout(open_ledger: LedgerFactory) -> None:
    clock = [1000.0]
    led = open_ledger(claim_timeout_s=60, clock=lambda: clock[0])
    p = _prompt(_unique("k1"), _unique("u"), created_at=900.0)
    assert await led.claim(p, "node-a") is None
    assert await led.claim(p, "node-a") == "claimed"
    clock[0] += 61
    assert await led.claim(p, "node-b") is None


async def test_postgres_ledger_survives_a_dropped_connection(postgres_dsn: str) -> None:
    """The database closes the ledger's connection (restart, failover): the next claim reconnects."""
    import psycopg

    led = open_delivery_ledger(postgres_dsn)
    try:
        first = _prompt(_unique("drop"), _unique("u"))
        assert await led.claim(first, "node-a") is None
        with psycopg.connect(postgres_dsn, autocommit=True) as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE application_name = %s AND pid <> pg_backend_pid()",
                ("voice-agent-delivery-ledger",),
            )
        second = _prompt(_unique("drop"), _unique("u"))
        assert await led.claim(second, "node-a") is None
        assert await led.claim(first, "node-b") == "claimed"
    finally:
        led.close()


async def test_scheduler_and_nodes_share_one_row_that_never_moves_backwards(open_ledger: LedgerFactory) -> None:
    """The scheduler's states and the nodes' states are one row per key: a node holds a published prompt,
    the scheduler cannot overwrite what a node wrote, and a published key is not published twice."""
    led = open_ledger()
    p = _prompt(_unique("k"), _unique("u"), campaign_id="c1")
    assert await led.note(p, "campaign", "scheduled", 100.0, None, if_new=True)
    assert not await led.note(p, "campaign", "scheduled", 100.0, None, if_new=True)  # known already
    assert await led.begin_publish(p, "campaign", 100.0)
    assert not await led.begin_publish(p, "campaign", 100.0)  # already on the bus
    assert await led.hold_pending(p, "node-a")  # the user is offline: the published row is held
    assert not await led.note(p, "campaign", "deferred", 200.0, "too late")  # a node owns it now
    assert (await led.status_of(p.idempotency_key)) == "pending"
    assert await led.claim(p, "node-b") is None
    await led.mark_delivered(p, "node-b")
    rows = await led.campaign_deliveries("c1")
    assert [(r["user_id"], r["status"], r["run_at"]) for r in rows] == [(p.user_id, "delivered", 100.0)]
    assert [e.status for e in await led.events(p.idempotency_key)] == ["pending", "claimed", "delivered"]


async def test_a_refused_publish_goes_back_to_the_scheduler(open_ledger: LedgerFactory) -> None:
    led = open_ledger()
    p = _prompt(_unique("k"), _unique("u"))
    waiting = {"prompt": {"user_id": p.user_id}, "respect_policy": True}
    assert await led.note(p, "admin", "deferred", 50.0, "quiet hours", waiting)
    assert (waiting, 50.0) in await led.waiting_prompts()
    assert await led.begin_publish(p, "admin", 60.0)
    assert (waiting, 50.0) not in await led.waiting_prompts()  # published: no longer waiting
    await led.publish_failed(p, "broker down")
    assert (await led.status_of(p.idempotency_key)) == "failed"
    assert await led.begin_publish(p, "admin", 70.0)  # a failed publish may be retried


def test_round_one_sqlite_ledger_rows_are_kept(tmp_path: Path) -> None:
    """A ledger file written by round 1 (table proactive_deliveries) opens with its rows in the new table."""
    import sqlite3

    path = tmp_path / "old.sqlite3"
    with sqlite3.connect(path) as db:
        db.executescript(
            "CREATE TABLE proactive_deliveries (idempotency_key TEXT PRIMARY KEY, message_id TEXT NOT NULL,"
            " user_id TEXT NOT NULL, tenant TEXT NOT NULL, campaign_id TEXT, status TEXT NOT NULL, node_id TEXT,"
            " prompt TEXT NOT NULL, priority INTEGER NOT NULL, expires_at DOUBLE PRECISION,"
            " created_at DOUBLE PRECISION NOT NULL, updated_at DOUBLE PRECISION NOT NULL,"
            " delivered_at DOUBLE PRECISION, detail TEXT);"
            "CREATE TABLE proactive_delivery_events (idempotency_key TEXT NOT NULL, message_id TEXT NOT NULL,"
            " status TEXT NOT NULL, node_id TEXT, at DOUBLE PRECISION NOT NULL, detail TEXT);"
        )
        old = _prompt("old-key", "old-user")
        db.execute(
            "INSERT INTO proactive_deliveries VALUES ('old-key', 'm1', 'old-user', 'default', NULL, 'pending',"
            " 'n1', ?, 5, NULL, 1.0, 2.0, NULL, 'user offline')",
            (old.model_dump_json(),),
        )
        db.execute("INSERT INTO proactive_delivery_events VALUES ('old-key', 'm1', 'pending', 'n1', 2.0, NULL)")
    led = open_delivery_ledger(path)
    try:
        popped = asyncio.run(led.pop_pending("old-user", "n2"))
        assert [p.idempotency_key for p in popped] == ["old-key"]
        events = asyncio.run(led.events("old-key"))
        assert [(e.status, e.node_id) for e in events] == [("pending", "n1"), ("delivered", "n2")]
    finally:
        led.close()
    reopened = open_delivery_ledger(path)  # migrations run once: the copy is not repeated
    try:
        assert len(asyncio.run(reopened.events("old-key"))) == 2
    finally:
        reopened.close()


def test_a_ledger_from_before_the_status_index_gets_it(tmp_path: Path) -> None:
    """Migration 4: a ledger file created by an older version (migrations 1-3, no status index) gains the
    index the nodes' abandoned-claim sweep reads by."""
    import sqlalchemy as sa

    path = tmp_path / "ledger.sqlite3"
    open_delivery_ledger(path).close()
    engine = sa.create_engine(f"sqlite:///{path}")
    with engine.begin() as conn:  # back to what round 2 left on disk
        conn.exec_driver_sql("DROP INDEX prompt_deliveries_status")
        conn.exec_driver_sql("DELETE FROM schema_migrations WHERE store = 'delivery_ledger' AND version = 4")
    open_delivery_ledger(path).close()
    with engine.connect() as conn:
        names = {row[0] for row in conn.exec_driver_sql("SELECT name FROM sqlite_master WHERE type = 'index'")}
    engine.dispose()
    assert "prompt_deliveries_status" in names
