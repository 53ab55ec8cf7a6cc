"""Agent memory (SQLite) is read and written off the event loop: a locked or slow memory database must not
freeze the audio of every call on the node. The lock is real: another connection holds the file's write
lock (``BEGIN EXCLUSIVE``), as a backup or a second process would."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.config import AgentConfig, GroundingConfig
from agent.conversation import Conversation
from agent.memory import MemoryStore
from tests.agent.fakes import FakeLLM
from tests.loop_lag import LoopLag

LOCK_S = 1.5  # how long the other connection holds the lock; the memory store waits up to 5 s for it


@pytest.fixture
def memory_path(tmp_path: Path) -> Path:
    path = tmp_path / "memory.sqlite3"
    MemoryStore(path).close()  # tables exist
    return path


@pytest.fixture
def locker(memory_path: Path) -> Iterator[sqlite3.Connection]:
    conn = sqlite3.connect(memory_path, isolation_level=None, check_same_thread=False)
    yield conn
    conn.close()


async def _hold_lock(conn: sqlite3.Connection) -> None:
    conn.execute("BEGIN EXCLUSIVE")
    await asyncio.sleep(LOCK_S)
    conn.execute("COMMIT")


async def test_stating_a_fact_while_memory_is_locked_does_not_block_the_loop(
    memory_path: Path, locker: sqlite3.Connection
) -> None:
    config = AgentConfig(memory_path=str(memory_path), grounding=GroundingConfig(enabled=False))
    memory = MemoryStore(memory_path)
    conversation = Conversation(FakeLLM(["Nice to meet you."]), config, memory=memory, user_id="al")
    await conversation.recall()
    holder = asyncio.create_task(_hold_lock(locker))
    await asyncio.sleep(0.05)
    async with LoopLag() as lag:
        reply = "".join([p async for p in conversation.respond("Hi, my name is Alan and I live in Leeds.")])
    await holder
    assert reply.strip() == "Nice to meet you."
    assert lag.max_s < 0.5, f"the event loop was held {lag.max_s:.2f} s by a memory write"
    stored = MemoryStore(memory_path).load("al")
    assert "The user's name is Alan." in stored.facts and "The user lives in Leeds." in stored.facts


async def test_a_new_call_while_memory_is_locked_does_not_block_the_loop(
    memory_path: Path, locker: sqlite3.Connection
) -> None:
    store = MemoryStore(memory_path)
    store.add_fact("bo", "The user's name is Bo.")
    config = AgentConfig(memory_path=str(memory_path))
    holder = asyncio.create_task(_hold_lock(locker))
    await asyncio.sleep(0.05)
    async with LoopLag() as lag:
        conversation = Conversation(FakeLLM(["Hi."]), config, memory=store, user_id="bo")
        await conversation.recall()
    await holder
    assert lag.max_s < 0.5, f"the event loop was held {lag.max_s:.2f} s by a memory read"
    assert conversation.greeting().startswith("Hello Bo!")


async def test_an_unreadable_memory_gives_a_call_without_memory(tmp_path: Path) -> None:
    path = tmp_path / "memory.sqlite3"
    store = MemoryStore(path)
    path.write_bytes(b"this is not a database" * 100)  # corrupted under the open store
    store.close()
    broken = MemoryStore.__new__(MemoryStore)
    broken.path, broken.max_facts, broken.tenant = path, 8, "default"
    broken._lock = store._lock
    broken._db = sqlite3.connect(str(path), check_same_thread=False)
    conversation = Conversation(FakeLLM(["Hello."]), AgentConfig(), memory=broken, user_id="cy")
    await conversation.recall()
    assert conversation.greeting().startswith("Hello!")
    assert "".join([p async for p in conversation.respond("hello")])
