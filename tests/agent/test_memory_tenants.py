"""Agent memory per user of a tenant: the same user id in two tenants is two people; a database from before
tenants keeps its facts (in the default tenant)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from agent.memory import MemoryStore


def test_the_same_user_id_in_two_tenants_is_two_people(tmp_path: Path) -> None:
    store = MemoryStore(tmp_path / "memory.sqlite3")
    acme, globex = store.for_tenant("acme"), store.for_tenant("globex")
    acme.add_fact("ann", "The user's account is A-1.")
    globex.add_fact("ann", "The user's account is G-2.")
    acme.save_summary("ann", "asked about opening hours")
    assert acme.load("ann").facts == ["The user's account is A-1."] and acme.load("ann").summary
    assert globex.load("ann").facts == ["The user's account is G-2."] and globex.load("ann").summary is None
    assert store.load("ann").facts == []  # the default tenant's ann knows nothing
    store.close()


def test_a_memory_database_from_before_tenants_keeps_its_facts(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    with sqlite3.connect(path) as old:
        old.executescript(
            """
            CREATE TABLE user_facts (user_id TEXT NOT NULL, fact TEXT NOT NULL, updated_at REAL NOT NULL,
              PRIMARY KEY (user_id, fact));
            CREATE TABLE user_summaries (user_id TEXT PRIMARY KEY, summary TEXT NOT NULL, updated_at REAL NOT NULL);
            INSERT INTO user_facts VALUES ('olga', 'The user''s name is Olga.', 1.0);
            INSERT INTO user_summaries VALUES ('olga', 'talked about parking', 1.0);
            """
        )
    for _ in range(2):  # opened twice: the second open finds it migrated
        store = MemoryStore(path)
        memory = store.load("olga")
        assert memory.facts == ["The user's name is Olga."] and memory.summary == "talked about parking"
        assert store.for_tenant("acme").load("olga").facts == []
        store.close()
