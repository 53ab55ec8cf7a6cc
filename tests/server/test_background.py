"""``server.background``: a sweep that fails keeps sweeping; spawned work ends with its owner."""

from __future__ import annotations

import asyncio

import pytest

from server.background import BackgroundTasks, run_every


async def test_a_failing_sweep_is_logged_and_tried_again(caplog: pytest.LogCaptureFixture) -> None:
    runs: list[int] = []

    async def sweep() -> None:
        runs.append(len(runs))
        if len(runs) <= 2:
            raise ConnectionError("database unreachable")

    loop = asyncio.create_task(run_every(0.01, sweep, "test sweep", first_now=True))
    while len(runs) < 4:
        await asyncio.sleep(0.005)
    loop.cancel()
    with pytest.raises(asyncio.CancelledError):
        await loop
    failures = [r for r in caplog.records if "test sweep failed" in r.getMessage()]
    assert len(failures) == 2 and failures[0].exc_info is not None


async def test_cancel_all_ends_every_spawned_task_and_forgets_finished_ones() -> None:
    tasks = BackgroundTasks()
    done = tasks.spawn(asyncio.sleep(0), "quick")
    forever = tasks.spawn(asyncio.Event().wait(), "forever")
    await done
    await asyncio.sleep(0)
    assert list(tasks) == [forever]
    await tasks.cancel_all()
    assert forever.cancelled() and len(tasks) == 0
