"""``AbandonedClaimSweeper``: prompts a dead node had claimed (it was speaking them when it died) are
spoken again instead of staying ``claimed`` for good.

A claim is settled by the node that made it (``delivered`` or back to ``pending``). A node killed while
speaking never settles it, and the bus message goes back only to that node's own consumer group, which
nobody reads any more. Every node therefore sweeps, once per presence heartbeat: a ``claimed`` row whose
node shows no fresh presence row for the prompt's user (``server.storage.presence``: a node speaking to a
user holds the user's call and refreshes that row) goes back to ``pending``, and this node acts on it as
on a new message: spoken now if the user is in a call here, else offered to the phone outreach or held
for the user's next call. The price: a prompt cut off by the crash is said again, from its start.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Protocol

from messaging.schemas import ProactivePrompt
from server.background import BackgroundTasks, run_every

log = logging.getLogger(__name__)


class AbandonedClaims(Protocol):
    """``server.storage.presence.SqlPresence``."""

    async def release_abandoned_claims(
        self, node_id: str, fresh_after: float, claimed_before: float
    ) -> list[ProactivePrompt]: ...


class PromptHandler(Protocol):
    """``server.proactive.consumer.ProactivePromptConsumer``."""

    async def act_on(self, prompt: ProactivePrompt) -> None: ...


class AbandonedClaimSweeper:
    def __init__(
        self,
        store: AbandonedClaims,
        handler: PromptHandler,
        node_id: str,
        window_s: float,
        interval_s: float,
        clock: Callable[[], float],
    ) -> None:
        """``window_s``: how long a presence row counts without a refresh (and how old a claim must be,
        so that its node had time to write the call's row); ``interval_s``: time between sweeps."""
        self.store = store
        self.handler = handler
        self.node_id = node_id
        self.window_s = window_s
        self.interval_s = interval_s
        self.clock = clock
        self.tasks = BackgroundTasks()  # the loop, and acting on each released prompt

    def start(self) -> None:
        self.tasks.spawn(
            run_every(self.interval_s, self.sweep, f"node {self.node_id}: abandoned-claim sweep"),
            f"abandoned-claims-{self.node_id}",
        )

    async def stop(self) -> None:
        await self.tasks.cancel_all()

    async def sweep(self) -> list[ProactivePrompt]:
        """One sweep: release abandoned claims and act on each (in its own task: speaking takes a while)."""
        now = self.clock()
        released = await self.store.release_abandoned_claims(
            self.node_id, fresh_after=now - self.window_s, claimed_before=now - self.window_s
        )
        for prompt in released:
            log.warning(
                "claim of prompt key=%s user=%s abandoned by its node; acting on it here (node=%s)",
                prompt.idempotency_key,
                prompt.user_id,
                self.node_id,
            )
            self.tasks.spawn(self._act(prompt), f"released-{prompt.message_id[:8]}")
        return released

    async def _act(self, prompt: ProactivePrompt) -> None:
        try:
            await self.handler.act_on(prompt)
        except Exception:  # it stays pending: the user's next call gets it
            log.exception("acting on released prompt %s failed; it stays held", prompt.idempotency_key)
