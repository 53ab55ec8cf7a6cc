"""Knowledge's own way into a database: a SQLAlchemy engine for a SQLite file or a PostgreSQL DSN.

``knowledge`` may not import ``server``, so it builds its engine here with the same rules as
``server.storage.engine`` (docs/CONTRACTS.md): PostgreSQL only through SQLAlchemy and psycopg 3, with a
connect timeout, a statement timeout and ``pool_pre_ping`` (a connection the database dropped is replaced
before a query fails on it); SQLite with WAL, the statement timeout as busy timeout, and every
writing transaction ``BEGIN IMMEDIATE``. Engines are blocking: the stores run them in worker threads.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import URL, Engine, make_url


def create_engine(
    target: str | Path,
    *,
    connect_timeout_s: float,
    statement_timeout_s: float,
    pool_size: int = 1,
    application_name: str = "voice-agent-knowledge",
    on_connect: Callable[[Any], None] | None = None,
) -> Engine:
    """``target``: a SQLite path or a ``postgresql://`` DSN. ``on_connect(dbapi_connection)`` prepares
    every new PostgreSQL connection (e.g. registers pgvector's type)."""
    text = str(target)
    if not text.startswith(("postgresql://", "postgres://")):
        return _sqlite(URL.create("sqlite", database=text), statement_timeout_s)
    url = make_url(text).set(drivername="postgresql+psycopg")
    connect_args = {
        "connect_timeout": max(1, round(connect_timeout_s)),
        "options": f"-c statement_timeout={int(statement_timeout_s * 1000)}",
        "application_name": application_name,
    }
    engine = sa.create_engine(
        url, connect_args=connect_args, pool_pre_ping=True, pool_size=pool_size, max_overflow=0
    )
    if on_connect is not None:
        event.listen(engine, "connect", lambda dbapi_connection, _record: on_connect(dbapi_connection))
    return engine


def _sqlite(url: URL, busy_timeout_s: float) -> Engine:
    Path(url.database or "").parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(url, connect_args={"timeout": busy_timeout_s})

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # BEGIN is ours (below)
        for pragma in (
            "journal_mode=WAL",
            "synchronous=NORMAL",
            f"busy_timeout={int(busy_timeout_s * 1000)}",
        ):
            dbapi_connection.execute(f"PRAGMA {pragma}")

    @event.listens_for(engine, "begin")
    def _begin(connection: sa.Connection) -> None:
        # A reader never takes the write lock, so searches never wait for another process's ingestion.
        read_only = connection.get_execution_options().get("read_only", False)
        connection.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")

    return engine


@contextmanager
def reading(engine: Engine) -> Iterator[sa.Connection]:
    """A read-only transaction (SQLite: a deferred ``BEGIN``; writes use ``engine.begin()``)."""
    with engine.connect().execution_options(read_only=True) as conn, conn.begin():
        yield conn
