"""Every route of the application, as ``voice-agent serve`` builds it (admin API, knowledge document API,
dashboard, call API, media stream), refuses a request without the right credential, unless it is listed
here as public. A route added without a line in ``GUARDS`` fails this test until someone decides its guard.

Guards: ``public``; ``admin`` (an admin token); ``call`` (a call token); ``call_or_admin`` (the call's own
token or an admin token of its tenant); ``ticket`` (a WebSocket upgrade: a single-use ticket or a Bearer
call token); ``metrics`` (public while ``server.metrics_public``). In anonymous mode (no call-token secret)
the routes in ``OPEN_WHEN_ANONYMOUS`` take no token: they make a fresh anonymous user.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from server.http.app import create_app
from server.settings import Settings, load_settings
from tests.server.caller import TEST_CALL_SECRET, free_port, mint_call_token
from tests.server.fakes import fake_deps

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]

ADMIN_TOKEN = "route-guard-admin-token"
GUARDS: dict[tuple[str, str], str] = {
    ("GET", "/"): "public",
    ("GET", "/static"): "public",
    ("GET", "/healthz"): "public",
    ("GET", "/readyz"): "public",
    ("GET", "/metrics"): "metrics",
    ("GET", "/admin"): "public",
    ("GET", "/admin/"): "public",
    ("GET", "/admin/static"): "public",
    ("GET", "/api/admin/openapi.json"): "public",
    ("POST", "/api/calls/offer"): "call",
    ("GET", "/api/calls/config"): "call",
    ("GET", "/api/calls"): "admin",
    ("POST", "/api/calls/{call_id}/tickets"): "call",
    ("GET", "/api/calls/{call_id}/events"): "ticket",
    ("POST", "/api/calls/{call_id}/hangup"): "call",
    ("GET", "/api/calls/{call_id}"): "call_or_admin",
    ("POST", "/api/media/tickets"): "call",
    ("GET", "/api/media/ws"): "ticket",
    ("GET", "/api/admin/campaigns"): "admin",
    ("POST", "/api/admin/campaigns"): "admin",
    ("GET", "/api/admin/campaigns/{campaign_id}"): "admin",
    ("DELETE", "/api/admin/campaigns/{campaign_id}"): "admin",
    ("POST", "/api/admin/campaigns/{campaign_id}/pause"): "admin",
    ("POST", "/api/admin/campaigns/{campaign_id}/resume"): "admin",
    ("POST", "/api/admin/campaigns/{campaign_id}/cancel"): "admin",
    ("GET", "/api/admin/campaigns/{campaign_id}/deliveries"): "admin",
    ("GET", "/api/admin/intents"): "admin",
    ("GET", "/api/admin/conversations/{conversation_id}/intents"): "admin",
    ("GET", "/api/admin/calls"): "admin",
    ("POST", "/api/admin/prompts"): "admin",
    ("GET", "/api/admin/latency"): "admin",
    ("POST", "/api/admin/call-tokens"): "admin",
    ("GET", "/api/admin/call-records"): "admin",
    ("GET", "/api/admin/call-records/{call_id}"): "admin",
    ("POST", "/api/admin/evaluations"): "admin",
    ("GET", "/api/admin/evaluations"): "admin",
    ("GET", "/api/admin/evaluations/{job_id}"): "admin",
    ("GET", "/api/admin/phone/directory"): "admin",
    ("POST", "/api/admin/phone/directory"): "admin",
    ("DELETE", "/api/admin/phone/directory/{number}"): "admin",
    ("POST", "/api/admin/phone/calls"): "admin",
    ("GET", "/api/admin/phone/attempts"): "admin",
    ("POST", "/api/knowledge/documents"): "admin",
    ("GET", "/api/knowledge/documents"): "admin",
    ("GET", "/api/knowledge/documents/{doc_id}"): "admin",
    ("DELETE", "/api/knowledge/documents/{doc_id}"): "admin",
}
OPEN_WHEN_ANONYMOUS = {
    ("POST", "/api/calls/offer"),
    ("GET", "/api/calls/config"),
    ("POST", "/api/media/tickets"),
}
STATIC_FILES = {"/static": "/static/call.js", "/admin/static": "/admin/static/admin.js"}


def routes_of(app: web.Application) -> set[tuple[str, str]]:
    """(method, path template) of every route; HEAD is aiohttp's twin of a GET and is checked with it."""
    out = set()
    for route in app.router.routes():
        info = route.resource.get_info() if route.resource is not None else {}
        path = info.get("formatter") or info.get("path") or info.get("prefix")
        if route.method != "HEAD":
            out.add((route.method, str(path).replace("{doc_id:.+}", "{doc_id}")))
    return out


