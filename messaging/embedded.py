"""In-process asyncio message bus with the same delivery semantics as the RocketMQ backend.

For a single machine with no broker. Messages live in memory only: a process restart loses what was not
yet handled. Each (topic, group) has its own bounded queue (``embedded_queue_size``); up to
``handler_concurrency`` handlers run at once. A publish to a full group waits ``embedded_publish_wait_s``
for room, then raises ``PublishError``, like a broker that is away: memory never grows without bound.
Messages published to a topic before any group subscribed are retained (bounded) and handed to each group
that subscribes later, like a broker keeps a topic's messages for new consumer groups.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections import defaultdict, deque
from dataclasses import replace

from messaging.bus import (
    Handler,
    Message,
    PublishError,
    Subscription,
    backoff_s,
    check_open,
    dead_letter_properties,
    dead_letter_topic,
    run_handler,
)
from messaging.config import BusConfig

log = logging.getLogger(__name__)

_RETAINED_PER_TOPIC = 1000


class _GroupConsumer:
    """Delivers one topic's messages to one consumer group."""

    def __init__(self, bus: EmbeddedBus, topic: str, group: str) -> None:
        self.bus = bus
        self.topic = topic
        self.group = group
        self.subscriptions: list[Subscription] = []
        self.queue: asyncio.Queue[Message] = asyncio.Queue(bus.config.embedded_queue_size)
        self.inflight: set[asyncio.Task[None]] = set()
        self.waiting: set[asyncio.Task[None]] = set()  # retries sleeping out their backoff
        self.worker: asyncio.Task[None] | None = None

    def wants(self, message: Message) -> bool:
        return any(s.matches(message.tag) for s in self.subscriptions)

    def offer(self, message: Message) -> None:
        """A retained message for a group that just subscribed; dropped (logged) when the queue is full."""
        if not self.wants(message):
            return
        try:
            self.queue.put_nowait(message)
        except asyncio.QueueFull:
            log.warning("queue of %s/%s full; retained message %s dropped", self.topic, self.group, message.message_id)

    async def put(self, message: Message, wait_s: float) -> None:
        """Queue ``message``, waiting up to ``wait_s`` for room; ``PublishError`` when the group is stuck."""
        if not self.wants(message):
            return
        try:
            self.queue.put_nowait(message)
            return
        except asyncio.QueueFull:
            pass
        try:
            await asyncio.wait_for(self.queue.put(message), wait_s)
        except TimeoutError:
            raise PublishError(
                f"queue of consumer group {self.group!r} on {self.topic!r} full "
                f"({self.queue.maxsize} messages) for {wait_s:.1f} s: its handlers do not keep up"
            ) from None

    def start(self) -> None:
        if self.worker is None:
            self.worker = asyncio.create_task(self._run(), name=f"bus-{self.topic}-{self.group}")
        for sub in self.subscriptions:
            sub.ready.set()

    async def _run(self) -> None:
        slots = asyncio.Semaphore(self.bus.config.handler_concurrency)
        while True:
            message = await self.queue.get()
            await slots.acquire()
            task = asyncio.create_task(self._deliver(message))
            self.inflight.add(task)
            task.add_done_callback(self.inflight.discard)
            task.add_done_callback(lambda _: slots.release())

    async def _deliver(self, message: Message) -> None:
        try:
            await self._deliver_one(message)
        except Exception:  # a bug here must not vanish in a task
            log.exception(
                "delivery failed: topic=%s group=%s message_id=%s", self.topic, self.group, message.message_id
            )

    async def _deliver_one(self, message: Message) -> None:
        sub = next(s for s in self.subscriptions if s.matches(message.tag))
        outcome = await run_handler(sub.handler, message, self.bus.config.max_attempts)
        cfg = self.bus.config
        if outcome.action == "retry":
            delay = backoff_s(message.attempt, cfg.retry_backoff_s, cfg.retry_backoff_max_s)
            log.warning(
                "handler failed, retrying in %.1fs: topic=%s group=%s message_id=%s attempt=%d reason=%s",
                delay,
                self.topic,
                self.group,
                message.message_id,
                message.attempt,
                outcome.reason,
            )
            retry = asyncio.create_task(self._requeue(replace(message, attempt=message.attempt + 1), delay))
            self.waiting.add(retry)
            retry.add_done_callback(self.waiting.discard)
        elif outcome.action == "dead_letter":
            log.error(
                "dead-lettering: topic=%s group=%s message_id=%s attempt=%d reason=%s",
                self.topic,
                self.group,
                message.message_id,
                message.attempt,
                outcome.reason,
            )
            await self.bus.publish(
                dead_letter_topic(self.topic, cfg.dead_letter_suffix),
                message.body,
                key=message.key,
                tag=message.tag,
                properties=dead_letter_properties(message, self.group, outcome.reason),
            )

    async def _requeue(self, message: Message, delay_s: float) -> None:
        await asyncio.sleep(delay_s)
        if not self.bus.closed:
            await self.queue.put(message)  # a retry waits for room; it is never dropped

    async def close(self, timeout_s: float) -> None:
        for task in self.waiting:
            task.cancel()
        if self.worker is not None:
            self.worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.worker
        if self.inflight:
            _, pending = await asyncio.wait(set(self.inflight), timeout=timeout_s)
            for task in pending:
                task.cancel()


