"""baresip as a real phone, calling the user agent and called by it: both directions of speech must
transcribe right (the phone's microphone is a Piper WAV, its ``sndfile`` recording is what it heard), and
RFC 4733 digits must cross both ways. baresip's SDP names the host's LAN address while its RTP comes from
127.0.0.1: symmetric RTP has to latch onto the real source."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

from server.transports.sip import HangupReason
from tests.server.transports.sip.app import RecordingApp, recall
from tests.server.transports.sip.conftest import Sentence, Whisper
from tests.speech.conftest import write_wav

pytestmark = pytest.mark.sip


def phone_microphone(sentence: Sentence, directory: Path, seconds: float) -> Path:
    """The sentence, then silence up to ``seconds``: baresip hangs up when its aufile ends."""
    pad = max(0, int(seconds * 8000) - len(sentence.pcm8k))
    return write_wav(
        directory / f"mic-{seconds:.0f}s.wav", np.concatenate([sentence.pcm8k, np.zeros(pad, np.int16)]), 8000
    )


async def test_baresip_calls_the_agent_and_both_sides_are_heard(
    user_agent, baresip, tmp_path: Path, caller_sentence: Sentence, agent_sentence: Sentence, whisper: Whisper
) -> None:
    app = RecordingApp(reply=agent_sentence.pcm8k)
    agent = await user_agent(app)
    phone = baresip.start("alice", phone_microphone(caller_sentence, tmp_path, 9))
    await phone.ask("dial", f"sip:agent@127.0.0.1:{agent.port}")
    record = await app.call(0)
    ended = await asyncio.wait_for(record.call.wait_ended(), 30)  # the phone hangs up when its WAV ends

    assert ended.reason is HangupReason.REMOTE
    assert record.call.rtp_peer is not None and record.call.rtp_peer[0] == "127.0.0.1"
    assert record.call.identity.user == "alice"
    heard_by_agent = await whisper.transcribe(record.audio)
    assert recall(caller_sentence.text, heard_by_agent) >= 0.7, heard_by_agent
    heard_by_phone = await whisper.transcribe(phone.recording())
    assert recall(agent_sentence.text, heard_by_phone) >= 0.7, heard_by_phone
    assert agent.calls == {} and agent.counters()["library_incoming_calls"] == 0


async def test_agent_dials_baresip_and_both_sides_are_heard(
    user_agent, baresip, tmp_path: Path, caller_sentence: Sentence, agent_sentence: Sentence, whisper: Whisper
) -> None:
    agent = await user_agent()
    phone = baresip.start("bob", phone_microphone(caller_sentence, tmp_path, 30))
    app = RecordingApp(reply=agent_sentence.pcm8k)
    call = await agent.dial(phone.uri)
    serving = asyncio.create_task(app(call))
    record = await app.call(0)
    await phone.expect("CALL_ESTABLISHED")
    await asyncio.sleep(agent_sentence.seconds + 1.0)
    await call.hangup()
    await asyncio.wait_for(serving, 10)
    await phone.expect("CALL_CLOSED")

    assert call.direction == "outbound" and call.end is not None and call.end.reason is HangupReason.LOCAL
    heard_by_phone = await whisper.transcribe(phone.recording())
    assert recall(agent_sentence.text, heard_by_phone) >= 0.7, heard_by_phone
    heard_by_agent = await whisper.transcribe(record.audio)
    assert recall(caller_sentence.text, heard_by_agent) >= 0.7, heard_by_agent
    assert agent.counters()["library_outgoing_calls"] == 0


async def test_dtmf_crosses_both_ways_with_baresip(
    user_agent, baresip, tmp_path: Path, caller_sentence: Sentence
) -> None:
    app = RecordingApp()
    agent = await user_agent(app)
    phone = baresip.start("carol", phone_microphone(caller_sentence, tmp_path, 30))
    await phone.ask("dial", f"sip:agent@127.0.0.1:{agent.port}")
    record = await app.call(0)
    await phone.expect("CALL_ESTABLISHED")
    for digit in "4#":
        await phone.ask("sndcode", digit)
        await asyncio.sleep(0.4)
    record.call.send_dtmf("70*")
    started = len(phone.events)
    for digit in "70*":
        event = await phone.expect("CALL_DTMF_START", 10.0, started)
        assert event["param"] == digit
        started = phone.events.index(event) + 1
    await asyncio.sleep(0.5)
    assert record.digits == "4#"
    assert record.call.media_params.dtmf_payload_type == 101  # baresip 1.0 always offers 101
    await record.call.hangup()
    await phone.expect("CALL_CLOSED")
    assert agent.counters()["library_incoming_calls"] == 0  # aiosipua kept calls we hung up: dropped
