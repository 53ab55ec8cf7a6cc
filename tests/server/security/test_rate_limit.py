"""Token buckets: burst, refill, Retry-After, bounded memory."""

from __future__ import annotations

from server.security.config import RateLimit
from server.security.rate_limit import RateLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_burst_then_refill_at_the_configured_rate() -> None:
    clock = Clock()
    limiter = RateLimiter(RateLimit(per_minute=6, burst=3), clock=clock)  # one token per 10 s
    assert [limiter.hit("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert 9.9 < limiter.hit("a") <= 10.0  # refused, nothing spent
    assert limiter.hit("b") == 0.0  # another key has its own bucket
    clock.now += 5
    assert 4.9 < limiter.wait_time("a") <= 5.0
    clock.now += 5
    assert limiter.hit("a") == 0.0 and limiter.hit("a") > 0


def test_memory_is_bounded() -> None:
    limiter = RateLimiter(RateLimit(per_minute=1, burst=1), clock=Clock(), max_keys=100)
    for i in range(1000):
        limiter.hit(f"client-{i}")
    assert len(limiter._buckets) == 100
