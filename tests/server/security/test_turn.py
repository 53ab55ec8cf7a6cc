"""Ephemeral TURN credentials (TURN REST, coturn ``use-auth-secret``), checked against a real coturn: the
credentials the server hands a caller allocate a relay; expired ones and ones made with another secret are
refused; only a caller with a call token gets any. (A whole browser call through the relay with them:
``tests/server/transports/webrtc/test_browser_call.py``.)"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from aiohttp.test_utils import TestClient, TestServer
from aioice import stun
from aioice.turn import create_turn_endpoint

from server.config import IceServer
from server.http.app import create_app
from server.security.config import TurnConfig
from server.security.turn import IceServerProvider, turn_credentials
from server.settings import Settings
from tests.fixtures.coturn import TurnRestServer
from tests.server.caller import TEST_CALL_SECRET, mint_call_token
from tests.server.fakes import fake_deps


def test_credentials_follow_the_turn_rest_scheme() -> None:
    username, credential = turn_credentials("s3cret", "ann", 600, now=1_000.5)
    assert username == "1600:ann"
    expected = base64.b64encode(hmac.new(b"s3cret", b"1600:ann", hashlib.sha1).digest()).decode()
    assert credential == expected


def test_turn_servers_are_added_to_the_static_ones_only_with_a_secret() -> None:
    static = [IceServer(urls=["stun:stun.example.org:3478"])]
    assert IceServerProvider(static, TurnConfig(urls=["turn:t:3478"])).for_user("ann") == static
    servers = IceServerProvider(
        static, TurnConfig(urls=["turn:t:3478"], secret="s"), clock=lambda: 100
    ).for_user("a")
    assert servers[0] == static[0] and servers[1].urls == ["turn:t:3478"] and servers[1].username == "3700:a"


class _Sink:
    def connection_made(self, transport: object) -> None: ...
    def datagram_received(self, data: bytes, addr: object) -> None: ...
    def error_received(self, exc: Exception) -> None: ...
    def connection_lost(self, exc: Exception | None) -> None: ...


async def allocate(url: str, username: str, password: str) -> tuple[str, int]:
    """A TURN allocation on ``url`` (what a browser's ICE agent does first); its relayed address."""
    host, port = urlsplit(url.replace("turn:", "turn://")).netloc.split(":")
    transport, _ = await asyncio.wait_for(
        create_turn_endpoint(_Sink, (host, int(port)), username, password, lifetime=60), 15
    )
    try:
        return transport.get_extra_info("sockname")  # type: ignore[no-any-return]
    finally:
        transport.close()


@pytest.mark.integration
async def test_coturn_accepts_the_servers_credentials_and_refuses_expired_ones(
    turn_rest_server: TurnRestServer, tmp_path: Path
) -> None:
    settings = Settings()
    settings.server.call_tokens.secret = TEST_CALL_SECRET
    settings.server.turn = TurnConfig(urls=[turn_rest_server.url], secret=turn_rest_server.secret, ttl_s=600)
    deps = fake_deps(tmp_path, settings)
    async with TestClient(TestServer(create_app(settings, deps))) as client:
        assert (await client.get("/api/calls/config")).status == 401  # no token, no credentials
        config = await client.get(
            "/api/calls/config", headers={"Authorization": f"Bearer {mint_call_token('ann')}"}
        )
        (turn,) = (await config.json())["iceServers"]
    deps.records.close()
    assert turn["urls"] == [turn_rest_server.url] and turn["username"].endswith(":ann")
    relayed = await allocate(turn_rest_server.url, turn["username"], turn["credential"])
    assert relayed[0] == "127.0.0.1" and 49160 <= relayed[1] <= 49200  # a port of coturn's relay range

    expired = turn_credentials(turn_rest_server.secret, "ann", 600, now=time.time() - 700)
    forged = turn_credentials("not-the-servers-secret", "ann", 600, now=time.time())
    for username, password in (expired, forged, (turn["username"], "wrong")):
        with pytest.raises((stun.TransactionFailed, ConnectionError)) as refused:
            await allocate(turn_rest_server.url, username, password)
        assert "401" in str(refused.value) or "Unauthorized" in str(refused.value), refused.value
