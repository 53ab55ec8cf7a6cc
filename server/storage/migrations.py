"""Versioned schema migrations, per store, on one database shared by several processes.

Each store lists its ``Migration``s (version, name, a function of a connection). ``migrate`` applies the
ones a database has not seen yet, in order, each in its own transaction together with its row in
``schema_migrations``; a lock makes nodes that start together wait for each other instead of racing
(PostgreSQL: a transaction-level advisory lock per store; SQLite: the ``BEGIN IMMEDIATE`` write lock).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from server.storage.engine import is_postgres

log = logging.getLogger(__name__)

_metadata = sa.MetaData()
schema_migrations = sa.Table(
    "schema_migrations",
    _metadata,
    sa.Column("store", sa.String(64), primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("applied_at", sa.Double, nullable=False),
)


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    apply: Callable[[sa.Connection], None]


def migrate(engine: Engine, store: str, migrations: Sequence[Migration]) -> list[int]:
    """Apply ``store``'s pending migrations; returns the versions applied now."""
    applied: list[int] = []
    for migration in sorted(migrations, key=lambda m: m.version):
        with engine.begin() as conn:
            if is_postgres(conn):
                conn.execute(
                    sa.text("SELECT pg_advisory_xact_lock(hashtext(:key))"), {"key": f"migrate:{store}"}
                )
            _metadata.create_all(conn, checkfirst=True)
            done = conn.execute(
                sa.select(schema_migrations.c.version).where(
                    schema_migrations.c.store == store, schema_migrations.c.version == migration.version
                )
            ).first()
            if done is not None:
                continue
            log.info("%s: applying migration %d (%s)", store, migration.version, migration.name)
            migration.apply(conn)
            conn.execute(
                schema_migrations.insert().values(
                    store=store, version=migration.version, name=migration.name, applied_at=time.time()
                )
            )
            applied.append(migration.version)
    return applied


def create_tables(*tables: sa.Table) -> Callable[[sa.Connection], None]:
    """A migration step that creates ``tables`` (and their indexes) where they do not exist yet."""

    def apply(conn: sa.Connection) -> None:
        for table in tables:
            table.create(conn, checkfirst=True)

    return apply


def create_index(index: sa.Index) -> Callable[[sa.Connection], None]:
    """A migration step that adds ``index`` to a table created before it was declared."""

    def apply(conn: sa.Connection) -> None:
        index.create(conn, checkfirst=True)

    return apply


def copy_legacy_rows(legacy: str, table: sa.Table, columns: Sequence[str]) -> Callable[[sa.Connection], None]:
    """A migration step that copies ``columns`` of the rows of an older table named ``legacy`` (if that
    table exists) into ``table``; rows whose key is already there are kept. The old table stays."""

    def apply(conn: sa.Connection) -> None:
        if not sa.inspect(conn).has_table(legacy):
            return
        names = ", ".join(columns)
        keys = ", ".join(c.name for c in table.primary_key.columns)
        ignore = f"ON CONFLICT ({keys}) DO NOTHING" if keys else ""
        conn.execute(sa.text(f"INSERT INTO {table.name} ({names}) SELECT {names} FROM {legacy} WHERE true {ignore}"))
        log.info("copied the rows of %s into %s", legacy, table.name)

    return apply


def add_column(table: str, column: str, ddl: str) -> Callable[[sa.Connection], None]:
    """A migration step that adds ``column`` (``ddl``: its type, nullability and default, in SQL both
    SQLite and PostgreSQL accept) to ``table`` unless it is there (a table created by an earlier step from
    the current model already has it). Existing rows get the default."""

    def apply(conn: sa.Connection) -> None:
        if column in {c["name"] for c in sa.inspect(conn).get_columns(table)}:
            return
        conn.execute(sa.text(f"ALTER TABLE {table} ADD COLUMN {column} {ddl}"))
        log.info("added column %s.%s", table, column)

    return apply
