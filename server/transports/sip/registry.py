"""The calls a user agent holds, in every stage (admitted, dialling, live), and their handler tasks."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

from server.transports.sip.admission import AdmittedInvite
from server.transports.sip.call import SipCall
from server.transports.sip.transactions import TIMEOUT

log = logging.getLogger(__name__)

CallHandler = Callable[[SipCall], Awaitable[None]]


class CallRegistry:
    def __init__(self) -> None:
        self.calls: dict[str, SipCall] = {}
        self.pending: dict[str, AdmittedInvite] = {}  # admitted INVITEs not answered yet
        self.dialing: set[str] = set()  # outbound INVITEs not answered yet
        self._handlers: dict[str, asyncio.Task[None]] = {}

    @property
    def busy(self) -> int:
        """Calls counted against ``sip.max_calls``."""
        return len(self.calls) + len(self.pending) + len(self.dialing)

    def knows(self, call_id: str) -> bool:
        return call_id in self.calls or call_id in self.pending or call_id in self.dialing

    def admit(self, call_id: str, invite: AdmittedInvite) -> None:
        horizon = time.monotonic() - TIMEOUT  # never answered (e.g. the library refused it): forget
        for stale in [k for k, v in self.pending.items() if v.received_at < horizon]:
            self.pending.pop(stale, None)
        self.pending[call_id] = invite

    def add(self, call: SipCall, handler: CallHandler | None) -> None:
        self.pending.pop(call.call_id, None)
        self.dialing.discard(call.call_id)
        self.calls[call.call_id] = call
        if handler is not None:
            task = asyncio.create_task(self._run(call, handler), name=f"sip-call-{call.call_id[:8]}")
            self._handlers[call.call_id] = task

    def remove(self, call: SipCall) -> None:
        self.calls.pop(call.call_id, None)

    async def close(self) -> None:
        """Hang up every call (BYE) and stop their handlers."""
        await asyncio.gather(*(call.shutdown() for call in list(self.calls.values())), return_exceptions=True)
        for task in list(self._handlers.values()):
            task.cancel()
        for task in list(self._handlers.values()):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._handlers.clear()
        self.pending.clear()

    async def _run(self, call: SipCall, handler: CallHandler) -> None:
        try:
            await handler(call)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("the handler of call %s failed; hanging up", call.call_id)
        finally:
            self._handlers.pop(call.call_id, None)
            if not call.ended:
                await call.hangup()
