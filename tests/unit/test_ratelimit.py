"""The sliding-window rate limiter over the Cache port."""

from __future__ import annotations

from bloop.platform.kit.auth import RateLimiter
from bloop.platform.kit.cache import MemoryCache


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


async def test_a_window_allows_the_limit_then_refuses() -> None:
    clock = Clock(6000.0)
    limiter = RateLimiter(MemoryCache(clock=clock), limit=3, window_s=60, clock=clock)
    states = [await limiter.hit("u") for _ in range(4)]
    assert [s.allowed for s in states] == [True, True, True, False]
    assert [s.remaining for s in states[:3]] == [2, 1, 0]
    assert states[0].headers()["RateLimit-Policy"] == "3;w=60"
    assert (await limiter.hit("someone-else")).allowed


async def test_the_previous_window_weighs_in_while_it_overlaps() -> None:
    clock = Clock(6000.0)
    limiter = RateLimiter(MemoryCache(clock=clock), limit=4, window_s=60, clock=clock)
    for _ in range(4):
        await limiter.hit("u")
    clock.now += 60 + 15  # 3/4 of the old window still overlaps: 3 of its 4 count
    assert (await limiter.hit("u")).allowed
    assert not (await limiter.hit("u")).allowed
    clock.now += 60
    assert (await limiter.hit("u")).allowed
