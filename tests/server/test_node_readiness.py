"""A node whose knowledge base cannot start still serves calls (without retrieval), but says so: /readyz
answers "degraded" naming the knowledge base and why (200: it still takes calls, and a knowledge store every
node shares being away must not take every node out of rotation), and /metrics shows the component down. The
failure is real: the knowledge store's PostgreSQL DSN points at a port nothing listens on."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest

from server.node import VoiceNode
from server.settings import load_settings
from tests.server.caller import free_port

pytestmark = pytest.mark.slow


async def test_a_knowledge_base_that_cannot_start_makes_the_node_degraded_but_ready_for_calls(
    tmp_path: Path,
) -> None:
    settings = load_settings(None, environ={})
    s = settings.server
    s.port, s.node_id, s.rag = free_port(), "kb-down", True
    settings.storage.records = str(tmp_path / "calls.sqlite3")
    settings.storage.delivery_ledger = str(tmp_path / "ledger.sqlite3")
    settings.agent.memory_path = str(tmp_path / "memory.sqlite3")
    settings.scheduler.jobstore_url = f"sqlite:///{tmp_path / 'jobs.sqlite3'}"
    settings.knowledge.store = "postgres"
    settings.knowledge.postgres_dsn = f"postgresql://postgres@127.0.0.1:{free_port()}/postgres"
    settings.knowledge.connect_timeout_s = 2
    node = VoiceNode(settings)
    await node.start()
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{node.base_url}/readyz") as resp:
                body = await resp.json()
                assert resp.status == 200, body
            assert body["status"] == "degraded" and "knowledge" in body["degraded"]
            assert "connect" in body["degraded"]["knowledge"].lower(), body
            async with http.get(f"{node.base_url}/metrics") as resp:
                metrics = await resp.text()
            assert 'voice_agent_component_up{component="knowledge"} 0.0' in metrics
            async with http.get(f"{node.base_url}/api/calls/config") as resp:
                assert resp.status == 200  # calls are still served
    finally:
        await node.stop()
