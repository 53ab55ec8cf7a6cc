"""Admin API over real HTTP (aiohttp test server on loopback) with a real SchedulerService and bus."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import CollectorRegistry, Histogram

from messaging.bus import Message
from messaging.embedded import EmbeddedBus
from scheduler.config import SchedulerConfig
from scheduler.publishing import BusPromptPublisher
from scheduler.service import SchedulerService
from server.http.admin import AdminDeps, admin_routes, dashboard_routes
from server.http.admin.latency import PrometheusLatency
from server.storage.delivery_ledger import open_delivery_ledger

TOKEN = "s3cret-admin"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


class FakeCall:
    def __init__(self, call_id: str, user_id: str) -> None:
        self.call_id, self.user_id = call_id, user_id

    def snapshot(self) -> dict[str, Any]:
        return {
            "call_id": self.call_id,
            "user_id": self.user_id,
            "started_at": datetime(2030, 1, 1, tzinfo=UTC),
            "transcript": [{"role": "user", "text": "hello"}],
        }


class FakeRegistry:
    def live(self) -> list[FakeCall]:
        return [FakeCall("c1", "alice")]


@pytest.fixture
async def setup(tmp_path: Path) -> AsyncIterator[tuple[TestClient, list[Message], SchedulerService]]:
    bus = EmbeddedBus()
    received: list[Message] = []

    async def collect(message: Message) -> None:
        received.append(message)

    bus.subscribe("voice_proactive", "test-rtc", collect)
    await bus.start()
    config = SchedulerConfig(jobstore_url=f"sqlite:///{tmp_path / 'admin.sqlite3'}")
    ledger = open_delivery_ledger(tmp_path / "ledger.sqlite3")
    service = SchedulerService(config, BusPromptPublisher(bus, "voice_proactive"), ledger)
    await service.start()
    metrics = CollectorRegistry()
    histogram = Histogram("voice_agent_llm_first_token_seconds", "test", registry=metrics)
    for value in (0.1, 0.2, 0.3, 0.4):
        histogram.observe(value)
    deps = AdminDeps.from_scheduler(
        service, TOKEN, live_calls=FakeRegistry(), latency=PrometheusLatency(metrics)
    )
    app = web.Application()
    app.add_routes(admin_routes(deps))
    app.add_routes(dashboard_routes())
    client = TestClient(TestServer(app, host="127.0.0.1"))
    await client.start_server()
    yield client, received, service
    await client.close()
    await service.stop()
    await bus.close()
    ledger.close()


def campaign_body(**extra: Any) -> dict[str, Any]:
    at = datetime.now(UTC) + timedelta(hours=1)
    body = {
        "name": "renewal",
        "audience": {"user_ids": ["alice", "bob"]},
        "message": "Renew?",
        "schedule": {"at": at.isoformat()},
    }
    body.update(extra)
    return body


@pytest.mark.parametrize(
    "method, path",
    [
        ("GET", "/api/admin/campaigns"),
        ("POST", "/api/admin/campaigns"),
        ("GET", "/api/admin/calls"),
        ("POST", "/api/admin/prompts"),
        ("GET", "/api/admin/intents"),
        ("GET", "/api/admin/latency"),
    ],
)
async def test_requests_without_the_right_token_get_401(setup: Any, method: str, path: str) -> None:
    client, _, _ = setup
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
        response = await client.request(method, path, headers=headers, json={})
        assert response.status == 401
        assert "admin token" in (await response.json())["error"]


async def test_campaign_create_list_pause_resume_cancel(setup: Any) -> None:
    client, _, _ = setup
    response = await client.post("/api/admin/campaigns", json=campaign_body(), headers=AUTH)
    assert response.status == 201, await response.text()
    created = await response.json()
    assert created["status"] == "active" and created["next_run_at"] is not None
    cid = created["id"]

    listed = await (await client.get("/api/admin/campaigns", headers=AUTH)).json()
    assert [c["id"] for c in listed["campaigns"]] == [cid]

    deliveries = await (await client.get(f"/api/admin/campaigns/{cid}/deliveries", headers=AUTH)).json()
    assert sorted((d["user_id"], d["status"]) for d in deliveries["deliveries"]) == [
        ("alice", "scheduled"),
        ("bob", "scheduled"),
    ]

    paused = await client.post(f"/api/admin/campaigns/{cid}/pause", headers=AUTH)
    assert (await paused.json())["status"] == "paused"
    assert (await client.post(f"/api/admin/campaigns/{cid}/pause", headers=AUTH)).status == 409
    resumed = await client.post(f"/api/admin/campaigns/{cid}/resume", headers=AUTH)
    assert (await resumed.json())["status"] == "active"
    cancelled = await client.post(f"/api/admin/campaigns/{cid}/cancel", headers=AUTH)
    assert (await cancelled.json())["status"] == "cancelled"
    got = await (await client.get(f"/api/admin/campaigns/{cid}", headers=AUTH)).json()
    assert got["status"] == "cancelled" and got["next_run_at"] is None
    assert (await client.get("/api/admin/campaigns/nope", headers=AUTH)).status == 404


async def test_bad_json_and_invalid_campaigns_get_400_with_details(setup: Any) -> None:
    client, _, _ = setup
    response = await client.post(
        "/api/admin/campaigns", data=b"{not json", headers={**AUTH, "Content-Type": "application/json"}
    )
    assert response.status == 400
    assert "not valid JSON" in (await response.json())["error"]

    response = await client.post(
        "/api/admin/campaigns", json=campaign_body(schedule={"cron": "every tuesday"}), headers=AUTH
    )
    assert response.status == 400
    body = await response.json()
    assert body["error"] == "invalid request"
    assert any("invalid cron" in d["msg"] for d in body["details"])

    past = (datetime.now(UTC) - timedelta(days=1)).isoformat()
    response = await client.post(
        "/api/admin/campaigns", json=campaign_body(schedule={"at": past}), headers=AUTH
    )
    assert response.status == 400 and "in the past" in (await response.json())["error"]

    response = await client.post("/api/admin/prompts", json={"user_id": "alice"}, headers=AUTH)
    assert response.status == 400


async def test_send_now_publishes_to_the_bus(setup: Any) -> None:
    client, received, _ = setup
    response = await client.post(
        "/api/admin/prompts", json={"user_id": "alice", "text": "Your order has shipped."}, headers=AUTH
    )
    assert response.status == 202, await response.text()
    result = await response.json()
    assert result["status"] == "published"
    for _ in range(100):
        if received:
            break
        await __import__("asyncio").sleep(0.02)
    assert len(received) == 1
    body = json.loads(received[0].body)
    assert body["user_id"] == "alice" and body["text"] == "Your order has shipped."
    assert received[0].key == "alice"


async def test_live_calls_intents_and_latency(setup: Any) -> None:
    client, _, service = setup
    calls = await (await client.get("/api/admin/calls", headers=AUTH)).json()
    assert calls["calls"][0]["call_id"] == "c1" and calls["calls"][0]["transcript"][0]["text"] == "hello"

    now = datetime.now(UTC)
    service.conversation_log.record_turn("conv-1", "alice", "user", "I have a billing question", now)

    class Result:
        label, confidence, follow_up, prompt, when, fallback = "billing", 0.8, False, None, None, False

    pending = service.conversation_log.pending_analysis(now + timedelta(hours=1), 60, 10)
    service.conversation_log.save_intent(pending[0], Result(), None, now)
    intents = await (await client.get("/api/admin/conversations/conv-1/intents", headers=AUTH)).json()
    assert [i["label"] for i in intents["intents"]] == ["billing"]
    assert (await client.get("/api/admin/intents?limit=zero", headers=AUTH)).status == 400

    latency = await (await client.get("/api/admin/latency", headers=AUTH)).json()
    stage = latency["stages"][0]
    assert stage["stage"] == "llm_first_token" and stage["count"] == 4
    assert 0.1 <= stage["p50_s"] <= 0.5


async def test_openapi_is_valid_json_listing_every_route(setup: Any) -> None:
    client, _, _ = setup
    response = await client.get("/api/admin/openapi.json")
    assert response.status == 200
    doc = json.loads(await response.text())
    assert doc["openapi"].startswith("3.")
    assert "/api/admin/campaigns" in doc["paths"] and "/api/admin/prompts" in doc["paths"]
    served = {
        route.resource.canonical  # type: ignore[union-attr]
        for route in client.app.router.routes()  # type: ignore[union-attr]
        if route.resource is not None and route.resource.canonical.startswith("/api/admin")
    }
    assert served == set(doc["paths"])


async def test_dashboard_page_is_served(setup: Any) -> None:
    client, _, _ = setup
    page = await client.get("/admin/")
    assert page.status == 200 and "admin.js" in await page.text()
    assert (await client.get("/admin/static/admin.js")).status == 200


async def test_served_bodies_match_the_models_the_openapi_document_is_generated_from(setup: Any) -> None:
    from openapi_pydantic import OpenAPI

    from server.http.admin.models import (
        CampaignDeliveries,
        CampaignList,
        CampaignView,
        IntentList,
        LatencySummary,
        SendPromptResult,
    )

    client, _, _ = setup
    doc = await (await client.get("/api/admin/openapi.json")).json()
    OpenAPI.model_validate(doc)  # a well-formed OpenAPI 3.1 document
    created_doc = doc["paths"]["/api/admin/campaigns"]["post"]["responses"]["201"]
    assert created_doc["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/CampaignView"
    }
    assert "audience" in doc["components"]["schemas"]["CampaignSpec"]["properties"]

    created = await (await client.post("/api/admin/campaigns", json=campaign_body(), headers=AUTH)).json()
    bodies = [
        (CampaignView, created),
        (CampaignList, await (await client.get("/api/admin/campaigns", headers=AUTH)).json()),
        (
            CampaignDeliveries,
            await (await client.get(f"/api/admin/campaigns/{created['id']}/deliveries", headers=AUTH)).json(),
        ),
        (
            SendPromptResult,
            await (
                await client.post("/api/admin/prompts", json={"user_id": "ann", "text": "Hi"}, headers=AUTH)
            ).json(),
        ),
        (IntentList, await (await client.get("/api/admin/intents", headers=AUTH)).json()),
        (LatencySummary, await (await client.get("/api/admin/latency", headers=AUTH)).json()),
    ]
    for model, body in bodies:
        model.model_validate(body)


async def test_admin_reads_wait_off_the_loop_while_the_scheduler_database_is_locked(
    setup: tuple[TestClient, list[Message], SchedulerService], tmp_path: Path
) -> None:
    """Listing campaigns, one campaign and intent results query the scheduler's database; with its file
    locked by another connection those queries wait in worker threads, never on the loop that carries the
    node's calls."""
    from tests.loop_lag import LoopLag
    from tests.sqlite_lock import hold_write_lock

    client, _, _ = setup
    created = await (await client.post("/api/admin/campaigns", json=campaign_body(), headers=AUTH)).json()
    holder = hold_write_lock(tmp_path / "admin.sqlite3", 1.5)
    async with LoopLag() as lag:
        for path in ("/api/admin/campaigns", f"/api/admin/campaigns/{created['id']}", "/api/admin/intents"):
            assert (await client.get(path, headers=AUTH)).status == 200
    holder.join()
    assert lag.max_s < 0.5, f"the loop was held {lag.max_s:.2f} s by an admin query"
