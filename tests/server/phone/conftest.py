"""Fixtures of the phone tests: a real node (``server.node.VoiceNode``: Whisper, the grounded agent, Piper)
with SIP enabled on a free loopback port, a phone directory, and SIPp scenarios for callers and callees.

``phone_node(directory=[...], **settings)`` starts a node in this process (the models are loaded once per
process and shared); each test gets fresh databases. Speech is synthesized with Piper at test time.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from server.node import VoiceNode
from server.settings import Settings, load_settings
from tests.fixtures._sip_peers import free_port
from tests.server.caller import free_port as free_tcp_port
from tests.server.transports.sip.conftest import (  # noqa: F401  (fixtures shared with the SIP layer's tests)
    Sentence,
    Whisper,
    _sentence,
    sip_audio_dir,
    whisper,
)

SCENARIOS = Path(__file__).parent / "scenarios"
FAQ = Path(__file__).resolve().parents[3] / "bench" / "data" / "answers" / "shop" / "faq.md"
QUESTION = "How much does a battery replacement cost?"
ADMIN_TOKEN = "phone-admin"

pytestmark = [pytest.mark.sip, pytest.mark.slow]


def node_settings(workdir: Path, directory: list[dict[str, Any]] | None, rag: bool, **overrides: Any) -> Settings:
    settings = load_settings(None, environ={})
    s = settings.server
    s.host, s.port, s.node_id, s.admin_token = "127.0.0.1", free_tcp_port(), "phone-node", ADMIN_TOKEN
    s.rag = rag
    settings.storage.records = str(workdir / "calls.sqlite3")
    settings.storage.delivery_ledger = str(workdir / "ledger.sqlite3")
    settings.storage.phone_directory = str(workdir / "directory.sqlite3")
    settings.agent.memory_path = str(workdir / "memory.sqlite3")
    settings.agent.first_token_timeout_s = 20.0  # the machine is shared: the holding phrase is not under test
    settings.scheduler.jobstore_url = f"sqlite:///{workdir / 'jobs.sqlite3'}"
    settings.scheduler.per_user_min_interval_s = 0
    if rag:
        inbox = workdir / "inbox"
        inbox.mkdir(exist_ok=True)
        (inbox / "faq.md").write_bytes(FAQ.read_bytes())
        settings.knowledge.embedded_path = str(workdir / "kb.sqlite3")
        settings.knowledge.watch_dir = str(inbox)
    settings.sip.enabled = True
    settings.sip.udp_port = _other_port(s.port)
    settings.sip.no_speech_hangup_s = 12.0
    if directory is not None:
        path = workdir / "directory.yaml"
        path.write_text(yaml.safe_dump(directory))
        settings.phone.directory_file = str(path)
    outreach = settings.phone.outreach
    outreach.quiet_hours = None
    outreach.min_gap_s = 1.0
    outreach.sweep_interval_s = 0.3
    for dotted, value in overrides.items():  # "phone__outreach__max_attempts": 2
        *parents, leaf = dotted.split("__")
        target: Any = settings
        for name in parents:
            target = getattr(target, name)
        setattr(target, leaf, value)
    return settings


def _other_port(taken: int) -> int:
    """A free UDP+TCP port that is not ``taken`` (chosen but not yet bound by the HTTP server)."""
    while (port := free_port()) == taken:
        pass
    return port


NodeFactory = Callable[..., Awaitable[VoiceNode]]


@pytest.fixture
async def phone_node(tmp_path: Path) -> AsyncIterator[NodeFactory]:
    started: list[VoiceNode] = []

    async def start(directory: list[dict[str, Any]] | None = None, rag: bool = False, **overrides: Any) -> VoiceNode:
        workdir = tmp_path / f"node{len(started)}"
        workdir.mkdir()
        node = VoiceNode(node_settings(workdir, directory, rag, **overrides))
        await node.start()
        started.append(node)
        if rag:
            await node.knowledge.ingestor.wait_idle()
        return node

    yield start
    for node in started:
        await node.stop()


@pytest.fixture(scope="session")
def question(sip_audio_dir: Path) -> Sentence:  # noqa: F811
    return _sentence(sip_audio_dir, "question", QUESTION)


def sip_target(node: VoiceNode) -> str:
    assert node.phone.user_agent is not None
    host, port = node.phone.user_agent.address
    return f"{host}:{port}"


# -- SIPp scenario pieces --------------------------------------------------------------------------------
def speak(audio: Path, pt: int, seconds: float) -> str:
    return f'  <nop><action><exec rtp_stream="{audio},1,{pt}"/></action></nop>\n' + pause(seconds)


def pause(seconds: float) -> str:
    return f'  <pause milliseconds="{int(seconds * 1000)}"/>\n'


def keys(digits: str) -> str:
    return f'  <nop><action><exec play_dtmf="{digits}"/></action></nop>\n' + pause(0.45 * len(digits) + 0.5)


def reinvite(cseq: int, number: str, direction: str) -> str:
    """A re-INVITE: ``sendonly`` puts the agent on hold, ``sendrecv`` resumes."""
    return f"""  <send retrans="500"><![CDATA[

      INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: "Phone Caller" <sip:{number}@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      [last_To:]
      Call-ID: [call_id]
      CSeq: {cseq} INVITE
      Contact: <sip:sipp@[local_ip]:[local_port]>
      Max-Forwards: 70
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=sipp 53655765 {cseq} IN IP4 [local_ip]
      s=-
      c=IN IP4 [media_ip]
      t=0 0
      m=audio [media_port] RTP/AVP 8 96
      a=rtpmap:8 PCMA/8000
      a=rtpmap:96 telephone-event/8000
      a={direction}

  ]]></send>
  <recv response="100" optional="true"/>
  <recv response="200"/>
  <send><![CDATA[

      ACK sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: "Phone Caller" <sip:{number}@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      [last_To:]
      Call-ID: [call_id]
      CSeq: {cseq} ACK
      Max-Forwards: 70
      Content-Length: 0

  ]]></send>
"""


def scenario(name: str, directory: Path, **values: object) -> Path:
    text = (SCENARIOS / f"{name}.xml").read_text()
    for key, value in values.items():
        text = text.replace("{{" + key + "}}", str(value))
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}-{time.monotonic_ns()}.xml"
    path.write_text(text)
    return path


async def wait_until(predicate: Callable[[], Awaitable[Any]], timeout: float, what: str, every: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = await predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}; last: {value!r}")
        await asyncio.sleep(every)


WAIT_FOR_BYE = """  <recv request="BYE"/>
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

HANG_UP = """  <send retrans="500"><![CDATA[

      BYE [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:callee@[local_ip]:[local_port]>;tag=[pid]SIPpTag01[call_number]
      To:[$caller_from]
      [last_Call-ID:]
      CSeq: 1 BYE
      Contact: <sip:callee@[local_ip]:[local_port]>
      Max-Forwards: 70
      Content-Length: 0

  ]]></send>
  <recv response="200"/>
"""
