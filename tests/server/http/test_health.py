"""``/healthz`` names the versions and backends in use; ``/readyz`` and ``/metrics`` answer."""

from __future__ import annotations

from pathlib import Path

from aiohttp.test_utils import TestClient, TestServer

from server.http.app import create_app
from server.settings import load_settings
from tests.server.fakes import fake_deps


async def test_healthz_reports_versions_and_embedded_backends(tmp_path: Path) -> None:
    settings = load_settings(environ={})
    async with TestClient(TestServer(create_app(settings, fake_deps(tmp_path, settings)))) as client:
        resp = await client.get("/healthz")
        assert resp.status == 200
        body = await resp.json()
        assert body["status"] == "ok"
        assert body["backends"] == {
            "bus": "embedded",
            "llm": "llamacpp:smollm2-gguf",
            "stt": "faster-whisper:tiny.en",
            "tts": "piper",
            "knowledge_store": "embedded",
            "embeddings": "minilm",
        }
        assert "aiortc" in body["versions"] and "faster-whisper" in body["versions"]
        assert (await client.get("/readyz")).status == 200
        metrics = await (await client.get("/metrics")).text()
        assert "voice_agent_" in metrics
