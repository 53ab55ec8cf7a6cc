"""Admin tokens scoped to one tenant, over real HTTP with a real SchedulerService, bus and ledger: a tenant's
token sees and changes only its tenant (campaigns, prompts, intents, live calls, call tokens, call records,
knowledge documents); the global token sees every tenant."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from knowledge.knowledge_base import KnowledgeBase
from messaging.bus import Message
from messaging.embedded import EmbeddedBus
from messaging.schemas import ProactivePrompt
from scheduler.config import SchedulerConfig
from scheduler.conversations import ConversationForAnalysis
from scheduler.publishing import BusPromptPublisher
from scheduler.service import SchedulerService
from server.calls.record import CallRecord
from server.http.admin import AdminDeps, admin_routes
from server.http.app import create_app, knowledge_routes
from server.http.guards import AdminGuard, Security
from server.security.admin_auth import AdminAuthenticator
from server.security.call_tokens import CallTokens
from server.security.config import CallTokenConfig, TenantAdminToken
from server.settings import Settings
from server.storage.delivery_ledger import open_delivery_ledger
from tests.server.caller import TEST_CALL_SECRET
from tests.server.fakes import fake_deps

GLOBAL = {"Authorization": "Bearer global-admin-token"}
ACME = {"Authorization": "Bearer acme-admin-token-0001"}
GLOBEX = {"Authorization": "Bearer globex-admin-token-01"}
TENANT_TOKENS = [
    TenantAdminToken(tenant="acme", token="acme-admin-token-0001"),
    TenantAdminToken(tenant="globex", token="globex-admin-token-01"),
]


class LiveCall:
    def __init__(self, call_id: str, user_id: str, tenant: str) -> None:
        self.call_id, self.user_id, self.tenant = call_id, user_id, tenant

    def snapshot(self) -> dict[str, Any]:
        return {"call_id": self.call_id, "user_id": self.user_id, "tenant": self.tenant, "started_at": 0.0,
                "transcript": []}  # fmt: skip


class Registry:
    def live(self) -> list[LiveCall]:
        return [LiveCall("c-acme", "ann", "acme"), LiveCall("c-globex", "ann", "globex")]


class Outcome:
    label, confidence, follow_up, prompt, when, fallback = "renewal", 0.9, False, None, None, False


@pytest.fixture
async def admin(tmp_path: Path) -> AsyncIterator[tuple[TestClient, list[Message], SchedulerService]]:
    bus = EmbeddedBus()
    received: list[Message] = []

    async def collect(message: Message) -> None:
        received.append(message)

    bus.subscribe("voice_proactive", "test-rtc", collect)
    await bus.start()
    ledger = open_delivery_ledger(tmp_path / "ledger.sqlite3")
    config = SchedulerConfig(jobstore_url=f"sqlite:///{tmp_path / 'jobs.sqlite3'}")
    service = SchedulerService(config, BusPromptPublisher(bus, "voice_proactive"), ledger)
    await service.start()
    guard = AdminGuard(AdminAuthenticator("global-admin-token", TENANT_TOKENS))
    tokens = CallTokens(CallTokenConfig(secret=TEST_CALL_SECRET))
    deps = AdminDeps.from_scheduler(service, "unused", live_calls=Registry(), guard=guard, call_tokens=tokens)
    app = web.Application()
    app.add_routes(admin_routes(deps))
    client = TestClient(TestServer(app, host="127.0.0.1"))
    await client.start_server()
    yield client, received, service
    await client.close()
    await service.stop()
    await bus.close()
    ledger.close()


def campaign(name: str, **extra: Any) -> dict[str, Any]:
    at = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    return {"name": name, "audience": {"user_ids": ["ann"]}, "message": "Hi", "schedule": {"at": at}, **extra}


async def test_campaigns_are_seen_and_changed_by_their_tenant_only(admin: Any) -> None:
    client, _, _ = admin
    created = await (await client.post("/api/admin/campaigns", json=campaign("a"), headers=ACME)).json()
    assert created["tenant"] == "acme"
    forced = await client.post("/api/admin/campaigns", json=campaign("b", tenant="globex"), headers=ACME)
    assert forced.status == 403
    by_global = await client.post("/api/admin/campaigns", json=campaign("g", tenant="globex"), headers=GLOBAL)
    globex_id = (await by_global.json())["id"]

    async def names(headers: dict[str, str], query: str = "") -> list[str]:
        data = await (await client.get(f"/api/admin/campaigns{query}", headers=headers)).json()
        return sorted(c["name"] for c in data["campaigns"])

    assert await names(ACME) == ["a"] and await names(GLOBEX) == ["g"] and await names(GLOBAL) == ["a", "g"]
    assert await names(GLOBAL, "?tenant=acme") == ["a"]
    assert (await client.get("/api/admin/campaigns?tenant=globex", headers=ACME)).status == 403
    for method, path in (
        ("GET", f"/api/admin/campaigns/{globex_id}"),
        ("POST", f"/api/admin/campaigns/{globex_id}/pause"),
        ("DELETE", f"/api/admin/campaigns/{globex_id}"),
        ("GET", f"/api/admin/campaigns/{globex_id}/deliveries"),
    ):
        resp = await client.request(method, path, headers=ACME)
        assert resp.status == 404, (method, path)
    still = await (await client.get(f"/api/admin/campaigns/{globex_id}", headers=GLOBEX)).json()
    assert still["status"] == "active"  # acme's attempts changed nothing
    assert (await client.post(f"/api/admin/campaigns/{globex_id}/pause", headers=GLOBEX)).status == 200


async def test_prompts_are_sent_in_the_tokens_tenant(admin: Any) -> None:
    client, received, _ = admin
    sent = await client.post("/api/admin/prompts", json={"user_id": "ann", "text": "Hello"}, headers=ACME)
    assert sent.status == 202 and (await sent.json())["tenant"] == "acme"
    other = {"user_id": "ann", "text": "Hello", "tenant": "globex"}
    assert (await client.post("/api/admin/prompts", json=other, headers=ACME)).status == 403
    assert (await client.post("/api/admin/prompts", json=other, headers=GLOBAL)).status == 202
    tenants = [ProactivePrompt.parse(m.body).tenant for m in received]
    assert tenants == ["acme", "globex"]


async def test_intents_and_live_calls_are_filtered_by_tenant(admin: Any) -> None:
    client, _, service = admin
    now = datetime.now(UTC)
    for tenant in ("acme", "globex"):
        service.conversation_log.record_turn(f"conv-{tenant}", "ann", "user", "renew please", now, tenant)
        conversation = ConversationForAnalysis(f"conv-{tenant}", "ann", [], now, tenant)
        service.conversation_log.save_intent(conversation, Outcome(), None, now)
    acme = await (await client.get("/api/admin/intents", headers=ACME)).json()
    assert [(i["conversation_id"], i["tenant"]) for i in acme["intents"]] == [("conv-acme", "acme")]
    assert len((await (await client.get("/api/admin/intents", headers=GLOBAL)).json())["intents"]) == 2
    theirs = await (await client.get("/api/admin/conversations/conv-globex/intents", headers=ACME)).json()
    assert theirs["intents"] == []
    calls = await (await client.get("/api/admin/calls", headers=ACME)).json()
    assert [c["call_id"] for c in calls["calls"]] == ["c-acme"]
    assert len((await (await client.get("/api/admin/calls", headers=GLOBAL)).json())["calls"]) == 2
    assert service.conversation_log.users_with_latest_intent("renewal", "acme") == ["ann"]
    assert service.conversation_log.users_with_latest_intent("renewal", "initech") == []


async def test_call_tokens_are_issued_for_the_tokens_tenant(admin: Any) -> None:
    client, _, _ = admin
    verify = CallTokens(CallTokenConfig(secret=TEST_CALL_SECRET)).verify
    issued = await client.post("/api/admin/call-tokens", json={"user_id": "ann", "ttl_s": 60}, headers=ACME)
    assert issued.status == 201
    body = await issued.json()
    assert body["tenant"] == "acme" and verify(body["token"]).tenant == "acme"
    denied = await client.post(
        "/api/admin/call-tokens", json={"user_id": "ann", "tenant": "globex"}, headers=ACME
    )
    assert denied.status == 403
    mine = await client.post(
        "/api/admin/call-tokens", json={"user_id": "ann", "tenant": "globex"}, headers=GLOBAL
    )
    assert verify((await mine.json())["token"]).tenant == "globex"
    bad = await client.post("/api/admin/call-tokens", json={"user_id": "no spaces allowed"}, headers=GLOBAL)
    assert bad.status == 400
    too_long = await client.post(
        "/api/admin/call-tokens", json={"user_id": "ann", "ttl_s": 10**7}, headers=GLOBAL
    )
    assert too_long.status == 400


async def test_call_tokens_need_a_secret(tmp_path: Path) -> None:
    deps = AdminDeps("admin-token", None, None, None, call_tokens=CallTokens(CallTokenConfig()))  # type: ignore[arg-type]
    app = web.Application()
    app.add_routes(admin_routes(deps))
    async with TestClient(TestServer(app)) as client:
        resp = await client.post(
            "/api/admin/call-tokens", json={"user_id": "ann"}, headers={"Authorization": "Bearer admin-token"}
        )
        assert resp.status == 409 and "anonymous" in (await resp.json())["error"]


async def test_call_records_and_knowledge_documents_by_tenant(tmp_path: Path) -> None:
    settings = Settings()
    settings.server.admin_token = "global-admin-token"
    settings.server.tenant_admin_tokens = TENANT_TOKENS
    settings.knowledge.embedded_path = str(tmp_path / "k.sqlite3")
    security = Security.from_settings(settings)
    deps = fake_deps(tmp_path, settings)
    for call_id, tenant in (("call-acme", "acme"), ("call-globex", "globex")):
        await deps.records.save(CallRecord(call_id, "n", "ann", tenant=tenant))
    async with KnowledgeBase(settings.knowledge) as kb:
        app = create_app(settings, deps, extra_routes=knowledge_routes(kb, security), security=security)
        async with TestClient(TestServer(app)) as client:
            listed = await (await client.get("/api/calls", headers=ACME)).json()
            assert [c["call_id"] for c in listed["calls"]] == ["call-acme"]
            assert (await client.get("/api/calls/call-globex", headers=ACME)).status == 404
            assert (await (await client.get("/api/calls/call-acme", headers=ACME)).json())["tenant"] == "acme"
            assert len((await (await client.get("/api/calls", headers=GLOBAL)).json())["calls"]) == 2

            async def upload(headers: dict[str, str], tenant: str | None = None) -> aiohttp.ClientResponse:
                form = aiohttp.FormData()
                form.add_field(
                    "file", b"The clinic opens at 8 am.", filename="h.txt", content_type="text/plain"
                )
                form.add_field("doc_id", "hours")
                if tenant:
                    form.add_field("tenant", tenant)
                return await client.post("/api/knowledge/documents", data=form, headers=headers)

            assert (await (await upload(ACME)).json())["tenant"] == "acme"
            assert (await upload(ACME, "globex")).status == 403
            assert (await (await upload(GLOBAL, "globex")).json())["tenant"] == "globex"
            await kb.ingestor.wait_idle()
            docs = await (await client.get("/api/knowledge/documents", headers=ACME)).json()
            assert [(d["doc_id"], d["tenant"]) for d in docs["documents"]] == [("hours", "acme")]
            assert (await client.get("/api/knowledge/documents?tenant=globex", headers=ACME)).status == 403
            assert (
                await client.get("/api/knowledge/documents/hours?tenant=globex", headers=ACME)
            ).status == 403
            assert (
                await client.delete("/api/knowledge/documents/hours?tenant=globex", headers=ACME)
            ).status == 403
            assert (await client.delete("/api/knowledge/documents/hours", headers=ACME)).status == 202
            await kb.ingestor.wait_idle()
            left = await (await client.get("/api/knowledge/documents", headers=GLOBAL)).json()
            assert [(d["doc_id"], d["tenant"]) for d in left["documents"]] == [("hours", "globex")]
    deps.records.close()


async def test_admin_call_records_and_evaluations_by_tenant(tmp_path: Path) -> None:
    """The dashboard's call view (``/api/admin/call-records``) shows a scoped token its tenant's calls only;
    evaluations (run on the default tenant's agent) need the global token."""
    from server.storage.call_records import open_call_record_store

    records = open_call_record_store(tmp_path / "calls.sqlite3")
    for call_id, tenant in (("call-acme", "acme"), ("call-globex", "globex")):
        await records.save(CallRecord(call_id, "n", "ann", tenant=tenant))
    guard = AdminGuard(AdminAuthenticator("global-admin-token", TENANT_TOKENS))
    deps = AdminDeps(
        "unused", campaigns=None, prompts=None, intents=None, records=records, guard=guard  # type: ignore[arg-type]
    )
    app = web.Application()
    app.add_routes(admin_routes(deps))
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        listed = await (await client.get("/api/admin/call-records", headers=ACME)).json()
        assert [(c["call_id"], c["tenant"]) for c in listed["calls"]] == [("call-acme", "acme")]
        assert (await client.get("/api/admin/call-records?tenant=globex", headers=ACME)).status == 403
        assert (await client.get("/api/admin/call-records/call-globex", headers=ACME)).status == 404
        assert (await client.get("/api/admin/call-records/call-acme", headers=ACME)).status == 200
        everyone = await (await client.get("/api/admin/call-records", headers=GLOBAL)).json()
        assert sorted(c["call_id"] for c in everyone["calls"]) == ["call-acme", "call-globex"]
        assert (await client.get("/api/admin/call-records/call-globex", headers=GLOBAL)).status == 200
        assert (await client.get("/api/admin/evaluations", headers=ACME)).status == 403
        assert (await client.get("/api/admin/evaluations", headers=GLOBAL)).status == 404  # no knowledge base
    records.close()
