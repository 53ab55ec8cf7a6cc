"""Behind a PBX/registrar: the node registers its address at Kamailio with digest auth; a phone registered
there calls the agent through Kamailio and is recognised from the directory; a proactive prompt for
another registered phone user makes the node dial that user's number through Kamailio (407, digest,
record-routed ACK/BYE), and the phone hears the prompt."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from server.transports.sip import SipTrunkConfig
from tests.server.caller import word_recall
from tests.server.phone.conftest import NodeFactory, wait_until
from tests.server.phone.test_inbound_calls import _no_live_calls, microphone
from tests.server.phone.test_outreach import prompt_for, publish, silent_microphone, status_is, statuses
from tests.server.transports.sip.conftest import Sentence, Whisper

pytestmark = [pytest.mark.sip, pytest.mark.slow]

USERS = {"agent": "agent-secret", "1001": "alice-secret", "1002": "bob-secret"}
PROMPT = "Your dentist appointment tomorrow is at ten in the morning."


async def registered(baresip, proxy, user: str, mic: Path):  # type: ignore[no-untyped-def]
    account = f"<sip:{{user}}@{proxy.domain}>;auth_pass={USERS[user]};answermode=auto;regint=60"
    phone = baresip.start(user, mic, account)
    await phone.expect_output("200 OK (kamailio")
    return phone


async def test_calls_both_ways_through_kamailio_with_digest(
    phone_node: NodeFactory, baresip, kamailio, tmp_path: Path, question: Sentence, whisper: Whisper
) -> None:
    proxy = kamailio.start(USERS)
    trunk = SipTrunkConfig(uri=proxy.uri(), username="agent", password=USERS["agent"], register_interval_s=60)
    directory = [
        {"number": "1001", "user_id": "alice", "timezone": "Europe/Paris"},
        {"number": "1002", "user_id": "bob", "timezone": "Europe/Paris"},
    ]
    node = await phone_node(directory=directory, rag=True, sip__trunk=trunk)
    ua = node.phone.user_agent
    assert ua is not None and ua.registration is not None
    await ua.registration.wait_registered(10)

    alice = await registered(baresip, proxy, "1001", microphone(question, tmp_path, 3.5, 16.0))
    await alice.ask("dial", proxy.uri("agent"))
    await alice.expect("CALL_ESTABLISHED")
    await alice.expect("CALL_CLOSED", timeout=40)
    await wait_until(lambda: _no_live_calls(node), 10, "the call record to be saved")
    (summary,) = await node.deps.records.recent(1)
    call = (await node.deps.records.get(summary["call_id"])).to_dict()
    assert call["user_id"] == "alice"
    (turn,) = [t for t in call["turns"] if t["user_text"]]
    heard = await whisper.transcribe(alice.recording())
    assert word_recall(turn["agent_text"], heard) >= 0.6, (heard, turn["agent_text"])

    bob = await registered(baresip, proxy, "1002", silent_microphone(tmp_path, 40))
    prompt = prompt_for("bob", text=PROMPT)
    started = time.monotonic()
    await publish(node, prompt)
    await bob.expect("CALL_ESTABLISHED", timeout=20)
    await wait_until(lambda: status_is(node, prompt, "delivered"), 40, "the prompt to be said to bob")
    print(f"\nkamailio: publish -> bob's phone answered and heard the prompt in {time.monotonic() - started:.1f} s")
    await node.registry.close_all("test_done")  # the agent hangs up: BYE along the record-route
    await bob.expect("CALL_CLOSED", timeout=15)
    heard = await whisper.transcribe(bob.recording())
    assert word_recall(PROMPT, heard) >= 0.6, heard
    assert [s for s in await statuses(node, prompt) if s != "duplicate"][:4] == [
        "dial_claimed",
        "dialing",
        "answered",
        "delivered",
    ]
