"""Processes of one deployment (the scheduler and every node) start at the same moment on one database.

Regression: each one creates the scheduler tables; on SQLite one of them lost the race with
"table scheduler_user_contacts already exists" and the node died at start-up.
"""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest
import sqlalchemy as sa

pytestmark = [pytest.mark.slow]

PROCESSES = 6


def _open_store(url: str, barrier: multiprocessing.synchronize.Barrier) -> None:
    from scheduler.db import create_store_engine

    barrier.wait(30)
    create_store_engine(url).dispose()


def test_processes_creating_the_scheduler_tables_at_once_all_start(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'jobs.sqlite3'}"
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(PROCESSES)
    procs = [ctx.Process(target=_open_store, args=(url, barrier)) for _ in range(PROCESSES)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0] * PROCESSES
    tables = set(sa.inspect(sa.create_engine(url)).get_table_names())
    assert {"scheduler_campaigns", "scheduler_deliveries", "scheduler_user_contacts"} <= tables, tables
