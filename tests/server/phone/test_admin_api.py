"""The phone part of the admin API on a real node: guarded like every admin route, bad input answered
with 400 and the reason, the directory round trip, "call this user now" refused with 409 for a user
without a phone or in a live call on another node (a presence row), 503 on a node without SIP; and the
OpenAPI document lists the routes."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from tests.server.phone.conftest import ADMIN_TOKEN, NodeFactory

pytestmark = [pytest.mark.slow]


async def call(node, method: str, path: str, body: Any = None, token: str | None = ADMIN_TOKEN) -> tuple[int, Any]:  # type: ignore[no-untyped-def]
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with aiohttp.ClientSession(headers=headers) as http, http.request(method, node.base_url + path, json=body) as resp:
        return resp.status, await resp.json()


async def test_directory_and_call_now_routes(phone_node: NodeFactory) -> None:
    node = await phone_node(directory=[{"number": "+15551230010", "user_id": "ivan", "timezone": "Europe/Rome"}])
    for method, path in [("GET", "/phone/directory"), ("POST", "/phone/directory"), ("DELETE", "/phone/directory/1"),
                         ("POST", "/phone/calls"), ("GET", "/phone/attempts")]:  # fmt: skip
        status, _ = await call(node, method, "/api/admin" + path, {}, token=None)
        assert status == 401, (method, path)
        status, _ = await call(node, method, "/api/admin" + path, {}, token="wrong")
        assert status == 401, (method, path)

    status, body = await call(node, "GET", "/api/admin/phone/directory")
    assert status == 200 and [(e["number"], e["user_id"], e["source"]) for e in body["entries"]] == [
        ("+15551230010", "ivan", "file")
    ]
    bad = [
        ({"number": "call me", "user_id": "x"}, "not a phone number"),
        ({"number": "1001", "user_id": "x", "timezone": "Moon/Base"}, "unknown time zone"),
        ({"number": "1001", "user_id": "x", "sip_uri": "http://x"}, "sip_uri"),
        ({"number": "1001"}, "user_id"),
        ({"number": "1001", "user_id": "x", "admin": True}, "admin"),
    ]
    for entry, reason in bad:
        status, body = await call(node, "POST", "/api/admin/phone/directory", entry)
        assert status == 400 and reason in str(body), (entry, body)
    status, body = await call(node, "POST", "/api/admin/phone/directory",
                              {"number": "+1 (555) 123-0011", "user_id": "jane", "timezone": "Asia/Tokyo"})  # fmt: skip
    assert status == 201 and body["number"] == "+15551230011"
    status, body = await call(node, "GET", "/api/admin/phone/directory")
    assert {e["user_id"] for e in body["entries"]} == {"ivan", "jane"}
    assert (await call(node, "DELETE", "/api/admin/phone/directory/+15551230011"))[0] == 200
    assert (await call(node, "DELETE", "/api/admin/phone/directory/+15551230011"))[0] == 404
    assert (await call(node, "DELETE", "/api/admin/phone/directory/not-a-number"))[0] == 400

    status, body = await call(node, "POST", "/api/admin/phone/calls", {"user_id": "nobody"})
    assert status == 409 and "no phone number" in body["error"]
    await node.phone.presence_store.join("call-elsewhere", "ivan", "node-z")
    status, body = await call(node, "POST", "/api/admin/phone/calls", {"user_id": "ivan", "text": "Hi"})
    assert status == 409 and "in a call on node-z" in body["error"]
    status, body = await call(node, "POST", "/api/admin/phone/calls", {"user_id": "ivan", "expect_digits": "x"})
    assert status == 400
    status, body = await call(node, "GET", "/api/admin/phone/attempts?limit=0")
    assert status == 400

    status, document = await call(node, "GET", "/api/admin/openapi.json", token=None)
    assert status == 200
    assert {"/api/admin/phone/directory", "/api/admin/phone/calls", "/api/admin/phone/attempts"} <= set(document["paths"])


async def test_a_node_without_sip_refuses_to_place_calls(phone_node: NodeFactory) -> None:
    node = await phone_node(directory=[{"number": "+15551230012", "user_id": "kim"}], sip__enabled=False)
    status, body = await call(node, "POST", "/api/admin/phone/calls", {"user_id": "kim"})
    assert status == 503 and "sip.enabled" in body["error"]
    assert node.phone.user_agent is None


async def test_a_tenant_token_sees_and_changes_only_its_tenants_phones(phone_node: NodeFactory) -> None:
    """The phone routes are tenant-scoped like every admin route: a scoped token lists and removes only its
    tenant's directory entries, adds into its own tenant, and cannot place a call for another tenant."""
    from server.security.config import TenantAdminToken

    acme = "acme-phone-admin-token-01"
    node = await phone_node(
        directory=[
            {"number": "+15551230020", "user_id": "lou", "tenant": "acme"},
            {"number": "+15551230021", "user_id": "max", "tenant": "globex"},
        ],
        server__tenant_admin_tokens=[TenantAdminToken(tenant="acme", token=acme)],
    )
    status, body = await call(node, "GET", "/api/admin/phone/directory", token=acme)
    assert status == 200 and [(e["user_id"], e["tenant"]) for e in body["entries"]] == [("lou", "acme")]
    assert (await call(node, "GET", "/api/admin/phone/directory?tenant=globex", token=acme))[0] == 403
    status, body = await call(node, "POST", "/api/admin/phone/directory", {"number": "+15551230022", "user_id": "ned"}, token=acme)  # fmt: skip
    assert status == 201 and body["tenant"] == "acme"
    entry = {"number": "+15551230023", "user_id": "ola", "tenant": "globex"}
    assert (await call(node, "POST", "/api/admin/phone/directory", entry, token=acme))[0] == 403
    assert (await call(node, "DELETE", "/api/admin/phone/directory/+15551230021", token=acme))[0] == 404
    assert (await call(node, "POST", "/api/admin/phone/calls", {"user_id": "max", "tenant": "globex"}, token=acme))[0] == 403  # fmt: skip
    status, body = await call(node, "GET", "/api/admin/phone/directory")  # the global token: every tenant
    assert {(e["user_id"], e["tenant"]) for e in body["entries"]} == {("lou", "acme"), ("max", "globex"), ("ned", "acme")}
