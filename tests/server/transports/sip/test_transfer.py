"""Blind transfer with REFER (RFC 3515): the peer is asked to call the target, reports progress in
NOTIFYs, and the agent releases the call once the target answered."""

from __future__ import annotations

from pathlib import Path

import pytest

from server.transports.sip import HangupReason, TransferError, TransferProgress
from tests.server.transports.sip.app import RecordingApp
from tests.server.transports.sip.conftest import Sentence, scenario
from tests.server.transports.sip.test_baresip import phone_microphone

pytestmark = pytest.mark.sip

REFER_ACCEPTED = """
  <recv request="REFER">
    <action>
      <ereg regexp="sip:desk@example\\.test" search_in="hdr" header="Refer-To:" check_it="true" assign_to="target"/>
      <ereg regexp=".*" search_in="hdr" header="From:" assign_to="agent_side"/>
      <ereg regexp=".*" search_in="hdr" header="To:" assign_to="our_side"/>
    </action>
  </recv>
  <send><![CDATA[

      SIP/2.0 202 Accepted
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0

  ]]></send>
  <pause milliseconds="300"/>
  <send retrans="500"><![CDATA[

      NOTIFY sip:agent@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From:[$our_side]
      To:[$agent_side]
      [last_Call-ID:]
      CSeq: 1 NOTIFY
      Event: refer
      Subscription-State: terminated;reason=noresource
      Contact: <sip:callee@[local_ip]:[local_port]>
      Max-Forwards: 70
      Content-Type: message/sipfrag;version=2.0
      Content-Length: [len]

      SIP/2.0 200 OK

  ]]></send>
  <recv response="200"/>
  <Reference variables="target"/>
"""

REFER_DECLINED = """
  <recv request="REFER"/>
  <send><![CDATA[

      SIP/2.0 603 Decline
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0

  ]]></send>
"""


async def test_refer_is_carried_out_by_baresip(
    user_agent, baresip, tmp_path: Path, caller_sentence: Sentence
) -> None:
    app = RecordingApp()
    agent = await user_agent(app)
    microphone = phone_microphone(caller_sentence, tmp_path, 30)
    caller = baresip.start("alice", microphone)
    desk = baresip.start("desk", microphone)
    await caller.ask("dial", f"sip:agent@127.0.0.1:{agent.port}")
    record = await app.call(0)
    await caller.expect("CALL_ESTABLISHED")

    await record.call.transfer(desk.uri, timeout=15)

    established = await desk.expect("CALL_ESTABLISHED")  # the desk phone now talks to the caller
    assert established["peeruri"].startswith("sip:alice@")
    assert record.call.end is not None and record.call.end.reason is HangupReason.TRANSFERRED
    progress = [e for e in record.events if isinstance(e, TransferProgress)]
    assert progress and progress[-1].status == 200
    assert agent.calls == {}


async def test_refer_on_an_outbound_call_reaches_the_peer(user_agent, sipp, tmp_path: Path) -> None:
    agent = await user_agent()
    callee = sipp.start(scenario("callee_answer", tmp_path, middle=REFER_ACCEPTED))
    call = await agent.dial(f"sip:callee@127.0.0.1:{callee.port}")
    await call.transfer("sip:desk@example.test", timeout=10)
    assert call.end is not None and call.end.reason is HangupReason.TRANSFERRED
    assert await callee.finished(15) == 0, callee.logs()  # Refer-To checked, NOTIFY answered, BYE received


async def test_a_declined_refer_raises_and_keeps_the_call(user_agent, sipp, tmp_path: Path) -> None:
    agent = await user_agent()
    callee = sipp.start(scenario("callee_answer", tmp_path, middle=REFER_DECLINED))
    call = await agent.dial(f"sip:callee@127.0.0.1:{callee.port}")
    with pytest.raises(TransferError) as declined:
        await call.transfer("sip:desk@example.test", timeout=10)
    assert declined.value.status == 603
    assert not call.ended
    await call.hangup()
    assert await callee.finished(15) == 0, callee.logs()
