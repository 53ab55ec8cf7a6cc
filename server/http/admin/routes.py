"""Admin API (``/api/admin``): campaigns, delivery status, intent results, live calls, send-now, latency,
call tokens.

Every route but ``openapi.json`` requires ``Authorization: Bearer <admin token>``: the global
``server.admin_token``, or a token of ``server.tenant_admin_tokens`` that sees and changes only its tenant
(lists are filtered to it, new campaigns, prompts and call tokens are made in it, another tenant's
campaign is 404, asking for another tenant is 403). Errors are JSON ``{"error": ..., "details": [...]}``:
400 for invalid input, 401, 403, 404 unknown campaign, 409 when a campaign cannot make the requested
transition or call tokens cannot be issued (no ``server.call_tokens.secret``), 429 after too many wrong
tokens.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ValidationError

from scheduler.campaigns import Campaign, CampaignSpec
from scheduler.errors import CampaignNotFound, CampaignStateError, SchedulerError
from server.http.admin.deps import AdminDeps
from server.http.admin.evaluations import evaluation_endpoints
from server.http.admin.models import (
    CallRecordList,
    CallRecordView,
    CallTokenIssued,
    CallTokenRequest,
    CampaignDeliveries,
    CampaignList,
    CampaignView,
    ConversationIntents,
    IntentList,
    LatencySummary,
    LiveCalls,
    SendPromptRequest,
    SendPromptResult,
)
from server.http.admin.openapi import Endpoint, openapi_document
from server.http.guards import admin_principal

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
DASHBOARD_DIR = Path(__file__).resolve().parents[3] / "web" / "admin"


def _error(status: type[web.HTTPException], message: str, details: Any = None) -> web.HTTPException:
    body: dict[str, Any] = {"error": message}
    if details is not None:
        body["details"] = details
    return status(text=json.dumps(body), content_type="application/json")


async def _json_body(request: web.Request) -> Any:
    try:
        return await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise _error(web.HTTPBadRequest, f"request body is not valid JSON: {exc}") from exc


def _validation_details(exc: ValidationError) -> list[dict[str, Any]]:
    return [
        {"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in exc.errors(include_url=False)
    ]


def _parse(model: type[BaseModel], data: Any) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise _error(web.HTTPBadRequest, "invalid request", _validation_details(exc)) from exc


def _int_query(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise _error(
            web.HTTPBadRequest, f"query parameter {name!r} must be an integer, got {raw!r}"
        ) from None
    if not low <= value <= high:
        raise _error(web.HTTPBadRequest, f"query parameter {name!r} must be in {low}..{high}, got {value}")
    return value


class AdminHandlers:
    def __init__(self, deps: AdminDeps) -> None:
        self.deps = deps

    async def _campaign_view(self, campaign: Campaign) -> dict[str, Any]:
        view = campaign.public()
        active = campaign.status == "active"
        next_run = await self._call(self.deps.campaigns.next_run_time, campaign.id) if active else None
        view["next_run_at"] = next_run.isoformat() if next_run else None
        return view

    async def _call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)``, scheduler errors as HTTP errors: awaited when it is a coroutine function, else
        run in a worker thread (the scheduler's plain methods query its database)."""
        try:
            if inspect.iscoroutinefunction(fn):
                return await fn(*args)
            return await asyncio.to_thread(fn, *args)
        except CampaignNotFound as exc:
            raise _error(web.HTTPNotFound, str(exc)) from exc
        except CampaignStateError as exc:
            raise _error(web.HTTPConflict, str(exc)) from exc
        except SchedulerError as exc:
            raise _error(web.HTTPBadRequest, str(exc)) from exc

    def _campaign_of(self, request: web.Request, campaign: Campaign) -> Campaign:
        if not admin_principal(request).sees(campaign.spec.tenant):  # another tenant's: not revealed
            raise _error(web.HTTPNotFound, f"no campaign with id {campaign.id!r}")
        return campaign

    async def _campaign(self, request: web.Request) -> Campaign:
        campaign = await self._call(self.deps.campaigns.get_campaign, request.match_info["campaign_id"])
        return self._campaign_of(request, campaign)

    async def list_campaigns(self, request: web.Request) -> web.Response:
        tenant = admin_principal(request).read_scope(request.query.get("tenant"))
        campaigns = await self._call(self.deps.campaigns.list_campaigns, request.query.get("status"))
        shown = [c for c in campaigns if tenant is None or c.spec.tenant == tenant]
        return web.json_response({"campaigns": [await self._campaign_view(c) for c in shown]})

    async def create_campaign(self, request: web.Request) -> web.Response:
        body = await _json_body(request)
        requested = body.get("tenant") if isinstance(body, dict) else None
        spec = _parse(CampaignSpec, body)
        spec = spec.model_copy(update={"tenant": admin_principal(request).write_tenant(requested)})
        campaign = await self._call(self.deps.campaigns.create_campaign, spec)
        log.info("campaign created from admin API", extra={"campaign_id": campaign.id})
        return web.json_response(await self._campaign_view(campaign), status=201)

    async def get_campaign(self, request: web.Request) -> web.Response:
        return web.json_response(await self._campaign_view(await self._campaign(request)))

    def _action(self, name: str) -> Handler:
        async def handler(request: web.Request) -> web.Response:
            campaign = await self._campaign(request)
            fn = getattr(self.deps.campaigns, f"{name}_campaign")
            return web.json_response(await self._campaign_view(await self._call(fn, campaign.id)))

        return handler

    async def campaign_deliveries(self, request: web.Request) -> web.Response:
        campaign = await self._campaign(request)
        rows = await self._call(self.deps.campaigns.campaign_deliveries, campaign.id)
        return web.json_response({"campaign_id": campaign.id, "deliveries": rows})

    async def intent_results(self, request: web.Request) -> web.Response:
        limit = _int_query(request, "limit", 100, 1, 1000)
        tenant = admin_principal(request).read_scope(request.query.get("tenant"))
        rows = await self._call(
            self.deps.intents.intent_results,
            request.query.get("conversation_id"),
            request.query.get("user_id"),
            limit,
            tenant,
        )
        return web.json_response({"intents": rows})

    async def conversation_intents(self, request: web.Request) -> web.Response:
        conversation_id = request.match_info["conversation_id"]
        tenant = admin_principal(request).read_scope(None)
        rows = await self._call(self.deps.intents.intent_results, conversation_id, None, 100, tenant)
        return web.json_response({"conversation_id": conversation_id, "intents": rows})

    async def live_calls(self, request: web.Request) -> web.Response:
        directory, principal = self.deps.live_calls, admin_principal(request)
        snapshots = [call.snapshot() for call in directory.live()] if directory is not None else []
        calls = [c for c in snapshots if principal.sees(c.get("tenant"))]
        load = self.deps.load.snapshot() if self.deps.load is not None else None
        return web.json_response({"calls": calls, "available": directory is not None, "load": load}, dumps=_dumps)

    def _live_call(self, call_id: str) -> Any:
        directory = self.deps.live_calls
        live = directory.live() if directory is not None else []
        return next((call for call in live if getattr(call, "call_id", None) == call_id), None)

    def _records(self) -> Any:
        if self.deps.records is None:
            raise _error(web.HTTPNotFound, "call records are not available on this server")
        return self.deps.records

    async def call_records(self, request: web.Request) -> web.Response:
        limit = _int_query(request, "limit", 50, 1, 500)
        tenant = admin_principal(request).read_scope(request.query.get("tenant"))
        calls = await self._records().recent(limit, request.query.get("user_id") or None, tenant)
        for call in calls:
            call["live"] = self._live_call(call["call_id"]) is not None
        return web.json_response({"calls": calls})

    async def call_record(self, request: web.Request) -> web.Response:
        """A live call's record so far, else the stored one; each turn with its grounding. Another tenant's
        call is not revealed to a scoped token."""
        call_id, principal = request.match_info["call_id"], admin_principal(request)
        live = self._live_call(call_id)
        if live is not None:
            snapshot = live.snapshot()
            if principal.sees(snapshot.get("tenant")):
                return web.json_response(snapshot, dumps=_dumps)
            raise _error(web.HTTPNotFound, f"no call record {call_id!r}")
        record = await self._records().get(call_id)
        if record is None or not principal.sees(record.tenant):
            raise _error(web.HTTPNotFound, f"no call record {call_id!r}")
        return web.json_response({**record.to_dict(), "live": False}, dumps=_dumps)

    async def send_prompt(self, request: web.Request) -> web.Response:
        body = _parse(SendPromptRequest, await _json_body(request))
        tenant = admin_principal(request).write_tenant(body.tenant)
        result = await self.deps.prompts.send_prompt_now(
            body.user_id, body.text, body.intent, body.ttl_s, tenant=tenant
        )
        status = 202 if result.get("status") in ("published", "deferred") else 502
        return web.json_response(result, status=status)

    async def latency(self, request: web.Request) -> web.Response:
        if self.deps.latency is None:
            raise _error(web.HTTPNotFound, "latency metrics are not available on this server")
        return web.json_response(self.deps.latency.latency_summary())

    async def issue_call_token(self, request: web.Request) -> web.Response:
        body = _parse(CallTokenRequest, await _json_body(request))
        issuer = self.deps.call_tokens
        if issuer is None or issuer.anonymous:
            message = "server.call_tokens.secret is not set: this server runs anonymous calls only"
            raise _error(web.HTTPConflict, message)
        tenant = admin_principal(request).write_tenant(body.tenant)
        try:
            issued = issuer.issue(body.user_id, tenant, body.ttl_s)
        except ValueError as exc:
            raise _error(web.HTTPBadRequest, str(exc)) from exc
        view = {"token": issued.token, "user_id": body.user_id, "tenant": tenant}
        return web.json_response({**view, "expires_at": issued.expires_at}, status=201)


