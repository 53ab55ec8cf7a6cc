"""SIPp calls the user agent: it speaks a Piper sentence as G.711 RTP and sends RFC 4733 digits on
payload 96; what the agent received must transcribe to the sentence and hold the digits."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.server.transports.sip.app import RecordingApp, recall
from tests.server.transports.sip.conftest import Sentence, Whisper, scenario

pytestmark = pytest.mark.sip


@pytest.mark.parametrize(
    ("codec", "pt", "transport"), [("PCMA", 8, "u1"), ("PCMU", 0, "u1"), ("PCMA", 8, "t1")]
)
async def test_sipp_caller_is_heard_and_its_digits_arrive(
    user_agent,
    sipp,
    tmp_path: Path,
    caller_sentence: Sentence,
    whisper: Whisper,
    codec: str,
    pt: int,
    transport: str,
) -> None:
    app = RecordingApp()
    agent = await user_agent(app)
    audio = caller_sentence.alaw if codec == "PCMA" else caller_sentence.ulaw
    scen = scenario(
        "caller_speech",
        tmp_path,
        codec=codec,
        pt=pt,
        audio=audio,
        audio_ms=int(caller_sentence.seconds * 1000) + 300,
        digits="12#",
    )
    run = sipp.start(scen, f"127.0.0.1:{agent.port}", transport=transport)
    record = await app.call(0)
    await record.ended.wait()
    assert await run.finished(30) == 0, run.logs()

    call = record.call
    assert call.codec == codec
    assert call.media_params.dtmf_payload_type == 96  # the offer's number, not aiosipua's fixed 101
    assert call.identity.number == "+15551230001" and call.identity.display_name == "Test Caller"
    assert call.timings.setup_s is not None and call.timings.setup_s < 1.0
    assert record.digits == "12#"
    heard = await whisper.transcribe(record.audio)
    assert recall(caller_sentence.text, heard) >= 0.7, heard
    assert record.end is not None and record.end.by_remote
    assert agent.calls == {}
    counters = agent.counters()
    assert counters["library_incoming_calls"] == 0 and counters["library_outgoing_calls"] == 0
