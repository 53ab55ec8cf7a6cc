"""Proactive prompt delivery benchmark: publish -> speak latency and consumer throughput.

    .venv/bin/python bench/proactive.py [--endpoint 127.0.0.1:8081] [--prompts 20] [--burst 200]

Without ``--endpoint`` a RocketMQ is started on free loopback ports with scripts/rocketmq.sh (and
stopped at the end). Latency is measured from just before ``publish`` to the ``speak_proactive`` call of
the live call (a recording fake), i.e. bus + parse + ledger claim, *not* yet TTS and audio out: the RTC
benchmark adds the audio path. Throughput: a backlog of ``--burst`` prompts drained by one node's
consumer (full path: parse, ledger claim in SQLite, speak, ledger update, ack). The last line is JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from server.bus.base import MessageBus
from server.bus.registry import create_bus
from server.bus.schemas import ProactivePrompt
from server.config import BusConfig, RocketMQConfig
from server.proactive import DeliveryLedger, ProactivePromptConsumer


class RecordingCall:
    def __init__(self) -> None:
        self.spoken_at: dict[str, float] = {}

    async def speak_proactive(self, text: str, message_id: str) -> bool:
        self.spoken_at[message_id] = time.perf_counter()
        return True


class EveryoneHere:
    def __init__(self, call: RecordingCall) -> None:
        self.call = call

    def find_by_user(self, user_id: str) -> RecordingCall:
        return self.call


def _config(backend: str, endpoint: str) -> BusConfig:
    return BusConfig(backend=backend, rocketmq=RocketMQConfig(endpoints=endpoint, receive_wait_s=2))  # type: ignore[arg-type]


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def latency(backend: str, endpoint: str, topic: str, n: int, workdir: Path) -> list[float]:
    bus: MessageBus = create_bus(_config(backend, endpoint))
    call = RecordingCall()
    ledger = DeliveryLedger(workdir / f"latency-{backend}.sqlite3")
    consumer = ProactivePromptConsumer(
        bus, EveryoneHere(call), ledger, node_id="bench", topic=topic, group_prefix=f"bench-lat-{time.time_ns()}"
    )
    sub = consumer.subscribe()
    await bus.start()
    await asyncio.wait_for(sub, 60)
    out = []
    try:
        for i in range(n + 2):  # the first two warm up connections and routes
            p = ProactivePrompt(idempotency_key=f"lat-{time.time_ns()}", user_id="u", text=f"prompt {i}")
            t0 = time.perf_counter()
            await bus.publish(topic, p.to_bytes(), key=p.idempotency_key)
            while p.message_id not in call.spoken_at:
                await asyncio.sleep(0.001)
            if i >= 2:
                out.append(call.spoken_at[p.message_id] - t0)
    finally:
        await bus.close()
        ledger.close()
    return out


async def throughput(endpoint: str, topic: str, n: int, workdir: Path) -> float:
    group_prefix = f"bench-tput-{time.time_ns()}"
    call = RecordingCall()
    ledger = DeliveryLedger(workdir / "throughput.sqlite3")

    # Create the group (fixes its start offset), stop it, build a backlog, then time the drain.
    first = create_bus(_config("rocketmq", endpoint))
    sub = ProactivePromptConsumer(first, EveryoneHere(call), ledger, "bench", topic, group_prefix).subscribe()
    await first.start()
    await asyncio.wait_for(sub, 60)
    await first.close()
    producer = create_bus(_config("rocketmq", endpoint))
    await producer.start()
    prompts = [ProactivePrompt(idempotency_key=f"tp-{i}-{time.time_ns()}", user_id="u", text="x") for i in range(n)]
    await asyncio.gather(*(producer.publish(topic, p.to_bytes()) for p in prompts))
    await producer.close()

    bus = create_bus(_config("rocketmq", endpoint))
    ProactivePromptConsumer(bus, EveryoneHere(call), ledger, "bench", topic, group_prefix).subscribe()
    t0 = time.perf_counter()
    await bus.start()
    while len(call.spoken_at) < n:
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
    parser.add_argument("--burst", type=int, default=200)
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
        rmq = await latency("rocketmq", endpoint, args.topic, args.prompts, workdir)
        emb = await latency("embedded", endpoint, args.topic, args.prompts, workdir)
        tput = await throughput(endpoint, args.topic, args.burst, workdir)
    finally:
        if broker is not None:
            broker.stop()
    result = {
        "measured_to": "speak_proactive call (no TTS/audio yet)",
        "prompts": args.prompts,
        "rocketmq_publish_to_audio_s_p50": round(statistics.median(rmq), 4),
        "rocketmq_publish_to_audio_s_p95": round(_pct(rmq, 0.95), 4),
        "embedded_publish_to_audio_s_p50": round(statistics.median(emb), 5),
        "embedded_publish_to_audio_s_p95": round(_pct(emb, 0.95), 5),
        "consumer_msgs_per_s": round(tput, 1),
        "rocketmq_start_s": round(start_s, 1) if start_s is not None else None,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    asyncio.run(main())
