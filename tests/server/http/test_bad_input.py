"""Hostile and broken clients: each gets a clear error or close code, and the server keeps serving calls.

Covers the offer endpoint (offer without audio, oversized bodies -> 413), the call-events WebSocket and the
media WebSocket (binary junk, invalid JSON, wrong shapes, frames over the size limit). Every test ends with
a real call (aiortc caller, fake models) that must still get its greeting.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import WSCloseCode, WSMsgType
from aiohttp.test_utils import TestServer
from aiortc import RTCPeerConnection

from server.http.app import create_app
from server.http.call_routes import MAX_OFFER_BYTES
from server.settings import Settings
from tests.server.caller import RTCCaller, media_url
from tests.server.fakes import fake_deps


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[TestServer]:
    settings = Settings()
    deps = fake_deps(tmp_path, settings)
    server = TestServer(create_app(settings, deps), host="127.0.0.1")
    await server.start_server()
    server.deps = deps  # type: ignore[attr-defined]
    yield server
    await server.close()
    deps.records.close()


async def _a_real_call_still_works(server: TestServer) -> None:
    caller = RTCCaller(str(server.make_url("")))
    try:
        await caller.connect()
        await caller.reply_start(after=0.0, timeout=15)  # the greeting arrives as audio
    finally:
        await caller.hangup()


def _ws_url(server: TestServer, path: str) -> str:
    return str(server.make_url(path)).replace("http://", "ws://")


async def _ticketed(server: TestServer, http: aiohttp.ClientSession, call_id: str, token: str) -> str:
    """A fresh single-use ticket URL for the call's events socket."""
    url = server.make_url(f"/api/calls/{call_id}/tickets")
    async with http.post(url, headers={"Authorization": f"Bearer {token}"}) as resp:
        ticket = (await resp.json())["ticket"]
    return _ws_url(server, f"/api/calls/{call_id}/events?ticket={ticket}")


async def test_offer_without_audio_is_rejected(server: TestServer) -> None:
    pc = RTCPeerConnection()
    pc.createDataChannel("chat")  # a real offer with only an application m-line
    await pc.setLocalDescription(await pc.createOffer())
    async with aiohttp.ClientSession() as http:
        resp = await http.post(
            server.make_url("/api/calls/offer"), json={"sdp": pc.localDescription.sdp, "type": "offer"}
        )
        body = await resp.json()
    await pc.close()
    assert resp.status == 400 and "no audio" in body["error"], body
    await _a_real_call_still_works(server)


