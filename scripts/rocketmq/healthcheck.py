"""Produce one message to a topic and consume it back through the RocketMQ gRPC proxy.

Usage: healthcheck.py HOST:PORT TOPIC. Exits 0 once the message came back, 1 on timeout (bounded by the caller).
"""

from __future__ import annotations

import sys
import time
import uuid

from rocketmq import ClientConfiguration, Credentials, FilterExpression, Message, Producer, SimpleConsumer


def main() -> int:
    endpoint, topic = sys.argv[1], sys.argv[2]
    config = ClientConfiguration(endpoint, Credentials(), request_timeout=5)
    token = uuid.uuid4().hex.encode()
    producer = Producer(config, (topic,))
    consumer = SimpleConsumer(
        config, "voice_health_check", {topic: FilterExpression("health")}, await_duration=2
    )
    producer.startup()
    consumer.startup()
    sent = False
    deadline = time.monotonic() + 110
    try:
        while time.monotonic() < deadline:
            try:
                # The broker registers its topics with the name server a few seconds after it listens.
                if not sent:
                    msg = Message()
                    msg.topic, msg.body, msg.tag = topic, token, "health"
                    producer.send(msg)
                    sent = True
                for m in consumer.receive(16, 5):
                    consumer.ack(m)
                    if m.body == token:
                        print(f"health ok: {m.message_id}")
                        return 0
            except Exception as exc:  # noqa: BLE001
                print(f"health: not ready yet: {exc!r}", flush=True)
                time.sleep(1)
        return 1
    finally:
        producer.shutdown()
        consumer.shutdown()


if __name__ == "__main__":
    sys.exit(main())
