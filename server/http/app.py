"""The HTTP/WebSocket application of a node: call API, WebSocket media, health, metrics, pages.

Routes
  /api/calls/...                     the call API (``server.http.call_routes``)
  GET  /api/media/ws                 WebSocket media stream for telephony gateways (``server.transports.ws_media``)
  GET  /healthz, /readyz, /metrics   liveness, readiness (models loaded), Prometheus
  GET  /                             the call page (web/static)
plus what the node adds: the admin API and dashboard (``server.http.admin``), the knowledge document API.
``serve`` runs an application until stopped; it builds nothing: ``server.node`` composes the node.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from server.calls.session import CallDeps
from server.http import runtime_metrics
from server.http.admin import dashboard_routes
from server.http.auth import admin_only
from server.http.call_routes import CallRoutes
from server.http.health import COMPONENT_UP, health_report
from server.settings import Settings
from server.storage.engine import StoreUnavailable
from server.transports.ws_media import media_stream_handler

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).resolve().parents[2] / "web" / "static"
DEPS_KEY = web.AppKey("call_deps", CallDeps)
SETTINGS_KEY = web.AppKey("settings", Settings)
READY_KEY = web.AppKey("ready", dict)


async def _healthz(request: web.Request) -> web.Response:
    return web.json_response(health_report(request.app[SETTINGS_KEY]))


async def _readyz(request: web.Request) -> web.Response:
    """200 once the node serves everything it is configured for; 503 "starting", or 503 "degraded" with
    the components that failed to start (calls still run without them)."""
    state = request.app[READY_KEY]
    calls = len(request.app[DEPS_KEY].registry)
    if not state.get("ready"):
        return web.json_response({"status": "starting", "detail": state.get("detail", "")}, status=503)
    if state.get("degraded"):
        return web.json_response({"status": "degraded", "degraded": state["degraded"], "calls": calls}, status=503)
    return web.json_response({"status": "ready", "calls": calls})


async def _metrics(request: web.Request) -> web.Response:
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
) -> web.Application:
    """The aiohttp application. ``extra_routes``: e.g. ``server.http.admin.admin_routes(AdminDeps(...))`` or
    ``knowledge_routes(kb, admin_token)``; the admin dashboard page is always mounted (it asks for the token).
    ``degraded``: components that failed to start and why (``/readyz`` reports them)."""
    app = web.Application(client_max_size=1 << 20, middlewares=[_store_unavailable_is_503])
    app[SETTINGS_KEY] = settings
    app[DEPS_KEY] = deps
    app[READY_KEY] = {"ready": ready, "degraded": dict(degraded or {})}
    if settings.server.rag:
        COMPONENT_UP.labels("knowledge").set(0 if "knowledge" in app[READY_KEY]["degraded"] else 1)
    calls = CallRoutes(settings, deps)
    app.add_routes(
        [
            *calls.routes(),
            web.get("/api/media/ws", media_stream_handler(deps, settings.server.call_token)),
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


def knowledge_routes(kb: Any, admin_token: str) -> list[web.AbstractRouteDef]:
    """The knowledge document API (upload, status, list, delete), behind the admin token."""
    from knowledge.sources.upload import upload_routes

    return list(admin_only(upload_routes(kb.ingestor, kb.config), admin_token))


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
    runner = web.AppRunner(app, handle_signals=False)
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
