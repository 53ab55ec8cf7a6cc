"""DiskSpool on real files: order, partial replay, bounds, a restart in between, a torn last line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from server.storage.spool import DiskSpool


class Target:
    """Where spooled items go; ``fail_after`` items it refuses the rest (the database is away again)."""

    def __init__(self, fail_after: int | None = None) -> None:
        self.got: list[dict[str, Any]] = []
        self.fail_after = fail_after

    async def send(self, item: dict[str, Any]) -> None:
        if self.fail_after is not None and len(self.got) >= self.fail_after:
            raise ConnectionError("still away")
        self.got.append(item)


async def test_items_come_back_in_order_and_a_failed_replay_keeps_the_rest(tmp_path: Path) -> None:
    spool = DiskSpool(tmp_path, "records", segment_bytes=64)  # several segments
    for i in range(10):
        assert await spool.put({"n": i})
    assert len(spool) == 10
    flaky = Target(fail_after=4)
    assert await spool.drain(flaky.send) == 4
    assert [i["n"] for i in flaky.got] == [0, 1, 2, 3] and len(spool) == 6
    await spool.put({"n": 10})  # written during the outage, after the others
    ok = Target()
    assert await spool.drain(ok.send) == 7
    assert [i["n"] for i in ok.got] == [4, 5, 6, 7, 8, 9, 10] and len(spool) == 0
    assert not list((tmp_path / "records").glob("*.jsonl"))


async def test_a_restarted_node_finds_what_it_spooled(tmp_path: Path) -> None:
    first = DiskSpool(tmp_path, "events")
    for i in range(3):
        await first.put({"n": i})
    segment = next((tmp_path / "events").glob("*.jsonl"))
    segment.write_bytes(segment.read_bytes() + b'{"n": 3, "torn')  # the node died mid-write
    second = DiskSpool(tmp_path, "events")
    target = Target()
    assert await second.drain(target.send) == 3
    assert [i["n"] for i in target.got] == [0, 1, 2] and len(second) == 0


async def test_a_full_spool_refuses_items_and_counts_them(tmp_path: Path) -> None:
    from server.storage.spool import SPOOL_DROPPED

    spool = DiskSpool(tmp_path, "bounded", max_bytes=200)
    before = SPOOL_DROPPED.labels("bounded")._value.get()
    results = [await spool.put({"text": "x" * 40, "n": i}) for i in range(10)]
    assert results[:3] == [True] * 3 and not all(results)
    kept = sum(results)
    assert len(spool) == kept and sum(p.stat().st_size for p in (tmp_path / "bounded").glob("*")) <= 200
    assert SPOOL_DROPPED.labels("bounded")._value.get() - before == 10 - kept


@pytest.mark.parametrize("item", [{"body": "ünïcode ✓"}, {"nested": {"a": [1, 2, None]}}])
async def test_any_json_object_round_trips(tmp_path: Path, item: dict[str, Any]) -> None:
    spool = DiskSpool(tmp_path, "json")
    await spool.put(item)
    target = Target()
    await spool.drain(target.send)
    assert target.got == [item]


async def test_a_full_disk_keeps_items_in_memory_in_order_until_the_disk_takes_them(tmp_path: Path) -> None:
    """The segment being written is a link to ``/dev/full``: every write fails with ENOSPC, as on a full
    disk. Before, the item was dropped (lost); now it waits in memory, later items queue behind it (also
    once the disk takes writes again), and a drain sends them all in order."""
    spool = DiskSpool(tmp_path, "records")
    assert await spool.put({"n": 0})  # on disk
    await spool.drain(Target(fail_after=0).send)  # seals segment 1; the next put opens segment 2
    full = spool.path / f"{spool._current:012d}.jsonl"
    full.symlink_to("/dev/full")
    assert await spool.put({"n": 1}) and await spool.put({"n": 2})
    assert len(spool) == 3 and spool.in_memory == 2
    full.unlink()  # space freed
    assert await spool.put({"n": 3})  # behind the ones in memory, not before them
    assert spool.in_memory == 3
    away = Target(fail_after=2)
    assert await spool.drain(away.send) == 2 and len(spool) == 2
    back = Target()
    assert await spool.drain(back.send) == 2
    assert [i["n"] for i in away.got + back.got] == [0, 1, 2, 3] and len(spool) == 0
    assert await spool.put({"n": 4}) and spool.in_memory == 0  # on disk again


async def test_items_held_in_memory_are_written_to_disk_at_shutdown(tmp_path: Path) -> None:
    spool = DiskSpool(tmp_path, "records")
    full = spool.path / f"{spool._current:012d}.jsonl"
    full.symlink_to("/dev/full")
    assert await spool.put({"n": 0})
    assert spool.persist_memory() == 1  # still full: reported, not silently gone
    full.unlink()
    assert spool.persist_memory() == 0
    again = Target()
    assert await DiskSpool(tmp_path, "records").drain(again.send) == 1 and again.got == [{"n": 0}]
