"""``SpoolingCallRecordStore``: call records saved while their database is away are kept in a
``DiskSpool`` and written once it is back, so a call that ends during a database outage keeps its record.

Saves of one call stay in order: once a save of a call went to the spool, its later saves follow it there
(an older snapshot replayed after a newer one would otherwise overwrite the finished record).
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any

from server.calls.record import CallRecord, CallRecordStore
from server.storage.engine import StoreUnavailable
from server.storage.spool import DiskSpool, SpoolReplayer

log = logging.getLogger(__name__)


class SpoolingCallRecordStore:
    """A ``CallRecordStore`` around another one; ``start()`` on the running loop (replays what a previous
    run left in the spool)."""

    def __init__(self, inner: CallRecordStore, spool: DiskSpool, retry_s: float = 5.0) -> None:
        self.inner = inner
        self.spool = spool
        self.replayer = SpoolReplayer(spool, self._replay, retry_s)
        self._spooled: Counter[str] = Counter()  # call id -> saves of it waiting in the spool
        self._last_error = ""

    def start(self) -> None:
        self.replayer.kick()

    async def save(self, record: CallRecord) -> None:
        if not self._spooled[record.call_id]:
            try:
                await self.inner.save(record)
                return
            except StoreUnavailable as exc:
                self._last_error = str(exc)
                log.warning("call %s: record store away (%s); spooling the record", record.call_id, exc)
        if await self.spool.put({"record": record.to_dict()}):
            self._spooled[record.call_id] += 1
        self.replayer.kick()

    async def _replay(self, item: dict[str, Any]) -> None:
        record = CallRecord.from_dict(item["record"])
        await self.inner.save(record)
        if self._spooled[record.call_id] > 0:
            self._spooled[record.call_id] -= 1
        if not self._spooled[record.call_id]:
            del self._spooled[record.call_id]

    def problem(self) -> str | None:
        """Why call records are not being written now (``/readyz`` reports it), or None: records wait
        in the spool, or the disk refused even the spool and they wait in memory."""
        waiting = len(self.spool)
        if not waiting:
            return None
        where = f", {self.spool.in_memory} of them in memory (disk full?)" if self.spool.in_memory else ""
        return f"{waiting} call record saves waiting to be written{where}: {self._last_error}"

    async def get(self, call_id: str) -> CallRecord | None:
        return await self.inner.get(call_id)

    async def recent(
        self, limit: int = 50, user_id: str | None = None, tenant: str | None = None
    ) -> list[dict[str, Any]]:
        return await self.inner.recent(limit, user_id, tenant)

    def close(self) -> None:
        """Stops replaying (what is left stays on disk for the next start, also what waited in memory if
        the disk takes it now) and closes the store."""
        self.replayer.cancel()
        self.spool.persist_memory()
        self.inner.close()
