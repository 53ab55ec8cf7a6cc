"""Call records in SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from server.calls.record import CallRecord, CallRecordStore, RecordedTurn
from server.storage.call_records import open_call_record_store


@pytest.fixture(params=["sqlite", "postgres"])
def record_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[CallRecordStore]:
    """Both stores, opened the way the server opens them (``storage.records``: a path or a DSN)."""
    target = str(tmp_path / "calls.sqlite3")
    if request.param == "postgres":
        target = request.getfixturevalue("postgres_dsn")
    store = open_call_record_store(target)
    yield store
    store.close()


async def test_call_records_round_trip(record_store: CallRecordStore) -> None:
    store = record_store
    alice, c1, c2 = (f"{name}-{uuid.uuid4().hex[:8]}" for name in ("alice", "c1", "c2"))
    record = CallRecord(c1, "node-1", alice)
    record.add_agent("Hello!", source="greeting")
    record.add_user("What is the capital of France?")
    record.turns.append(
        RecordedTurn(
            0,
            "What is the capital of France?",
            "Paris.",
            stages={"first_audio_out": 0.8},
            sources=[{"source_id": "doc-1#0"}],
        )
    )
    record.add_interruption("Par")
    await store.save(record)
    await store.save(CallRecord(c2, "node-1", "bob"))
    loaded = await store.get(c1)
    assert loaded is not None and loaded.to_dict() == record.to_dict()
    assert [c["call_id"] for c in await store.recent(user_id=alice)] == [c1]
    (listed,) = [c for c in await store.recent() if c["call_id"] == c1]
    assert listed["turns"] == 1 and listed["interruptions"] == 1 and listed["user_id"] == alice
    record.end_reason = "hangup"
    await store.save(record)  # saved again at the end of the call: replaces the row
    assert (await store.get(c1)).end_reason == "hangup"  # type: ignore[union-attr]
    assert await store.get("no-such-call") is None


async def test_postgres_call_records_survive_a_dropped_connection(postgres_dsn: str) -> None:
    """The database closes the store's connection (restart, failover): the next save reconnects, nothing lost."""
    import psycopg

    store = open_call_record_store(postgres_dsn)
    try:
        first = CallRecord(f"drop-{uuid.uuid4().hex[:8]}", "node-1", "carol")
        await store.save(first)
        with psycopg.connect(postgres_dsn, autocommit=True) as admin:
            killed = admin.execute(
                "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE application_name = 'voice-agent-call-records' AND pid <> pg_backend_pid()) t"
            ).fetchone()
        assert killed and killed[0] >= 1
        second = CallRecord(f"drop-{uuid.uuid4().hex[:8]}", "node-1", "carol")
        await store.save(second)
        assert await store.get(first.call_id) is not None
        assert await store.get(second.call_id) is not None
    finally:
        store.close()
    summary = (await store.recent())[-1]
    assert summary["turns"] == 1 and summary["interruptions"] == 1
    assert await store.get("missing") is None
    store.close()


async def test_round_one_sqlite_call_records_are_kept(tmp_path: Path) -> None:
    """A records file written by round 1 (table ``calls``) opens with its calls readable."""
    import json
    import sqlite3

    path = tmp_path / "calls.sqlite3"
    old = CallRecord("old-call", "node-1", "olga")
    old.add_user("Hello from last year.")
    with sqlite3.connect(path) as db:
        db.execute(
            "CREATE TABLE calls (call_id TEXT PRIMARY KEY, user_id TEXT, node_id TEXT NOT NULL,"
            " started_at REAL NOT NULL, ended_at REAL, end_reason TEXT, body TEXT NOT NULL)"
        )
        db.execute(
            "INSERT INTO calls VALUES (?, ?, ?, ?, NULL, NULL, ?)",
            (old.call_id, old.user_id, old.node_id, old.started_at, json.dumps(old.to_dict())),
        )
    store = open_call_record_store(path)
    try:
        record = await store.get("old-call")
        assert record is not None and record.transcript[0].text == "Hello from last year."
        assert [c["call_id"] for c in await store.recent(user_id="olga")] == ["old-call"]
    finally:
        store.close()


async def test_records_carry_their_tenant(record_store: CallRecordStore) -> None:
    user = f"ann-{uuid.uuid4().hex[:8]}"
    acme, globex = (
        CallRecord(f"a-{user}", "n", user, tenant="acme"),
        CallRecord(f"g-{user}", "n", user, tenant="globex"),
    )
    for record in (acme, globex):
        await record_store.save(record)
    assert (await record_store.get(acme.call_id)).tenant == "acme"  # type: ignore[union-attr]
    listed = await record_store.recent(user_id=user, tenant="globex")
    assert [(c["call_id"], c["tenant"]) for c in listed] == [(globex.call_id, "globex")]
    assert len(await record_store.recent(user_id=user)) == 2


async def test_records_from_before_tenants_are_of_the_default_tenant(tmp_path: Path) -> None:
    """A records file at migration 2 (no tenant column): migration 3 adds it, the rows get "default"."""
    import json
    import sqlite3
    import time

    path = tmp_path / "calls.sqlite3"
    old = CallRecord("pre-tenant", "node-1", "olga")
    with sqlite3.connect(path) as db:
        db.executescript(
            "CREATE TABLE call_records (call_id VARCHAR(64) PRIMARY KEY, user_id VARCHAR(200), node_id VARCHAR(200)"
            " NOT NULL, started_at FLOAT NOT NULL, ended_at FLOAT, end_reason VARCHAR(64), body JSON NOT NULL);"
            "CREATE TABLE schema_migrations (store VARCHAR(64), version INTEGER, name VARCHAR(200) NOT NULL,"
            " applied_at FLOAT NOT NULL, PRIMARY KEY (store, version));"
        )
        for version in (1, 2):
            db.execute(
                "INSERT INTO schema_migrations VALUES ('call_records', ?, 'old', ?)", (version, time.time())
            )
        db.execute(
            "INSERT INTO call_records VALUES (?, ?, ?, ?, NULL, NULL, ?)",
            (
                old.call_id,
                old.user_id,
                old.node_id,
                old.started_at,
                json.dumps({k: v for k, v in old.to_dict().items() if k != "tenant"}),
            ),
        )
    store = open_call_record_store(path)
    try:
        record = await store.get("pre-tenant")
        assert record is not None and record.tenant == "default" and record.user_id == "olga"
        assert [c["tenant"] for c in await store.recent(tenant="default")] == ["default"]
    finally:
        store.close()
