"""Broken and hostile input: each case gets a clear refusal or is dropped with a log line, never an
exception in the user agent, and after each a normal call (SIPp) still works."""

from __future__ import annotations

import asyncio
import logging
import random
import socket
from pathlib import Path

import numpy as np
import pytest

from server.transports.sip import InboundAuthConfig
from tests.server.transports.sip.app import RecordingApp, recall
from tests.server.transports.sip.conftest import Sentence, Whisper, scenario
from tests.server.transports.sip.rawsip import RawSip, header, status

pytestmark = pytest.mark.sip

AUTH_END = """
  <recv response="200"/>
  <send><![CDATA[

      ACK sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:caller@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      [last_To:]
      Call-ID: [call_id]
      CSeq: 2 ACK
      Max-Forwards: 70
      Content-Length: 0

  ]]></send>
  <send retrans="500"><![CDATA[

      BYE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:caller@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      [last_To:]
      Call-ID: [call_id]
      CSeq: 3 BYE
      Max-Forwards: 70
      Content-Length: 0

  ]]></send>
  <recv response="200"/>
"""
AUTH_REFUSED = """
  <recv response="401"/>
"""


async def normal_call(sipp, agent, app: RecordingApp, tmp_path: Path, local_ip: str = "127.0.0.1") -> None:  # type: ignore[no-untyped-def]
    before = len(app.records)
    run = sipp.start(
        scenario("caller_short", tmp_path / f"normal{before}", hold_ms=300),
        f"127.0.0.1:{agent.port}",
        local_ip=local_ip,
    )
    assert await run.finished(20) == 0, run.logs()
    record = await app.call(before)
    await asyncio.wait_for(record.ended.wait(), 5)


def no_errors_logged(caplog: pytest.LogCaptureFixture) -> None:
    bad = [
        r for r in caplog.records if r.name.startswith("server.transports.sip") and r.levelno >= logging.ERROR
    ]
    assert not bad, [r.getMessage() for r in bad]


