"""One blocking psycopg connection for a small PostgreSQL-backed store, used from worker threads.

Call records and the proactive delivery ledger are written a few times per call, so a pool would buy nothing;
psycopg's blocking API run through ``asyncio.to_thread`` keeps the event loop free, and one lock serializes
the store's operations on its connection. A connection the database dropped (restart, failover, an admin's
``pg_terminate_backend``) is reopened once per operation, so a write is not lost to a stale socket. The
store's tables are created at open under an advisory lock, so nodes starting together do not race.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from typing import Any, TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")


class PgStoreError(RuntimeError):
    """The store cannot be opened (psycopg missing, database unreachable)."""


class BlockingPgConnection:
    """``await call(fn)`` runs ``fn(conn)`` in a worker thread, in one transaction when ``write``."""

    def __init__(
        self, dsn: str, *, application_name: str, purpose: str, config_key: str, schema: str
    ) -> None:
        try:
            import psycopg
        except ImportError as exc:
            raise PgStoreError(
                f"{config_key} is a PostgreSQL DSN: pip install 'voice-agent[postgres]'"
            ) from exc
        self._psycopg = psycopg
        self._dsn = dsn
        self._application_name = application_name
        self._purpose = purpose
        self._lock = threading.Lock()
        self._conn: Any = None
        with self._lock:
            self._run(lambda conn: _create_schema(conn, application_name, schema), write=False)

    async def call(self, fn: Callable[[Any], T], write: bool = False) -> T:
        def locked() -> T:
            with self._lock:
                return self._run(fn, write)

        return await asyncio.to_thread(locked)

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def _run(self, fn: Callable[[Any], T], write: bool) -> T:
        """On a broken connection reconnect and try once more. A retried write whose first commit did reach
        the database finds its own rows: the store's statements must be idempotent (upserts, guarded updates)."""
        for attempt in (1, 2):
            conn = self._connection()
            try:
                if not write:
                    return fn(conn)
                with conn.transaction():
                    return fn(conn)
            except self._psycopg.OperationalError as exc:
                if attempt == 2 or not conn.closed and not conn.broken:
                    raise
                log.warning("%s: connection lost (%s); reconnecting", self._purpose, exc)
                self._conn = None
        raise AssertionError("unreachable")

    def _connection(self) -> Any:
        if self._conn is None or self._conn.closed:
            try:
                self._conn = self._psycopg.connect(
                    self._dsn, autocommit=True, application_name=self._application_name
                )
            except self._psycopg.Error as exc:
                raise PgStoreError(f"cannot connect to PostgreSQL for {self._purpose}: {exc}") from exc
        return self._conn


def _create_schema(conn: Any, lock_name: str, schema: str) -> None:
    with conn.transaction():  # nodes starting together: one creates, the others wait and see it
        conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (lock_name,))
        conn.execute(schema)
