"""``CallAdmission``: how many calls this node carries at once (``server.max_calls``), whatever transport
brings them.

Every transport asks before it accepts a call (``CallSession.admit``: a WebRTC offer, a WebSocket media
``start``, a SIP INVITE) and refuses cleanly when the node is full: 503 with ``Retry-After`` over HTTP and
SIP, close code 1013 ("try again later") on the WebSocket. A slot is taken before any expensive work (ICE
gathering, RTP ports) and released when the call ends, whoever ends it, also when the offer fails. Past the
limit every call would be slow (the models share two cores); refusing the next caller keeps the calls in
progress good. A prompt for a user whose call was refused is held (the user is in no call) and spoken at
the user's next call. Figures: ``voice_agent_call_slots`` (limit and in use), ``voice_agent_calls_refused_total``.
"""

from __future__ import annotations

import logging
from typing import Any

from prometheus_client import Counter, Gauge

log = logging.getLogger(__name__)

CALL_SLOTS = Gauge("voice_agent_call_slots", "Call slots of this node: the limit and those in use", ["kind"])
CALLS_REFUSED = Counter(
    "voice_agent_calls_refused_total", "Calls refused because the node was full, by transport", ["transport"]
)

UNLIMITED = 1_000_000


class CallAdmission:
    """Slots for ``max_calls`` calls (0 refuses every call: a node being drained). Not thread-safe: the
    event loop's transports share it."""

    def __init__(self, max_calls: int = UNLIMITED, retry_after_s: int = 5) -> None:
        self.max_calls = max_calls
        self.retry_after_s = retry_after_s
        self._holders: dict[str, str] = {}  # call id -> transport
        self.refused = 0
        CALL_SLOTS.labels("limit").set(max_calls)
        CALL_SLOTS.labels("in_use").set(0)

    @property
    def in_use(self) -> int:
        return len(self._holders)

    def try_admit(self, call_id: str, transport: str) -> bool:
        """Take a slot for ``call_id``; False (counted) when all are taken. Admitting twice is harmless."""
        if call_id in self._holders:
            return True
        if len(self._holders) >= self.max_calls:
            self.refused += 1
            CALLS_REFUSED.labels(transport).inc()
            log.warning(
                "call %s over %s refused: all %d lines busy", call_id, transport, self.max_calls
            )
            return False
        self._holders[call_id] = transport
        CALL_SLOTS.labels("in_use").set(len(self._holders))
        return True

    def full(self, transport: str) -> bool:
        """True (counted as a refusal of ``transport``) when no slot is free: for a transport that must
        refuse before it has a call id to admit (a SIP INVITE gets its 503 before any RTP port)."""
        if len(self._holders) < self.max_calls:
            return False
        self.refused += 1
        CALLS_REFUSED.labels(transport).inc()
        return True

    def release(self, call_id: str) -> None:
        """Give the slot of ``call_id`` back (a call that held none: nothing happens)."""
        if self._holders.pop(call_id, None) is not None:
            CALL_SLOTS.labels("in_use").set(len(self._holders))

    def busy_message(self) -> str:
        return (
            f"all lines are busy ({self.max_calls} calls in progress, the most this server takes); "
            f"please try again in {self.retry_after_s} seconds"
        )

    def snapshot(self) -> dict[str, Any]:
        """For the admin dashboard: the limit, slots in use (by transport) and refusals since start."""
        by_transport: dict[str, int] = {}
        for transport in self._holders.values():
            by_transport[transport] = by_transport.get(transport, 0) + 1
        return {
            "max_calls": self.max_calls,
            "in_use": self.in_use,
            "by_transport": by_transport,
            "refused": self.refused,
        }
