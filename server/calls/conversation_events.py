"""``ConversationEventPublisher``: a call's lifecycle and final turns onto ``voice_conversation``."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Literal

from messaging.bus import MessageBus
from messaging.schemas import ConversationEvent
from server.storage.spool import DiskSpool, SpoolReplayer

log = logging.getLogger(__name__)


class ConversationEventPublisher:
    """Publishes each call's lifecycle and final turns as ``ConversationEvent``s on the conversation topic,
    which the scheduler's intent analysis reads. One worker per process keeps events in order; publishing
    never blocks a call.

    With a ``spool`` (``server.node`` gives one), an event the bus refuses (broker away past its publish
    timeout) or that finds the queue full goes to the on-disk spool, and the spool is replayed every
    ``retry_s`` until the bus takes it again; while the bus is known to be away new events go straight to
    the spool instead of each waiting out the publish timeout. Without a spool such an event is dropped
    with a warning."""

    def __init__(
        self,
        bus: MessageBus,
        topic: str,
        node_id: str,
        queue_size: int = 1000,
        spool: DiskSpool | None = None,
        retry_s: float = 5.0,
    ) -> None:
        self.bus = bus
        self.topic = topic
        self.node_id = node_id
        self._queue: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue(queue_size)
        self._worker: asyncio.Task[None] | None = None
        self.spool = spool
        self.replayer = SpoolReplayer(spool, self._replay, retry_s) if spool is not None else None
        self._bus_away = False
        self._overflow: set[asyncio.Task[None]] = set()

    def start(self) -> None:
        """Replay what a previous run left in the spool (call once the loop runs)."""
        if self.replayer is not None:
            self.replayer.kick()

    def publish(
        self,
        event: Literal["call_started", "call_ended", "final_turn"],
        call_id: str,
        user_id: str | None,
        text: str | None = None,
        role: Literal["user", "agent"] | None = None,
        tenant: str = "default",
    ) -> None:
        body = ConversationEvent(
            event=event,
            call_id=call_id,
            user_id=user_id,
            tenant=tenant,
            node_id=self.node_id,
            text=text,
            role=role,
        ).to_bytes()
        if self._queue.full():
            if self.spool is None:
                log.warning("conversation event queue full; dropping %s of call %s", event, call_id)
                return
            task = asyncio.create_task(self._keep(user_id or call_id, body), name="conversation-event-spool")
            self._overflow.add(task)
            task.add_done_callback(self._overflow.discard)
            return
        self._queue.put_nowait((user_id or call_id, body))
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._run(), name="conversation-events")

    async def drain(self, timeout: float = 5.0) -> None:
        """Wait until queued events were handed to the bus (server stop)."""
        if self._worker is not None and not self._worker.done():
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._queue.join(), timeout)
            self._worker.cancel()
        if self._overflow:
            await asyncio.wait(set(self._overflow), timeout=timeout)
        if self.replayer is not None:
            self.replayer.cancel()  # what is left stays on disk for the next start

    async def _run(self) -> None:
        while True:
            key, body = await self._queue.get()
            try:
                if self._bus_away and self.spool is not None:
                    await self._keep(key, body)
                else:
                    await self._publish(key, body)
            finally:
                self._queue.task_done()

    async def _publish(self, key: str, body: bytes) -> None:
        try:
            await self.bus.publish(self.topic, body, key=key)
        except Exception as exc:
            if self.spool is None:
                log.exception("publishing a conversation event to %s failed (key %s)", self.topic, key)
                return
            log.warning("conversation events to %s go to the spool: the bus refused one: %r", self.topic, exc)
            self._bus_away = True
            await self._keep(key, body)

    async def _keep(self, key: str, body: bytes) -> None:
        assert self.spool is not None and self.replayer is not None
        await self.spool.put({"key": key, "body": body.decode()})
        self.replayer.kick()

    async def _replay(self, item: dict[str, str]) -> None:
        await self.bus.publish(self.topic, item["body"].encode(), key=item["key"])
        self._bus_away = False
