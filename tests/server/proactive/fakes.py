"""Test doubles for the RTC side of proactive delivery (the real audio path is tested in the RTC tests)."""

from __future__ import annotations

import asyncio


class FakeLiveCall:
    """Records every `speak_proactive` call; ``gate`` (if set) holds the speech until released."""

    def __init__(self, user_id: str, result: bool = True, gate: asyncio.Event | None = None) -> None:
        self.user_id = user_id
        self.result = result
        self.gate = gate
        self.spoken: list[tuple[str, str]] = []
        self.speaking = asyncio.Event()

    async def speak_proactive(self, text: str, message_id: str) -> bool:
        self.speaking.set()
        if self.gate is not None:
            await self.gate.wait()
        self.spoken.append((text, message_id))
        return self.result


class FakeSessionDirectory:
    def __init__(self, *calls: FakeLiveCall) -> None:
        self.calls = {c.user_id: c for c in calls}

    def find_by_user(self, user_id: str, tenant: str = "default") -> FakeLiveCall | None:
        call = self.calls.get(user_id)
        return call if call is not None and getattr(call, "tenant", "default") == tenant else None