async def test_oversized_offer_bodies_get_413(server: TestServer) -> None:
    url = server.make_url("/api/calls/offer")
    big = json.dumps({"type": "offer", "sdp": "v=0\r\n" + "a=x\r\n" * (MAX_OFFER_BYTES // 4)})

    async def chunked() -> AsyncIterator[bytes]:  # no Content-Length: the limit applies while streaming
        for _ in range(40):
            yield b" " * 4096

    async with aiohttp.ClientSession() as http:
        for data in (big.encode(), b"x" * (4 << 20), chunked()):
            resp = await http.post(url, data=data, headers={"Content-Type": "application/json"})
            body = await resp.json()
            assert resp.status == 413, body
            assert "limit" in body["error"] and str(MAX_OFFER_BYTES) in body["error"], body
    assert len(server.deps.registry) == 0  # type: ignore[attr-defined]
    await _a_real_call_still_works(server)


async def test_events_socket_answers_garbage_with_errors(server: TestServer) -> None:
    caller = RTCCaller(str(server.make_url("")))
    try:
        call_id = await caller.connect()
        await caller.reply_start(after=0.0, timeout=15)
        assert caller.token is not None
        async with aiohttp.ClientSession() as http:
            async with http.ws_connect(await _ticketed(server, http, call_id, caller.token)) as ws:
                await ws.send_bytes(b"\x00\xff" * 100)
                await ws.send_str("{not json")
                await ws.send_str("[1, 2, 3]")
                await ws.send_str('{"type": "dance"}')
                errors = []
                while len(errors) < 4:
                    msg = await asyncio.wait_for(ws.receive(), 5)
                    event = json.loads(msg.data)
                    if event["type"] == "error":
                        errors.append(event["error"])
                assert "binary" in errors[0] and "not JSON" in errors[1]
                assert all("hangup" in e for e in errors)
            url = await _ticketed(server, http, call_id, caller.token)
            assert await _closed_by(http, url, "x" * (256 << 10)) == WSCloseCode.MESSAGE_TOO_BIG
            url = await _ticketed(server, http, call_id, caller.token)
            assert await _closed_by(http, url, b"x" * (8 << 20)) == WSCloseCode.ABNORMAL_CLOSURE  # dropped
        record = await caller.record()
        assert record["live"] is True  # a watcher's garbage never ends the call
    finally:
        await caller.hangup()
    await _a_real_call_still_works(server)


async def _closed_by(
    http: aiohttp.ClientSession, url: str, message: str | bytes, start: dict[str, object] | None = None
) -> int | None:
    """Send ``message`` (after a media ``start``, if given); the close code once the server closed.

    Between our limit and aiohttp's hard limit the server closes with 1009 and a reason; beyond the
    hard limit it drops the connection (the client sees 1006)."""
    async with http.ws_connect(url) as ws:
        if start is not None:
            await ws.send_json({"event": "start", "start": start})
        try:
            await (ws.send_str(message) if isinstance(message, str) else ws.send_bytes(message))
            while (msg := await asyncio.wait_for(ws.receive(), 10)).type in (
                WSMsgType.TEXT,
                WSMsgType.BINARY,
            ):
                pass
        except (ConnectionError, aiohttp.ClientError):  # dropped while the client was still sending
            return WSCloseCode.ABNORMAL_CLOSURE
        if ws.close_code == WSCloseCode.MESSAGE_TOO_BIG:
            assert "over" in str(msg.extra), msg
        return ws.close_code


async def _media_errors(ws: aiohttp.ClientWebSocketResponse, count: int) -> list[str]:
    errors: list[str] = []
    while len(errors) < count:
        msg = await asyncio.wait_for(ws.receive(), 5)
        assert msg.type == WSMsgType.TEXT, msg
        event = json.loads(msg.data)
        if event["event"] == "error":
            errors.append(event["error"])
    return errors


async def test_media_socket_answers_garbage_and_keeps_the_call(server: TestServer) -> None:
    start = {"streamSid": "MZ9", "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000}}
    async with aiohttp.ClientSession() as http:
        async with http.ws_connect(await media_url(server)) as ws:
            await ws.send_bytes(b"\x00\x01junk")
            await ws.send_str("{{{")
            await ws.send_str('"just a string"')
            errors = await _media_errors(ws, 3)
            assert "binary" in errors[0] and all("JSON" in e for e in errors[1:]), errors
            await ws.send_json({"event": "start", "start": start})
            await ws.send_json({"event": "media", "media": {"payload": "%%% not base64 %%%"}})
            await ws.send_json({"event": "media", "media": {"payload": 12345}})
            await ws.send_json({"event": "media", "media": ["payload"]})
            errors = await _media_errors(ws, 3)
            assert all("base64" in e for e in errors), errors
            assert len(server.deps.registry) == 1  # type: ignore[attr-defined]
            await ws.send_json({"event": "stop"})
        for bad_start in ({"mediaFormat": {"encoding": "audio/ogg"}}, ["start"], {"customParameters": 5}):
            async with http.ws_connect(await media_url(server)) as ws:
                await ws.send_json({"event": "start", "start": bad_start})
                error = (await _media_errors(ws, 1))[0]
                assert error, bad_start
                assert (await asyncio.wait_for(ws.receive(), 5)).type in (WSMsgType.CLOSE, WSMsgType.CLOSED)
        too_big = json.dumps({"event": "media", "media": {"payload": "/w==" * (200 << 10)}})  # 800 KiB
        assert await _closed_by(http, await media_url(server), too_big, start) == WSCloseCode.MESSAGE_TOO_BIG
        dropped = await _closed_by(http, await media_url(server), b"x" * (8 << 20), start)
        assert dropped == WSCloseCode.ABNORMAL_CLOSURE
    for _ in range(50):
        if len(server.deps.registry) == 0:  # type: ignore[attr-defined]
            break
        await asyncio.sleep(0.05)
    assert len(server.deps.registry) == 0  # type: ignore[attr-defined]
    await _a_real_call_still_works(server)
