"""Per-call views of shared services, limited to the caller's tenant (``server.node`` builds them for
each conversation): retrieval over the tenant's documents only, call-backs for the tenant's user."""

from __future__ import annotations

from datetime import datetime
from typing import Any


class TenantCallbacks:
    """``agent.tools.CallbackScheduler`` for the users of one tenant (a user id means nothing without it)."""

    def __init__(self, scheduler: Any, tenant: str) -> None:
        self.scheduler = scheduler
        self.tenant = tenant

    async def schedule_callback(self, user_id: str, when: datetime | Any, reason: str) -> str:
        result: str = await self.scheduler.schedule_callback(user_id, when, reason, tenant=self.tenant)
        return result