def _dumps(value: Any) -> str:
    return json.dumps(value, default=str)  # snapshots may hold datetimes


def admin_endpoints(deps: AdminDeps) -> list[Endpoint]:
    """Every route of the admin API, with what the OpenAPI document says about it."""
    h = AdminHandlers(deps)
    one, action = "/campaigns/{campaign_id}", "/campaigns/{campaign_id}/"
    campaign_actions = [
        Endpoint(
            "POST",
            action + name,
            h._action(name),
            f"{name.capitalize()} a campaign",
            (200, CampaignView, f"the {name}d campaign"),
            (401, 404, 409),
        )
        for name in ("pause", "resume", "cancel")
    ]
    return [
        Endpoint(
            "GET",
            "/campaigns",
            h.list_campaigns,
            "List campaigns",
            (200, CampaignList, "campaigns"),
            query={"status": "string"},
        ),
        Endpoint(
            "POST",
            "/campaigns",
            h.create_campaign,
            "Create a campaign",
            (201, CampaignView, "the created campaign"),
            (400, 401, 403),
            request=CampaignSpec,
        ),
        Endpoint(
            "GET", one, h.get_campaign, "Get a campaign", (200, CampaignView, "the campaign"), (401, 404)
        ),
        Endpoint(
            "DELETE",
            one,
            h._action("cancel"),
            "Cancel a campaign (same as POST .../cancel)",
            (200, CampaignView, "the cancelled campaign"),
            (401, 404, 409),
        ),
        *campaign_actions,
        Endpoint(
            "GET",
            action + "deliveries",
            h.campaign_deliveries,
            "Per-user delivery status of a campaign",
            (200, CampaignDeliveries, "one row per user and run"),
            (401, 404),
        ),
        Endpoint(
            "GET",
            "/intents",
            h.intent_results,
            "Intent results, newest first",
            (200, IntentList, "intent results"),
            (400, 401),
            query={"conversation_id": "string", "user_id": "string", "limit": "integer"},
        ),
        Endpoint(
            "GET",
            "/conversations/{conversation_id}/intents",
            h.conversation_intents,
            "Intent results of one conversation",
            (200, ConversationIntents, "intent results"),
        ),
        Endpoint(
            "GET",
            "/calls",
            h.live_calls,
            "Live calls on this node with their transcripts",
            (200, LiveCalls, "live calls"),
        ),
        Endpoint(
            "GET",
            "/call-records",
            h.call_records,
            "Recorded calls, newest first (summaries)",
            (200, CallRecordList, "calls"),
            (400, 401, 403, 404),
            query={"user_id": "string", "limit": "integer", "tenant": "string"},
        ),
        Endpoint(
            "GET",
            "/call-records/{call_id}",
            h.call_record,
            "One call: transcript and turns, each reply with its evidence and how it was produced",
            (200, CallRecordView, "the call record"),
            (401, 404),
        ),
        *evaluation_endpoints(deps.evaluations),
        Endpoint(
            "POST",
            "/prompts",
            h.send_prompt,
            "Send a proactive prompt to a user now (published to the bus)",
            (
                202,
                SendPromptResult,
                "published (or deferred); the RTC nodes deliver it; 502: the bus refused",
            ),
            (400, 401, 403),
            request=SendPromptRequest,
        ),
        Endpoint(
            "GET",
            "/latency",
            h.latency,
            "Per-stage latency (count, mean, p50, p95) from this node's histograms",
            (200, LatencySummary, "latency summary"),
            (401, 404),
        ),
        Endpoint(
            "POST",
            "/call-tokens",
            h.issue_call_token,
            "Issue a short-lived call token for a user (what an integrator's backend may also sign itself)",
            (201, CallTokenIssued, "the token"),
            (400, 401, 403, 409),
            request=CallTokenRequest,
        ),
    ]


