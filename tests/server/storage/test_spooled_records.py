"""A call that ends while its record store is away keeps its record: the save goes to the on-disk spool and
is written once the database answers again; a later save of the same call never lands before it. The
outage is real: another connection holds the SQLite file's lock past the store's busy timeout."""

from __future__ import annotations

import asyncio
from pathlib import Path

from server.calls.record import CallRecord
from server.storage.call_records import open_call_record_store
from server.storage.engine import StoreUnavailable
from server.storage.spool import DiskSpool
from server.storage.spooled_records import SpoolingCallRecordStore
from tests.sqlite_lock import hold_write_lock


async def test_records_saved_during_an_outage_are_written_when_it_ends(tmp_path: Path) -> None:
    db = tmp_path / "calls.sqlite3"
    inner = open_call_record_store(db, statement_timeout_s=0.2)
    store = SpoolingCallRecordStore(inner, DiskSpool(tmp_path / "spool", "records"), retry_s=0.2)
    store.start()
    opened = CallRecord("c-1", "n1", "ann")
    await store.save(opened)
    holder = hold_write_lock(db, 1.5)
    try:
        await inner.save(CallRecord("probe", "n1"))
        raise AssertionError("the lock should make the store unavailable")
    except StoreUnavailable:
        pass
    ended = CallRecord("c-1", "n1", "ann", started_at=opened.started_at)
    ended.add_user("hello")
    ended.end_reason, ended.ended_at = "hangup", opened.started_at + 5
    await store.save(ended)  # during the outage: spooled, not lost
    other = CallRecord("c-2", "n1", "bob")
    other.end_reason = "hangup"
    await store.save(other)
    assert len(store.spool) == 2
    await asyncio.to_thread(holder.join)
    await asyncio.wait_for(store.replayer.recovered.wait(), 10)
    saved = await store.get("c-1")
    assert saved is not None and saved.end_reason == "hangup" and saved.transcript[0].text == "hello"
    assert (await store.get("c-2")) is not None
    store.close()


async def test_saves_of_a_call_stay_in_order_across_the_spool(tmp_path: Path) -> None:
    """The first save of a call was spooled; its second save comes after the database is back, before the
    replay: it must wait behind the first, or the replay would overwrite the finished record."""
    db = tmp_path / "calls.sqlite3"
    inner = open_call_record_store(db, statement_timeout_s=0.2)
    store = SpoolingCallRecordStore(inner, DiskSpool(tmp_path / "spool", "records"), retry_s=30)
    record = CallRecord("c-9", "n1", "cy")
    holder = hold_write_lock(db, 0.6)
    await store.save(record)  # spooled
    await asyncio.to_thread(holder.join)
    record.end_reason = "hangup"
    await store.save(record)  # the database is back, but this call has a save in the spool
    assert len(store.spool) == 2
    await store.spool.drain(store._replay)
    saved = await store.get("c-9")
    assert saved is not None and saved.end_reason == "hangup"
    store.close()


async def test_a_full_disk_keeps_the_record_in_memory_reports_it_and_writes_it_when_space_is_back(
    tmp_path: Path,
) -> None:
    """Full disk where a test cannot mount a small filesystem (tests/faults/test_disk_faults.py does it
    for real): the database refuses to grow (SQLite's own ``max_page_count``: a real "database or disk is
    full") and the spool's segment is a link to ``/dev/full`` (ENOSPC). Before: the record was dropped.
    Now it waits in memory, ``problem()`` says so (``/readyz``), and it lands once there is space."""
    db = tmp_path / "calls.sqlite3"
    inner = open_call_record_store(db)
    spool = DiskSpool(tmp_path / "spool", "records")
    store = SpoolingCallRecordStore(inner, spool, retry_s=0.2)
    store.start()
    await store.save(CallRecord("before", "n1", "dee"))
    with inner.engine.connect() as conn:  # the node's one SQLite connection: no page beyond these
        pages = conn.exec_driver_sql("PRAGMA page_count").scalar()
        conn.exec_driver_sql(f"PRAGMA max_page_count = {pages}")
    full = spool.path / f"{spool._current:012d}.jsonl"
    full.symlink_to("/dev/full")
    ended = CallRecord("c-full", "n1", "ann")
    ended.add_user("hello " * 2000)  # needs new pages
    ended.end_reason = "hangup"
    await store.save(ended)
    assert spool.in_memory == 1
    problem = store.problem()
    assert problem is not None and "in memory" in problem and "disk is full" in problem, problem
    with inner.engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA max_page_count = 1073741823")
    full.unlink()
    await asyncio.wait_for(store.replayer.recovered.wait(), 10)
    saved = await store.get("c-full")
    assert saved is not None and saved.end_reason == "hangup"
    assert await store.get("before") is not None and store.problem() is None
    store.close()
