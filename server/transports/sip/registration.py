"""Keeps the node's address-of-record registered at the trunk's registrar (REGISTER with digest auth).

aiosipua's ``Registration`` refreshes at 90 % of the granted interval and answers one challenge per
attempt, but gives up for good after a failure or an expiry; this keeper retries with a capped backoff,
so a registrar restart costs minutes of reachability, not the node's.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from aiosipua import Registration, RegistrationState, SipDigestAuth, parse_uri

from server.transports.sip.config import SipTrunkConfig
from server.transports.sip.stack import SignalingStack

log = logging.getLogger(__name__)

_RETRY_FIRST_S = 5.0
_RETRY_MAX_S = 300.0
_UNREGISTER_WAIT_S = 2.0


class TrunkRegistration:
    def __init__(
        self, stack: SignalingStack, trunk: SipTrunkConfig, registrar: tuple[str, int], user_agent: str
    ):
        self._stack = stack
        self._trunk = trunk
        domain = trunk.domain or parse_uri(trunk.uri).host
        self.aor = f"sip:{trunk.username}@{domain}"
        auth = None
        if trunk.password is not None:
            auth = SipDigestAuth(
                trunk.auth_username or trunk.username or "", trunk.password.get_secret_value()
            )
        self._registration = Registration(
            stack.uac,
            self.aor,
            registrar,
            expires=trunk.register_interval_s,
            auth=auth,
            registrar_uri=f"sip:{domain}",
            user_agent=user_agent,
        )
        self._registration.on_registered = self._registered
        self._registration.on_failed = self._failed
        self._registration.on_expired = self._expired
        self._is_registered = asyncio.Event()
        self._retry_in = _RETRY_FIRST_S
        self._retry: asyncio.Task[None] | None = None
        self.last_failure: tuple[int, str] | None = None

    @property
    def state(self) -> str:
        return self._registration.state.value

    @property
    def registered(self) -> bool:
        return self._registration.state is RegistrationState.REGISTERED

    async def start(self) -> None:
        await self._register()

    async def _register(self) -> None:
        if await self._stack.connect(self._registration.registrar):  # TCP: (re)connect first
            self._registration.register()
        else:
            self._schedule_retry("cannot connect to the registrar")

    async def wait_registered(self, timeout: float) -> None:
        await asyncio.wait_for(self._is_registered.wait(), timeout)

    async def stop(self) -> None:
        if self._retry is not None:
            self._retry.cancel()
        if self.registered:
            request = self._registration.unregister()
            with contextlib.suppress(TimeoutError, LookupError):
                await self._stack.client.final_response(request, _UNREGISTER_WAIT_S)
        # the library's refresh/expiry timers are cancelled by SipUAC.close() when the stack stops

    def _registered(self, registration: Registration) -> None:
        self._retry_in = _RETRY_FIRST_S
        self.last_failure = None
        self._is_registered.set()

    def _failed(self, registration: Registration, status: int, reason: str) -> None:
        self.last_failure = (status, reason)
        self._is_registered.clear()
        self._schedule_retry(f"{status} {reason}")

    def _expired(self, registration: Registration) -> None:
        self._is_registered.clear()
        self._schedule_retry("expired without refresh")

    def registration_timed_out(self) -> None:
        """Our REGISTER got no response at all (after retransmissions)."""
        self._is_registered.clear()
        self._schedule_retry("no response from the registrar")

    def _schedule_retry(self, why: str) -> None:
        running = self._retry is not None and not self._retry.done()
        if running and self._retry is not asyncio.current_task():
            return
        log.warning("registration of %s failed (%s); retrying in %.0f s", self.aor, why, self._retry_in)
        self._retry = asyncio.create_task(self._retry_later(self._retry_in))
        self._retry_in = min(_RETRY_MAX_S, self._retry_in * 2)

    async def _retry_later(self, delay: float) -> None:
        await asyncio.sleep(delay)
        await self._register()
