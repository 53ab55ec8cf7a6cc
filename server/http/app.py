"""The HTTP/WebSocket application of a node: call API, WebSocket media, health, metrics, pages.

Routes (guards: README.md "Security"; ``tests/server/http/test_route_guards.py`` checks every one)
  /api/calls/...                     the call API (``server.http.call_routes``): call tokens
  POST /api/media/tickets, GET /api/media/ws   WebSocket media for telephony gateways
                                     (``server.transports.ws_media``): call token, then a single-use ticket
  GET  /healthz, /readyz             liveness, readiness (models loaded): public
  GET  /metrics                      Prometheus: public unless ``server.metrics_public`` is false (admin)
  GET  /, /static/...                the call page (web/static): public
plus what the node adds: the admin API and dashboard (``server.http.admin``: admin tokens; the dashboard
page itself is public), the knowledge document API (admin tokens). Every answer carries the security
headers (``server.security.browser``). ``serve`` runs an application until stopped, with an access log
that never holds a secret; it builds nothing: ``server.node`` composes the node.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable, Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from server.calls.session import CallDeps
from server.http import runtime_metrics
from server.http.admin import dashboard_routes
from server.http.call_routes import CallRoutes
from server.http.guards import SECURITY_KEY, Security
from server.http.health import COMPONENT_UP, health_report
from server.http.stage_cpu import export_stage_cpu
from server.security.access_log import RedactingAccessLogger
from server.security.browser import security_headers
from server.settings import Settings
from server.storage.engine import StoreUnavailable
from server.transports.ws_media import media_routes

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).resolve().parents[2] / "web" / "static"
DEPS_KEY = web.AppKey("call_deps", CallDeps)
SETTINGS_KEY = web.AppKey("settings", Settings)
READY_KEY = web.AppKey("ready", dict)


async def _healthz(request: web.Request) -> web.Response:
    return web.json_response(health_report(request.app[SETTINGS_KEY]))


async def _readyz(request: web.Request) -> web.Response:
    """Whether a load balancer should send this node new calls: 503 while it is "starting" and while it is
    "full" (every ``server.max_calls`` line taken, with Retry-After); 200 otherwise, "degraded" naming what
    does not work (a knowledge base that failed to start, call records waiting for a database or a disk) when
    something does not. Degraded is still ready: calls run without the missing part, and a shared database
    away from every node at once must not take every node out of rotation (no call could be taken anywhere)."""
    state = request.app[READY_KEY]
    admission = request.app[DEPS_KEY].admission
    calls = len(request.app[DEPS_KEY].registry)
    if not state.get("ready"):
        return web.json_response({"status": "starting", "detail": state.get("detail", "")}, status=503)
    degraded = {**state.get("degraded", {}), **_failing(state.get("checks", {}))}
    body: dict[str, Any] = {"status": "degraded" if degraded else "ready", "calls": calls}
    if degraded:
        body["degraded"] = degraded
    if admission.in_use >= admission.max_calls:
        body["status"] = "full"
        headers = {"Retry-After": str(admission.retry_after_s)}
        return web.json_response({**body, "max_calls": admission.max_calls}, status=503, headers=headers)
    return web.json_response(body)


def _failing(checks: Mapping[str, Callable[[], str | None]]) -> dict[str, str]:
    """The problems the running node's ``checks`` report now (a full disk, a database away)."""
    return {name: problem for name, check in checks.items() if (problem := check())}


async def _metrics(request: web.Request) -> web.Response:
    if not request.app[SETTINGS_KEY].server.metrics_public:
        request.app[SECURITY_KEY].admins.principal(request)
    return web.Response(body=generate_latest(REGISTRY), headers={"Content-Type": CONTENT_TYPE_LATEST})


async def _index(request: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC_DIR / "index.html")


