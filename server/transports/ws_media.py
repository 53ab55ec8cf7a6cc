"""WebSocket media stream for telephony gateways: ``GET /api/media/ws`` (Twilio Media Streams style).

Who the call is for comes from a call token, never from the stream: the gateway's backend POSTs
``/api/media/tickets`` with ``Authorization: Bearer <call token>`` (anonymous mode: no token, a fresh
user) and connects to the ``url`` it gets back (``?ticket=``, single use, seconds long); a gateway that can
set headers on the upgrade may send the Bearer call token there instead.

Gateway -> server, JSON text messages:
  {"event": "connected"}                                               (optional)
  {"event": "start", "start": {"streamSid": "...",
                               "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000}}}
  {"event": "media", "media": {"payload": "<base64 audio>"}}           (any chunk size)
  {"event": "stop"}
Server -> gateway: {"event": "start", "callId": ...} once, then {"event": "media", "streamSid": ..., "media":
{"payload": ...}} every 20 ms in the same format (silence when the agent is quiet, so the gateway's clock
never starves), and {"event": "clear"} when the caller barged in. Encodings: ``audio/x-mulaw`` (G.711
mu-law) and ``audio/l16`` (16-bit little-endian PCM). The call itself is an ordinary ``CallSession``: this
module only converts the gateway's messages into its frames and control events and back.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
from aiohttp import WSCloseCode, WSMsgType, web

from server.calls.controls import Hangup
from server.calls.identity import CallIdentity
from server.calls.pacing import FramePacer, fit_frame
from server.calls.session import CallDeps, CallSession
from server.http.guards import SECURITY_KEY
from speech.frames import AudioFrame

log = logging.getLogger(__name__)

_BIAS = 0x84
_CLIP = 32635
_QUEUE_FRAMES = 250  # 5 s of caller audio at 20 ms; a stalled pipeline drops the oldest
# A 20 ms media message is ~0.2-1 KB. Larger ones are closed with 1009 and a reason; over 4x this, aiohttp
# drops the connection without reading the frame into memory.
MAX_MESSAGE_BYTES = 256 * 1024
MEDIA_TICKET = "media-stream"
PATH = "/api/media/ws"


def mulaw_decode(data: bytes) -> np.ndarray:
    """G.711 mu-law bytes -> int16 PCM."""
    u = ~np.frombuffer(data, np.uint8)
    sign = u & 0x80
    exponent = (u >> 4) & 0x07
    mantissa = u & 0x0F
    magnitude = ((mantissa.astype(np.int32) << 3) + _BIAS) << exponent
    return np.where(sign != 0, _BIAS - magnitude, magnitude - _BIAS).astype(np.int16)


def mulaw_encode(pcm: np.ndarray) -> bytes:
    """int16 PCM -> G.711 mu-law bytes."""
    x = pcm.astype(np.int32)
    sign = np.where(x < 0, 0x80, 0)
    magnitude = np.minimum(np.abs(x), _CLIP) + _BIAS
    exponent = np.clip(np.floor(np.log2(magnitude)).astype(np.int32) - 7, 0, 7)
    mantissa = (magnitude >> (exponent + 3)) & 0x0F
    encoded: bytes = (~(sign | (exponent << 4) | mantissa) & 0xFF).astype(np.uint8).tobytes()
    return encoded


class MediaFormat:
    def __init__(self, encoding: str, sample_rate: int) -> None:
        if encoding not in ("audio/x-mulaw", "audio/l16"):
            raise ValueError(f"unsupported encoding {encoding!r}; use audio/x-mulaw or audio/l16")
        if not 8000 <= sample_rate <= 48000:
            raise ValueError(f"unsupported sampleRate {sample_rate}")
        self.encoding = encoding
        self.sample_rate = sample_rate

    def decode(self, payload: str) -> np.ndarray:
        raw = base64.b64decode(payload)
        if self.encoding == "audio/x-mulaw":
            return mulaw_decode(raw)
        return np.frombuffer(raw[: len(raw) // 2 * 2], "<i2").astype(np.int16)

    def encode(self, pcm: np.ndarray) -> str:
        raw = mulaw_encode(pcm) if self.encoding == "audio/x-mulaw" else pcm.astype("<i2").tobytes()
        return base64.b64encode(raw).decode()


class MediaStreamCall:
    """One gateway connection: caller audio into a ``CallSession``, the agent's paced audio back out."""

    kind = "websocket"

    def __init__(self, ws: web.WebSocketResponse, deps: CallDeps, identity: CallIdentity) -> None:
        self.ws = ws
        self.deps = deps
        self.identity = identity
        self.session: CallSession | None = None
        self.format = MediaFormat("audio/x-mulaw", 8000)
        self.stream_sid = ""
        self._inbound: asyncio.Queue[AudioFrame | None] = asyncio.Queue(_QUEUE_FRAMES)

    async def run(self) -> None:
        try:
            async for msg in self.ws:
                # ERROR: a frame over aiohttp's hard limit; the connection is already dropped
                if msg.type == WSMsgType.ERROR:
                    log.info("media stream: socket error %s; closing", self.ws.exception())
                    break
                if len(msg.data or b"") > MAX_MESSAGE_BYTES:
                    reason = f"message over {MAX_MESSAGE_BYTES} bytes; send audio in chunks of about 20 ms"
                    await self.ws.close(code=WSCloseCode.MESSAGE_TOO_BIG, message=reason.encode())
                    break
                if msg.type != WSMsgType.TEXT:
                    await self._error("binary frames are not accepted; send JSON text messages")
                    continue
                if not await self._handle(msg.data):
                    break
        finally:
            self._push(None)
            if self.session is not None:
                await self.session.control(Hangup())

    @property
    def connection_state(self) -> str:
        return "closed" if self.ws.closed else "connected"

    async def close(self) -> None:
        """The session ended (whoever ended it): close the gateway's socket with a normal closure and the
        reason, so the gateway hangs up its side instead of streaming into a call that is gone."""
        self._push(None)
        if self.ws.closed:
            return
        reason = (self.session.record.end_reason if self.session is not None else None) or "call ended"
        with contextlib.suppress(ConnectionError, asyncio.TimeoutError):
            await asyncio.wait_for(
                self.ws.close(code=WSCloseCode.OK, message=f"call ended: {reason}".encode()[:120]), 5
            )

    async def _handle(self, text: str) -> bool:
        try:
            message = json.loads(text)
            event = message.get("event")
        except (ValueError, AttributeError):
            await self._error("messages must be JSON objects with 'event'")
            return True
        if event == "start" and self.session is None:
            start = message.get("start") or {}
            if not isinstance(start, dict):
                await self._error("'start' must be an object with 'streamSid' and 'mediaFormat'")
                return False
            return await self._start(start)
        if event == "media" and self.session is not None:
            try:
                pcm = self.format.decode((message.get("media") or {}).get("payload", ""))
            except (ValueError, TypeError, AttributeError) as exc:  # binascii.Error is a ValueError
                await self._error(f"'media.payload' must be base64 {self.format.encoding} audio ({exc})")
                return True
            if len(pcm):
                rate = self.format.sample_rate
                self._push(AudioFrame(pcm, rate, time.monotonic() - len(pcm) / rate))
            return True
        return bool(event != "stop")

    async def _start(self, start: dict[str, Any]) -> bool:
        fmt = start.get("mediaFormat") or {}
        if not isinstance(fmt, dict):
            await self._error("'start.mediaFormat' must be an object with 'encoding' and 'sampleRate'")
            return False
        try:
            self.format = MediaFormat(
                str(fmt.get("encoding", "audio/x-mulaw")), int(fmt.get("sampleRate", 8000))
            )
        except (ValueError, TypeError, OverflowError) as exc:  # OverflowError: a sampleRate of 1e999
            await self._error(str(exc))
            return False
        params = start.get("customParameters") or {}
        if not isinstance(params, dict):
            await self._error("'start.customParameters' must be an object")
            return False
        claimed = params.get("user_id")
        if claimed is not None and claimed != self.identity.user_id:
            await self._error("'customParameters.user_id' is not accepted: the user is the call token's")
            return False
        self.stream_sid = str(start.get("streamSid", ""))
        session = self.session = CallSession(
            self.deps, output_rate=self.format.sample_rate, transport=self, identity=self.identity
        )
        if not session.admit():  # the node is full: tell the gateway, close with 1013 "try again later"
            busy = self.deps.admission.busy_message()
            await self._error(busy)
            await self.ws.close(code=WSCloseCode.TRY_AGAIN_LATER, message=b"all lines are busy")
            await session.close("busy")
            self.session = None
            return False
        session.start()
        await self.ws.send_json({"event": "start", "callId": session.call_id, "streamSid": self.stream_sid})
        session.listen(self._caller_frames())
        session.spawn(self._send_agent_audio(session), "media-out")
        session.spawn(self._send_clears(session), "media-clear")
        session.connected()
        return True

    async def _error(self, message: str) -> None:
        log.info("media stream %s: %s", self.stream_sid or "(not started)", message)
        with contextlib.suppress(ConnectionResetError):
            await self.ws.send_json({"event": "error", "error": message})

    def _push(self, frame: AudioFrame | None) -> None:
        if self._inbound.full():
            self._inbound.get_nowait()
        self._inbound.put_nowait(frame)

    async def _caller_frames(self) -> AsyncIterator[AudioFrame]:
        while (frame := await self._inbound.get()) is not None:
            yield frame

    async def _send_agent_audio(self, session: CallSession) -> None:
        """The agent's voice at the gateway's own rate, one 20 ms frame per 20 ms of wall clock."""
        pacer = FramePacer(session.output_rate)
        while not self.ws.closed:
            await pacer.next_slot()
            out = fit_frame(session.read_frame().pcm, pacer.samples_per_frame)
            media = {"payload": self.format.encode(out)}
            with contextlib.suppress(ConnectionResetError):
                await self.ws.send_json({"event": "media", "streamSid": self.stream_sid, "media": media})

    async def _send_clears(self, session: CallSession) -> None:
        """Tell the gateway to drop audio it buffered once the caller barged in."""
        events = session.events.subscribe()
        try:
            while (event := await events.get()) is not None:
                if event["type"] == "interrupted" and not self.ws.closed:
                    await self.ws.send_json({"event": "clear", "streamSid": self.stream_sid})
        finally:
            session.events.unsubscribe(events)


