"""Outbound call outcomes against SIPp callees: answered, busy, declined, ringing until our CANCEL, a 200
crossing the CANCEL, no response at all. Each outcome is distinct, and every non-2xx final response to our
INVITE is ACKed (SIPp fails the call when the ACK is missing; aiosipua sends none)."""

from __future__ import annotations

import asyncio
import socket
import time
from pathlib import Path

import pytest

from server.transports.sip import DialError, DialOutcome, HangupReason
from tests.server.transports.sip.conftest import scenario

pytestmark = pytest.mark.sip

FINAL_487 = """
  <send><![CDATA[

      SIP/2.0 487 Request Terminated
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag01[call_number]
      [last_Call-ID:]
      CSeq: [$invite_cseq]
      Content-Length: 0

  ]]></send>
  <recv request="ACK" timeout="5000"/>
"""

FINAL_LATE_200 = """
  <send retrans="500"><![CDATA[

      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag01[call_number]
      [last_Call-ID:]
      CSeq: [$invite_cseq]
      Contact: <sip:callee@[local_ip]:[local_port]>
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=sipp 1 1 IN IP4 [local_ip]
      s=-
      c=IN IP4 [media_ip]
      t=0 0
      m=audio [media_port] RTP/AVP 0
      a=rtpmap:0 PCMU/8000

  ]]></send>
  <recv request="ACK" timeout="5000"/>
  <recv request="BYE" timeout="5000"/>
  <send><![CDATA[

      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0

  ]]></send>
"""


async def test_answered_call_hangs_up_with_bye(user_agent, sipp, tmp_path: Path) -> None:
    agent = await user_agent()
    callee = sipp.start(scenario("callee_answer", tmp_path, middle=""))
    call = await agent.dial(f"sip:callee@127.0.0.1:{callee.port}")
    assert call.codec == "PCMU" and call.media_params.dtmf_payload_type == 101
    assert call.timings.setup_s is not None
    await asyncio.sleep(0.5)
    await call.hangup()
    assert call.end is not None and call.end.reason is HangupReason.LOCAL
    assert await callee.finished(15) == 0, callee.logs()
    assert agent.counters()["library_outgoing_calls"] == 0 and agent.calls == {}


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        ("486 Busy Here", DialOutcome.BUSY),
        ("603 Decline", DialOutcome.REJECTED),
        ("480 Temporarily Unavailable", DialOutcome.NO_ANSWER),
    ],
)
async def test_refusals_are_reported_distinctly_and_acked(
    user_agent, sipp, tmp_path: Path, status: str, outcome: DialOutcome
) -> None:
    agent = await user_agent()
    callee = sipp.start(scenario("callee_refuses", tmp_path, status=status))
    with pytest.raises(DialError) as refused:
        await agent.dial(f"sip:callee@127.0.0.1:{callee.port}")
    assert refused.value.outcome is outcome and refused.value.status == int(status.split()[0])
    assert await callee.finished(15) == 0, callee.logs()  # SIPp got its ACK
    assert agent.calls == {}


async def test_ring_timeout_cancels_and_reports_no_answer(user_agent, sipp, tmp_path: Path) -> None:
    agent = await user_agent()
    callee = sipp.start(scenario("callee_rings", tmp_path, final_exchange=FINAL_487))
    started = time.monotonic()
    with pytest.raises(DialError) as unanswered:
        await agent.dial(f"sip:callee@127.0.0.1:{callee.port}", ring_timeout_s=1.5)
    assert unanswered.value.outcome is DialOutcome.NO_ANSWER
    assert 1.4 < time.monotonic() - started < 6.0
    assert await callee.finished(15) == 0, callee.logs()  # it got CANCEL, and the ACK of its 487


async def test_answer_crossing_our_cancel_is_acked_and_hung_up(user_agent, sipp, tmp_path: Path) -> None:
    agent = await user_agent()
    callee = sipp.start(scenario("callee_rings", tmp_path, final_exchange=FINAL_LATE_200))
    with pytest.raises(DialError) as unanswered:
        await agent.dial(f"sip:callee@127.0.0.1:{callee.port}", ring_timeout_s=1.0)
    assert unanswered.value.outcome is DialOutcome.NO_ANSWER
    assert await callee.finished(15) == 0, callee.logs()  # its late 200 was ACKed, then a BYE came


async def test_no_response_at_all_is_unreachable(user_agent) -> None:
    agent = await user_agent()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:  # a peer that never answers
        silent.bind(("127.0.0.1", 0))
        silent.setblocking(False)
        port = silent.getsockname()[1]
        with pytest.raises(DialError) as unreachable:
            await agent.dial(f"sip:nobody@127.0.0.1:{port}", ring_timeout_s=2.0)
        invites = 0
        while True:
            try:
                invites += silent.recv(65536).startswith(b"INVITE ")
            except BlockingIOError:
                break
    assert unreachable.value.outcome is DialOutcome.UNREACHABLE
    assert invites >= 3  # sent at 0, 0.5 and 1.5 s: Timer A retransmission (aiosipua sends one)
    assert agent.calls == {}
