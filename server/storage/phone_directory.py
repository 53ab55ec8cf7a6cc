"""The phone directory in SQLite or PostgreSQL (one implementation): one row per phone number.

Implements ``server.phone.directory.PhoneDirectory``. ``storage.phone_directory`` picks the database (a
path, or a ``postgresql://`` DSN shared by every node). Entries from ``phone.directory_file`` carry
source ``file`` and are replaced as a whole at each start; entries added through the admin API carry
source ``admin`` and stay until removed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from server.phone.directory import DirectoryEntry, Source, normalize_number
from server.storage.engine import create_engine, insert
from server.storage.migrations import Migration, create_tables, migrate

T = TypeVar("T")

metadata = sa.MetaData()
phone_directory = sa.Table(
    "phone_directory",
    metadata,
    sa.Column("number", sa.String(32), primary_key=True),
    sa.Column("user_id", sa.String(200), nullable=False),
    sa.Column("tenant", sa.String(128), nullable=False),
    sa.Column("timezone", sa.String(64), nullable=False),
    sa.Column("sip_uri", sa.String(300)),
    sa.Column("display_name", sa.String(200)),
    sa.Column("source", sa.String(16), nullable=False),
    sa.Column("updated_at", sa.Double, nullable=False),
)
sa.Index("phone_directory_user", phone_directory.c.user_id, phone_directory.c.tenant)
MIGRATIONS = (Migration(1, "phone_directory table", create_tables(phone_directory)),)
_FIELDS = ("number", "user_id", "tenant", "timezone", "sip_uri", "display_name", "source")


class SqlPhoneDirectory:
    """Coroutines; the SQL runs in worker threads, one transaction per call."""

    def __init__(self, engine: Engine, clock: Callable[[], float] = time.time) -> None:
        self.engine = engine
        self.clock = clock
        migrate(engine, "phone_directory", MIGRATIONS)

    def close(self) -> None:
        self.engine.dispose()

    async def _run(self, fn: Callable[[sa.Connection], T]) -> T:
        def in_transaction() -> T:
            with self.engine.begin() as conn:
                return fn(conn)

        return await asyncio.to_thread(in_transaction)

    async def by_number(self, number: str) -> DirectoryEntry | None:
        try:
            key = normalize_number(number)
        except ValueError:
            return None
        rows = await self._run(lambda conn: self._select(conn, phone_directory.c.number == key, 1))
        return rows[0] if rows else None

    async def by_user(self, user_id: str, tenant: str | None = None) -> DirectoryEntry | None:
        """The user's number (the most recently updated one when the user has several)."""
        where = phone_directory.c.user_id == user_id
        if tenant is not None:
            where = sa.and_(where, phone_directory.c.tenant == tenant)
        rows = await self._run(lambda conn: self._select(conn, where, 1))
        return rows[0] if rows else None

    async def entries(self, tenant: str | None = None, limit: int = 1000) -> list[DirectoryEntry]:
        where = sa.true() if tenant is None else phone_directory.c.tenant == tenant
        return await self._run(lambda conn: self._select(conn, where, limit, by_user=True))

    async def put(self, entry: DirectoryEntry) -> None:
        """Add the entry, or replace the one with the same number."""
        await self._run(lambda conn: self._upsert(conn, entry))

    async def remove(self, number: str) -> bool:
        try:
            key = normalize_number(number)
        except ValueError:
            return False

        def tx(conn: sa.Connection) -> bool:
            return bool(
                conn.execute(phone_directory.delete().where(phone_directory.c.number == key)).rowcount
            )

        return await self._run(tx)

    async def replace_source(self, source: Source, entries: list[DirectoryEntry]) -> int:
        """Make ``entries`` the directory's entries of ``source`` (the file's, at start); admin entries
        keep numbers the file does not list. Returns how many were written."""

        def tx(conn: sa.Connection) -> int:
            conn.execute(phone_directory.delete().where(phone_directory.c.source == source))
            for entry in entries:
                self._upsert(conn, entry.model_copy(update={"source": source}))
            return len(entries)

        return await self._run(tx)

    def _upsert(self, conn: sa.Connection, entry: DirectoryEntry) -> None:
        values: dict[str, Any] = {f: getattr(entry, f) for f in _FIELDS} | {"updated_at": self.clock()}
        statement = insert(conn, phone_directory).values(**values)
        conn.execute(
            statement.on_conflict_do_update(
                index_elements=["number"], set_={f: statement.excluded[f] for f in values if f != "number"}
            )
        )

    @staticmethod
    def _select(conn: sa.Connection, where: Any, limit: int, by_user: bool = False) -> list[DirectoryEntry]:
        order = (
            (phone_directory.c.user_id, phone_directory.c.number)
            if by_user
            else (phone_directory.c.updated_at.desc(),)
        )
        columns = [phone_directory.c[f] for f in _FIELDS]
        rows = conn.execute(sa.select(*columns).where(where).order_by(*order).limit(limit)).all()
        return [DirectoryEntry.model_validate(dict(zip(_FIELDS, row, strict=True))) for row in rows]


def open_phone_directory(
    target: str | Path, *, connect_timeout_s: float = 5.0, statement_timeout_s: float = 30.0
) -> SqlPhoneDirectory:
    """The directory for ``storage.phone_directory`` (blocking: connects and migrates; from a worker thread)."""
    engine = create_engine(
        target,
        connect_timeout_s=connect_timeout_s,
        statement_timeout_s=statement_timeout_s,
        application_name="voice-agent-phone-directory",
    )
    return SqlPhoneDirectory(engine)
