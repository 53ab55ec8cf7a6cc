"""Tables of the scheduler's own store (campaigns, conversation log, intent results, last contacts).

They live in the database named by ``SchedulerConfig.store_url`` (default: the job store's database), so a
single SQLite file or PostgreSQL database holds everything the scheduler needs to survive a restart.
"""

from __future__ import annotations

import time
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine, make_url

metadata = sa.MetaData()

campaigns = sa.Table(
    "scheduler_campaigns",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("spec", sa.JSON, nullable=False),  # audience, content, schedule, ttl (CampaignSpec as JSON)
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("last_run_at", sa.DateTime(timezone=True)),
)

conversations = sa.Table(
    "scheduler_conversations",
    metadata,
    sa.Column("conversation_id", sa.String(200), primary_key=True),
    sa.Column("user_id", sa.String(200), nullable=False, index=True),
    sa.Column("tenant", sa.String(64), nullable=False, server_default="default"),
    sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("last_event_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("ended_at", sa.DateTime(timezone=True)),
    sa.Column("analyzed_at", sa.DateTime(timezone=True)),
)

conversation_turns = sa.Table(
    "scheduler_conversation_turns",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("conversation_id", sa.String(200), nullable=False, index=True),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
)

intent_results = sa.Table(
    "scheduler_intent_results",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("conversation_id", sa.String(200), nullable=False, index=True),
    sa.Column("user_id", sa.String(200), nullable=False, index=True),
    sa.Column("tenant", sa.String(64), nullable=False, server_default="default"),
    sa.Column("label", sa.String(100), nullable=False, index=True),
    sa.Column("confidence", sa.Float, nullable=False),
    sa.Column("follow_up", sa.Boolean, nullable=False),
    sa.Column("prompt", sa.Text),
    sa.Column("when", sa.DateTime(timezone=True)),
    sa.Column("fallback", sa.Boolean, nullable=False),
    sa.Column("analyzed_at", sa.DateTime(timezone=True), nullable=False),
)

user_contacts = sa.Table(
    "scheduler_user_contacts",
    metadata,
    sa.Column("user_id", sa.String(200), primary_key=True),
    sa.Column("last_prompt_at", sa.DateTime(timezone=True), nullable=False),
)


def database_url(url: str) -> str:
    """``url`` ready for SQLAlchemy: a plain ``postgresql://`` DSN gets the psycopg 3 driver (the one the
    ``postgres`` extra installs) and a SQLite file gets its folder created."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    return parsed.render_as_string(hide_password=False)


def create_engine(url: str, *, connect_timeout_s: float = 5.0, statement_timeout_s: float = 30.0) -> Engine:
    """The scheduler's engine for ``url`` (job store or store), with the project's database timeouts:
    PostgreSQL's connect timeout and statement timeout, SQLite's busy timeout (see docs/CONTRACTS.md)."""
    url = database_url(url)
    if make_url(url).get_backend_name() == "sqlite":
        # One connection per process: the scheduler's worker threads and APScheduler's thread queue for it
        # instead of meeting in SQLite's lock upgrade (a deferred transaction that reads, then writes, fails
        # at once with "database is locked" when another connection of this process does the same).
        return sa.create_engine(
            url,
            connect_args={"timeout": statement_timeout_s, "check_same_thread": False},
            poolclass=sa.pool.QueuePool,
            pool_size=1,
            max_overflow=0,
            pool_timeout=statement_timeout_s,
        )
    options = f"-c statement_timeout={int(statement_timeout_s * 1000)}"
    connect_args = {"connect_timeout": max(1, round(connect_timeout_s)), "options": options}
    return sa.create_engine(url, connect_args=connect_args, pool_pre_ping=True)


def create_store_engine(url: str, **timeouts: float) -> Engine:
    """Engine for ``url`` with the scheduler tables created."""
    engine = create_engine(url, **timeouts)
    _create_tables(engine)
    return engine


def _create_tables(engine: Engine, attempts: int = 3) -> None:
    # The scheduler and several RTC nodes may start on one database at the same moment: one CREATE TABLE
    # then fails with "already exists"; on the next pass create_all sees the table and skips it.
    for attempt in range(1, attempts + 1):
        try:
            metadata.create_all(engine)
            _add_tenant_columns(engine)
            return
        except (sa.exc.OperationalError, sa.exc.ProgrammingError, sa.exc.IntegrityError):
            if attempt == attempts:
                raise
            time.sleep(0.2 * attempt)


# Tables that gained a tenant column after they were first created; rows from before belong to "default".
_TENANT_TABLES = (conversations, intent_results)


def _add_tenant_columns(engine: Engine) -> None:
    with engine.begin() as conn:
        inspector = sa.inspect(conn)
        for table in _TENANT_TABLES:
            if "tenant" not in {c["name"] for c in inspector.get_columns(table.name)}:
                column = "tenant VARCHAR(64) NOT NULL DEFAULT 'default'"
                conn.execute(sa.text(f"ALTER TABLE {table.name} ADD COLUMN {column}"))
