"""``ConversationEventPublisher``: a call's lifecycle and final turns onto ``voice_conversation``."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Literal

from messaging.bus import MessageBus
from messaging.schemas import ConversationEvent

log = logging.getLogger(__name__)


class ConversationEventPublisher:
    """Publishes each call's lifecycle and final turns as ``ConversationEvent``s on the conversation topic,
    which the scheduler's intent analysis reads. One worker per process keeps events in order; publishing
    never blocks a call (a full queue drops the event with a warning)."""

    def __init__(self, bus: MessageBus, topic: str, node_id: str, queue_size: int = 1000) -> None:
        self.bus = bus
        self.topic = topic
        self.node_id = node_id
        self._queue: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue(queue_size)
        self._worker: asyncio.Task[None] | None = None

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
            log.warning("conversation event queue full; dropping %s of call %s", event, call_id)
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

    async def _run(self) -> None:
        while True:
            key, body = await self._queue.get()
            try:
                await self.bus.publish(self.topic, body, key=key)
            except Exception:
                log.exception("publishing a conversation event to %s failed (key %s)", self.topic, key)
            finally:
                self._queue.task_done()
