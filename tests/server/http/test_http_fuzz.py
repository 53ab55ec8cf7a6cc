"""The HTTP endpoints that take untrusted JSON, fuzzed with Hypothesis on a real loopback server: the
WebRTC offer (any JSON, and real aiortc offers with their SDP lines dropped, repeated or garbled) and the
admin API's campaign and prompt bodies. Each answer is a 2xx or a 4xx with an ``error``, never a 500;
afterwards the server still takes a real call (aiortc caller, fake models) or a valid campaign."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer
from aiortc import RTCPeerConnection
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scheduler.service import SchedulerService
from server.http.app import create_app
from server.settings import Settings
from tests.fuzzing import json_values, mutated
from tests.server.caller import media_url
from tests.server.fakes import fake_deps
from tests.server.http.admin.test_admin_api import AUTH, campaign_body
from tests.server.http.admin.test_admin_api import setup as admin  # noqa: F401 - the fixture
from tests.server.http.test_bad_input import _a_real_call_still_works

FUZZ = settings(
    max_examples=150, deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[tuple[TestServer, str]]:
    settings_ = Settings()
    settings_.server.rate_limits.enabled = False  # hundreds of offers from one client: the limiter has its own tests
    deps = fake_deps(tmp_path, settings_)
    server = TestServer(create_app(settings_, deps), host="127.0.0.1")
    await server.start_server()
    pc = RTCPeerConnection()
    pc.addTransceiver("audio")
    await pc.setLocalDescription(await pc.createOffer())
    yield server, pc.localDescription.sdp
    await pc.close()
    await server.close()
    deps.records.close()


@st.composite
def garbled_sdp(draw: st.DrawFn, sdp: str) -> str:
    lines = sdp.split("\r\n")
    out: list[str] = []
    for line in lines:
        action = draw(st.sampled_from(("keep", "keep", "keep", "drop", "twice", "garble")))
        if action == "keep":
            out.append(line)
        elif action == "twice":
            out += [line, line]
        elif action == "garble":
            out.append(line[: draw(st.integers(0, len(line)))] + draw(st.text(max_size=12)))
    return "\r\n".join(out)


def examples(strategy: st.SearchStrategy[Any]) -> list[Any]:
    """Draw examples of ``strategy`` (Hypothesis's generation, without its shrinking: the server runs on
    this test's event loop, where Hypothesis cannot drive an async check)."""
    drawn: list[Any] = []

    @FUZZ
    @given(strategy)
    def collect(example: Any) -> None:
        drawn.append(example)

    collect()
    return drawn


async def _check(resp: aiohttp.ClientResponse) -> Any:
    assert resp.status < 500, (resp.status, await resp.text())
    body = await resp.json(content_type=None)
    if resp.status >= 400:
        assert isinstance(body, dict) and body.get("error"), body
    return body


async def test_offer_endpoint(server: tuple[TestServer, str]) -> None:
    test_server, sdp = server
    url, base = test_server.make_url("/api/calls/offer"), str(test_server.make_url("")).rstrip("/")

    bodies = examples(json_values | mutated({"sdp": sdp, "type": "offer", "user_id": "ann"}) | st.builds(
        lambda s: {"sdp": s, "type": "offer"}, garbled_sdp(sdp)))
    async with aiohttp.ClientSession() as http:
        for body in bodies:
            async with http.post(url, data=json.dumps(body)) as resp:
                answer = await _check(resp)
            if resp.status == 200:  # an offer that still made sense got a call: end it
                headers = {"Authorization": f"Bearer {answer['call_token']}"}  # anonymous: the call's own token
                await http.post(f"{base}/api/calls/{answer['call_id']}/hangup", headers=headers)
    await _a_real_call_still_works(test_server)


async def test_admin_bodies(admin: tuple[TestClient, list[Any], SchedulerService]) -> None:  # noqa: F811
    client, _, _ = admin

    requests = examples(st.tuples(
        st.sampled_from(["/api/admin/campaigns", "/api/admin/prompts"]),
        json_values | mutated(campaign_body()) | mutated({"user_id": "ann", "text": "Hi.", "ttl_s": 60}),
    ))
    for path, body in requests:
        await _check(await client.post(path, data=json.dumps(body), headers=AUTH))
    resp = await client.post("/api/admin/campaigns", json=campaign_body(), headers=AUTH)
    assert resp.status == 201, await resp.text()


def _media_messages() -> st.SearchStrategy[list[Any]]:
    start = {"event": "start", "start": {"streamSid": "S1", "customParameters": {"user_id": "ann"},
                                         "mediaFormat": {"encoding": "audio/l16", "sampleRate": 8000}}}
    media = {"event": "media", "media": {"payload": "AAAAAAAAAAA="}}
    nested_start = st.builds(lambda inner: {"event": "start", "start": inner}, mutated(start["start"]))
    nested_format = st.builds(
        lambda fmt: {"event": "start", "start": {"streamSid": "S2", "mediaFormat": fmt}},
        mutated(start["start"]["mediaFormat"]) | json_values,
    )
    one = mutated(start) | nested_start | nested_format | mutated(media) | json_values | st.just({"event": "stop"})
    return st.lists(one | st.just(media), min_size=1, max_size=5)


async def test_media_websocket_messages(server: tuple[TestServer, str], caplog: pytest.LogCaptureFixture) -> None:
    """A gateway's hostile messages get an error event or a close, never an unhandled exception in the
    handler (aiohttp logs those as 'Error handling request')."""
    test_server, _ = server
    sequences = examples(_media_messages())
    async with aiohttp.ClientSession() as http:
        for messages in sequences:
            url = await media_url(test_server)  # a single-use ticket per connection (anonymous mode)
            async with http.ws_connect(url) as ws:
                for message in messages:
                    if ws.closed:
                        break
                    await ws.send_str(json.dumps(message))
                await ws.close()
    crashes = [r for r in caplog.records if r.levelname in ("ERROR", "CRITICAL") and r.name.startswith("aiohttp")]
    assert not crashes, [r.getMessage() + str(r.exc_info and r.exc_info[1]) for r in crashes[:3]]
    await _a_real_call_still_works(test_server)
