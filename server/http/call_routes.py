"""The call API: WebRTC signaling, live call events, hang-up, call records.

Routes (mounted by ``server.http.app.create_app``), with their guard
  POST /api/calls/offer              call token (anonymous mode: none, a fresh user per call); Origin;
                                     rate-limited per client and per token. SDP offer JSON -> answer JSON
                                     with ``call_id``, ``events_ticket`` and, in anonymous mode, the
                                     ``call_token`` the caller uses for the rest of the call
  GET  /api/calls/config             call token (anonymous mode: none); Origin. ICE servers, with TURN
                                     credentials made for this caller
  POST /api/calls/{call_id}/tickets  the call's own token; Origin. A single-use ticket for the events socket
  GET  /api/calls/{call_id}/events   ``?ticket=`` (or the call's own token as Bearer); Origin. WebSocket of
                                     live call events; send {"type": "hangup"} to end the call
  POST /api/calls/{call_id}/hangup   the call's own token; Origin
  GET  /api/calls/{call_id}          the call's own token, or an admin token of its tenant. Call record
                                     (live snapshot while the call runs)
  GET  /api/calls                    admin token (a tenant's token sees its tenant's calls). Recent calls
A call belongs to the user and tenant of the token that created it; any other token gets 404.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from aiohttp import WSCloseCode, WSMsgType, web

from server.calls import metrics
from server.calls.controls import Hangup
from server.calls.identity import CallIdentity
from server.calls.session import CallDeps, CallSession
from server.http.guards import SECURITY_KEY, Security, bearer_token, json_error
from server.security.admin_auth import AdminPrincipal, TenantForbidden
from server.security.call_tokens import CallTokenError
from server.settings import Settings
from server.transports.webrtc.call import WebRTCCall
from server.transports.webrtc.signaling import SignalingError, browser_ice_servers, parse_offer

log = logging.getLogger(__name__)

MAX_OFFER_BYTES = 64 * 1024  # a browser offer is 2-6 KB; more is a broken or hostile client
_MAX_COMMAND_BYTES = 64 * 1024  # call-events socket: commands are a few bytes
EVENTS_TICKET = "call-events"
_ANONYMOUS_TOKEN_MARGIN_S = 300  # an anonymous caller's token outlives its longest possible call


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


class CallRoutes:
    """Handlers of the call API; one instance per application."""

    def __init__(self, settings: Settings, deps: CallDeps) -> None:
        self.settings = settings
        self.deps = deps

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post("/api/calls/offer", self.offer),
            web.get("/api/calls/config", self.config),
            web.get("/api/calls", self.list_calls),
            web.post("/api/calls/{call_id}/tickets", self.ticket),
            web.get("/api/calls/{call_id}/events", self.events),
            web.post("/api/calls/{call_id}/hangup", self.hangup),
            web.get("/api/calls/{call_id}", self.get_call),
        ]

    @staticmethod
    def _security(request: web.Request) -> Security:
        return request.app[SECURITY_KEY]

    def _caller(self, request: web.Request) -> tuple[CallIdentity, dict[str, Any]]:
        """Who places a new call: the token's identity, or (anonymous mode) a fresh user and the token
        that user gets. Anonymous mode ignores any token: nothing unauthenticated chooses a user."""
        security = self._security(request)
        security.origins.check(request)
        if not security.call_tokens.anonymous:
            identity = security.call_identity(request)
            security.limit_call_creation(request, identity)
            return identity, {}
        security.limit_call_creation(request, None)
        ttl = min(
            self.settings.server.call.max_call_seconds + _ANONYMOUS_TOKEN_MARGIN_S,
            self.settings.server.call_tokens.max_ttl_s,
        )
        issued = security.call_tokens.issue_anonymous(ttl)
        return issued.identity, {"call_token": issued.token, "call_token_expires_at": issued.expires_at}

    async def offer(self, request: web.Request) -> web.Response:
        identity, extra = self._caller(request)
        try:
            offer = parse_offer(await _read_limited(request, MAX_OFFER_BYTES))
        except SignalingError as exc:
            metrics.SIGNALING_ERRORS.labels(exc.reason).inc()
            return _error(413 if exc.reason == "too_large" else 400, str(exc))
        if offer.user_id is not None and offer.user_id != identity.user_id:
            metrics.SIGNALING_ERRORS.labels("bad_user").inc()
            return _error(400, "'user_id' is not accepted: the caller's user comes from the call token")
        security = self._security(request)
        call = WebRTCCall(self.deps, identity=identity, ice_servers=security.ice.for_user("server"))
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
        ticket = security.call_tokens.issue_ticket(identity, EVENTS_TICKET, session.call_id)
        body = {"call_id": session.call_id, "sdp": answer.sdp, "type": answer.type, "events_ticket": ticket}
        return web.json_response({**body, **extra})

    async def config(self, request: web.Request) -> web.Response:
        security = self._security(request)
        security.origins.check(request)
        if security.call_tokens.anonymous:
            identity = security.optional_call_identity(request)
            user = identity.user_id if identity is not None else "anonymous"
        else:
            user = security.call_identity(request).user_id
        servers = security.ice.for_user(user)
        return web.json_response(
            {"iceServers": browser_ice_servers(servers), "anonymous": security.call_tokens.anonymous}
        )

    def _own_live_call(self, request: web.Request, identity: CallIdentity) -> CallSession:
        session = self.deps.registry.get(request.match_info["call_id"])
        if not isinstance(session, CallSession) or not identity.owns(session.user_id, session.tenant):
            raise json_error(web.HTTPNotFound, "no live call with this id for this token")
        return session

    async def ticket(self, request: web.Request) -> web.Response:
        security = self._security(request)
        security.origins.check(request)
        session = self._own_live_call(request, security.call_identity(request))
        ticket = security.call_tokens.issue_ticket(session.identity, EVENTS_TICKET, session.call_id)
        ttl = self.settings.server.call_tokens.ticket_ttl_s
        return web.json_response({"ticket": ticket, "expires_in_s": ttl})

    async def events(self, request: web.Request) -> web.StreamResponse:
        security = self._security(request)
        security.origins.check(request)
        call_id = request.match_info["call_id"]
        session = self._own_live_call(request, security.redeem_ticket(request, EVENTS_TICKET, call_id))
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
        security = self._security(request)
        security.origins.check(request)
        session = self._own_live_call(request, security.call_identity(request))
        await session.control(Hangup())
        return web.json_response({"call_id": session.call_id, "ended": True})

    def _reader(self, request: web.Request) -> CallIdentity | AdminPrincipal:
        """A call token, else an admin token; 401 when the Bearer token is neither."""
        security = self._security(request)
        token = bearer_token(request)
        if token is not None:
            try:
                return security.call_tokens.verify(token)
            except CallTokenError:
                pass  # maybe an admin token: the admin guard counts it if it is not one either
        return security.admins.principal(request)

    async def get_call(self, request: web.Request) -> web.Response:
        reader = self._reader(request)
        call_id = request.match_info["call_id"]
        live = self.deps.registry.get(call_id)
        if live is not None:
            if _may_read(reader, live.user_id, getattr(live, "tenant", "default")):
                return web.json_response(live.snapshot())
        else:
            record = await self.deps.records.get(call_id)
            if record is not None and _may_read(reader, record.user_id, record.tenant):
                return web.json_response({**record.to_dict(), "live": False})
        return _error(404, f"no call record {call_id!r} for this token")

    async def list_calls(self, request: web.Request) -> web.Response:
        principal = self._security(request).admins.principal(request)
        try:
            limit = min(500, max(1, int(request.query.get("limit", "50"))))
        except ValueError:
            return _error(400, "'limit' must be an integer")
        try:
            tenant = principal.read_scope(request.query.get("tenant"))
        except TenantForbidden as exc:
            return _error(403, str(exc))
        calls = await self.deps.records.recent(limit, request.query.get("user_id"), tenant)
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


def _may_read(reader: CallIdentity | AdminPrincipal, user_id: str | None, tenant: str) -> bool:
    if isinstance(reader, AdminPrincipal):
        return reader.sees(tenant)
    return reader.owns(user_id, tenant)


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
