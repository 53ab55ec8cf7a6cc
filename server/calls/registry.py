"""Live calls on this node, by call id and by user (a user id is unique within its tenant), whatever
transport carries them.

``SessionRegistry`` is the ``SessionDirectory`` the proactive prompt consumer uses to find the call a
user is in (``find_by_user``), and what the admin dashboard lists as live calls. A user with two live
calls (two tabs) resolves to the most recent one.
"""

from __future__ import annotations

import asyncio
from typing import Any, Protocol

from server.calls.identity import DEFAULT_TENANT


class RegisteredCall(Protocol):
    """What the registry and its readers need of a call (``server.calls.session.CallSession``)."""

    call_id: str
    user_id: str | None
    tenant: str

    async def speak_proactive(self, text: str, message_id: str) -> bool: ...

    def snapshot(self) -> dict[str, Any]: ...

    async def close(self, reason: str = "hangup") -> None: ...


class RegistryObserver(Protocol):
    """Told of every call registered and unregistered (e.g. the node's presence in the shared database);
    called synchronously: an observer that does I/O queues it."""

    def call_registered(self, call: RegisteredCall) -> None: ...

    def call_unregistered(self, call: RegisteredCall) -> None: ...


class SessionRegistry:
    """Implements ``server.proactive``'s ``SessionDirectory``: ``find_by_user(user_id) -> session | None``."""

    def __init__(self) -> None:
        self._by_call: dict[str, RegisteredCall] = {}
        self._by_user: dict[tuple[str, str], list[str]] = {}
        self.observers: list[RegistryObserver] = []

    @staticmethod
    def _user_key(session: RegisteredCall) -> tuple[str, str] | None:
        tenant = getattr(session, "tenant", DEFAULT_TENANT)
        return (tenant, session.user_id) if session.user_id else None

    def register(self, session: RegisteredCall) -> None:
        self._by_call[session.call_id] = session
        if (key := self._user_key(session)) is not None:
            self._by_user.setdefault(key, []).append(session.call_id)
        for observer in self.observers:
            observer.call_registered(session)

    def unregister(self, session: RegisteredCall) -> None:
        if self._by_call.get(session.call_id) is not session:
            return
        del self._by_call[session.call_id]
        key = self._user_key(session)
        if key is not None and key in self._by_user:
            calls = [c for c in self._by_user[key] if c != session.call_id]
            if calls:
                self._by_user[key] = calls
            else:
                del self._by_user[key]
        for observer in self.observers:
            observer.call_unregistered(session)

    def get(self, call_id: str) -> RegisteredCall | None:
        return self._by_call.get(call_id)

    def find_by_user(self, user_id: str, tenant: str = DEFAULT_TENANT) -> RegisteredCall | None:
        calls = self._by_user.get((tenant, user_id))
        return self._by_call[calls[-1]] if calls else None

    def is_online(self, user_id: str, tenant: str = DEFAULT_TENANT) -> bool:
        return (tenant, user_id) in self._by_user

    def live(self) -> list[RegisteredCall]:
        return list(self._by_call.values())

    def __len__(self) -> int:
        return len(self._by_call)

    async def close_all(self, reason: str = "server_stop") -> None:
        await asyncio.gather(*(s.close(reason) for s in self.live()), return_exceptions=True)
