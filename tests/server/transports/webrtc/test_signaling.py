"""Signaling and the HTTP API with fake models: bad offers are 400s with a reason, never crashes."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from server.config import IceServer
from server.http.app import create_app
from server.settings import Settings
from server.transports.webrtc.signaling import SignalingError, browser_ice_servers, parse_offer
from tests.server.caller import TEST_CALL_SECRET, mint_call_token, real_offer
from tests.server.fakes import fake_deps


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"not json", "bad_json"),
        (b"[1, 2]", "bad_json"),
        (b'{"type": "answer", "sdp": "v=0"}', "bad_type"),
        (b'{"type": "offer"}', "bad_sdp"),
        (b'{"type": "offer", "sdp": ""}', "bad_sdp"),
        (b'{"type": "offer", "sdp": "hello"}', "bad_sdp"),
        (
            b'{"type": "offer", "sdp": "v=0\\r\\no=- 1 1 IN IP4 0.0.0.0\\r\\ns=-\\r\\nt=0 0\\r\\n"}',
            "no_audio",
        ),
        (b'{"type": "offer", "sdp": "v=0\\r\\nm=audio x\\r\\n"}', "bad_sdp"),
    ],
)
def test_parse_offer_rejects_malformed_input(body: bytes, reason: str) -> None:
    with pytest.raises(SignalingError) as info:
        parse_offer(body)
    assert info.value.reason == reason
    assert str(info.value)


async def test_parse_offer_accepts_areal_offer() -> None:
    sdp = await real_offer()
    offer = parse_offer(json.dumps({"sdp": sdp, "type": "offer", "user_id": "u-1"}).encode())
    assert offer.user_id == "u-1"
    assert offer.description.sdp == sdp
    with pytest.raises(SignalingError):
        parse_offer(json.dumps({"sdp": sdp, "type": "offer", "user_id": "bad id with spaces"}).encode())


def test_ice_servers_for_the_browser() -> None:
    servers = [
        IceServer(urls=["stun:127.0.0.1:3478"]),
        IceServer(urls=["turn:127.0.0.1"], username="u", credential="p"),
    ]
    assert browser_ice_servers(servers) == [
        {"urls": ["stun:127.0.0.1:3478"]},
        {"urls": ["turn:127.0.0.1"], "username": "u", "credential": "p"},
    ]


@pytest.fixture
async def client(tmp_path: Path) -> TestClient:
    settings = Settings()
    deps = fake_deps(tmp_path, settings)
    async with TestClient(TestServer(create_app(settings, deps))) as c:
        yield c
    deps.records.close()


async def test_bad_offers_get_400_with_reason(client: TestClient) -> None:
    for body in (b"{", b'{"sdp": 5}', b'{"type": "offer", "sdp": "v=0\\r\\nbroken"}'):
        resp = await client.post("/api/calls/offer", data=body)
        assert resp.status == 400, await resp.text()
        assert "error" in await resp.json()
    resp = await client.get("/healthz")
    assert resp.status == 200


async def test_offer_answered_and_call_listed(tmp_path: Path) -> None:
    settings = Settings()
    settings.server.call_tokens.secret = TEST_CALL_SECRET
    deps = fake_deps(tmp_path, settings)
    alice = {"Authorization": f"Bearer {mint_call_token('alice')}"}
    async with TestClient(TestServer(create_app(settings, deps))) as client:
        resp = await client.post(
            "/api/calls/offer", json={"sdp": await real_offer(), "type": "offer"}, headers=alice
        )
        assert resp.status == 200, await resp.text()
        answer = await resp.json()
        assert answer["type"] == "answer" and answer["sdp"].startswith("v=0") and "call_token" not in answer
        call_id = answer["call_id"]
        live = await (await client.get(f"/api/calls/{call_id}", headers=alice)).json()
        assert live["user_id"] == "alice" and live["tenant"] == "default" and live["live"] is True
        assert (await client.post(f"/api/calls/{call_id}/hangup", headers=alice)).status == 200
        stored = await (await client.get(f"/api/calls/{call_id}", headers=alice)).json()
        assert stored["end_reason"] == "hangup" and stored["live"] is False
        listed = await (await client.get("/api/calls", headers={"Authorization": "Bearer change-me"})).json()
        assert [c["call_id"] for c in listed["calls"]] == [call_id]
        assert (await client.get("/api/calls")).status == 401
        assert (await client.get("/api/calls/nope", headers=alice)).status == 404
    deps.records.close()


async def test_ice_servers_served_to_the_page(tmp_path: Path) -> None:
    settings = Settings()
    settings.server.ice_servers = [IceServer(urls=["stun:127.0.0.1:3478"])]
    deps = fake_deps(tmp_path, settings)
    async with TestClient(TestServer(create_app(settings, deps))) as c:
        config = await (await c.get("/api/calls/config")).json()
    assert config == {"iceServers": [{"urls": ["stun:127.0.0.1:3478"]}], "anonymous": True}
    deps.records.close()


async def test_config_metrics_readiness_and_page(client: TestClient) -> None:
    assert (await client.get("/readyz")).status == 200
    metrics = await (await client.get("/metrics")).text()
    assert "voice_agent_calls_active" in metrics
    page = await (await client.get("/")).text()
    assert "call.js" in page
    assert (await client.get("/static/call.js")).status == 200


async def test_call_tokens_required_when_a_secret_is_configured(tmp_path: Path) -> None:
    """With a secret every call endpoint wants a signed token; the old static token and a token in the query
    string are refused, and the user is the token's, whatever the body says."""
    settings = Settings()
    settings.server.call_tokens.secret = TEST_CALL_SECRET
    deps = fake_deps(tmp_path, settings)
    bob = mint_call_token("bob")
    forged = mint_call_token("bob", secret="another-secret-of-enough-length-0123456789")
    async with TestClient(TestServer(create_app(settings, deps))) as c:
        sdp = await real_offer()
        assert (await c.post("/api/calls/offer", json={"sdp": sdp, "type": "offer"})).status == 401
        for wrong in ("nope", forged, mint_call_token("bob", ttl_s=100_000)):
            resp = await c.post(
                "/api/calls/offer", json={"sdp": sdp}, headers={"Authorization": f"Bearer {wrong}"}
            )
            assert resp.status == 401, await resp.text()
        in_query = await c.post(f"/api/calls/offer?token={bob}", json={"sdp": sdp, "type": "offer"})
        assert in_query.status == 401 and "query string" in (await in_query.json())["error"]
        claims_alice = {"sdp": sdp, "type": "offer", "user_id": "alice"}
        resp = await c.post("/api/calls/offer", json=claims_alice, headers={"Authorization": f"Bearer {bob}"})
        assert resp.status == 400 and "call token" in (await resp.json())["error"]
        assert len(deps.registry) == 0
        ok = await c.post(
            "/api/calls/offer", json={"sdp": sdp, "type": "offer"}, headers={"Authorization": f"Bearer {bob}"}
        )
        assert ok.status == 200
        call_id = (await ok.json())["call_id"]
        assert deps.registry.find_by_user("bob") is not None
        assert (await c.get(f"/api/calls/{call_id}")).status == 401
        assert (
            await c.post(f"/api/calls/{call_id}/hangup", headers={"Authorization": f"Bearer {bob}"})
        ).status == 200
    deps.records.close()