async def test_malformed_and_oversized_messages_are_dropped_or_refused(
    user_agent, sipp, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    app = RecordingApp()
    agent = await user_agent(app, max_message_bytes=8192)
    client = RawSip(("127.0.0.1", agent.port))
    try:
        good = client.invite()
        unreadable = [
            b"\x00\xff" * 300,
            b"hello there\r\n\r\n",
            b"INVITE\r\n\r\n",
            ("INVITE sip:a@b SIP/2.0\r\n" + "X-Flood: 1\r\n" * 400 + "\r\n").encode(),
        ]
        for data in unreadable:
            client.send(data)
        client.send(client.invite().replace("CSeq: 1 INVITE", "CSeq: one INVITE"))  # no transaction to answer
        client.send(good.replace("Call-ID:", "X-Not-Call-ID:"))  # a required header missing: 400
        bad_sdp = client.invite(sdp=client.sdp().replace("m=audio 40000", "m=audio port"))  # 400
        client.send(bad_sdp)
        named = client.invite(sdp=client.sdp().replace("c=IN IP4 127.0.0.1", "c=IN IP4 rtp.example.invalid"))
        client.send(named)  # 488: a host name for RTP is refused (sendto would resolve it on every packet)
        client.send(client.invite(headers="X-Pad: " + "a" * 9000 + "\r\n"))  # over max_message_bytes: dropped
        answers = await client.responses(1.5)
    finally:
        client.close()
    assert sorted((status(m), header(m, "Call-ID")) for m in answers) == sorted(
        [(400, ""), (400, header(bad_sdp, "Call-ID")), (488, header(named, "Call-ID"))]
    ), answers
    counters = agent.counters()
    assert counters["dropped_oversized"] == 1 and counters["dropped_malformed"] == len(unreadable)
    assert agent.calls == {}
    assert any("dropped an unreadable SIP message" in r.getMessage() for r in caplog.records)
    await normal_call(sipp, agent, app, tmp_path)
    no_errors_logged(caplog)


async def test_mutated_invites_never_break_the_agent(
    user_agent, sipp, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """300 INVITEs with random byte flips, cuts and duplicated lines (a fixed seed: reproducible)."""
    rng = random.Random(20240611)
    app = RecordingApp()
    agent = await user_agent(app, max_calls=500, media_timeout_s=2.0)
    client = RawSip(("127.0.0.1", agent.port))
    try:
        for _ in range(300):
            data = bytearray(client.invite().encode())
            for _ in range(rng.randint(1, 6)):
                action, at = rng.random(), rng.randrange(len(data))
                if action < 0.5:
                    data[at] = rng.randrange(256)
                elif action < 0.75:
                    del data[at : at + rng.randint(1, 40)]
                else:
                    end = data.find(b"\r\n", at)
                    data[at:at] = data[at : end + 2] if end > 0 else b""
            client.send(bytes(data))
            if rng.random() < 0.1:
                await asyncio.sleep(0)
        await client.responses(1.0)
    finally:
        client.close()
    await asyncio.sleep(3.0)  # any call a mutation let through ends on its media timeout (no RTP)
    await normal_call(sipp, agent, app, tmp_path)
    no_errors_logged(caplog)


async def test_invite_flood_gets_503_with_retry_after_beyond_max_calls(
    user_agent, sipp, tmp_path: Path
) -> None:
    app = RecordingApp()
    agent = await user_agent(app, max_calls=5, retry_after_s=7)
    flood = sipp.start(
        scenario("caller_short", tmp_path / "flood", hold_ms=3000),
        f"127.0.0.1:{agent.port}",
        calls=30,
        rate=200,
        limit=30,
    )
    assert await flood.finished(40) == 0, flood.logs()  # every call: answered, or 503 carrying Retry-After
    assert len(app.records) == 5
    assert agent.refusals["capacity"] == 25
    assert "Retry-After: 7" in flood.messages()
    await asyncio.sleep(0.5)
    assert agent.calls == {}
    await normal_call(sipp, agent, app, tmp_path)


@pytest.mark.parametrize(
    ("formats", "rtpmaps"),
    [
        ("18", "a=rtpmap:18 G729/8000"),
        ("96", "a=rtpmap:96 opus/48000/2"),
        ("0", "a=rtpmap:0 PCMU/8000\r\na=crypto:1 x"),
    ],
)
async def test_no_common_codec_gets_488(user_agent, sipp, tmp_path: Path, formats: str, rtpmaps: str) -> None:
    app = RecordingApp()
    agent = await user_agent(app, codecs=["PCMA"] if formats == "0" else ["PCMU", "PCMA"])
    refused = sipp.start(
        scenario("caller_refused", tmp_path, formats=formats, rtpmaps=rtpmaps, status=488),
        f"127.0.0.1:{agent.port}",
    )
    assert await refused.finished(20) == 0, refused.logs()
    assert agent.refusals["sdp"] == 1 and app.records == []
    assert "Warning: 399 voice-agent" in refused.messages()


async def test_peers_outside_allowed_peers_get_403(user_agent, sipp, tmp_path: Path) -> None:
    app = RecordingApp()
    agent = await user_agent(app, allowed_peers=["127.0.0.2/32"])
    outsider = sipp.start(
        scenario(
            "caller_refused", tmp_path / "outsider", formats="0", rtpmaps="a=rtpmap:0 PCMU/8000", status=403
        ),
        f"127.0.0.1:{agent.port}",
    )
    assert await outsider.finished(20) == 0, outsider.logs()
    assert agent.refusals["peer"] >= 1 and app.records == []
    await normal_call(sipp, agent, app, tmp_path, local_ip="127.0.0.2")  # an allowed peer still gets through


async def test_digest_auth_for_inbound_calls(
    user_agent, sipp, baresip, tmp_path: Path, caller_sentence: Sentence
) -> None:
    app = RecordingApp()
    auth = InboundAuthConfig(realm="agent.test", users={"caller": "s3cret"})
    agent = await user_agent(app, inbound_auth=auth)
    target = f"127.0.0.1:{agent.port}"

    wrong = sipp.start(
        scenario("caller_auth", tmp_path / "wrong", final=AUTH_REFUSED),
        target,
        extra=("-au", "caller", "-ap", "nope"),
    )
    assert await wrong.finished(20) == 0, wrong.logs()
    assert app.records == [] and agent.refusals["auth"] == 2

    right = sipp.start(
        scenario("caller_auth", tmp_path / "right", final=AUTH_END),
        target,
        extra=("-au", "caller", "-ap", "s3cret"),
    )
    assert await right.finished(20) == 0, right.logs()
    assert len(app.records) == 1
    assert 'realm="agent.test"' in right.messages()

    account = "<sip:{user}@127.0.0.1:{port}>;auth_user=caller;auth_pass=s3cret;regint=0"
    phone = baresip.start("caller", caller_sentence.wav8k, account)
    await phone.ask("dial", f"sip:agent@{target}")
    record = await app.call(1)
    assert record.call.identity.user == "caller"
    await record.call.hangup()


async def test_rtp_from_an_unexpected_address_is_ignored(
    user_agent, sipp, tmp_path: Path, caller_sentence: Sentence, whisper: Whisper
) -> None:
    app = RecordingApp()
    agent = await user_agent(app)
    run = sipp.start(
        scenario(
            "caller_speech",
            tmp_path,
            codec="PCMU",
            pt=0,
            audio=caller_sentence.ulaw,
            audio_ms=int(caller_sentence.seconds * 1000) + 300,
            digits="1",
        ),
        f"127.0.0.1:{agent.port}",
    )
    record = await app.call(0)
    while record.call.rtp_peer is None:  # latched onto SIPp's stream
        await asyncio.sleep(0.02)
    peer = record.call.rtp_peer
    tone = (12000 * np.sin(np.arange(160) * 2 * np.pi * 1000 / 8000)).astype(np.int16)
    rogue_payload = record.call._media.endpoint.encode(tone)  # same codec, loud 1 kHz: easy to spot
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rogue:
        rogue.bind(("127.0.0.1", 0))
        for seq in range(150):
            header_bytes = (
                bytes([0x80, 0]) + seq.to_bytes(2, "big") + (seq * 160).to_bytes(4, "big") + b"ROGU"
            )
            rogue.sendto(header_bytes + rogue_payload, record.call.rtp_local_addr)
            await asyncio.sleep(0.02)
    await asyncio.wait_for(record.ended.wait(), 30)
    assert await run.finished(20) == 0, run.logs()

    assert record.call.rtp_stats.foreign_packets == 150
    assert record.call.rtp_peer == peer  # our RTP kept going to SIPp
    audio = record.audio.astype(np.float64)
    spectrum = np.abs(np.fft.rfft(audio))
    tone_share = spectrum[np.argmin(np.abs(np.fft.rfftfreq(len(audio), 1 / 8000) - 1000))] / (
        spectrum.sum() + 1e-9
    )
    assert tone_share < 0.001  # no trace of the rogue's 1 kHz tone
    heard = await whisper.transcribe(record.audio)
    assert recall(caller_sentence.text, heard) >= 0.7, heard


async def test_a_full_node_refuses_invites_and_dials(user_agent, sipp, tmp_path: Path) -> None:
    """``server.max_calls`` is node-wide: while the other transports hold every line, an INVITE gets 503 with
    Retry-After (before any RTP port) and a dial fails at once; a freed line takes calls again."""
    from server.calls.admission import CallAdmission
    from server.transports.sip import DialError, DialOutcome

    lines = CallAdmission(max_calls=1)
    assert lines.try_admit("webrtc-call", "webrtc")
    app = RecordingApp()
    agent = await user_agent(app, retry_after_s=7)
    agent.set_capacity_check(lambda: lines.full("sip"))
    refused = sipp.start(
        scenario("caller_refused", tmp_path / "full", formats="0", rtpmaps="a=rtpmap:0 PCMU/8000", status=503),
        f"127.0.0.1:{agent.port}",
    )
    assert await refused.finished(20) == 0, refused.logs()
    assert agent.refusals["capacity"] == 1 and app.records == [] and lines.refused == 1
    assert "Retry-After: 7" in refused.messages()
    with pytest.raises(DialError) as dialled:
        await agent.dial(f"sip:nobody@127.0.0.1:{agent.port}")
    assert dialled.value.outcome is DialOutcome.FAILED and dialled.value.status == 503
    lines.release("webrtc-call")
    await normal_call(sipp, agent, app, tmp_path)
