"""RocketMQ 5 backend: `rocketmq-python-client` (gRPC to the proxy) behind the `MessageBus` interface.

The client is synchronous and threaded. Publishing, acks and client start/stop run in a small thread pool;
each (topic, group) has one receive thread doing long-polling `SimpleConsumer.receive` calls and handing
messages to the asyncio loop, so the loop never blocks on the broker. A message is acknowledged only after
its handler returned; on failure its invisible duration is set to the retry backoff, so the broker
redelivers it (``delivery_attempt`` grows); after ``max_attempts`` it is published to ``<topic>_dlq`` and
acknowledged. While the broker is away (restart), publishes retry until ``publish_timeout_s``, the receive
thread backs off and rebuilds its consumer, and unacknowledged messages come back once it returns.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from rocketmq import ClientConfiguration, Credentials, FilterExpression, Producer, SimpleConsumer
from rocketmq import Message as RmqMessage
from rocketmq.v5.exception import BadRequestException

from messaging.bus import (
    BusClosedError,
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
T = TypeVar("T")

_REBUILD_AFTER_FAILURES = 3  # consecutive receive errors before the SimpleConsumer is rebuilt


def _to_message(m: RmqMessage) -> Message:
    keys = sorted(m.keys or ())
    return Message(
        topic=m.topic,
        body=m.body or b"",
        key=keys[0] if keys else None,
        tag=m.tag,
        properties=dict(m.properties or {}),
        message_id=m.message_id or "",
        attempt=int(m.delivery_attempt or 1),
        publish_time=(m.born_timestamp or 0) / 1000.0,
    )


class _GroupConsumer:
    """One consumer group on one topic: a receive thread plus asyncio delivery tasks."""

    def __init__(self, bus: RocketMQBus, topic: str, group: str) -> None:
        self.bus = bus
        self.topic = topic
        self.group = group
        self.subscriptions: list[Subscription] = []
        self.inflight: set[asyncio.Task[None]] = set()
        self._consumer: SimpleConsumer | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._slots = threading.Semaphore(bus.config.handler_concurrency)
        self._loop: asyncio.AbstractEventLoop | None = None

    def _filter(self) -> FilterExpression:
        tags = [s.tag for s in self.subscriptions]
        if any(t in (None, "*") for t in tags):
            return FilterExpression("*")
        return FilterExpression("||".join(sorted({p for t in tags if t for p in t.split("||")})))

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._thread is not None:
            return
        self._loop = loop
        self._thread = threading.Thread(
            target=self._receive_loop, name=f"rocketmq-recv-{self.topic}-{self.group}", daemon=True
        )
        self._thread.start()

    # --- receive thread -------------------------------------------------------------------------
    def _new_consumer(self) -> SimpleConsumer:
        rmq = self.bus.config.rocketmq
        consumer = SimpleConsumer(
            self.bus.client_config,
            self.group,
            {self.topic: self._filter()},
            await_duration=max(1, int(rmq.receive_wait_s)),
        )
        consumer.startup()
        # The proxy rejects a receive until the client's settings reached it over the telemetry stream;
        # the simple consumer does not wait for that itself.
        settings_synced = getattr(consumer, "_init_settings_event", None)
        if isinstance(settings_synced, threading.Event):
            settings_synced.wait(rmq.request_timeout_s)
        return consumer

    def _take_slots(self, want: int) -> int:
        while not self._stop.is_set():
            if self._slots.acquire(timeout=0.5):
                got = 1
                while got < want and self._slots.acquire(blocking=False):
                    got += 1
                return got
        return 0

    def _receive_loop(self) -> None:
        rmq = self.bus.config.rocketmq
        failures = 0
        ready = False
        while not self._stop.is_set():
            slots = self._take_slots(rmq.receive_batch)
            if not slots:
                break
            received: list[RmqMessage] = []
            try:
                if self._consumer is None:
                    self._consumer = self._new_consumer()
                elif failures >= _REBUILD_AFTER_FAILURES:
                    # Swap in a fresh client before dropping the old one: in-flight deliveries keep
                    # acknowledging through whichever consumer of the group is current.
                    old, self._consumer = self._consumer, self._new_consumer()
                    self._shutdown_consumer_later(old)
                    failures = 0
                received = self._consumer.receive(slots, max(1, int(rmq.invisible_duration_s)))
                failures = 0
            except Exception as exc:  # noqa: BLE001 - broker restarting, route not yet registered, settings not synced
                failures += 1
                log.warning(
                    "receive failed (%d in a row): topic=%s group=%s error=%r",
                    failures,
                    self.topic,
                    self.group,
                    exc,
                )
                self._stop.wait(min(5.0, 0.2 * 2 ** min(failures, 5)))
            finally:
                for _ in range(slots - len(received)):
                    self._slots.release()
            if self._consumer is not None and not ready and failures == 0:
                # The first answered receive fixed this group's start offsets: later publishes reach it.
                ready = True
                self._call_soon(self._set_ready)
            for m in received:
                self._call_soon(self._spawn, m)
        log.info("receive thread stopped: topic=%s group=%s", self.topic, self.group)

    def _call_soon(self, fn: Callable[..., Any], *args: Any) -> None:
        assert self._loop is not None
        try:
            self._loop.call_soon_threadsafe(fn, *args)
        except RuntimeError:  # loop closed during shutdown
            log.warning("event loop closed; dropping callback for topic=%s group=%s", self.topic, self.group)

    @staticmethod
    def _shutdown_consumer_later(consumer: SimpleConsumer) -> None:
        # shutdown() can block on an unreachable broker; never hold the receive thread on it.
        def stop() -> None:
            try:
                consumer.shutdown()
            except Exception as exc:  # noqa: BLE001
                log.debug("consumer shutdown failed: %r", exc)

        threading.Thread(target=stop, name="rocketmq-consumer-shutdown", daemon=True).start()

    # --- event loop -----------------------------------------------------------------------------
    def _set_ready(self) -> None:
        for sub in self.subscriptions:
            sub.ready.set()

    def _spawn(self, raw: RmqMessage) -> None:
        task = asyncio.get_running_loop().create_task(self._deliver(raw))
        self.inflight.add(task)
        task.add_done_callback(self.inflight.discard)

    async def _deliver(self, raw: RmqMessage) -> None:
        try:
            await self._deliver_one(raw)
        except Exception:  # a bug here must not vanish in a task; the message is redelivered
            log.exception(
                "delivery failed: topic=%s group=%s message_id=%s", self.topic, self.group, raw.message_id
            )
        finally:
            self._slots.release()

    async def _deliver_one(self, raw: RmqMessage) -> None:
        cfg = self.bus.config
        message = _to_message(raw)
        sub = next((s for s in self.subscriptions if s.matches(message.tag)), self.subscriptions[0])
        if raw.corrupted:
            outcome_action, reason = "dead_letter", "body checksum mismatch"
        else:
            done = asyncio.Event()
            keeper = asyncio.create_task(self._keep_invisible(raw, done))
            try:
                outcome = await run_handler(sub.handler, message, cfg.max_attempts)
            finally:
                done.set()
                await keeper  # never settle while a renewal is still changing the receipt handle
            outcome_action, reason = outcome.action, outcome.reason
        if outcome_action == "retry":
            delay = max(1.0, backoff_s(message.attempt, cfg.retry_backoff_s, cfg.retry_backoff_max_s))
            log.warning(
                "handler failed, redelivery in %.1fs: topic=%s group=%s message_id=%s attempt=%d reason=%s",
                delay,
                self.topic,
                self.group,
                message.message_id,
                message.attempt,
                reason,
            )
            await self._settle("change_invisible_duration", raw, round(delay))
            return
        if outcome_action == "dead_letter":
            log.error(
                "dead-lettering: topic=%s group=%s message_id=%s attempt=%d reason=%s",
                self.topic,
                self.group,
                message.message_id,
                message.attempt,
                reason,
            )
            dlq = dead_letter_topic(self.topic, cfg.dead_letter_suffix)
            try:
                await self.bus.publish(
                    dlq,
                    message.body or b"<empty>",
                    key=message.key,
                    tag=message.tag,
                    properties=dead_letter_properties(message, self.group, reason),
                )
            except (PublishError, BusClosedError) as exc:
                # Not acknowledged: the broker hands it back later and dead-lettering is tried again.
                log.error("could not dead-letter to %s: message_id=%s error=%s", dlq, message.message_id, exc)
                return
        await self._settle("ack", raw)

    async def _keep_invisible(self, raw: RmqMessage, done: asyncio.Event) -> None:
        """Extend the invisible duration while the handler runs (a proactive prompt may wait a minute
        for a pause in the conversation), so the broker does not hand the message to another delivery."""
        invisible = max(1, int(self.bus.config.rocketmq.invisible_duration_s))
        while not done.is_set():
            try:
                await asyncio.wait_for(done.wait(), invisible / 2)
                return
            except TimeoutError:
                pass
            consumer = self._consumer
            if consumer is None:
                continue
            try:
                await self.bus.run_io(consumer.change_invisible_duration, raw, invisible)
            except Exception as exc:  # noqa: BLE001 - broker away: the message may be redelivered, handlers are idempotent
                log.warning(
                    "could not extend invisibility: topic=%s group=%s message_id=%s error=%r",
                    self.topic,
                    self.group,
                    raw.message_id,
                    exc,
                )

    async def _settle(self, op: str, raw: RmqMessage, *args: Any) -> None:
        """Ack or change visibility; retried briefly. If it never succeeds the broker redelivers the
        message after its invisible duration, which idempotent handlers absorb."""
        deadline = time.monotonic() + self.bus.config.rocketmq.invisible_duration_s
        delay = 0.2
        while True:
            consumer = self._consumer
            try:
                if consumer is None:
                    raise RuntimeError("consumer is being rebuilt")
                await self.bus.run_io(getattr(consumer, op), raw, *args)
                return
            except Exception as exc:  # noqa: BLE001 - logged; the broker redelivers what was not acked
                # A stale receipt handle (the message was already redelivered) will never succeed.
                hopeless = isinstance(exc, BadRequestException)
                if hopeless or time.monotonic() + delay > deadline or self._stop.is_set():
                    log.warning(
                        "%s failed, the broker will redeliver: topic=%s group=%s message_id=%s error=%r",
                        op,
                        self.topic,
                        self.group,
                        raw.message_id,
                        exc,
                    )
                    return
                await asyncio.sleep(delay)
                delay = min(2.0, delay * 2)

    async def close(self, timeout_s: float) -> None:
        self._stop.set()
        if self.inflight:
            _, pending = await asyncio.wait(set(self.inflight), timeout=timeout_s)
            for task in pending:
                task.cancel()
        rmq = self.bus.config.rocketmq
        if self._thread is not None:
            join_s = rmq.receive_wait_s + rmq.request_timeout_s + 1
            await asyncio.get_running_loop().run_in_executor(None, self._thread.join, join_s)
        if self._consumer is not None:
            self._shutdown_consumer_later(self._consumer)
            self._consumer = None


class RocketMQBus:
    """`MessageBus` on a RocketMQ 5 cluster reached through its gRPC proxy (`BusConfig.rocketmq`)."""

    def __init__(self, config: BusConfig) -> None:
        self.config = config
        rmq = config.rocketmq
        self.client_config = ClientConfiguration(
            rmq.endpoints,
            Credentials(rmq.access_key or "", rmq.secret_key or ""),
            request_timeout=max(1, int(rmq.request_timeout_s)),  # the client needs whole seconds
        )
        self._io = ThreadPoolExecutor(max_workers=8, thread_name_prefix="rocketmq-io")
        self._producer: Producer | None = None
        self._producer_lock = asyncio.Lock()
        self._consumers: dict[tuple[str, str], _GroupConsumer] = {}
        self._started = False
        self._closing = False
        self.closed = False

    async def run_io(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._io, functools.partial(fn, *args))

    async def _ensure_producer(self) -> Producer:
        async with self._producer_lock:
            if self._producer is None:
                producer = Producer(self.client_config)
                await self.run_io(producer.startup)
                self._producer = producer
            return self._producer

    async def publish(
        self,
        topic: str,
        body: bytes,
        key: str | None = None,
        tag: str | None = None,
        properties: dict[str, str] | None = None,
    ) -> str:
        check_open(self.closed, "publish to", topic, body)
        msg = RmqMessage()
        msg.topic = topic
        msg.body = bytes(body)
        if tag:
            msg.tag = tag
        if key:
            msg.keys = key
        for name, value in (properties or {}).items():
            if value:  # the client rejects blank property values
                msg.add_property(name, str(value))
        deadline = time.monotonic() + self.config.rocketmq.publish_timeout_s
        delay = 0.25
        while True:
            try:
                producer = await self._ensure_producer()
                receipt = await self.run_io(producer.send, msg)
                return str(receipt.message_id)
            except Exception as exc:  # the client already retried 3 times; keep going through restarts
                if time.monotonic() + delay > deadline or self.closed:
                    raise PublishError(
                        f"publish to topic {topic!r} at {self.config.rocketmq.endpoints} failed for "
                        f"{self.config.rocketmq.publish_timeout_s:.0f}s: {exc!r}. Is the broker up and the "
                        f"topic created (scripts/rocketmq.sh create-topic {topic})?"
                    ) from exc
                log.warning("publish to %s failed, retrying in %.2fs: %r", topic, delay, exc)
                await asyncio.sleep(delay)
                delay = min(2.0, delay * 2)

    def subscribe(self, topic: str, group: str, handler: Handler, tag: str | None = None) -> Subscription:
        check_open(self.closed, "subscribe to", topic)
        sub = Subscription(topic, group, handler, tag)
        consumer = self._consumers.setdefault((topic, group), _GroupConsumer(self, topic, group))
        consumer.subscriptions.append(sub)
        if self._started:
            consumer.start(asyncio.get_running_loop())
        return sub

    async def start(self) -> None:
        self._started = True
        loop = asyncio.get_running_loop()
        for consumer in self._consumers.values():
            consumer.start(loop)
        try:
            await self._ensure_producer()
        except Exception as exc:  # noqa: BLE001 - publish() retries; a broker that is late must not fail start-up
            log.warning("producer start-up failed, will retry on publish: %r", exc)

    async def close(self) -> None:
        if self._closing:
            return
        self._closing = True  # running handlers may still dead-letter (publish) until their consumers stop
        await asyncio.gather(*(c.close(self.config.close_timeout_s) for c in self._consumers.values()))
        self.closed = True
        if self._producer is not None:
            producer, self._producer = self._producer, None
            try:
                await asyncio.wait_for(self.run_io(producer.shutdown), self.config.rocketmq.request_timeout_s)
            except Exception as exc:  # noqa: BLE001
                log.warning("producer shutdown failed: %r", exc)
        self._io.shutdown(wait=False, cancel_futures=True)