async def test_a_caller_that_never_connects_is_dropped(tmp_path: Path) -> None:
    settings = Settings()
    settings.server.call.connect_timeout_s = 0.5
    deps = fake_deps(tmp_path, settings)
    async with TestClient(TestServer(create_app(settings, deps))) as c:
        resp = await c.post("/api/calls/offer", json={"sdp": await real_offer(), "type": "offer"})
        answer = await resp.json()
        assert len(deps.registry) == 1
        await asyncio.sleep(1.0)
        assert len(deps.registry) == 0
        own = {"Authorization": f"Bearer {answer['call_token']}"}
        stored = await (await c.get(f"/api/calls/{answer['call_id']}", headers=own)).json()
        assert stored["end_reason"] == "connect_timeout"
    deps.records.close()


async def test_events_socket_replays_history_and_takes_a_hangup(client: TestClient) -> None:
    resp = await client.post("/api/calls/offer", json={"sdp": await real_offer(), "type": "offer"})
    answer = await resp.json()
    call_id, own = answer["call_id"], {"Authorization": f"Bearer {answer['call_token']}"}
    assert (await client.get("/api/calls/unknown/events", headers=own)).status == 404
    assert (await client.get(f"/api/calls/{call_id}/events")).status == 401  # no ticket
    async with client.ws_connect(f"/api/calls/{call_id}/events?ticket={answer['events_ticket']}") as ws:
        await ws.send_json({"type": "hangup"})
        events = [json.loads(msg.data) async for msg in ws]
    assert events[-1]["type"] == "ended" and events[-1]["reason"] == "hangup"
    reused = await client.get(f"/api/calls/{call_id}/events?ticket={answer['events_ticket']}")
    assert reused.status == 401 and "already used" in (await reused.json())["error"]
    stored = await (await client.get(f"/api/calls/{call_id}", headers=own)).json()
    assert stored["end_reason"] == "hangup"


@pytest.mark.parametrize(
    ("pattern", "replacement"),
    [
        (r"a=fingerprint:[^\r\n]*\r\n", ""),  # aiortc would crash in DTLS start without it
        (r"a=setup:[^\r\n]*\r\n", ""),  # aiortc raised AttributeError in setRemoteDescription
        (r"a=rtpmap:[^\r\n]*\r\n", ""),
        (r"a=candidate:", "a=candidate:x "),
    ],
)
async def test_broken_real_offers_are_400_not_500(client: TestClient, pattern: str, replacement: str) -> None:
    sdp = re.sub(pattern, replacement, await real_offer(), count=1 if replacement else 0)
    resp = await client.post("/api/calls/offer", json={"sdp": sdp, "type": "offer"})
    assert resp.status == 400, await resp.text()
