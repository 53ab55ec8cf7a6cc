"""Nodes and callers for the fault scenarios: a node in this process (``VoiceNode``) on given stores, and
a caller that talks and checks it was answered."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp

from messaging.schemas import ProactivePrompt
from server.node import VoiceNode
from server.settings import Settings, load_settings
from tests.server.caller import TEST_CALL_SECRET, RTCCaller, free_port, synthesize_speech

ADMIN_TOKEN = "faults-admin"
QUESTION = "What time do you open on Sunday?"
_speech: dict[str, Any] = {}


def fault_settings(workdir: Path, node_id: str = "fault-node") -> Settings:
    """A node on SQLite files under ``workdir``, embedded bus, no knowledge base; tests change what their
    fault needs (a PostgreSQL DSN, RocketMQ, Ollama)."""
    settings = load_settings(None, environ={})
    s = settings.server
    s.host, s.port, s.node_id, s.admin_token, s.rag = "127.0.0.1", free_port(), node_id, ADMIN_TOKEN, False
    s.call_tokens.secret = TEST_CALL_SECRET  # known callers: a prompt finds its user's call
    settings.storage.records = str(workdir / "calls.sqlite3")
    settings.storage.delivery_ledger = str(workdir / "ledger.sqlite3")
    settings.storage.spool_retry_s = 1.0
    settings.agent.memory_path = str(workdir / "memory.sqlite3")
    settings.agent.first_token_timeout_s = 20.0
    settings.scheduler.jobstore_url = f"sqlite:///{workdir / 'jobs.sqlite3'}"
    settings.scheduler.campaign_sync_interval_s = 1
    settings.scheduler.per_user_min_interval_s = 0
    settings.scheduler.publish_retry_s = 2.0
    return settings


def broker_settings(workdir: Path, endpoint: str, node_id: str) -> Settings:
    """``fault_settings`` on a RocketMQ bus at ``endpoint``."""
    settings = fault_settings(workdir, node_id)
    settings.bus.backend = "rocketmq"
    settings.bus.rocketmq.endpoints = endpoint
    settings.bus.rocketmq.receive_wait_s = 2
    settings.bus.rocketmq.publish_timeout_s = 5  # fail a publish fast while the broker is away
    return settings


@asynccontextmanager
async def running_node(settings: Settings) -> AsyncIterator[VoiceNode]:
    node = VoiceNode(settings)
    await node.start()
    try:
        yield node
    finally:
        await node.stop()


def prompt(user_id: str, text: str, ttl_s: float = 600) -> ProactivePrompt:
    key = f"fault-{user_id}-{time.monotonic_ns()}"
    return ProactivePrompt(
        message_id=key, idempotency_key=key, user_id=user_id, text=text, expires_at=time.time() + ttl_s
    )


async def question_speech() -> Any:
    if "q" not in _speech:
        _speech["q"] = await synthesize_speech(QUESTION)
    return _speech["q"]


async def greeted(base_url: str, user_id: str) -> RTCCaller:
    """A caller in a call on ``base_url`` who has heard the greeting to its end."""
    caller = RTCCaller(base_url, user_id=user_id)
    await caller.connect()
    await caller.reply_start(after=0.0, timeout=60)
    await caller.wait_quiet(1.0, timeout=60)
    return caller


async def answered(caller: RTCCaller, timeout: float = 60) -> bool:
    """The caller asks a question and hears the start of a reply within ``timeout``."""
    try:
        sent = await caller.say(await question_speech())
        await caller.reply_start(after=sent, timeout=timeout)
        await caller.wait_quiet(1.0, timeout=timeout)
        return True
    except (TimeoutError, AssertionError):
        return False


async def until(check: Callable[[], Awaitable[Any]], timeout: float, interval: float = 0.25) -> float | None:
    """Seconds until ``check()`` is truthy (exceptions count as not yet), or None after ``timeout``."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        try:
            if await check():
                return time.monotonic() - t0
        except Exception:  # noqa: BLE001, S110 - the service may still be coming back
            pass
        await asyncio.sleep(interval)
    return None


async def http_json(url: str, token: str | None = ADMIN_TOKEN) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with aiohttp.ClientSession(headers=headers) as http, http.get(url) as resp:
        try:
            return resp.status, await resp.json()
        except (aiohttp.ContentTypeError, ValueError):
            return resp.status, None
