"""Proactive prompt delivery benchmark: publish -> first audio heard by a caller, and consumer throughput.

    .venv/bin/python bench/proactive.py [--endpoint 127.0.0.1:8081] [--prompts 20] [--burst 400]

It starts and stops everything it needs: a RocketMQ (scripts/rocketmq.sh on free loopback ports, unless
``--endpoint``), then
- RocketMQ: one ``voice-agent serve`` node (bus ``rocketmq``) in a child process; this process places an
  aiortc call to it as one user and publishes ``--prompts`` prompts for that user to the broker, one at
  a time. Latency: from just before ``publish`` to the first voiced 20 ms frame the caller decodes, i.e.
  broker + consumer + ledger claim + waiting for a pause + TTS of the first sentence + Opus over WebRTC +
  the caller's jitter buffer.
- embedded: the same with a node in this process (``server.node.VoiceNode``), since an in-process bus can
  only be published to from inside its process; the caller shares the event loop with the node.
- throughput: a backlog of ``--burst`` prompts on RocketMQ for 200 users of whom 5 are in a call (a
  recording fake that "speaks" at once) and the rest offline (held in the SQLite ledger), drained by one
  node's consumer (parse, ledger claim or hold, ack).
Also reported: publish -> consumer handler (no TTS/audio) for both buses. The last line is JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from messaging.bus import MessageBus
from messaging.config import BusConfig, RocketMQConfig
from messaging.registry import create_bus
from messaging.schemas import ProactivePrompt
from server.proactive import ProactivePromptConsumer
from server.storage.delivery_ledger import open_delivery_ledger

PHRASES = [
    "Your order has shipped.",
    "Your table is ready.",
    "The meeting starts soon.",
    "Your call is next.",
]
WARMUP = 2  # first prompts warm up routes, TTS and the audio path; not counted


class RecordingCall:
    def __init__(self) -> None:
        self.spoken_at: dict[str, float] = {}

    async def speak_proactive(self, text: str, message_id: str) -> bool:
        self.spoken_at[message_id] = time.perf_counter()
        return True


class SomeUsersOnline:
    """A SessionDirectory where only ``online`` users are in a call (all sharing one recording call)."""

    def __init__(self, call: RecordingCall, online: set[str] | None = None) -> None:
        self.call = call
        self.online = online

    def find_by_user(self, user_id: str, tenant: str = "default") -> RecordingCall | None:
        return self.call if self.online is None or user_id in self.online else None


def _config(backend: str, endpoint: str) -> BusConfig:
    return BusConfig(backend=backend, rocketmq=RocketMQConfig(endpoints=endpoint, receive_wait_s=2))  # type: ignore[arg-type]


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _prompt(user_id: str, i: int) -> ProactivePrompt:
    return ProactivePrompt(
        idempotency_key=f"bench-{time.time_ns()}-{i}",
        user_id=user_id,
        text=PHRASES[i % len(PHRASES)],
        priority=3,
        expires_at=time.time() + 300,
    )


# --- publish -> first audio at an aiortc caller --------------------------------------------------------


async def audio_latency(base_url: str, publish: Any, n: int) -> list[float]:
    """Call ``base_url`` as one user, then publish prompts one at a time; seconds to first voiced frame."""
    from tests.server.caller import RTCCaller

    user = f"bench-user-{os.getpid()}"
    caller = RTCCaller(base_url, user_id=user)
    out: list[float] = []
    try:
        await caller.connect()
        await caller.reply_start(after=0.0, timeout=60)  # the greeting
        await caller.wait_quiet(1.0, timeout=60)
        for i in range(n + WARMUP):
            t0 = time.monotonic()
            await publish(_prompt(user, i))
            first = await caller.reply_start(after=t0, timeout=60)
            if i >= WARMUP:
                out.append(first - t0)
                print(f"  prompt {i - WARMUP + 1}/{n}: {first - t0:.3f} s", file=sys.stderr, flush=True)
            await caller.wait_quiet(0.8, timeout=60)
    finally:
        await caller.hangup()
    return out


async def rocketmq_audio_latency(endpoint: str, n: int, workdir: Path) -> list[float]:
    from tests.server.caller import ServerProcess

    env = {
        "VOICE_AGENT__BUS__BACKEND": "rocketmq",
        "VOICE_AGENT__BUS__ROCKETMQ__ENDPOINTS": endpoint,
        "VOICE_AGENT__BUS__ROCKETMQ__RECEIVE_WAIT_S": "2",
        "VOICE_AGENT__STORAGE__DELIVERY_LEDGER": str(workdir / "node-ledger.sqlite3"),
        "VOICE_AGENT__SERVER__NODE_ID": f"bench-{os.getpid()}",  # a new consumer group
        "VOICE_AGENT__SCHEDULER__JOBSTORE_URL": f"sqlite:///{workdir / 'jobs.sqlite3'}",
    }
    node = ServerProcess(workdir / "node", env).start()  # ready = its consumer group receives
    producer = create_bus(_config("rocketmq", endpoint))
    await producer.start()

    async def publish(prompt: ProactivePrompt) -> None:
        await producer.publish("voice_proactive", prompt.to_bytes(), key=prompt.user_id)

    try:
        return await audio_latency(node.base_url, publish, n)
    finally:
        await producer.close()
        node.stop()
        print(f"rocketmq node log: {node.log_path}", file=sys.stderr)


async def embedded_audio_latency(n: int, workdir: Path) -> list[float]:
    from server.node import VoiceNode
    from server.settings import load_settings
    from tests.server.caller import TEST_CALL_SECRET, free_port

    settings = load_settings(None, environ={})
    settings.server.port, settings.server.rag, settings.server.node_id = free_port(), False, "bench-embedded"
    settings.storage.records = str(workdir / "embedded-calls.sqlite3")
    settings.agent.memory_path = str(workdir / "embedded-memory.sqlite3")
    settings.storage.delivery_ledger = str(workdir / "embedded-ledger.sqlite3")
    settings.scheduler.jobstore_url = f"sqlite:///{workdir / 'embedded-jobs.sqlite3'}"
    settings.server.call_tokens.secret = TEST_CALL_SECRET  # the bench's caller is a user: it has a token
    node = VoiceNode(settings)
    await node.start()

    async def publish(prompt: ProactivePrompt) -> None:
        await node.bus.publish(settings.bus.topic_proactive, prompt.to_bytes(), key=prompt.user_id)

    try:
        return await audio_latency(node.base_url, publish, n)
    finally:
        await node.stop()


# --- consumer only ------------------------------------------------------------------------------------


async def handler_latency(backend: str, endpoint: str, topic: str, n: int, workdir: Path) -> list[float]:
    """Publish -> ``speak_proactive`` called (bus + parse + ledger claim; no TTS, no audio)."""
    bus: MessageBus = create_bus(_config(backend, endpoint))
    call = RecordingCall()
    ledger = open_delivery_ledger(workdir / f"latency-{backend}.sqlite3")
    consumer = ProactivePromptConsumer(
        bus, SomeUsersOnline(call), ledger, "bench", topic, group_prefix=f"bench-lat-{time.time_ns()}"
    )
    sub = consumer.subscribe()
    await bus.start()
    await asyncio.wait_for(sub, 60)
    out = []
    try:
        for i in range(n + WARMUP):
            p = _prompt("u", i)
            t0 = time.perf_counter()
            await bus.publish(topic, p.to_bytes(), key=p.idempotency_key)
            while p.message_id not in call.spoken_at:
                await asyncio.sleep(0.001)
            if i >= WARMUP:
                out.append(call.spoken_at[p.message_id] - t0)
    finally:
        await bus.close()
        ledger.close()
    return out


async def throughput(endpoint: str, topic: str, n: int, workdir: Path) -> float:
    """Messages per second one node's consumer drains from a backlog, most users offline."""
    group_prefix = f"bench-tput-{time.time_ns()}"
    users = [f"tp-user-{i}" for i in range(200)]
    call = RecordingCall()
    directory = SomeUsersOnline(call, set(users[:5]))
    ledger = open_delivery_ledger(workdir / "throughput.sqlite3")

    # Create the group (fixes its start offset), stop it, build a backlog, then time the drain.
    first = create_bus(_config("rocketmq", endpoint))
    sub = ProactivePromptConsumer(first, directory, ledger, "bench", topic, group_prefix).subscribe()
    await first.start()
    await asyncio.wait_for(sub, 60)
    await first.close()
    producer = create_bus(_config("rocketmq", endpoint))
    await producer.start()
    prompts = [_prompt(users[i % len(users)], i) for i in range(n)]
    await asyncio.gather(*(producer.publish(topic, p.to_bytes(), key=p.user_id) for p in prompts))
    await producer.close()

    handled: set[str] = set()
    bus = create_bus(_config("rocketmq", endpoint))
    consumer = ProactivePromptConsumer(bus, directory, ledger, "bench", topic, group_prefix)

    async def counting(message: Any) -> None:
        await consumer.handle(message)
        handled.add(ProactivePrompt.parse(message.body).message_id)

    bus.subscribe(topic, consumer.group, counting)
    t0 = time.perf_counter()
    await bus.start()
    wanted = {p.message_id for p in prompts}
    while not wanted <= handled:
        await asyncio.sleep(0.005)
    elapsed = time.perf_counter() - t0
    await bus.close()
    ledger.close()
    return n / elapsed


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--endpoint", help="RocketMQ gRPC proxy; default: start one with scripts/rocketmq.sh")
    parser.add_argument("--topic", default="voice_proactive")
    parser.add_argument("--prompts", type=int, default=20)
    parser.add_argument("--burst", type=int, default=400)
    args = parser.parse_args()

    broker = None
    workdir = Path(tempfile.mkdtemp(prefix="bench-proactive-"))
    start_s = None
    if args.endpoint is None:
        from tests.fixtures.rocketmq import RocketMQBroker

        broker = RocketMQBroker(workdir / "rocketmq")
        broker.start()
        start_s = broker.start_seconds
        endpoint = broker.endpoint
        print(f"rocketmq started in {start_s:.1f}s at {endpoint}", file=sys.stderr)
    else:
        endpoint = args.endpoint
    try:
        print("rocketmq: publish -> first audio at the caller", file=sys.stderr)
        rmq_audio = await rocketmq_audio_latency(endpoint, args.prompts, workdir)
        print("embedded: publish -> first audio at the caller", file=sys.stderr)
        emb_audio = await embedded_audio_latency(args.prompts, workdir)
        rmq = await handler_latency("rocketmq", endpoint, args.topic, args.prompts, workdir)
        emb = await handler_latency("embedded", endpoint, args.topic, args.prompts, workdir)
        tput = await throughput(endpoint, args.topic, args.burst, workdir)
    finally:
        if broker is not None:
            broker.stop()
    result = {
        "measured_to": "first voiced frame decoded by an aiortc caller",
        "prompts": len(rmq_audio),
        "rocketmq_publish_to_audio_s_p50": round(statistics.median(rmq_audio), 3),
        "rocketmq_publish_to_audio_s_p95": round(_pct(rmq_audio, 0.95), 3),
        "embedded_publish_to_audio_s_p50": round(statistics.median(emb_audio), 3),
        "embedded_publish_to_audio_s_p95": round(_pct(emb_audio, 0.95), 3),
        "rocketmq_publish_to_handler_s_p50": round(statistics.median(rmq), 4),
        "embedded_publish_to_handler_s_p50": round(statistics.median(emb), 5),
        "consumer_msgs_per_s": round(tput, 1),
        "consumer_users_online": "5 of 200",
        "rocketmq_start_s": round(start_s, 1) if start_s is not None else None,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    asyncio.run(main())
