"""Campaign delivery status from the proactive-delivery ledger of the RTC servers (``server.proactive``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol


class LedgerReader(Protocol):
    """The read side of ``server.proactive.ledger.DeliveryLedger``: ``get(key)`` -> record with ``status``."""

    async def get(self, idempotency_key: str) -> Any: ...


class LedgerStatusSource:
    """``DeliveryStatusSource`` on a ledger: claimed, delivered, pending (held for next call), expired."""

    def __init__(self, ledger: LedgerReader) -> None:
        self._ledger = ledger

    async def statuses(self, idempotency_keys: Sequence[str]) -> Mapping[str, str]:
        out: dict[str, str] = {}
        for key in idempotency_keys:
            record = await self._ledger.get(key)
            if record is not None:
                out[key] = str(record.status)
        return out
