"""``hold_write_lock(path, seconds)``: another connection takes a SQLite file's exclusive lock for a while,
from its own thread, as a backup, a second process or a slow disk would. While it holds the lock, every
statement on the file waits (up to the busy timeout); code that runs such a statement on the event loop
freezes the loop that long."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path


def hold_write_lock(path: str | Path, seconds: float) -> threading.Thread:
    """Returns once the lock is held; the thread releases it after ``seconds`` (join it to wait)."""
    held = threading.Event()

    def run() -> None:
        conn = sqlite3.connect(str(path), isolation_level=None, timeout=30)
        try:
            conn.execute("BEGIN EXCLUSIVE")
            held.set()
            threading.Event().wait(seconds)
            conn.execute("COMMIT")
        finally:
            held.set()
            conn.close()

    thread = threading.Thread(target=run, name="sqlite-lock-holder", daemon=True)
    thread.start()
    held.wait(30)
    return thread