class EmbeddedBus:
    """`MessageBus` held in this process's memory."""

    def __init__(self, config: BusConfig | None = None) -> None:
        self.config = config or BusConfig()
        self._consumers: dict[tuple[str, str], _GroupConsumer] = {}
        self._retained: dict[str, deque[Message]] = defaultdict(lambda: deque(maxlen=_RETAINED_PER_TOPIC))
        self._started = False
        self._closing = False
        self.closed = False
        # The newest dead-lettered messages (also published to their DLQ topic), kept so tests and the admin
        # dashboard can inspect them without subscribing; ``dead_letter_count`` counts them all.
        kept = self.config.embedded_dead_letters_kept
        self.dead_letters: dict[str, deque[Message]] = defaultdict(lambda: deque(maxlen=kept))
        self._dead_letter_counts: dict[str, int] = defaultdict(int)

    async def publish(
        self,
        topic: str,
        body: bytes,
        key: str | None = None,
        tag: str | None = None,
        properties: dict[str, str] | None = None,
    ) -> str:
        check_open(self.closed, "publish to", topic, body)
        message = Message(
            topic=topic,
            body=bytes(body),
            key=key,
            tag=tag,
            properties=dict(properties or {}),
            message_id=uuid.uuid4().hex,
            publish_time=time.time(),
        )
        if topic.endswith(self.config.dead_letter_suffix):
            self.dead_letters[topic].append(message)
            self._dead_letter_counts[topic] += 1
        consumers = [c for (t, _), c in self._consumers.items() if t == topic]
        if not consumers:
            self._retained[topic].append(message)
        for consumer in consumers:
            await consumer.put(message, self.config.embedded_publish_wait_s)
        return message.message_id

    def dead_letter_count(self, topic: str) -> int:
        """How many messages were dead-lettered to ``topic`` since start (``dead_letters`` keeps the newest)."""
        return self._dead_letter_counts[topic]

    def subscribe(self, topic: str, group: str, handler: Handler, tag: str | None = None) -> Subscription:
        check_open(self.closed, "subscribe to", topic)
        sub = Subscription(topic, group, handler, tag)
        consumer = self._consumers.get((topic, group))
        if consumer is None:
            consumer = self._consumers[(topic, group)] = _GroupConsumer(self, topic, group)
            consumer.subscriptions.append(sub)
            for message in self._retained.get(topic, ()):
                consumer.offer(message)
        else:
            consumer.subscriptions.append(sub)
        if self._started:
            consumer.start()
        return sub

    async def start(self) -> None:
        self._started = True
        for consumer in self._consumers.values():
            consumer.start()

    async def close(self) -> None:
        if self._closing:
            return
        self._closing = True  # running handlers may still dead-letter (publish) until their consumers stop
        await asyncio.gather(*(c.close(self.config.close_timeout_s) for c in self._consumers.values()))
        self.closed = True
