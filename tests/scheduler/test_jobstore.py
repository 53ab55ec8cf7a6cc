"""The scheduler's thread survives a job store that refuses writes for a while (a full disk under the
SQLite job store, a database restart). The refusal is SQLite's own: ``PRAGMA query_only`` on the job
store's one connection makes every write fail with "attempt to write a readonly database"
(``OperationalError``, what a full disk raises too). Before ``OutageTolerantJobStore``, APScheduler's
unguarded ``update_job`` let it end the thread, and no job ever ran again."""

from __future__ import annotations

import time
from pathlib import Path

from apscheduler.schedulers.background import BackgroundScheduler

from scheduler.db import create_engine
from scheduler.jobstore import OutageTolerantJobStore

RUNS: list[float] = []


def tick() -> None:
    RUNS.append(time.monotonic())


def _wait_for_runs(count: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if len(RUNS) >= count:
            return True
        time.sleep(0.05)
    return False


def test_the_scheduling_thread_survives_a_job_store_that_refuses_writes(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'jobs.sqlite3'}")
    scheduler = BackgroundScheduler(jobstores={"default": OutageTolerantJobStore(engine=engine, retry_s=0.2)})
    RUNS.clear()
    scheduler.start()
    try:
        scheduler.add_job(tick, "interval", seconds=0.3, id="tick")
        assert _wait_for_runs(2, 10)
        with engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA query_only = ON")  # every write refused from now on
        time.sleep(1.5)
        assert scheduler._thread is not None and scheduler._thread.is_alive()
        with engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA query_only = OFF")
        after = len(RUNS)
        assert _wait_for_runs(after + 2, 10), "no job ran after the store took writes again"
    finally:
        scheduler.shutdown(wait=False)
        engine.dispose()
