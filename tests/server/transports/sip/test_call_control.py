"""In-call signalling and media watchdogs: hold/unhold by re-INVITE (no RTP sent while held), a caller
that sends no RTP at all (hung up after media_timeout_s), a caller that sends only silence (NoSpeech)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

from server.transports.sip import HangupReason, HoldChanged, NoSpeech
from tests.server.transports.sip.app import RecordingApp
from tests.server.transports.sip.conftest import scenario

pytestmark = pytest.mark.sip


async def test_hold_and_resume_by_re_invite(user_agent, sipp, tmp_path: Path) -> None:
    app = RecordingApp()
    agent = await user_agent(app)
    run = sipp.start(scenario("caller_hold", tmp_path), f"127.0.0.1:{agent.port}")
    record = await app.call(0)
    sent_at_events: list[int] = []
    while len(sent_at_events) < 2 and not record.ended.is_set():
        holds = [e for e in record.events if isinstance(e, HoldChanged)]
        if len(holds) > len(sent_at_events):
            sent_at_events.append(record.call.rtp_stats.packets_sent)
        await asyncio.sleep(0.005)
    await asyncio.wait_for(record.ended.wait(), 15)
    assert await run.finished(15) == 0, run.logs()  # the answers said recvonly, then sendrecv

    assert [e.on_hold for e in record.events if isinstance(e, HoldChanged)] == [True, False]
    assert sent_at_events[1] - sent_at_events[0] <= 2  # ~1.5 s on hold: nothing sent (vs ~75 packets)
    assert record.call.rtp_stats.packets_sent > sent_at_events[1] + 20  # and sending resumed
    assert record.call.end is not None and record.call.end.reason is HangupReason.REMOTE


async def test_a_caller_sending_no_rtp_is_hung_up(user_agent, sipp, tmp_path: Path) -> None:
    app = RecordingApp()
    agent = await user_agent(app, media_timeout_s=1.5)
    run = sipp.start(scenario("caller_silent", tmp_path, media=""), f"127.0.0.1:{agent.port}")
    record = await app.call(0)
    ended = await asyncio.wait_for(record.call.wait_ended(), 10)
    assert ended.reason is HangupReason.MEDIA_TIMEOUT
    assert await run.finished(15) == 0, run.logs()  # it got our BYE


async def test_silence_is_reported_as_no_speech(user_agent, sipp, tmp_path: Path) -> None:
    silence = tmp_path / "silence.ul"
    silence.write_bytes(bytes([0xFF]) * 8000 * 6)  # 6 s of mu-law silence
    app = RecordingApp()
    agent = await user_agent(app, no_speech_hangup_s=1.0, media_timeout_s=5.0)
    media = f'<nop><action><exec rtp_stream="{silence},1,0"/></action></nop>'
    run = sipp.start(scenario("caller_silent", tmp_path, media=media), f"127.0.0.1:{agent.port}")
    record = await app.call(0)
    while not any(isinstance(e, NoSpeech) for e in record.events):
        await asyncio.sleep(0.05)
        assert not record.ended.is_set()
    assert record.call.rtp_stats.packets_received > 40  # packets flowed: silence, not a dead line
    assert np.abs(record.audio).max() < 100
    await record.call.hangup()  # what the call core does after a polite goodbye
    assert await run.finished(15) == 0, run.logs()


async def test_no_speech_counts_from_the_end_of_the_agents_voice(user_agent, sipp, tmp_path: Path) -> None:
    """A caller listening to a long answer is not an open line: NoSpeech comes ``no_speech_hangup_s`` after
    the agent's last voiced frame, not after the caller's last voice (the call used to be ended while the
    caller was about to answer a long reply)."""
    silence = tmp_path / "silence.ul"
    silence.write_bytes(bytes([0xFF]) * 8000 * 8)  # 8 s of mu-law silence
    talk_s = 3.0
    tone = (3000 * np.sin(np.arange(int(talk_s * 8000)) * 2 * np.pi * 440 / 8000)).astype(np.int16)
    app = RecordingApp(reply=tone)  # the "agent" speaks for 3 s, then is silent
    agent = await user_agent(app, no_speech_hangup_s=1.0, media_timeout_s=10.0)
    media = f'<nop><action><exec rtp_stream="{silence},1,0"/></action></nop>'
    run = sipp.start(scenario("caller_silent", tmp_path, media=media), f"127.0.0.1:{agent.port}")
    record = await app.call(0)
    answered = asyncio.get_running_loop().time()
    while not any(isinstance(e, NoSpeech) for e in record.events):
        await asyncio.sleep(0.05)
        assert not record.ended.is_set()
    waited = asyncio.get_running_loop().time() - answered
    assert waited >= talk_s + 1.0 - 0.3, waited  # before the fix: ~1 s, while the agent was still talking
    assert waited < talk_s + 1.0 + 3.0, waited
    await record.call.hangup()
    assert await run.finished(15) == 0, run.logs()
