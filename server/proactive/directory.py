"""What the proactive consumer needs from the RTC server: the live call a user is in, on this node."""

from __future__ import annotations

from typing import Protocol


class PromptTarget(Protocol):
    """A live call a proactive prompt can be spoken in."""

    async def speak_proactive(self, text: str, message_id: str) -> bool:
        """Speak ``text`` in the call; return once it was spoken (True) or could not be (False: no pause
        came, the caller cut it off, the call ended)."""
        ...


class SessionDirectory(Protocol):
    def find_by_user(self, user_id: str, tenant: str = "default") -> PromptTarget | None:
        """The call ``user_id`` of ``tenant`` is in on this node, or None."""
        ...
