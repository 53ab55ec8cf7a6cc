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


GROUNDING = {
    "produced_by": "extractive",
    "confidence": 0.71,
    "retrieval_queries": ["how much is a battery replacement"],
    "evidence": [
        {
            "doc_id": "file:faq.md",
            "source_id": "file:faq.md#2",
            "sentence": "A battery replacement costs $69 for any phone model.",
            "score": 0.83,
        }
    ],
    "sentences": [{"text": "A battery replacement costs $69.", "produced_by": "extractive", "evidence": []}],
    "rejected": [{"text": "It costs $49.", "unsupported": ["$49"]}],
}


def _turn(index: int, grounding: dict[str, object] | None) -> RecordedTurn:
    return RecordedTurn(index, "How much is a battery?", "A battery replacement costs $69.", grounding=grounding)


@pytest.fixture(params=["sqlite", "postgres"])
def fresh_database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database: a new SQLite file, or a new database on the session's PostgreSQL."""
    if request.param == "sqlite":
        return str(tmp_path / "calls.sqlite3")
    import psycopg
    from sqlalchemy.engine import make_url

    dsn = request.getfixturevalue("postgres_dsn")
    name = f"records_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(dsn, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    return make_url(dsn).set(database=name).render_as_string(hide_password=False)


async def test_turn_grounding_is_stored_beside_the_body(fresh_database: str) -> None:
    """Each reply's account (evidence, how it was produced, rejected sentences) comes back with the record;
    the call's JSON body itself keeps its shape, without it."""
    import sqlalchemy as sa

    from server.storage.call_records import call_records
    from server.storage.engine import create_engine

    store = open_call_record_store(fresh_database)
    try:
        record = CallRecord(f"g-{uuid.uuid4().hex[:8]}", "node-1", "dora")
        await store.save(record)  # the save at call start: no turns yet
        record.turns += [_turn(0, GROUNDING), _turn(1, None)]
        await store.save(record)
        loaded = await store.get(record.call_id)
        assert loaded is not None and loaded.to_dict() == record.to_dict()
        assert loaded.turns[0].grounding == GROUNDING and loaded.turns[1].grounding is None
        changed = {**GROUNDING, "produced_by": "refused"}
        record.turns[0].grounding = changed
        await store.save(record)  # saved again at the end of the call: the account is replaced
        assert (await store.get(record.call_id)).turns[0].grounding == changed  # type: ignore[union-attr]
        (summary,) = [c for c in await store.recent() if c["call_id"] == record.call_id]
        assert summary["turns"] == 2
    finally:
        store.close()
    engine = create_engine(fresh_database)
    try:
        with engine.begin() as conn:
            body = conn.execute(
                sa.select(call_records.c.body).where(call_records.c.call_id == record.call_id)
            ).scalar_one()
    finally:
        engine.dispose()
    assert all("grounding" not in turn for turn in body["turns"])


async def test_migration_keeps_calls_recorded_before_grounding(fresh_database: str) -> None:
    """A database written before the grounding table existed (migrations 1-2 only) opens with its calls
    readable (their turns have no account) and records new calls with theirs."""
    import json

    import sqlalchemy as sa

    from server.storage.call_records import MIGRATIONS, call_records
    from server.storage.engine import create_engine
    from server.storage.migrations import migrate

    engine = create_engine(fresh_database)
    old = CallRecord("before-grounding", "node-1", "olga")
    old.add_user("How much is a battery?")
    old_body = old.to_dict()
    old_body["turns"] = [{"index": 0, "user_text": "How much is a battery?", "agent_text": "It is $69."}]
    try:
        assert migrate(engine, "call_records", MIGRATIONS[:2]) == [1, 2]
        with engine.begin() as conn:
            conn.execute(
                call_records.insert().values(
                    call_id=old.call_id,
                    user_id=old.user_id,
                    node_id=old.node_id,
                    started_at=old.started_at,
                    body=json.loads(json.dumps(old_body)),
                )
            )
            assert not sa.inspect(conn).has_table("call_turn_grounding")
    finally:
        engine.dispose()

    store = open_call_record_store(fresh_database)
    try:
        loaded = await store.get(old.call_id)
        assert loaded is not None and loaded.turns[0].agent_text == "It is $69."
        assert loaded.turns[0].grounding is None and loaded.transcript[0].text == "How much is a battery?"
        new = CallRecord("after-grounding", "node-1", "olga", turns=[_turn(0, GROUNDING)])
        await store.save(new)
        assert (await store.get(new.call_id)).turns[0].grounding == GROUNDING  # type: ignore[union-attr]
        assert {c["call_id"] for c in await store.recent(user_id="olga")} == {old.call_id, new.call_id}
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
