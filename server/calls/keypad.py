"""``Keypad``: the keys a caller pressed during one call, for prompts that expect an answer by key
("press 1 to confirm your appointment")."""

from __future__ import annotations

import asyncio
import time


class Keypad:
    """Keys in the order pressed, with their monotonic times; ``wait_for`` answers "which of these keys did
    the caller press since ``since``", waiting up to a timeout for one."""

    def __init__(self, history: int = 64) -> None:
        self._keys: list[tuple[str, float]] = []
        self._history = history
        self._changed = asyncio.Event()
        self._closed = False

    @property
    def pressed(self) -> str:
        return "".join(key for key, _ in self._keys)

    def press(self, key: str, at: float | None = None) -> None:
        self._keys.append((key, time.monotonic() if at is None else at))
        del self._keys[: -self._history]
        self._changed.set()
        self._changed = asyncio.Event()

    def close(self) -> None:
        """The call ended: waiters return what they have (None)."""
        self._closed = True
        self._changed.set()

    def first_since(self, since: float) -> str | None:
        return next((key for key, at in self._keys if at >= since), None)

    async def wait_for(self, since: float, timeout_s: float) -> str | None:
        """The first key pressed at or after ``since`` (any key: the caller of this method judges it), or
        None when none came within ``timeout_s`` or the call ended."""
        deadline = time.monotonic() + timeout_s
        while (key := self.first_since(since)) is None and not self._closed:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            try:
                await asyncio.wait_for(self._changed.wait(), remaining)
            except TimeoutError:
                return None
        return key