def admin_routes(
    deps: AdminDeps, prefix: str = "/api/admin", extra: Sequence[Endpoint] = ()
) -> list[web.RouteDef]:
    """Route definitions of the admin API under ``prefix``; add them with ``app.add_routes(...)``.
    ``extra``: more endpoints (e.g. ``server.http.admin.phone.phone_endpoints``), guarded and documented
    like the rest."""
    endpoints = [*admin_endpoints(deps), *extra]

    async def openapi(request: web.Request) -> web.Response:
        return web.json_response(document)

    endpoints.append(
        Endpoint(
            "GET", "/openapi.json", openapi, "This document", (200, None, "OpenAPI 3.1"), (), public=True
        )
    )
    document = openapi_document(endpoints, prefix)
    guard = deps.guard
    assert guard is not None  # AdminDeps makes one
    return [
        web.route(e.method, prefix + e.path, e.handler if e.public else guard.wrap(e.handler))
        for e in endpoints
    ]


def dashboard_routes(prefix: str = "/admin") -> list[web.AbstractRouteDef]:
    """The dashboard page and its assets (public: the page asks for the token and sends it to the API)."""

    async def index(request: web.Request) -> web.FileResponse:
        return web.FileResponse(DASHBOARD_DIR / "index.html")

    async def to_slash(request: web.Request) -> web.Response:
        raise web.HTTPFound(prefix + "/")  # the page loads its assets relative to the folder

    return [
        web.get(prefix, to_slash),
        web.get(prefix + "/", index),
        web.static(prefix + "/static", DASHBOARD_DIR),
    ]
