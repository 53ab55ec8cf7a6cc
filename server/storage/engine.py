"""One way to reach a database: a SQLAlchemy engine for a SQLite path or a ``postgresql://`` DSN.

Every store of the server (call records, the delivery ledger) and the scheduler's process are given their
engine by ``create_engine``; PostgreSQL is reached through SQLAlchemy with the psycopg 3 driver only.
- PostgreSQL: ``connect_timeout`` (seconds) bounds connecting, ``statement_timeout`` (server side) bounds
  every statement, ``pool_pre_ping`` replaces a connection the database dropped (restart, failover, an
  admin's ``pg_terminate_backend``) before a statement fails on it; ``application_name`` shows in
  ``pg_stat_activity``.
- SQLite: a file shared by the processes of one machine: WAL, one connection per process (threads queue
  for it), and ``statement_timeout`` as the busy timeout (how long a writer waits for another process's
  lock; SQLite has no statement timeout).
  Every transaction is ``BEGIN IMMEDIATE``: it takes the write lock up front, which is what makes the
  ledger's claim atomic across processes, and avoids pysqlite's deferred-BEGIN upgrade deadlocks.
Engines are blocking: stores call them from worker threads (``asyncio.to_thread``), never on the loop.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import URL, Engine, make_url


class StorageError(RuntimeError):
    """A store cannot be opened: the driver is missing or the database is unreachable."""


class StoreUnavailable(StorageError):
    """A statement could not run because the database is away for now (down, restarting, unreachable,
    locked past the busy timeout, out of disk): worth retrying later, unlike a bad statement."""


# What SQLAlchemy raises when the database (not the statement) is the problem: psycopg's connection and
# server-side errors, SQLite's "database is locked" / "disk is full" / I/O errors, a pool checkout timeout.
TRANSIENT_ERRORS: tuple[type[Exception], ...] = (
    sa.exc.OperationalError,
    sa.exc.InterfaceError,
    sa.exc.TimeoutError,
)


def unavailable(store: str, exc: Exception) -> StoreUnavailable:
    """The ``StoreUnavailable`` to raise from ``exc`` (one of ``TRANSIENT_ERRORS``) in ``store``."""
    detail = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0][:300]
    return StoreUnavailable(f"{store} unavailable: {type(exc).__name__}: {detail}")


def database_url(target: str | Path) -> URL:
    """The SQLAlchemy URL of a SQLite path or a PostgreSQL DSN (``postgresql://`` gets psycopg 3)."""
    text = str(target)
    if text.startswith(("postgresql://", "postgres://")):
        return make_url(text).set(drivername="postgresql+psycopg")
    if "://" in text:
        return make_url(text)
    return URL.create("sqlite", database=text)


def create_engine(
    target: str | Path,
    *,
    connect_timeout_s: float = 5.0,
    statement_timeout_s: float = 30.0,
    application_name: str = "voice-agent",
    pool_size: int = 2,
) -> Engine:
    """A new engine for ``target`` (a SQLite path or a database URL); see the module docstring."""
    url = database_url(target)
    if url.get_backend_name() == "sqlite":
        return _sqlite_engine(url, statement_timeout_s)
    if url.get_backend_name() != "postgresql":
        raise StorageError(
            f"unsupported database {url.render_as_string()!r}: use a SQLite path or postgresql://"
        )
    try:
        import psycopg  # noqa: F401
    except ImportError as exc:
        raise StorageError(
            f"{url.render_as_string()} needs psycopg: pip install 'voice-agent[postgres]'"
        ) from exc
    options = f"-c statement_timeout={int(statement_timeout_s * 1000)}"
    connect_args: dict[str, Any] = {
        "connect_timeout": max(1, round(connect_timeout_s)),
        "options": options,
        "application_name": application_name,
    }
    return sa.create_engine(
        url, connect_args=connect_args, pool_pre_ping=True, pool_size=pool_size, max_overflow=pool_size
    )


def _sqlite_engine(url: URL, busy_timeout_s: float) -> Engine:
    database = url.database or ""
    if database not in ("", ":memory:"):
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    # One connection per process: threads queue for it in the pool instead of colliding on SQLite's file
    # lock, whose busy handler sleeps in steps of up to 100 ms (4x lower throughput at 16 concurrent
    # writers). Other processes still wait on the lock, up to the busy timeout.
    engine = sa.create_engine(
        url,
        connect_args={"timeout": busy_timeout_s},
        poolclass=sa.pool.QueuePool,
        pool_size=1,
        max_overflow=0,
        pool_timeout=busy_timeout_s,
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we emit BEGIN ourselves (see "begin" below)
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_s * 1000)}")
        if database not in ("", ":memory:"):
            _enter_wal(cursor, busy_timeout_s)
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: sa.Connection) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def _enter_wal(cursor: Any, timeout_s: float) -> None:
    """``PRAGMA journal_mode=WAL``, retried: switching a fresh file to WAL needs a moment of exclusive
    access, and SQLite answers "database is locked" at once (no busy handler) while processes that start
    together open the same file."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def is_postgres(engine: Engine | sa.Connection) -> bool:
    return engine.dialect.name == "postgresql"


def insert(bind: Engine | sa.Connection, table: sa.Table) -> Any:
    """``INSERT`` with ``on_conflict_do_nothing`` / ``on_conflict_do_update``, in ``bind``'s dialect."""
    if is_postgres(bind):
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(table)
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert(table)