def concrete(path: str) -> str:
    if path in STATIC_FILES:
        return STATIC_FILES[path]
    return path.replace("{doc_id}", "some-doc").replace("{", "").replace("}", "")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def node(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Any]:
    """A real node (models, embedded bus and scheduler, knowledge base) with a call-token secret."""
    from server.node import VoiceNode

    work = tmp_path_factory.mktemp("route-guards")
    settings = load_settings(None, environ={})
    s = settings.server
    s.host, s.port, s.node_id, s.admin_token = "127.0.0.1", free_port(), "guards", ADMIN_TOKEN
    s.call_tokens.secret = TEST_CALL_SECRET
    s.rate_limits.enabled = False  # this test sends dozens of wrong tokens; the limit has its own test
    settings.storage.records = str(work / "calls.sqlite3")
    settings.storage.delivery_ledger = str(work / "ledger.sqlite3")
    settings.agent.memory_path = str(work / "memory.sqlite3")
    settings.knowledge.embedded_path = str(work / "knowledge.sqlite3")
    settings.scheduler.jobstore_url = f"sqlite:///{work / 'jobs.sqlite3'}"
    voice_node = VoiceNode(settings)
    await voice_node.start()
    try:
        yield voice_node
    finally:
        await voice_node.stop()


async def _status(method: str, url: str, headers: dict[str, str] | None = None) -> int:
    async with aiohttp.ClientSession() as http, http.request(method, url, headers=headers or {}) as resp:
        return resp.status


async def test_every_route_of_the_node_has_a_decided_guard(node: Any) -> None:
    served = routes_of(node.app)
    assert served - GUARDS.keys() == set(), "new routes: decide their guard in GUARDS (and in README)"
    assert GUARDS.keys() - served == set(), "routes in GUARDS the node no longer serves"


async def test_every_guarded_route_refuses_without_its_credential(node: Any) -> None:
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    call = {"Authorization": f"Bearer {mint_call_token('guard-user')}"}
    refused: dict[str, list[int]] = {}
    for (method, path), guard in sorted(GUARDS.items()):
        url = node.base_url + concrete(path)
        if guard in ("public", "metrics"):
            assert await _status(method, url) < 400, (method, path)
            continue
        without = [await _status(method, url), await _status(method, url, {"Authorization": "Bearer wrong"})]
        without.append(await _status(method, url + "?token=" + ADMIN_TOKEN))  # never from a query string
        if guard == "admin":
            without.append(await _status(method, url, call))  # a call token is no admin token
        if guard in ("call", "ticket"):
            without.append(await _status(method, url, admin))  # an admin token is no call token
        refused[f"{method} {path}"] = without
        assert set(without) == {401}, (method, path, without)
        right = admin if guard in ("admin", "call_or_admin") else call
        if guard != "ticket":  # a Bearer call token on a plain GET of a socket route: 4xx other than 401
            assert await _status(method, url, right) not in (401, 403), (method, path)
    assert len(refused) == sum(g not in ("public", "metrics") for g in GUARDS.values())


async def test_metrics_need_an_admin_token_when_not_public(tmp_path: Path) -> None:
    settings = Settings()
    settings.server.metrics_public = False
    deps = fake_deps(tmp_path, settings)
    async with TestClient(TestServer(create_app(settings, deps))) as client:
        assert (await client.get("/metrics")).status == 401
        ok = await client.get("/metrics", headers={"Authorization": "Bearer change-me"})
        assert ok.status == 200 and "voice_agent_" in await ok.text()
    deps.records.close()


async def test_in_anonymous_mode_only_call_creation_is_open(tmp_path: Path) -> None:
    settings = Settings()  # no call-token secret
    deps = fake_deps(tmp_path, settings)
    async with TestClient(TestServer(create_app(settings, deps))) as client:
        for method, path in sorted(OPEN_WHEN_ANONYMOUS):
            assert (await client.request(method, path, json={})).status in (200, 400), path
        for method, path in GUARDS:
            if path.startswith("/api/calls") and (method, path) not in OPEN_WHEN_ANONYMOUS:
                assert (await client.request(method, concrete(path))).status == 401, (method, path)
    deps.records.close()
