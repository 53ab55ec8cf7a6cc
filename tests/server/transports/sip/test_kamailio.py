"""Kamailio as registrar and proxy with digest auth: the user agent registers its address-of-record;
baresip dials it through Kamailio; it dials a baresip user registered there. Calls are record-routed,
so ACK and BYE must follow the route set (aiosipua's UAC keeps none: fixed in ``messages.adopt_answer``).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from server.transports.sip import DialError, DialOutcome, HangupReason, SipTrunkConfig
from tests.server.transports.sip.app import RecordingApp, recall
from tests.server.transports.sip.conftest import Sentence, Whisper
from tests.server.transports.sip.test_baresip import phone_microphone

pytestmark = pytest.mark.sip

USERS = {"agent": "agent-secret", "alice": "alice-secret", "bob": "bob-secret"}


async def registered_phone(baresip, kamailio_server, user: str, microphone: Path):  # type: ignore[no-untyped-def]
    account = f"<sip:{{user}}@{kamailio_server.domain}>;auth_pass={USERS[user]};answermode=auto;regint=60"
    phone = baresip.start(user, microphone, account)
    await phone.expect_output("200 OK (kamailio")  # registered (before ctrl_tcp may even be connected)
    return phone


def trunk(kamailio_server, password: str = USERS["agent"]) -> SipTrunkConfig:  # type: ignore[no-untyped-def]
    return SipTrunkConfig(
        uri=kamailio_server.uri(), username="agent", password=password, register_interval_s=60
    )


async def test_agent_registers_and_baresip_reaches_it_through_kamailio(
    user_agent,
    baresip,
    kamailio,
    tmp_path: Path,
    caller_sentence: Sentence,
    agent_sentence: Sentence,
    whisper: Whisper,
) -> None:
    proxy = kamailio.start(USERS)
    app = RecordingApp(reply=agent_sentence.pcm8k)
    agent = await user_agent(app, trunk=trunk(proxy))
    assert agent.registration is not None
    await agent.registration.wait_registered(10)
    phone = await registered_phone(baresip, proxy, "alice", phone_microphone(caller_sentence, tmp_path, 30))

    await phone.ask("dial", proxy.uri("agent"))
    record = await app.call(0)
    await phone.expect("CALL_ESTABLISHED")
    await asyncio.sleep(max(caller_sentence.seconds, agent_sentence.seconds) + 0.5)
    await record.call.hangup()  # BYE goes back through Kamailio on the route set
    await phone.expect("CALL_CLOSED")
    await asyncio.wait_for(record.ended.wait(), 10)

    assert record.call.identity.user == "alice"
    heard_by_agent = await whisper.transcribe(record.audio)
    assert recall(caller_sentence.text, heard_by_agent) >= 0.7, heard_by_agent
    heard_by_phone = await whisper.transcribe(phone.recording())
    assert recall(agent_sentence.text, heard_by_phone) >= 0.7, heard_by_phone


async def test_agent_dials_a_user_registered_at_kamailio(
    user_agent,
    baresip,
    kamailio,
    tmp_path: Path,
    caller_sentence: Sentence,
    agent_sentence: Sentence,
    whisper: Whisper,
) -> None:
    proxy = kamailio.start(USERS)
    agent = await user_agent(trunk=trunk(proxy))
    phone = await registered_phone(baresip, proxy, "bob", phone_microphone(caller_sentence, tmp_path, 8))
    app = RecordingApp(reply=agent_sentence.pcm8k)

    call = await agent.dial("bob")  # through the trunk: 407, digest retry, 200, ACK on the route set
    serving = asyncio.create_task(app(call))
    await phone.expect("CALL_ESTABLISHED")
    ended = await asyncio.wait_for(call.wait_ended(), 30)  # the phone hangs up when its WAV ends
    await asyncio.wait_for(serving, 10)

    assert ended.reason is HangupReason.REMOTE  # its BYE came through Kamailio to us
    record = app.records[0]
    heard_by_agent = await whisper.transcribe(record.audio)
    assert recall(caller_sentence.text, heard_by_agent) >= 0.7, heard_by_agent
    heard_by_phone = await whisper.transcribe(phone.recording())
    assert recall(agent_sentence.text, heard_by_phone) >= 0.7, heard_by_phone


async def test_dialling_through_kamailio_reports_unregistered_and_bad_credentials(
    user_agent, kamailio
) -> None:
    proxy = kamailio.start(USERS)
    agent = await user_agent(trunk=trunk(proxy).model_copy(update={"registration": False}))
    with pytest.raises(DialError) as nobody:
        await agent.dial("carol")  # authenticates, but nobody is registered as carol: 404
    assert nobody.value.outcome is DialOutcome.UNREACHABLE and nobody.value.status == 404

    wrong = await user_agent(trunk=trunk(proxy, password="wrong").model_copy(update={"registration": False}))
    with pytest.raises(DialError) as refused:
        await wrong.dial("bob")
    assert refused.value.outcome is DialOutcome.REJECTED and refused.value.status == 407


async def test_registration_and_calls_over_tcp(
    user_agent,
    baresip,
    kamailio,
    tmp_path: Path,
    caller_sentence: Sentence,
    agent_sentence: Sentence,
    whisper: Whisper,
) -> None:
    proxy = kamailio.start(USERS)
    tcp_trunk = SipTrunkConfig(
        uri=f"sip:127.0.0.1:{proxy.port};transport=tcp",
        username="agent",
        password=USERS["agent"],
        register_interval_s=60,
    )
    app = RecordingApp(reply=agent_sentence.pcm8k)
    agent = await user_agent(app, trunk=tcp_trunk)
    assert agent.registration is not None
    await agent.registration.wait_registered(10)  # REGISTER over TCP, Contact ;transport=tcp
    phone = await registered_phone(baresip, proxy, "bob", phone_microphone(caller_sentence, tmp_path, 8))

    call = await agent.dial("bob")  # INVITE over TCP to Kamailio, which relays it over UDP to the phone
    serving = asyncio.create_task(app(call))
    await phone.expect("CALL_ESTABLISHED")
    ended = await asyncio.wait_for(call.wait_ended(), 30)  # the phone's BYE reaches us over TCP
    await asyncio.wait_for(serving, 10)
    assert ended.reason is HangupReason.REMOTE
    heard_by_agent = await whisper.transcribe(app.records[0].audio)
    assert recall(caller_sentence.text, heard_by_agent) >= 0.7, heard_by_agent

    alice = await registered_phone(baresip, proxy, "alice", phone_microphone(caller_sentence, tmp_path, 30))
    await alice.ask("dial", proxy.uri("agent"))  # relayed to our TCP contact
    inbound = await app.call(1)
    await alice.expect("CALL_ESTABLISHED")
    await inbound.call.hangup()
    await alice.expect("CALL_CLOSED")
