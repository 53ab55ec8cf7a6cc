"""Admin API (``/api/admin``): campaigns, delivery status, intent results, live calls, send-now, latency.

Every route but ``openapi.json`` requires ``Authorization: Bearer <ServerConfig.admin_token>``. Errors are
JSON ``{"error": ..., "details": [...]}``: 400 for invalid input, 401, 404 unknown campaign, 409 when a
campaign cannot make the requested transition.
"""

from __future__ import annotations

import hmac
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
from server.http.admin.models import (
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

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
DASHBOARD_DIR = Path(__file__).resolve().parents[3] / "web" / "admin"


def _error(status: type[web.HTTPException], message: str, details: Any = None) -> web.HTTPException:
    body: dict[str, Any] = {"error": message}
    if details is not None:
        body["details"] = details
    return status(text=json.dumps(body), content_type="application/json")


def _authenticated(token: str, handler: Handler) -> Handler:
    expected = token.encode()

    async def wrapper(request: web.Request) -> web.StreamResponse:
        header = request.headers.get("Authorization", "")
        given = header[7:].strip().encode() if header.lower().startswith("bearer ") else b""
        # An empty configured token refuses everyone rather than letting everyone in.
        if not expected or not hmac.compare_digest(expected, given):
            raise _error(
                web.HTTPUnauthorized, "admin token missing or wrong: send Authorization: Bearer <token>"
            )
        return await handler(request)

    return wrapper


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

    def _campaign_view(self, campaign: Campaign) -> dict[str, Any]:
        view = campaign.public()
        next_run = self.deps.campaigns.next_run_time(campaign.id) if campaign.status == "active" else None
        view["next_run_at"] = next_run.isoformat() if next_run else None
        return view

    async def _call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)`` (awaited when it is a coroutine function), scheduler errors as HTTP errors."""
        try:
            result = fn(*args)
            return await result if inspect.isawaitable(result) else result
        except CampaignNotFound as exc:
            raise _error(web.HTTPNotFound, str(exc)) from exc
        except CampaignStateError as exc:
            raise _error(web.HTTPConflict, str(exc)) from exc
        except SchedulerError as exc:
            raise _error(web.HTTPBadRequest, str(exc)) from exc

    async def list_campaigns(self, request: web.Request) -> web.Response:
        status = request.query.get("status")
        campaigns = self.deps.campaigns.list_campaigns(status)
        return web.json_response({"campaigns": [self._campaign_view(c) for c in campaigns]})

    async def create_campaign(self, request: web.Request) -> web.Response:
        spec = _parse(CampaignSpec, await _json_body(request))
        campaign = await self._call(self.deps.campaigns.create_campaign, spec)
        log.info("campaign created from admin API", extra={"campaign_id": campaign.id})
        return web.json_response(self._campaign_view(campaign), status=201)

    async def get_campaign(self, request: web.Request) -> web.Response:
        campaign = await self._call(self.deps.campaigns.get_campaign, request.match_info["campaign_id"])
        return web.json_response(self._campaign_view(campaign))

    def _action(self, name: str) -> Handler:
        async def handler(request: web.Request) -> web.Response:
            fn = getattr(self.deps.campaigns, f"{name}_campaign")
            campaign = await self._call(fn, request.match_info["campaign_id"])
            return web.json_response(self._campaign_view(campaign))

        return handler

    async def campaign_deliveries(self, request: web.Request) -> web.Response:
        campaign_id = request.match_info["campaign_id"]
        try:
            rows = await self.deps.campaigns.campaign_deliveries(campaign_id)
        except CampaignNotFound as exc:
            raise _error(web.HTTPNotFound, str(exc)) from exc
        return web.json_response({"campaign_id": campaign_id, "deliveries": rows})

    async def intent_results(self, request: web.Request) -> web.Response:
        limit = _int_query(request, "limit", 100, 1, 1000)
        rows = self.deps.intents.intent_results(
            request.query.get("conversation_id"), request.query.get("user_id"), limit
        )
        return web.json_response({"intents": rows})

    async def conversation_intents(self, request: web.Request) -> web.Response:
        conversation_id = request.match_info["conversation_id"]
        rows = self.deps.intents.intent_results(conversation_id, None, 100)
        return web.json_response({"conversation_id": conversation_id, "intents": rows})

    async def live_calls(self, request: web.Request) -> web.Response:
        directory = self.deps.live_calls
        calls = [call.snapshot() for call in directory.live()] if directory is not None else []
        return web.json_response({"calls": calls, "available": directory is not None}, dumps=_dumps)

    async def send_prompt(self, request: web.Request) -> web.Response:
        body = _parse(SendPromptRequest, await _json_body(request))
        result = await self.deps.prompts.send_prompt_now(body.user_id, body.text, body.intent, body.ttl_s)
        status = 202 if result.get("status") in ("published", "deferred") else 502
        return web.json_response(result, status=status)

    async def latency(self, request: web.Request) -> web.Response:
        if self.deps.latency is None:
            raise _error(web.HTTPNotFound, "latency metrics are not available on this server")
        return web.json_response(self.deps.latency.latency_summary())


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
            (400, 401),
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
            "POST",
            "/prompts",
            h.send_prompt,
            "Send a proactive prompt to a user now (published to the bus)",
            (
                202,
                SendPromptResult,
                "published (or deferred); the RTC nodes deliver it; 502: the bus refused",
            ),
            (400, 401),
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
    return [
        web.route(
            e.method, prefix + e.path, e.handler if e.public else _authenticated(deps.admin_token, e.handler)
        )
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
