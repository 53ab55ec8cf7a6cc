"""UDP loses datagrams; SIP survives by retransmitting (RFC 3261 §17). aiosipua 0.7.1 sends INVITE, BYE
and REGISTER once; the user agent retransmits them (Timers A/E) until a response arrives. And a request
the peer retransmits must not be handled twice (aiosipua made a second call of a repeated INVITE)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from server.transports.sip import SipTrunkConfig
from tests.server.transports.sip.app import RecordingApp
from tests.server.transports.sip.conftest import scenario
from tests.server.transports.sip.rawsip import RawSip, header, status
from tests.server.transports.sip.relay import LossyRelay

pytestmark = pytest.mark.sip


async def test_lost_invite_and_bye_are_retransmitted(user_agent, sipp, tmp_path: Path) -> None:
    agent = await user_agent()
    callee = sipp.start(scenario("callee_answer", tmp_path, middle=""))
    relay = await LossyRelay.start(("127.0.0.1", callee.port), {b"INVITE ": 1, b"BYE ": 1})
    try:
        call = await agent.dial(f"sip:callee@127.0.0.1:{relay.port}", ring_timeout_s=5)
        await call.hangup()
        assert await callee.finished(15) == 0, callee.logs()  # it got the INVITE and the BYE after all
    finally:
        relay.close()
    assert [line.split()[0] for line in relay.dropped] == ["INVITE", "BYE"]
    assert agent.counters()["retransmissions"] >= 2


async def test_lost_register_is_retransmitted(user_agent, kamailio) -> None:
    proxy = kamailio.start({"agent": "agent-secret"})
    relay = await LossyRelay.start(("127.0.0.1", proxy.port), {b"REGISTER ": 1})
    try:
        trunk = SipTrunkConfig(uri=f"sip:127.0.0.1:{relay.port}", username="agent", password="agent-secret")
        agent = await user_agent(trunk=trunk)
        assert agent.registration is not None
        await agent.registration.wait_registered(5)  # without retransmission: no answer for 32 s
    finally:
        relay.close()
    assert len(relay.dropped) == 1 and relay.dropped[0].startswith("REGISTER ")


async def test_a_repeated_invite_is_one_call(user_agent) -> None:
    app = RecordingApp()
    agent = await user_agent(app)
    client = RawSip(("127.0.0.1", agent.port))
    try:
        invite = client.invite()
        client.send(invite)
        client.send(invite)  # the same INVITE again: our 100 Trying "was lost"
        answers = await client.responses(1.5)
        ok = [m for m in answers if status(m) == 200]
        assert ok, answers
        ack, bye = client.ack_and_bye(invite, ok[0])
        client.send(ack)
        client.send(bye)
        record = await app.call(0)
        await asyncio.wait_for(record.ended.wait(), 5)
    finally:
        client.close()
    assert len(app.records) == 1
    assert len({header(m, "To").split("tag=")[-1] for m in answers if status(m) > 100}) == 1  # one dialog
    assert agent.counters()["absorbed_retransmissions"] >= 1
