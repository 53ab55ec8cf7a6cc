"""The one way to a database: SQLite files shared by processes that start together."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

from server.storage.delivery_ledger import open_delivery_ledger


def test_a_store_opens_a_file_another_process_is_writing(tmp_path: Path) -> None:
    """Regression: nodes and the scheduler start together on one ledger file; switching the file to WAL
    met another process's open write transaction and failed at once with "database is locked" (SQLite
    runs no busy handler for it). The store must wait for the lock like any other write."""
    path = tmp_path / "ledger.sqlite3"
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)  # rollback-journal mode
    other.execute("CREATE TABLE scratch (x)")
    other.execute("BEGIN IMMEDIATE")
    other.execute("INSERT INTO scratch VALUES (1)")
    release = threading.Timer(0.5, lambda: other.execute("COMMIT"))
    release.start()
    started = time.monotonic()
    ledger = open_delivery_ledger(path)
    try:
        assert time.monotonic() - started >= 0.4  # it waited for the other writer, then opened
        with ledger.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    finally:
        ledger.close()
        release.join()
        other.close()
