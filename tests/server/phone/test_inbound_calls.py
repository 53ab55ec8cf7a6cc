"""Phone calls into a node are calls like any other: real SIPp and baresip callers, the real pipeline
(Whisper tiny.en, the grounded agent over the shop FAQ, Piper), and checks on content: what the caller
heard is transcribed, the call record holds the turns, the keys and the user from the phone directory."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.server.caller import word_recall
from tests.server.phone.conftest import (
    QUESTION,
    NodeFactory,
    keys,
    pause,
    reinvite,
    scenario,
    sip_target,
    speak,
    wait_until,
)
from tests.server.phone.media_tap import SipMediaTap
from tests.server.transports.sip.conftest import SCENARIOS as SIP_SCENARIOS
from tests.server.transports.sip.conftest import Sentence, Whisper
from tests.server.transports.sip.conftest import scenario as _filled_sip
from tests.speech.conftest import write_wav

pytestmark = [pytest.mark.sip, pytest.mark.slow]

def _filled(path: Path, directory: Path, **values: object) -> Path:
    return _filled_sip(path.stem, directory, **values)


async def admin(node, method: str, path: str, body: object = None) -> dict:  # type: ignore[no-untyped-def]
    import aiohttp

    headers = {"Authorization": f"Bearer {node.settings.server.admin_token}"}
    async with aiohttp.ClientSession(headers=headers) as http, http.request(method, node.base_url + path, json=body) as resp:
        data = await resp.json()
        assert resp.status < 300, (resp.status, data)
        return data  # type: ignore[no-any-return]


async def _no_live_calls(node) -> bool:  # type: ignore[no-untyped-def]
    return not node.registry.live()


ALICE = {"number": "+15551230001", "user_id": "alice", "tenant": "default", "timezone": "Europe/Berlin"}


async def test_sipp_caller_asks_presses_keys_and_hears_the_answer(
    phone_node: NodeFactory, sipp, tmp_path: Path, question: Sentence, whisper: Whisper
) -> None:
    node = await phone_node(directory=[ALICE], rag=True)
    tap = await SipMediaTap.start(node.phone.user_agent.address)
    middle = pause(3.5) + speak(question.alaw, 8, question.seconds) + keys("1#") + pause(7.0)
    caller = scenario("caller", tmp_path, number=ALICE["number"], codec="PCMA", pt=8, middle=middle, bye_cseq=2)
    try:
        run = sipp.start(caller, f"127.0.0.1:{tap.sip_port}")
        assert await run.finished(60) == 0, run.logs()
    finally:
        tap.close()

    records = await node.deps.records.recent(5)
    assert len(records) == 1
    record = (await node.deps.records.get(records[0]["call_id"])).to_dict()
    assert record["user_id"] == "alice" and record["end_reason"] == "hangup"
    (turn,) = [t for t in record["turns"] if t["user_text"]]
    assert word_recall(QUESTION, turn["user_text"]) >= 0.7, turn["user_text"]
    assert "69" in turn["agent_text"], turn["agent_text"]  # the FAQ's price, not an invented one
    assert [e["text"] for e in record["transcript"] if e["source"] == "dtmf"] == ["1", "#"]
    # The tap hears the node once its RTP latched onto the tap (the caller's first packets): the reply.
    heard = await whisper.transcribe(tap.audio())
    assert word_recall(turn["agent_text"], heard) >= 0.7, (heard, turn["agent_text"])
    assert "69" in heard or "sixty" in heard.lower(), heard
    assert node.registry.live() == [] and node.phone.user_agent.calls == {}


BOB = {"number": "15551230002", "user_id": "bob", "tenant": "default", "timezone": "America/New_York"}


def microphone(sentence: Sentence, directory: Path, lead_s: float, total_s: float, name: str = "mic") -> Path:
    """What a baresip phone says: ``lead_s`` of silence, the sentence, silence up to ``total_s`` (baresip
    hangs up when its file ends)."""
    lead = np.zeros(int(lead_s * 8000), np.int16)
    tail = np.zeros(max(0, int(total_s * 8000) - len(lead) - len(sentence.pcm8k)), np.int16)
    return write_wav(directory / f"{name}-{lead_s}-{total_s}.wav", np.concatenate([lead, sentence.pcm8k, tail]), 8000)


async def test_baresip_caller_is_a_live_call_of_its_directory_user_and_hears_the_reply(
    phone_node: NodeFactory, baresip, tmp_path: Path, question: Sentence, whisper: Whisper
) -> None:
    node = await phone_node(directory=[BOB], rag=True)
    phone = baresip.start(BOB["number"], microphone(question, tmp_path, 3.5, 17.0))
    await phone.ask("dial", f"sip:agent@{sip_target(node)}")
    await phone.expect("CALL_ESTABLISHED")

    async def live() -> list[dict]:
        calls = await admin(node, "GET", "/api/admin/calls")
        return [c for c in calls["calls"] if c["transport"] == "sip"]

    (call,) = await wait_until(live, 10, "the SIP call on the dashboard")
    assert call["user_id"] == "bob" and call["connection"] == "connected"
    assert await node.phone.presence_store.where("bob", 0) == [node.node_id]  # other nodes will not ring bob
    await phone.expect("CALL_CLOSED", timeout=40)  # the phone hangs up when its file ends
    await wait_until(lambda: _no_live_calls(node), 10, "the call to end")

    record = (await node.deps.records.get(call["call_id"])).to_dict()
    (turn,) = [t for t in record["turns"] if t["user_text"]]
    assert word_recall(QUESTION, turn["user_text"]) >= 0.7, turn["user_text"]
    heard = await whisper.transcribe(phone.recording())
    assert word_recall(turn["agent_text"], heard) >= 0.6, (heard, turn["agent_text"])
    assert await node.phone.presence_store.where("bob", 0) == []


async def test_the_agent_says_nothing_to_a_held_caller(
    phone_node: NodeFactory, sipp, tmp_path: Path, question: Sentence, whisper: Whisper
) -> None:
    """The caller asks, then holds at once: the reply waits (nothing voiced reaches the caller while
    held), and is played after the caller resumes."""
    node = await phone_node(directory=[ALICE], rag=True)
    tap = await SipMediaTap.start(node.phone.user_agent.address)
    number = ALICE["number"]
    middle = (
        pause(3.5)
        + speak(question.alaw, 8, question.seconds - 0.4)
        + reinvite(2, number, "sendonly")
        + pause(5.0)
        + reinvite(3, number, "sendrecv")
        + pause(8.0)
    )
    caller = scenario("caller", tmp_path, number=number, codec="PCMA", pt=8, middle=middle, bye_cseq=4)
    try:
        run = sipp.start(caller, f"127.0.0.1:{tap.sip_port}")
        assert await run.finished(60) == 0, run.logs()
    finally:
        tap.close()

    held_at = next(t for t, held in tap.holds if held)
    resumed_at = next(t for t, held in tap.holds if not held and t > held_at)
    voiced = tap.voiced_times()
    assert not [t for t in voiced if held_at + 0.1 < t < resumed_at], "the agent spoke to a held caller"
    after = [t for t in voiced if t > resumed_at]
    assert after, "the reply never came after the caller resumed"
    (summary,) = await node.deps.records.recent(1)
    record = (await node.deps.records.get(summary["call_id"])).to_dict()
    (turn,) = [t for t in record["turns"] if t["user_text"]]
    assert not turn["interrupted"], turn
    heard = await whisper.transcribe(tap.audio(since=resumed_at))
    assert word_recall(turn["agent_text"], heard) >= 0.6, (heard, turn["agent_text"])


async def test_a_silent_line_gets_a_polite_goodbye_and_a_hang_up(
    phone_node: NodeFactory, sipp, tmp_path: Path, whisper: Whisper
) -> None:
    node = await phone_node(directory=[ALICE], sip__no_speech_hangup_s=5.0)
    silence = tmp_path / "silence.ul"
    silence.write_bytes(bytes([0xFF]) * 8000 * 30)  # mu-law silence: packets flow, nobody speaks
    tap = await SipMediaTap.start(node.phone.user_agent.address)
    media = f'<nop><action><exec rtp_stream="{silence},1,0"/></action></nop>'
    caller = SIP_SCENARIOS / "caller_silent.xml"
    try:
        run = sipp.start(_filled(caller, tmp_path, media=media), f"127.0.0.1:{tap.sip_port}")
        assert await run.finished(40) == 0, run.logs()  # it received the node's BYE
    finally:
        tap.close()

    (summary,) = await node.deps.records.recent(1)
    record = (await node.deps.records.get(summary["call_id"])).to_dict()
    assert record["end_reason"] == "no_speech"
    goodbye = [e for e in record["transcript"] if e["source"] == "goodbye"]
    assert [e["text"] for e in goodbye] == [node.settings.phone.no_speech_goodbye] and not goodbye[0]["interrupted"]
    _greeting, goodbye_at = tap.utterances()  # the greeting, then (after the silence) the goodbye
    heard = await whisper.transcribe(tap.audio(since=goodbye_at))
    assert word_recall("I can't hear anyone on the line", heard) >= 0.6, heard


async def test_the_transfer_tool_hands_the_caller_to_a_colleague_with_refer(
    phone_node: NodeFactory, baresip, tmp_path: Path, sip_audio_dir: Path, whisper: Whisper
) -> None:
    from tests.server.transports.sip.conftest import _sentence

    ask = _sentence(sip_audio_dir, "ask-human", "Can I speak to a human, please?")
    desk = baresip.start("desk", microphone(ask, tmp_path, 30, 31, "desk"))
    node = await phone_node(
        directory=[BOB],
        agent__transfer_target="desk",
        phone__transfer_uri=f"sip:{{target}}@127.0.0.1:{desk.sip_port}",
    )
    caller = baresip.start(BOB["number"], microphone(ask, tmp_path, 3.5, 30))
    await caller.ask("dial", f"sip:agent@{sip_target(node)}")
    await caller.expect("CALL_ESTABLISHED")

    established = await desk.expect("CALL_ESTABLISHED", timeout=40)  # REFER: the caller now calls the desk
    assert established["peeruri"].startswith(f"sip:{BOB['number']}@"), established
    await wait_until(lambda: _no_live_calls(node), 15, "the agent to release the call")
    (summary,) = await node.deps.records.recent(1)
    record = (await node.deps.records.get(summary["call_id"])).to_dict()
    assert record["end_reason"] == "transferred", record["end_reason"]
    said = " ".join(e["text"] for e in record["transcript"] if e["role"] == "agent")
    assert "transferring you" in said, said
    heard = await whisper.transcribe(caller.recording(0))  # its call with the agent (the desk call is 1)
    assert word_recall("One moment, I'm transferring you to a colleague.", heard) >= 0.6, heard


class FailingDirectory:
    """A fake phone directory whose database is down (a fault the test cannot cause on SQLite otherwise)."""

    async def by_number(self, number: str) -> None:
        raise OSError("directory database unreachable")


async def test_unknown_callers_are_anonymous_and_bad_calls_leave_the_node_answering(
    phone_node: NodeFactory, sipp, tmp_path: Path, question: Sentence, whisper: Whisper
) -> None:
    import sqlite3

    node = await phone_node(directory=[ALICE], rag=True)
    target = sip_target(node)
    hang_up_at_once = scenario("caller", tmp_path, number="+19990000001", codec="PCMU", pt=0, middle="", bye_cseq=2)
    key_storm = scenario(
        "caller", tmp_path, number="+19990000002", codec="PCMU", pt=0, middle=pause(0.5) + keys("0123456789*#" * 2), bye_cseq=2
    )
    runs = [sipp.start(hang_up_at_once, target), sipp.start(key_storm, target)]
    for run in runs:
        assert await run.finished(60) == 0, run.logs()
    await wait_until(lambda: _no_live_calls(node), 10, "both calls to end")

    answerer = node.phone.answerer
    working, answerer.directory = answerer.directory, FailingDirectory()
    unlisted = scenario("caller", tmp_path, number=ALICE["number"], codec="PCMU", pt=0, middle=pause(1.0), bye_cseq=2)
    run = sipp.start(unlisted, target)
    assert await run.finished(30) == 0, run.logs()
    await wait_until(lambda: _no_live_calls(node), 10, "the call to end")
    answerer.directory = working

    records = [(await node.deps.records.get(r["call_id"])).to_dict() for r in await node.deps.records.recent(10)]
    assert len(records) == 3
    users = [r["user_id"] for r in records]
    assert all(u.startswith("anon-") for u in users) and len(set(users)) == 3, users  # nobody chose a user
    keys_pressed = max(records, key=lambda r: len(r["transcript"]))
    assert "".join(e["text"] for e in keys_pressed["transcript"] if e["source"] == "dtmf") == "0123456789*#" * 2

    # After all that, a listed caller is still answered, as alice, with the knowledge base's answer.
    tap = await SipMediaTap.start(node.phone.user_agent.address)
    middle = pause(3.5) + speak(question.alaw, 8, question.seconds) + pause(6.0)
    caller = scenario("caller", tmp_path, number=ALICE["number"], codec="PCMA", pt=8, middle=middle, bye_cseq=2)
    try:
        run = sipp.start(caller, f"127.0.0.1:{tap.sip_port}")
        assert await run.finished(60) == 0, run.logs()
    finally:
        tap.close()
    (summary, *_) = await node.deps.records.recent(1)
    record = (await node.deps.records.get(summary["call_id"])).to_dict()
    assert record["user_id"] == "alice"
    (turn,) = [t for t in record["turns"] if t["user_text"]]
    heard = await whisper.transcribe(tap.audio())
    assert word_recall(turn["agent_text"], heard) >= 0.7, (heard, turn["agent_text"])
    with sqlite3.connect(node.settings.agent.memory_path) as db:  # no memory kept for anonymous callers
        remembered = {row[0] for row in db.execute("SELECT user_id FROM user_summaries UNION SELECT user_id FROM user_facts")}
    assert not [u for u in remembered if u.startswith("anon-")], remembered
