"""The user agent's lifecycle: listening on UDP and TCP on one port, a clean start (no error logged), and
a stop that hangs up live calls with BYE and leaves nothing behind."""

from __future__ import annotations

import asyncio
import logging
import socket
from pathlib import Path

import pytest

from server.transports.sip import HangupReason, SipError, SipTrunkConfig
from server.transports.sip.config import SipConfig
from server.transports.sip.user_agent import SipUserAgent
from tests.server.transports.sip.app import RecordingApp
from tests.server.transports.sip.conftest import scenario
from tests.server.transports.sip.rawsip import RawSip, header, status

pytestmark = pytest.mark.sip


async def test_start_listens_on_udp_and_tcp_and_logs_no_error(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    agent = SipUserAgent(SipConfig(enabled=True, udp_port=0))
    with pytest.raises(SipError):
        await agent.dial("sip:x@127.0.0.1:5")  # not started
    await agent.start()
    try:
        with socket.create_connection(("127.0.0.1", agent.port), timeout=2):
            pass  # TCP on the same port number
        assert agent.address == ("127.0.0.1", agent.port)
    finally:
        await agent.stop()
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [], [r.getMessage() for r in errors]  # aiosipua's UDP protocol logged an AssertionError


async def test_stop_hangs_up_live_calls(sipp, tmp_path: Path) -> None:
    agent = SipUserAgent(SipConfig(enabled=True, udp_port=0))
    await agent.start()
    callee = sipp.start(scenario("callee_answer", tmp_path, middle=""))
    call = await agent.dial(f"sip:callee@127.0.0.1:{callee.port}")
    await asyncio.sleep(0.3)
    await agent.stop()
    assert call.end is not None and call.end.reason is HangupReason.SHUTDOWN
    assert await callee.finished(15) == 0, callee.logs()  # it got the BYE
    assert agent.calls == {}


async def test_registration_retries_after_a_failure_and_refreshes(user_agent, sipp, tmp_path: Path) -> None:
    registrar = sipp.start(scenario("registrar_flaky", tmp_path))
    trunk = SipTrunkConfig(uri=f"sip:127.0.0.1:{registrar.port}", username="agent", password="x")
    agent = await user_agent(trunk=trunk)
    assert agent.registration is not None
    await agent.registration.wait_registered(15)  # 503 first; retried after 5 s
    assert await registrar.finished(15) == 0, registrar.logs()  # and refreshed before the 2 s ran out


async def test_advertised_address_is_what_peers_see(user_agent) -> None:
    agent = await user_agent(RecordingApp(), advertised_host="203.0.113.7", advertised_port=5080)
    client = RawSip(("127.0.0.1", agent.port))
    try:
        invite = client.invite()
        client.send(invite)
        ok = [m for m in await client.responses(1.0, until=" 200 ") if status(m) == 200]
        assert ok
        assert "<sip:203.0.113.7:5080>" in header(ok[0], "Contact")
        assert "c=IN IP4 203.0.113.7" in ok[0] and "o=- " in ok[0]
        ack, bye = client.ack_and_bye(invite, ok[0])
        client.send(ack)
        client.send(bye)
        await client.responses(0.5)
    finally:
        client.close()


async def test_a_dial_only_agent_refuses_inbound_calls(user_agent) -> None:
    agent = await user_agent()  # no on_call handler
    client = RawSip(("127.0.0.1", agent.port))
    try:
        client.send(client.invite())
        answers = await client.responses(1.0)
    finally:
        client.close()
    assert [status(m) for m in answers] == [480]
    assert agent.refusals["no handler"] == 1
