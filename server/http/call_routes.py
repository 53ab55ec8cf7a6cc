"""The call API: WebRTC signaling, live call events, hang-up, call records.

Routes (mounted by ``server.http.app.create_app``)
  POST /api/calls/offer              SDP offer JSON -> answer JSON (400 with a reason on bad input)
  GET  /api/calls/config             ICE servers (STUN/TURN) for the call page
  GET  /api/calls/{call_id}/events   WebSocket of live call events; send {"type": "hangup"} to end the call
  POST /api/calls/{call_id}/hangup   end a call
  GET  /api/calls/{call_id}          call record (live snapshot while the call runs)
  GET  /api/calls                    recent calls (admin token)
Call endpoints require ``ServerConfig.call_token`` when it is set.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from aiohttp import WSCloseCode, WSMsgType, web

from server.calls import metrics
from server.calls.controls import Hangup
from server.calls.session import CallDeps, CallSession
from server.http.auth import request_token, require_call_token, token_matches
from server.settings import Settings
from server.transports.webrtc.call import WebRTCCall
from server.transports.webrtc.signaling import SignalingError, browser_ice_servers, parse_offer

log = logging.getLogger(__name__)

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

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post("/api/calls/offer", self.offer),
            web.get("/api/calls/config", self.config),
            web.get("/api/calls", self.list_calls),
            web.get("/api/calls/{call_id}/events", self.events),
            web.post("/api/calls/{call_id}/hangup", self.hangup),
            web.get("/api/calls/{call_id}", self.get_call),
        ]

    async def offer(self, request: web.Request) -> web.Response:
        require_call_token(request, self.token)
        try:
            offer = parse_offer(await _read_limited(request, MAX_OFFER_BYTES))
        except SignalingError as exc:
            metrics.SIGNALING_ERRORS.labels(exc.reason).inc()
            return _error(413 if exc.reason == "too_large" else 400, str(exc))
        call = WebRTCCall(self.deps, offer.user_id)
        session = call.session
        if not session.admit():
            await session.close("busy")
            return busy_response(self.deps)
        try:
            answer = await call.answer(offer.description)
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
                await session.control(Hangup())

    async def hangup(self, request: web.Request) -> web.Response:
        require_call_token(request, self.token)
        session = self.deps.registry.get(request.match_info["call_id"])
        if session is None or not isinstance(session, CallSession):
            return _error(404, "no live call with this id")
        await session.control(Hangup())
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


def busy_response(deps: CallDeps) -> web.Response:
    """503 + Retry-After: the node carries ``server.max_calls`` calls; the call page says all lines are busy."""
    admission = deps.admission
    return web.json_response(
        {"error": admission.busy_message(), "busy": True, "retry_after_s": admission.retry_after_s},
        status=503,
        headers={"Retry-After": str(admission.retry_after_s)},
    )


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