@web.middleware
async def _store_unavailable_is_503(request: web.Request, handler: Any) -> web.StreamResponse:
    """A request that needs a database that is away (restarting, unreachable) gets 503 and Retry-After,
    not a 500 with a stack trace: the client may simply try again."""
    try:
        return await handler(request)  # type: ignore[no-any-return]
    except StoreUnavailable as exc:
        log.warning("%s %s: %s", request.method, request.path, exc)
        return web.json_response({"error": str(exc)}, status=503, headers={"Retry-After": "5"})


def create_app(
    settings: Settings,
    deps: CallDeps,
    *,
    extra_routes: Iterable[web.AbstractRouteDef] = (),
    ready: bool = True,
    degraded: dict[str, str] | None = None,
    security: Security | None = None,
    checks: Mapping[str, Callable[[], str | None]] | None = None,
) -> web.Application:
    """The aiohttp application. ``extra_routes``: e.g. ``server.http.admin.admin_routes(AdminDeps(...))`` or
    ``knowledge_routes(kb, security)``; the admin dashboard page is always mounted (it asks for the token).
    ``degraded``: components that failed to start and why (``/readyz`` reports them). ``security``: the
    node's (shared with the routes it built), else one made from ``settings``. ``checks``: component ->
    a function saying what is wrong with it now, or None (``/readyz`` is "degraded" while one reports)."""
    app = web.Application(client_max_size=1 << 20, middlewares=[security_headers, _store_unavailable_is_503])
    export_stage_cpu()  # voice_agent_stage_cpu_seconds_total (idempotent: one per process)
    app[SETTINGS_KEY] = settings
    app[DEPS_KEY] = deps
    app[READY_KEY] = {"ready": ready, "degraded": dict(degraded or {}), "checks": dict(checks or {})}
    app[SECURITY_KEY] = security or Security.from_settings(settings)
    if settings.server.rag:
        COMPONENT_UP.labels("knowledge").set(0 if "knowledge" in app[READY_KEY]["degraded"] else 1)
    calls = CallRoutes(settings, deps)
    app.add_routes(
        [
            *calls.routes(),
            *media_routes(deps),
            web.get("/healthz", _healthz),
            web.get("/readyz", _readyz),
            web.get("/metrics", _metrics),
            web.get("/", _index),
            web.static("/static", STATIC_DIR),
        ]
    )
    app.add_routes(list(extra_routes))
    app.add_routes(dashboard_routes())

    async def _stop_calls(app: web.Application) -> None:
        await deps.registry.close_all("server_stop")

    app.on_shutdown.append(_stop_calls)
    return app


def knowledge_routes(kb: Any, security: Security) -> list[web.AbstractRouteDef]:
    """The knowledge document API (upload, status, list, delete), behind the admin tokens (a tenant's token
    sees and changes that tenant's documents only); uploads are rate-limited per client."""
    from knowledge.sources.upload import upload_routes

    def limited(handler: Any) -> Any:
        async def upload(request: web.Request) -> web.StreamResponse:
            security.limit(security.limits.uploads_per_client, security.client(request), "uploads")
            return await handler(request)

        return upload

    routes = [
        web.RouteDef(r.method, r.path, limited(r.handler) if r.method == "POST" else r.handler, r.kwargs)
        for r in upload_routes(kb.ingestor, kb.config)
    ]
    return list(security.admins.wrap_routes(routes))


async def serve(
    app: web.Application,
    host: str,
    port: int,
    *,
    on_started: Callable[[web.Application], Awaitable[None]] | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """Serve ``app`` until SIGINT/SIGTERM, ``stop`` is set or cancellation; on the way out the app's
    shutdown hooks end every call (records saved)."""
    runtime_metrics.watch(asyncio.get_running_loop())
    runner = web.AppRunner(app, handle_signals=False, access_log_class=RedactingAccessLogger)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    log.info("serving on http://%s:%s", host, port)
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    try:
        if on_started is not None:
            await on_started(app)
        await stop.wait()
    finally:
        log.info("stopping: ending %d live calls", len(app[DEPS_KEY].registry))
        await runner.cleanup()
