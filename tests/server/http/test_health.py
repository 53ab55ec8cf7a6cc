"""``/healthz`` names the versions and backends in use; ``/readyz`` and ``/metrics`` answer."""

from __future__ import annotations

from pathlib import Path

from aiohttp.test_utils import TestClient, TestServer

from server.calls.admission import CallAdmission
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


async def test_readyz_takes_a_degraded_node_into_rotation_but_not_a_full_or_starting_one(
    tmp_path: Path,
) -> None:
    settings = load_settings(environ={})
    deps = fake_deps(tmp_path, settings)
    deps.admission = CallAdmission(max_calls=1, retry_after_s=7)
    problem: list[str] = []
    checks = {"call records": lambda: problem[0] if problem else None}
    app = create_app(settings, deps, degraded={"knowledge": "could not connect"}, checks=checks)
    async with TestClient(TestServer(app)) as client:
        resp = await client.get("/readyz")
        body = await resp.json()
        assert resp.status == 200 and body["status"] == "degraded", body  # calls run without retrieval
        problem.append("waiting for space")
        body = await (await client.get("/readyz")).json()
        assert body["degraded"] == {"knowledge": "could not connect", "call records": "waiting for space"}
        assert deps.admission.try_admit("call-1", "webrtc")
        resp = await client.get("/readyz")
        body = await resp.json()
        assert resp.status == 503 and resp.headers["Retry-After"] == "7", body
        assert body["status"] == "full" and body["max_calls"] == 1 and "knowledge" in body["degraded"]
        deps.admission.release("call-1")
        assert (await client.get("/readyz")).status == 200
    starting = create_app(settings, fake_deps(tmp_path / "b", settings), ready=False)
    async with TestClient(TestServer(starting)) as client:
        resp = await client.get("/readyz")
        assert resp.status == 503 and (await resp.json())["status"] == "starting"
