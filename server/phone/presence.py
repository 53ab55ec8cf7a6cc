"""``PresenceTracker``: this node's live calls in the shared presence table, so that no other node rings
the phone of a user who is talking to this one (``server.storage.presence``).

Writes happen in order on one worker task (a call's join before its leave), off the registry's
synchronous callbacks; a heartbeat refreshes every row of this node (and drops rows of calls that are
gone), so a node that dies stops counting after the freshness window (3 heartbeats).
"""

from __future__ import annotations

import asyncio
import logging

from server.background import run_every
from server.calls.registry import RegisteredCall, SessionRegistry
from server.storage.presence import SqlPresence

log = logging.getLogger(__name__)

_QUEUE = 10_000


class PresenceTracker:
    def __init__(
        self, store: SqlPresence, registry: SessionRegistry, node_id: str, heartbeat_s: float
    ) -> None:
        self.store = store
        self.registry = registry
        self.node_id = node_id
        self.heartbeat_s = heartbeat_s
        self._writes: asyncio.Queue[tuple[str, str, str | None]] = asyncio.Queue(_QUEUE)
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def window_s(self) -> float:
        """How long a presence row counts without a refresh."""
        return 3 * self.heartbeat_s

    async def start(self) -> None:
        await self._refresh()  # rows of a past run go
        self.registry.observers.append(self)
        self._tasks = [
            asyncio.create_task(self._write(), name=f"presence-{self.node_id}"),
            asyncio.create_task(
                run_every(self.heartbeat_s, self._refresh, f"node {self.node_id}: presence heartbeat"),
                name=f"presence-heartbeat-{self.node_id}",
            ),
        ]

    async def stop(self) -> None:
        if self in self.registry.observers:
            self.registry.observers.remove(self)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        try:
            await self.store.refresh(self.node_id, [])
        except Exception:
            log.exception(
                "node %s: clearing its presence rows failed (they expire by themselves)", self.node_id
            )

    # -- RegistryObserver ------------------------------------------------------------------------------
    def call_registered(self, call: RegisteredCall) -> None:
        if call.user_id:
            self._queue("join", call.call_id, call.user_id)

    def call_unregistered(self, call: RegisteredCall) -> None:
        if call.user_id:
            self._queue("leave", call.call_id, None)

    def _queue(self, what: str, call_id: str, user_id: str | None) -> None:
        try:
            self._writes.put_nowait((what, call_id, user_id))
        except asyncio.QueueFull:  # the heartbeat writes the whole truth soon anyway
            log.warning(
                "node %s: presence writes queue full; %s of %s waits for the heartbeat",
                self.node_id,
                what,
                call_id,
            )

    async def _write(self) -> None:
        while True:
            what, call_id, user_id = await self._writes.get()
            try:
                if what == "join" and user_id is not None:
                    await self.store.join(call_id, user_id, self.node_id)
                else:
                    await self.store.leave(call_id)
            except Exception:
                log.exception("node %s: presence %s of call %s failed", self.node_id, what, call_id)

    def _live(self) -> list[tuple[str, str]]:
        return [(c.call_id, c.user_id) for c in self.registry.live() if c.user_id]

    async def _refresh(self) -> None:
        await self.store.refresh(self.node_id, self._live())