def media_routes(deps: CallDeps) -> list[web.RouteDef]:
    """``POST /api/media/tickets`` and ``GET /api/media/ws`` (guards: see the module docstring)."""

    async def ticket(request: web.Request) -> web.Response:
        security = request.app[SECURITY_KEY]
        security.origins.check(request)
        if security.call_tokens.anonymous:
            identity = CallIdentity.fresh_anonymous()
            security.limit_call_creation(request, None)
        else:
            identity = security.call_identity(request)
            security.limit_call_creation(request, identity)
        ticket = security.call_tokens.issue_ticket(identity, MEDIA_TICKET)
        ttl = security.call_tokens.config.ticket_ttl_s
        return web.json_response({"ticket": ticket, "url": f"{PATH}?ticket={ticket}", "expires_in_s": ttl})

    async def stream(request: web.Request) -> web.WebSocketResponse:
        security = request.app[SECURITY_KEY]
        security.origins.check(request)
        identity = security.redeem_ticket(request, MEDIA_TICKET)
        if "ticket" not in request.query:  # a gateway that sent its call token on the upgrade: a new call
            security.limit_call_creation(request, identity)
        ws = web.WebSocketResponse(heartbeat=20, max_msg_size=4 * MAX_MESSAGE_BYTES)
        await ws.prepare(request)
        await MediaStreamCall(ws, deps, identity).run()
        await ws.close()
        return ws

    return [web.post("/api/media/tickets", ticket), web.get(PATH, stream)]
