"""``RetrySweeper``: every node, every ``phone.outreach.sweep_interval_s``, looks for prompts whose next
phone attempt is due (or whose dialling node went silent) and takes the ones it should act on:
- the user is in a live call on this node -> say it there (the in-call branch wins over ringing);
- the user is in a live call on another node -> leave it to that node's sweeper;
- else, if this node can dial -> claim it (one node wins the conditional UPDATE) and ring again.
Prompts whose expiry passed while waiting are marked ``expired``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from server.background import BackgroundTasks, run_every
from server.phone.config import OutreachPolicyConfig
from server.phone.outreach import PhoneOutreach, Presence
from server.proactive.delivery import PromptDelivery
from server.proactive.directory import SessionDirectory
from server.storage.outreach_ledger import DueDial, SqlOutreachLedger

log = logging.getLogger(__name__)


class RetrySweeper:
    def __init__(
        self,
        *,
        node_id: str,
        config: OutreachPolicyConfig,
        store: SqlOutreachLedger,
        calls: SessionDirectory,
        delivery: PromptDelivery,
        presence: Presence,
        outreach: PhoneOutreach | None,
    ) -> None:
        self.node_id = node_id
        self.config = config
        self.store = store
        self.calls = calls
        self.delivery = delivery
        self.presence = presence
        self.outreach = outreach
        self.tasks = BackgroundTasks()  # the loop, and speaking due prompts in live calls

    def start(self) -> None:
        what = f"node {self.node_id}: looking for due phone retries"
        self.tasks.spawn(
            run_every(self.config.sweep_interval_s, self.sweep, what, first_now=True),
            f"phone-retries-{self.node_id}",
        )

    async def stop(self) -> None:
        await self.tasks.cancel_all()

    async def sweep(self) -> int:
        """One pass; returns how many prompts this node took."""
        clock: Callable[[], float] = self.presence.clock
        now = clock()
        await self.store.expire_due(now, self.node_id)
        taken = 0
        for due in await self.store.due(now, now - self.config.stale_dial_s):
            if await self._take(due, now):
                taken += 1
        return taken

    async def _take(self, due: DueDial, now: float) -> bool:
        stale_before = now - self.config.stale_dial_s
        call = self.calls.find_by_user(due.prompt.user_id)
        if call is not None:
            if not await self.store.claim_retry(due, self.node_id, "claimed", stale_before, None):
                return False
            self.tasks.spawn(self._speak(call, due), "phone-retry-in-call")
            return True
        if self.outreach is None or not self.config.enabled:
            return False
        if not await self.store.claim_retry(
            due, self.node_id, "dialing", stale_before, self.presence.fresh_after()
        ):
            return False
        await self.outreach.redial(due)
        return True

    async def _speak(self, call: Any, due: DueDial) -> None:
        try:
            spoken = await self.delivery.speak(call, due.prompt)
        except Exception:
            log.exception("due prompt %s: speaking in the live call failed", due.prompt.idempotency_key)
            return
        log.info(
            "due prompt %s %s in the live call", due.prompt.idempotency_key, "said" if spoken else "not said"
        )
