"""Tenants in the scheduler: campaigns, call-backs, admin prompts and intent follow-ups publish prompts for
their tenant's users; a scheduler database from before tenants keeps its rows (in the default tenant)."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

from scheduler import db
from scheduler.conversations import ConversationLog
from tests.scheduler.conftest import PromptCollector, ServiceFactory
from tests.scheduler.test_service import campaign, now


async def test_prompts_carry_their_tenant(make_service: ServiceFactory, collector: PromptCollector) -> None:
    service = make_service()
    await service.start()
    await service.create_campaign(campaign(["ann"], now() + timedelta(seconds=1), tenant="acme"))
    await service.schedule_callback("bob", now(), "billing", tenant="globex")
    await service.send_prompt_now("cy", "Hello", tenant="initech")
    await service.send_prompt_now("dee", "Hello")
    bodies = await collector.wait_for(4, timeout_s=8)
    assert sorted((b["user_id"], b["tenant"]) for b in bodies) == [
        ("ann", "acme"),
        ("bob", "globex"),
        ("cy", "initech"),
        ("dee", "default"),
    ]


def test_a_scheduler_database_from_before_tenants_keeps_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    with sqlite3.connect(path) as old:
        old.executescript(
            """
            CREATE TABLE scheduler_conversations (conversation_id VARCHAR(200) PRIMARY KEY,
              user_id VARCHAR(200) NOT NULL, started_at DATETIME NOT NULL, last_event_at DATETIME NOT NULL,
              ended_at DATETIME, analyzed_at DATETIME);
            CREATE TABLE scheduler_intent_results (id INTEGER PRIMARY KEY, conversation_id VARCHAR(200) NOT NULL,
              user_id VARCHAR(200) NOT NULL, label VARCHAR(100) NOT NULL, confidence FLOAT NOT NULL,
              follow_up BOOLEAN NOT NULL, prompt TEXT, "when" DATETIME, fallback BOOLEAN NOT NULL,
              analyzed_at DATETIME NOT NULL);
            INSERT INTO scheduler_intent_results VALUES (1, 'c1', 'olga', 'renewal', 0.9, 0, NULL, NULL, 0,
              '2030-01-01 00:00:00.000000');
            """
        )
    engine = db.create_store_engine(f"sqlite:///{path}")
    try:
        log = ConversationLog(engine)
        assert log.users_with_latest_intent("renewal") == ["olga"]
        assert [r["tenant"] for r in log.intent_results()] == ["default"]
        log.record_turn("c2", "olga", "user", "hi", datetime(2030, 1, 2, tzinfo=UTC), tenant="acme")
        (pending,) = [
            c
            for c in log.pending_analysis(datetime(2031, 1, 1, tzinfo=UTC), 1, 10)
            if c.conversation_id == "c2"
        ]
        assert pending.tenant == "acme"
    finally:
        engine.dispose()
