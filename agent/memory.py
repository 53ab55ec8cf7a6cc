"""Long-term memory per user of a tenant: a few facts and the summary of the last conversation, in SQLite.

A user id is unique within its tenant, so every row is keyed by (tenant, user). ``MemoryStore`` works in
one tenant (``"default"`` unless made with ``for_tenant``); views of several tenants share one database
connection. A database from before tenants is migrated at open: its rows belong to the default tenant.
"""

from __future__ import annotations

import copy
import re
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from agent.config import AgentConfig
from agent.errors import MemoryStoreError

DEFAULT_TENANT = "default"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS user_facts (
    tenant TEXT NOT NULL, user_id TEXT NOT NULL, fact TEXT NOT NULL, updated_at REAL NOT NULL,
    PRIMARY KEY (tenant, user_id, fact));
CREATE TABLE IF NOT EXISTS user_summaries (
    tenant TEXT NOT NULL, user_id TEXT NOT NULL, summary TEXT NOT NULL, updated_at REAL NOT NULL,
    PRIMARY KEY (tenant, user_id));
"""
# Tables of a database from before tenants: renamed, copied into the new ones (tenant "default"), dropped.
_PRE_TENANT_TABLES = {
    "user_facts": "user_id, fact, updated_at",
    "user_summaries": "user_id, summary, updated_at",
}

# Statements worth remembering, matched on the user's own words (cheap, no LLM call per turn).
_FACT_PATTERNS = [
    # Keywords match in any case; captured names/places must be capitalised (so "Alice and ..." stops at Alice).
    (re.compile(r"\b(?i:my name is) ([A-Z][\w'-]*(?: [A-Z][\w'-]*)?)"), "The user's name is {}."),
    (re.compile(r"\b(?i:call me) ([A-Z][a-z'-]+)\b"), "The user likes to be called {}."),
    (re.compile(r"\b(?i:I live in) ([A-Z][\w'-]*(?: [A-Z][\w'-]*)*)"), "The user lives in {}."),
    (re.compile(r"\b(?i:I(?:'m| am) from) ([A-Z][\w'-]*(?: [A-Z][\w'-]*)*)"), "The user is from {}."),
    (
        re.compile(r"\bmy (?:account|customer) (?:number|id) is ([\w-]{3,32})", re.IGNORECASE),
        "The user's account is {}.",
    ),
    (re.compile(r"\bI prefer ([\w' -]{2,40}?)(?:[.,!?]|$)", re.IGNORECASE), "The user prefers {}."),
]


def extract_facts(user_text: str) -> list[str]:
    """Facts stated in ``user_text`` (name, place, account, preferences)."""
    facts = []
    for pattern, template in _FACT_PATTERNS:
        for match in pattern.finditer(user_text):
            facts.append(template.format(match.group(1).strip()))
    return facts


@dataclass
class UserMemory:
    facts: list[str] = field(default_factory=list)
    summary: str | None = None


class MemoryStore:
    """SQLite-backed memory of one tenant; safe to share between conversations and threads of one process."""

    def __init__(self, path: str | Path, max_facts: int = 8, tenant: str = DEFAULT_TENANT) -> None:
        self.path = Path(path)
        self.max_facts = max_facts
        self.tenant = tenant
        self._lock = threading.Lock()
        try:
            if str(path) != ":memory:":
                self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(str(path), check_same_thread=False)
            with self._db:
                _migrate(self._db)
        except (OSError, sqlite3.Error) as exc:
            raise MemoryStoreError(f"cannot open agent memory database {path}: {exc}") from exc

    def for_tenant(self, tenant: str) -> MemoryStore:
        """The memory of ``tenant``'s users, on this store's connection (close only the store it came
        from)."""
        view = copy.copy(self)
        view.tenant = tenant
        return view

    @classmethod
    def from_config(cls, config: AgentConfig) -> MemoryStore:
        """The store at ``config.memory_path`` keeping ``config.memory_max_facts`` facts per user."""
        return cls(config.memory_path, max_facts=config.memory_max_facts)

    def load(self, user_id: str) -> UserMemory:
        """The user's newest facts (at most ``max_facts``) and last summary."""
        with self._lock, self._guard("read", user_id):
            rows = self._db.execute(
                "SELECT fact FROM user_facts WHERE tenant = ? AND user_id = ?"
                " ORDER BY updated_at DESC LIMIT ?",
                (self.tenant, user_id, self.max_facts),
            ).fetchall()
            summary = self._db.execute(
                "SELECT summary FROM user_summaries WHERE tenant = ? AND user_id = ?", (self.tenant, user_id)
            ).fetchone()
        return UserMemory(facts=[r[0] for r in reversed(rows)], summary=summary[0] if summary else None)

    def add_fact(self, user_id: str, fact: str) -> None:
        """Remember ``fact``; a fact with the same lead (e.g. "The user's name is") replaces the old one."""
        lead = fact.rsplit(" ", 1)[0] if " is " not in fact else fact.split(" is ", 1)[0] + " is "
        now = time.time()
        who = (self.tenant, user_id)
        with self._lock, self._guard("write", user_id), self._db:
            self._db.execute(
                "DELETE FROM user_facts WHERE tenant = ? AND user_id = ? AND fact LIKE ? || '%'", (*who, lead)
            )
            self._db.execute(
                "INSERT OR REPLACE INTO user_facts (tenant, user_id, fact, updated_at) VALUES (?, ?, ?, ?)",
                (*who, fact, now),
            )
            # Keep the table bounded per user.
            self._db.execute(
                "DELETE FROM user_facts WHERE tenant = ? AND user_id = ? AND fact NOT IN (SELECT fact FROM "
                "user_facts WHERE tenant = ? AND user_id = ? ORDER BY updated_at DESC LIMIT ?)",
                (*who, *who, self.max_facts),
            )

    def save_summary(self, user_id: str, summary: str) -> None:
        with self._lock, self._guard("write", user_id), self._db:
            self._db.execute(
                "INSERT OR REPLACE INTO user_summaries (tenant, user_id, summary, updated_at)"
                " VALUES (?, ?, ?, ?)",
                (self.tenant, user_id, summary, time.time()),
            )

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _guard(self, what: str, user_id: str) -> _SqliteGuard:
        return _SqliteGuard(
            f"cannot {what} agent memory for user {user_id!r} of tenant {self.tenant!r} in {self.path}"
        )


class _SqliteGuard:
    """Turns sqlite3 errors into MemoryStoreError with context."""

    def __init__(self, message: str) -> None:
        self._message = message

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: object, exc: BaseException | None, tb: object) -> None:
        if isinstance(exc, sqlite3.Error):
            raise MemoryStoreError(f"{self._message}: {exc}") from exc


def _migrate(db: sqlite3.Connection) -> None:
    """Create the tables; re-key tables from before tenants (their rows go to the default tenant)."""
    for table in _PRE_TENANT_TABLES:
        columns = {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
        if columns and "tenant" not in columns:
            db.execute(f"ALTER TABLE {table} RENAME TO {table}_pre_tenant")
    for statement in _SCHEMA.split(";"):  # not executescript: it would commit the renames on its own
        if statement.strip():
            db.execute(statement)
    for table, names in _PRE_TENANT_TABLES.items():
        old = f"{table}_pre_tenant"
        if db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (old,)).fetchone():
            db.execute(
                f"INSERT OR IGNORE INTO {table} (tenant, {names}) SELECT ?, {names} FROM {old}",
                (DEFAULT_TENANT,),
            )
            db.execute(f"DROP TABLE {old}")
