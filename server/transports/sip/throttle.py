"""Warnings about hostile traffic, at most one per key and interval: a flood of junk must not become a
flood of log lines (the cheapest denial of service is filling the disk with our own warnings)."""

from __future__ import annotations

import logging
import time


class LogThrottle:
    def __init__(self, logger: logging.Logger, interval_s: float = 10.0, max_keys: int = 1024) -> None:
        self._log = logger
        self._interval = interval_s
        self._max_keys = max_keys
        self._last: dict[str, tuple[float, int]] = {}  # key -> (last logged, held back since)

    def warning(self, key: str, message: str, *args: object) -> None:
        now = time.monotonic()
        last, held = self._last.get(key, (-self._interval, 0))
        if now - last < self._interval:
            self._last[key] = (last, held + 1)
            return
        if len(self._last) >= self._max_keys:
            self._last.clear()
        self._last[key] = (now, 0)
        suffix = f" ({held} more like it not logged)" if held else ""
        self._log.warning(message + suffix, *args)
