"""Processes of one deployment (the scheduler and every node) start at the same moment on one database.

Regression: each one creates the scheduler tables; on SQLite one of them lost the race with
"table scheduler_user_contacts already exists" and the node died at start-up. The server's stores
(delivery ledger, call records) migrate the same file at the same moment too.
"""

from __future__ import annotations

import multiprocessing
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

pytestmark = [pytest.mark.slow]

PROCESSES = 6


def _open_store(url: str, barrier: multiprocessing.synchronize.Barrier) -> None:
    from scheduler.db import create_store_engine

    barrier.wait(30)
    create_store_engine(url).dispose()


def _start_at_once(target: Any, arg: str) -> list[int | None]:
    """Exit codes of ``PROCESSES`` processes running ``target(arg, barrier)`` released together."""
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(PROCESSES)
    procs = [ctx.Process(target=target, args=(arg, barrier)) for _ in range(PROCESSES)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    return [p.exitcode for p in procs]


def test_processes_creating_the_scheduler_tables_at_once_all_start(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'jobs.sqlite3'}"
    assert _start_at_once(_open_store, url) == [0] * PROCESSES
    tables = set(sa.inspect(sa.create_engine(url)).get_table_names())
    assert {"scheduler_campaigns", "scheduler_conversations", "scheduler_user_contacts"} <= tables, tables


def _open_server_stores(path: str, barrier: multiprocessing.synchronize.Barrier) -> None:
    from server.storage.call_records import open_call_record_store
    from server.storage.delivery_ledger import open_delivery_ledger

    barrier.wait(30)
    open_delivery_ledger(path).close()
    open_call_record_store(path).close()


def test_processes_migrating_the_server_stores_at_once_all_start(tmp_path: Path) -> None:
    """The delivery ledger and call records migrate under a lock: racing processes each start, and
    every migration is recorded once."""
    path = str(tmp_path / "shared.sqlite3")
    assert _start_at_once(_open_server_stores, path) == [0] * PROCESSES
    with sa.create_engine(f"sqlite:///{path}").connect() as conn:
        applied = conn.execute(sa.text("SELECT store, version FROM schema_migrations ORDER BY 1, 2")).all()
    assert [tuple(r) for r in applied] == [
        ("call_records", 1), ("call_records", 2), ("call_records", 3), ("call_records", 4),
        ("delivery_ledger", 1), ("delivery_ledger", 2), ("delivery_ledger", 3), ("delivery_ledger", 4),
    ]
