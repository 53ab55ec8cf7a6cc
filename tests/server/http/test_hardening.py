"""Browser-facing hardening and abuse limits over real HTTP: Origin checks, security headers, rate limits
(429 with Retry-After) and an access log that never holds a secret."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer

from knowledge.knowledge_base import KnowledgeBase
from server.http.app import create_app, knowledge_routes, serve
from server.http.guards import Security
from server.security.config import RateLimit
from server.settings import Settings, load_settings
from tests.server.caller import TEST_CALL_SECRET, RTCCaller, free_port, media_url, mint_call_token, real_offer
from tests.server.fakes import fake_deps


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[TestClient]:
    settings = Settings()
    settings.server.allowed_origins = ["https://app.example.org"]
    deps = fake_deps(tmp_path, settings)
    async with TestClient(TestServer(create_app(settings, deps))) as c:
        yield c
    deps.records.close()


async def test_call_endpoints_refuse_other_origins(client: TestClient) -> None:
    sdp = await real_offer()
    evil = await client.post(
        "/api/calls/offer", json={"sdp": sdp}, headers={"Origin": "https://evil.example"}
    )
    assert evil.status == 403 and "allowed_origins" in (await evil.json())["error"]
    config = await client.get("/api/calls/config", headers={"Origin": "http://evil.example"})
    assert config.status == 403
    tickets = await client.post("/api/media/tickets", headers={"Origin": "https://evil.example"})
    assert tickets.status == 403
    host = client.server.make_url("").host
    own = f"http://{host}:{client.server.port}"
    for origin in (own, "https://app.example.org"):
        ok = await client.post(
            "/api/calls/offer", json={"sdp": sdp, "type": "offer"}, headers={"Origin": origin}
        )
        assert ok.status == 200, (origin, await ok.text())
    # a cross-site WebSocket (the page of another site opening our events socket) is refused at the upgrade
    answer = await ok.json()
    url = f"/api/calls/{answer['call_id']}/events?ticket={answer['events_ticket']}"
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await client.ws_connect(url, headers={"Origin": "https://evil.example"})
    assert refused.value.status == 403


async def test_pages_and_api_carry_security_headers(client: TestClient) -> None:
    for path in ("/", "/admin/", "/static/call.js", "/api/calls/config", "/api/calls/nope"):
        resp = await client.get(path)
        csp = resp.headers.get("Content-Security-Policy", "")
        assert "default-src 'self'" in csp and "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
        assert "unsafe-inline" not in csp, csp
        assert resp.headers["X-Content-Type-Options"] == "nosniff"
        assert resp.headers["X-Frame-Options"] == "DENY"
        assert resp.headers["Referrer-Policy"] == "no-referrer"
    assert (await client.get("/api/calls/config")).headers["Cache-Control"] == "no-store"
    page = await (await client.get("/")).text()
    admin = await (await client.get("/admin/")).text()
    for html in (page, admin):  # what CSP would block: inline scripts, inline styles, inline handlers
        assert "<script>" not in html and "style=" not in html and " onclick=" not in html


def limited_settings(**limits: RateLimit) -> Settings:
    settings = Settings()
    settings.server.call_tokens.secret = TEST_CALL_SECRET
    for name, limit in limits.items():
        setattr(settings.server.rate_limits, name, limit)
    return settings


async def test_call_creation_is_limited_per_client_and_per_token(tmp_path: Path) -> None:
    settings = limited_settings(
        calls_per_client=RateLimit(per_minute=60, burst=6), calls_per_token=RateLimit(per_minute=6, burst=2)
    )
    deps = fake_deps(tmp_path, settings)
    sdp = await real_offer()
    async with TestClient(TestServer(create_app(settings, deps))) as c:

        async def offer(user: str) -> aiohttp.ClientResponse:
            token = {"Authorization": f"Bearer {mint_call_token(user)}"}
            return await c.post("/api/calls/offer", json={"sdp": sdp}, headers=token)

        assert [(await offer("ann")).status for _ in range(3)] == [200, 200, 429]
        refused = await offer("ann")
        assert refused.status == 429 and 1 <= int(refused.headers["Retry-After"]) <= 10
        assert "this token" in (await refused.json())["error"]
        assert [(await offer("bob")).status for _ in range(2)] == [200, 200]  # another user's token
        by_client = await offer("carol")  # 7 offers from this client: its burst is 6
        assert by_client.status == 429 and "this client" in (await by_client.json())["error"]
        bob = {"Authorization": f"Bearer {mint_call_token('bob')}"}
        assert (await c.post("/api/media/tickets", headers=bob)).status == 429  # media calls count too
        await deps.registry.close_all()
    deps.records.close()


async def test_failed_authentication_is_limited_per_client(tmp_path: Path) -> None:
    settings = limited_settings(failed_auth_per_client=RateLimit(per_minute=1, burst=3))
    deps = fake_deps(tmp_path, settings)
    async with TestClient(TestServer(create_app(settings, deps))) as c:
        for _ in range(5):  # a missing token is no guess: never limited
            assert (await c.get("/api/calls")).status == 401
        wrong = [
            (await c.get("/api/calls", headers={"Authorization": "Bearer guess"})).status for _ in range(4)
        ]
        assert wrong == [401, 401, 401, 429]
        right = await c.get("/api/calls", headers={"Authorization": "Bearer change-me"})
        assert right.status == 429 and int(right.headers["Retry-After"]) > 1  # guessing locks the client out
        ticket = await c.get("/api/media/ws?ticket=forged")
        assert ticket.status == 429
    deps.records.close()


async def test_uploads_are_limited_per_client(tmp_path: Path) -> None:
    settings = limited_settings(uploads_per_client=RateLimit(per_minute=1, burst=2))
    settings.knowledge.embedded_path = str(tmp_path / "k.sqlite3")
    security = Security.from_settings(settings)
    auth = {"Authorization": "Bearer change-me"}
    async with KnowledgeBase(settings.knowledge) as kb:
        app = create_app(
            settings,
            fake_deps(tmp_path, settings),
            extra_routes=knowledge_routes(kb, security),
            security=security,
        )
        async with TestClient(TestServer(app)) as c:
            statuses = []
            for i in range(3):
                form = aiohttp.FormData()
                form.add_field(
                    "file", f"Document {i}.".encode(), filename=f"d{i}.txt", content_type="text/plain"
                )
                statuses.append((await c.post("/api/knowledge/documents", data=form, headers=auth)).status)
            assert statuses == [202, 202, 429]
            assert (
                await c.get("/api/knowledge/documents", headers=auth)
            ).status == 200  # reading is not limited


async def test_access_log_never_holds_a_token_or_ticket(tmp_path: Path) -> None:
    """The node's real server (``serve``): a call with a token, its events socket with a ticket, a media
    ticket, a request with a token in the query string; then the access log is read."""
    settings = load_settings(environ={})
    settings.server.call_tokens.secret = TEST_CALL_SECRET
    deps = fake_deps(tmp_path, settings)
    log_file = tmp_path / "access.log"
    handler = logging.FileHandler(log_file)
    access = logging.getLogger("aiohttp.access")
    access.addHandler(handler)
    access.setLevel(logging.INFO)
    port, stop = free_port(), asyncio.Event()
    started = asyncio.Event()

    async def on_started(_app: object) -> None:
        started.set()

    server = asyncio.create_task(
        serve(create_app(settings, deps), "127.0.0.1", port, on_started=on_started, stop=stop)
    )
    secrets_used: list[str] = []
    try:
        await asyncio.wait_for(started.wait(), 10)
        base = f"http://127.0.0.1:{port}"
        token = mint_call_token("logged-user")
        secrets_used.append(token)
        caller = RTCCaller(base, token=token)
        await caller.connect()
        secrets_used.append(caller.events_ticket)
        await caller.reply_start(after=0.0, timeout=15)
        await caller.record()

        class Base:  # media_url wants a server that makes URLs
            @staticmethod
            def make_url(path: str) -> str:
                return base + path

        ws_url = await media_url(Base(), token)
        secrets_used.append(ws_url.split("ticket=")[1])
        async with aiohttp.ClientSession() as http:
            async with http.ws_connect(ws_url) as ws:
                await ws.send_json({"event": "stop"})
            async with http.get(f"{base}/api/calls?token=change-me&limit=5") as resp:
                assert resp.status == 401
        secrets_used.append("change-me")
        await caller.hangup()
    finally:
        stop.set()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(server, 10)
        access.removeHandler(handler)
        handler.close()
        deps.records.close()
    logged = log_file.read_text()
    assert "/api/calls/offer" in logged and "/events?ticket=[redacted]" in logged, logged
    assert "/api/calls?token=[redacted]&limit=5" in logged, logged
    for secret in secrets_used:
        assert secret not in logged
