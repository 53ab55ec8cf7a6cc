"""``CallEventFeed``: the live events of one call (transcripts, agent state, turns, ended) for any number of
subscribers: the page's WebSocket, the dashboard, a transport that reacts to barge-in.

Events are dicts ``{"type": kind, "t": unix time, ...}``. Kinds the call core emits: ``state``
(listening/thinking/speaking), ``partial_transcript``, ``final_transcript``, ``agent_text``, ``turn``,
``interrupted``, ``proactive``, ``transfer``, ``connection`` (emitted by the transport) and ``ended``.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from typing import Any


class CallEventFeed:
    """Live events of one call for any number of WebSocket subscribers; late subscribers get the history."""

    def __init__(self, history: int = 500, queue_size: int = 256) -> None:
        self._history: deque[dict[str, Any]] = deque(maxlen=history)
        self._subscribers: set[asyncio.Queue[dict[str, Any] | None]] = set()
        self._queue_size = queue_size
        self.closed = False

    def emit(self, kind: str, data: dict[str, Any]) -> None:
        event = {"type": kind, "t": time.time(), **data}
        self._history.append(event)
        for queue in self._subscribers:
            if queue.full():
                queue.get_nowait()  # a stalled page loses old events, never blocks the call
            queue.put_nowait(event)

    def subscribe(self) -> asyncio.Queue[dict[str, Any] | None]:
        queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue(self._queue_size + len(self._history))
        for event in self._history:
            queue.put_nowait(event)
        if self.closed:
            queue.put_nowait(None)
        else:
            self._subscribers.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[dict[str, Any] | None]) -> None:
        self._subscribers.discard(queue)

    def close(self) -> None:
        self.closed = True
        for queue in self._subscribers:
            if queue.full():
                queue.get_nowait()
            queue.put_nowait(None)
        self._subscribers.clear()
