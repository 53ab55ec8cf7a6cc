"""Token-bucket rate limits keyed by client address, token or principal (in memory, per node)."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

from server.security.config import RateLimit


class RateLimiter:
    """``hit(key)`` spends one token of ``key``'s bucket: 0.0 when allowed, else the seconds until one is
    available (nothing is spent then). ``wait_time(key)`` tells the same without spending.

    At most ``max_keys`` buckets are kept (least recently used dropped first), so a flood of client
    addresses cannot grow memory without bound; a dropped bucket comes back full."""

    def __init__(
        self, limit: RateLimit, clock: Callable[[], float] = time.monotonic, max_keys: int = 10_000
    ) -> None:
        self.rate = limit.per_minute / 60.0
        self.burst = float(limit.burst)
        self._clock = clock
        self._max_keys = max_keys
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # key -> (tokens, at)

    def _level(self, key: str) -> float:
        tokens, at = self._buckets.get(key, (self.burst, self._clock()))
        return min(self.burst, tokens + (self._clock() - at) * self.rate)

    def wait_time(self, key: str) -> float:
        level = self._level(key)
        return 0.0 if level >= 1.0 else (1.0 - level) / self.rate

    def hit(self, key: str) -> float:
        level = self._level(key)
        if level < 1.0:
            return (1.0 - level) / self.rate
        self._buckets[key] = (level - 1.0, self._clock())
        self._buckets.move_to_end(key)
        while len(self._buckets) > self._max_keys:
            self._buckets.popitem(last=False)
        return 0.0
