"""The HTTP/WebSocket server: call signaling, live call events, call records, health, metrics, pages.

Routes
  POST /api/calls/offer              SDP offer JSON -> answer JSON (400 with a reason on bad input)
  GET  /api/calls/config             ICE servers (STUN/TURN) for the call page
  GET  /api/calls/{call_id}/events   WebSocket of live call events; send {"type": "hangup"} to end the call
  POST /api/calls/{call_id}/hangup   end a call
  GET  /api/media/ws                 WebSocket media stream for telephony gateways (server.ws_media)
  GET  /api/calls/{call_id}          call record (live snapshot while the call runs)
  GET  /api/calls                    recent calls (admin token)
  GET  /healthz, /readyz, /metrics   liveness, readiness (models loaded), Prometheus
  GET  /                             the call page (web/static)
Call endpoints require ``ServerConfig.call_token`` when it is set.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any

from aiohttp import WSCloseCode, WSMsgType, web

from server import metrics
from server.auth import admin_only, request_token, require_call_token, token_matches
from server.health import health_report
from server.records import ConversationEventPublisher, open_call_record_store
from server.registry import SessionRegistry
from server.session import CallDeps, CallSession
from server.settings import Settings
from server.signaling import SignalingError, browser_ice_servers, parse_offer
from server.ws_media import media_stream_handler

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).resolve().parent.parent / "web" / "static"
DEPS_KEY = web.AppKey("call_deps", CallDeps)
SETTINGS_KEY = web.AppKey("settings", Settings)
READY_KEY = web.AppKey("ready", dict)
MAX_OFFER_BYTES = 64 * 1024  # a browser offer is 2-6 KB; more is a broken or hostile client
_MAX_COMMAND_BYTES = 64 * 1024  # call-events socket: commands are a few bytes


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


class CallRoutes:
    """Handlers of the call API; one instance per application."""

    def __init__(self, settings: Settings, deps: CallDeps) -> None:
        self.settings = settings
        self.deps = deps
        self.token = settings.server.call_token

    async def offer(self, request: web.Request) -> web.Response:
        require_call_token(request, self.token)
        try:
            offer = parse_offer(await _read_limited(request, MAX_OFFER_BYTES))
        except SignalingError as exc:
            metrics.SIGNALING_ERRORS.labels(exc.reason).inc()
            return _error(413 if exc.reason == "too_large" else 400, str(exc))
        session = CallSession(self.deps, offer.user_id)
        try:
            answer = await session.accept(offer.description)
        except (ValueError, KeyError, IndexError, AttributeError, AssertionError, TypeError) as exc:
            # aiortc: the offer parsed but cannot be negotiated (missing or inconsistent attributes)
            metrics.SIGNALING_ERRORS.labels("negotiation").inc()
            await session.close("rejected")
            return _error(400, f"offer could not be negotiated: {type(exc).__name__}: {exc}")
        except TimeoutError:
            await session.close("ice_timeout")
            return _error(503, "ICE gathering timed out; check server.ice_servers")
        except Exception:
            log.exception("answering offer failed")
            await session.close("error")
            return _error(500, "internal error while answering the offer; see the server log")
        return web.json_response({"call_id": session.call_id, "sdp": answer.sdp, "type": answer.type})

    async def config(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "iceServers": browser_ice_servers(self.settings.server.ice_servers),
                "tokenRequired": bool(self.token),
            }
        )

    async def events(self, request: web.Request) -> web.StreamResponse:
        require_call_token(request, self.token)
        session = self.deps.registry.get(request.match_info["call_id"])
        if session is None or not isinstance(session, CallSession):
            return _error(404, "no live call with this id")
        # Frames between our limit and aiohttp's are closed with 1009 and a reason; beyond it, aiohttp drops
        # the connection without reading the frame into memory.
        ws = web.WebSocketResponse(heartbeat=20, max_msg_size=16 * _MAX_COMMAND_BYTES)
        await ws.prepare(request)
        queue = session.events.subscribe()
        reader = asyncio.create_task(self._read_commands(ws, session))
        try:
            while (event := await _next_event(queue, reader)) is not None:
                await ws.send_str(json.dumps(event))
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            session.events.unsubscribe(queue)
            reader.cancel()
            await ws.close()
        return ws

    async def _read_commands(self, ws: web.WebSocketResponse, session: CallSession) -> None:
        """Commands from the page; anything else is answered with an error event and ignored."""
        async for msg in ws:
            if msg.type == WSMsgType.ERROR:  # a frame over aiohttp's hard limit: the connection is dropped
                log.info("call %s: events socket error: %s", session.call_id, ws.exception())
                return
            if len(msg.data or b"") > _MAX_COMMAND_BYTES:
                reason = f"message over {_MAX_COMMAND_BYTES} bytes; commands are small JSON objects"
                await ws.close(code=WSCloseCode.MESSAGE_TOO_BIG, message=reason.encode())
                return
            command = _parse_command(msg)
            if isinstance(command, str):
                await ws.send_str(json.dumps({"type": "error", "error": command}))
            elif command.get("type") == "hangup":
                await session.close("hangup")

    async def hangup(self, request: web.Request) -> web.Response:
        require_call_token(request, self.token)
        session = self.deps.registry.get(request.match_info["call_id"])
        if session is None:
            return _error(404, "no live call with this id")
        await session.close("hangup")
        return web.json_response({"call_id": session.call_id, "ended": True})

    async def get_call(self, request: web.Request) -> web.Response:
        require_call_token(request, self.token)
        call_id = request.match_info["call_id"]
        live = self.deps.registry.get(call_id)
        if live is not None:
            return web.json_response(live.snapshot())
        record = await self.deps.records.get(call_id)
        if record is None:
            return _error(404, f"no call record {call_id!r}")
        return web.json_response({**record.to_dict(), "live": False})

    async def list_calls(self, request: web.Request) -> web.Response:
        if not token_matches(self.settings.server.admin_token, request_token(request)):
            return _error(401, "admin token missing or wrong: send Authorization: Bearer <admin_token>")
        try:
            limit = min(500, max(1, int(request.query.get("limit", "50"))))
        except ValueError:
            return _error(400, "'limit' must be an integer")
        calls = await self.deps.records.recent(limit, request.query.get("user_id"))
        live_ids = {s.call_id for s in self.deps.registry.live()}
        for call in calls:
            call["live"] = call["call_id"] in live_ids
        return web.json_response({"calls": calls})


def _parse_command(msg: Any) -> dict[str, Any] | str:
    """A page command as a JSON object, or the error message to send back."""
    if msg.type != WSMsgType.TEXT:
        return 'binary messages are not accepted; send JSON text such as {"type": "hangup"}'
    try:
        command = json.loads(msg.data)
    except ValueError:
        return f'message is not JSON ({len(msg.data)} characters); send {{"type": "hangup"}}'
    if not isinstance(command, dict) or command.get("type") != "hangup":
        return 'unknown command; the only command is {"type": "hangup"}'
    return command


async def _read_limited(request: web.Request, limit: int) -> bytes:
    """The request body, or ``SignalingError("too_large")`` past ``limit`` bytes (checked before reading
    when the client sent Content-Length, while streaming otherwise)."""
    if request.content_length is not None and request.content_length > limit:
        raise SignalingError(
            f"request body is {request.content_length} bytes; the limit is {limit}", "too_large"
        )
    body = bytearray()
    async for chunk in request.content.iter_chunked(64 * 1024):
        body += chunk
        if len(body) > limit:
            raise SignalingError(f"request body exceeds the limit of {limit} bytes", "too_large")
    return bytes(body)


async def _next_event(queue: asyncio.Queue[Any], reader: asyncio.Task[None]) -> Any:
    """The next call event, or None when the call ended or the page closed the socket."""
    getter = asyncio.ensure_future(queue.get())
    done, _ = await asyncio.wait({getter, reader}, return_when=asyncio.FIRST_COMPLETED)
    if getter in done:
        return getter.result()
    getter.cancel()
    return None


async def _healthz(request: web.Request) -> web.Response:
    return web.json_response(health_report(request.app[SETTINGS_KEY]))


async def _readyz(request: web.Request) -> web.Response:
    state = request.app[READY_KEY]
    if state.get("ready"):
        return web.json_response({"status": "ready", "calls": len(request.app[DEPS_KEY].registry)})
    return web.json_response({"status": "starting", "detail": state.get("detail", "")}, status=503)


async def _metrics(request: web.Request) -> web.Response:
    body, content_type = metrics.render()
    return web.Response(body=body, headers={"Content-Type": content_type})


async def _index(request: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC_DIR / "index.html")


def create_app(
    settings: Settings,
    deps: CallDeps,
    *,
    extra_routes: Iterable[web.AbstractRouteDef] = (),
    ready: bool = True,
) -> web.Application:
    """The aiohttp application. ``extra_routes``: e.g. ``server.admin.admin_routes(AdminDeps(...))`` or
    ``knowledge_routes(kb, admin_token)``; the admin dashboard page is mounted automatically when importable."""
    app = web.Application(client_max_size=1 << 20)
    app[SETTINGS_KEY] = settings
    app[DEPS_KEY] = deps
    app[READY_KEY] = {"ready": ready}
    calls = CallRoutes(settings, deps)
    app.add_routes(
        [
            web.post("/api/calls/offer", calls.offer),
            web.get("/api/calls/config", calls.config),
            web.get("/api/calls", calls.list_calls),
            web.get("/api/calls/{call_id}/events", calls.events),
            web.post("/api/calls/{call_id}/hangup", calls.hangup),
            web.get("/api/calls/{call_id}", calls.get_call),
            web.get("/api/media/ws", media_stream_handler(deps, settings.server.call_token)),
            web.get("/healthz", _healthz),
            web.get("/readyz", _readyz),
            web.get("/metrics", _metrics),
            web.get("/", _index),
            web.static("/static", STATIC_DIR),
        ]
    )
    app.add_routes(list(extra_routes))
    _mount_optional(app, settings)

    async def _stop_calls(app: web.Application) -> None:
        await deps.registry.close_all("server_stop")

    app.on_shutdown.append(_stop_calls)
    return app


def _mount_optional(app: web.Application, settings: Settings) -> None:
    """Routes of other packages that need nothing from the call server."""
    mounts: list[tuple[str, Callable[[], list[web.AbstractRouteDef]]]] = [
        (
            "admin dashboard",
            lambda: __import__("server.admin", fromlist=["dashboard_routes"]).dashboard_routes(),
        ),
    ]
    for name, make in mounts:
        try:
            app.add_routes(make())
        except ImportError as exc:
            log.info("%s routes not mounted: %s", name, exc)
        except Exception:
            log.exception("%s routes could not be mounted", name)


async def start_knowledge(settings: Settings) -> Any:
    """The knowledge base (RAG retriever and upload routes), or None when it cannot start here."""
    try:
        from knowledge.knowledge_base import KnowledgeBase

        kb = KnowledgeBase(settings.knowledge)
        await kb.start()
        return kb
    except Exception as exc:  # noqa: BLE001 - a missing embedding model must not stop calls: they run without RAG
        log.warning(
            "knowledge base not started, calls run without retrieval: %s: %s", type(exc).__name__, exc
        )
        return None


def knowledge_routes(kb: Any, admin_token: str) -> list[web.AbstractRouteDef]:
    """The knowledge document API (upload, status, list, delete), behind the admin token."""
    from knowledge.sources.upload import upload_routes

    return list(admin_only(upload_routes(kb.ingestor, kb.config), admin_token))


async def build_deps(
    settings: Settings,
    *,
    registry: SessionRegistry | None = None,
    retriever: Any = None,
    callback_scheduler: Any = None,
    bus: Any = None,
) -> CallDeps:
    """Load the shared models (STT, TTS, LLM) once and build what every call needs.

    ``retriever``: ``agent.retrieval.Retriever`` for RAG (e.g. ``KnowledgeBase.retriever``);
    ``callback_scheduler``: ``agent.tools.CallbackScheduler`` for the schedule-callback tool;
    ``bus``: a started ``messaging.bus.MessageBus``: calls publish ``ConversationEvent``s on it."""
    from agent.llm.registry import create_llm
    from speech.stt.registry import create_stt
    from speech.tts.registry import create_tts

    stt = create_stt(settings.speech.stt)
    tts = await asyncio.to_thread(create_tts, settings.speech.tts)
    llm = await asyncio.to_thread(create_llm, settings.agent.llm)
    await stt.warm_up()
    await _warm_up(tts, llm)
    return CallDeps(
        speech=settings.speech,
        call=settings.server.call,
        ice_servers=list(settings.server.ice_servers),
        node_id=settings.server.node_id,
        greeting=settings.agent.greeting,
        stt=stt,
        tts=tts,
        new_conversation=conversation_factory(settings, llm, retriever, callback_scheduler),
        records=open_call_record_store(settings.server.records_db),
        registry=registry if registry is not None else SessionRegistry(),  # an empty registry is falsy
        conversation_events=(
            ConversationEventPublisher(bus, settings.bus.topic_conversation, settings.server.node_id)
            if bus is not None
            else None
        ),
    )


async def _warm_up(tts: Any, llm: Any) -> None:
    """One tiny synthesis and generation at start-up, so the first caller does not pay for lazy init."""
    from agent.llm.base import Message

    try:
        async for _ in tts.synthesize("Hello."):
            pass
        async for _ in llm.stream_chat([Message("user", "Hi")], max_tokens=1):
            pass
    except Exception:  # a failing warm-up is not fatal: the first call will show the error
        log.exception("model warm-up failed")


def conversation_factory(
    settings: Settings, llm: Any, retriever: Any = None, callback_scheduler: Any = None
) -> Callable[[str | None, Any], Any]:
    """``(user_id, call_control) -> agent.conversation.Conversation`` on the shared LLM, with tools and memory."""
    from agent.conversation import Conversation
    from agent.memory import MemoryStore
    from agent.tools import ToolBox

    cfg = settings.agent
    memory = MemoryStore(cfg.memory_path, cfg.memory_max_facts)

    def new_conversation(user_id: str | None, call_control: Any) -> Any:
        uid = user_id or "anonymous"
        tools = ToolBox(
            retriever,
            callback_scheduler,
            call_control,
            user_id=uid,
            fallback=cfg.tool_fallback,
            transfer_target=cfg.transfer_target,
            top_k=cfg.retrieval_top_k,
        )
        return Conversation(
            llm,
            cfg,
            retriever=retriever,
            tools=tools,
            memory=memory if user_id else None,
            user_id=uid,
            call_id=getattr(call_control, "call_id", None),
        )

    return new_conversation


async def run_server(
    settings: Settings,
    *,
    deps: CallDeps | None = None,
    extra_routes: Iterable[web.AbstractRouteDef] = (),
    on_started: Callable[[web.Application], Awaitable[None]] | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """Serve until SIGINT/SIGTERM, ``stop`` is set or cancellation, then end every call (records saved).

    Starts the knowledge base when ``ServerConfig.rag`` is on and ``deps`` is not given (its upload routes
    are mounted too); with ``deps`` the caller owns the knowledge base (see ``server.node``)."""
    kb = await start_knowledge(settings) if settings.server.rag and deps is None else None
    routes = [*extra_routes, *(knowledge_routes(kb, settings.server.admin_token) if kb is not None else [])]
    if deps is None:
        deps = await build_deps(settings, retriever=kb.retriever if kb is not None else None)
    app = create_app(settings, deps, extra_routes=routes)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, settings.server.host, settings.server.port)
    await site.start()
    log.info("serving on http://%s:%s", settings.server.host, settings.server.port)
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
        events = app[DEPS_KEY].conversation_events
        if events is not None:
            await events.drain()
        app[DEPS_KEY].records.close()
        if kb is not None:
            await kb.close()
