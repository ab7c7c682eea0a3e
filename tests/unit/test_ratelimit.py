"""The sliding-window rate limiter over the Cache port."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

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


class Counting(MemoryCache):
    """The in-process cache, counting the exchanges a server cache would make."""

    def __init__(self, clock: Clock) -> None:
        super().__init__(clock=clock)
        self.exchanges = 0
        self.down = False

    async def incr_and_get_many(self, counter: str, keys: Sequence[str], by: int = 1,
                                ttl_s: float | None = None) -> tuple[int, list[bytes | None]]:
        if self.down:
            raise ConnectionError("the cache is down")
        self.exchanges += 1
        return await super().incr_and_get_many(counter, keys, by, ttl_s)


def counting_locally(limit: int, clock: Clock | None = None) -> tuple[Counting, RateLimiter]:
    """A limiter that counts up to 5% of `limit` in process, over a counting cache."""
    clock = clock or Clock(6000.0)
    cache = Counting(clock)
    return cache, RateLimiter(cache, limit=limit, window_s=60, clock=clock, local_share=0.05)


async def test_a_caller_far_from_its_limit_is_counted_in_process_then_added() -> None:
    cache, limiter = counting_locally(1000)
    states = [await limiter.hit("u") for _ in range(30)]
    assert cache.exchanges == 1  # the first call of the window; the rest were counted here
    assert [s.remaining for s in states] == list(range(999, 969, -1))
    await limiter.sync()
    assert cache.exchanges == 2
    assert await cache.get("rl:u:100") == b"30"


async def test_a_process_counts_at_most_its_share_between_exchanges() -> None:
    cache, limiter = counting_locally(100)
    for _ in range(21):
        await limiter.hit("u")
    # the first call, then 5 counted here and added with the 7th, and so on
    assert cache.exchanges == 4
    assert await cache.get("rl:u:100") == b"19"


async def test_near_the_limit_every_call_is_counted_in_the_cache() -> None:
    cache, limiter = counting_locally(100)
    states = [await limiter.hit("u") for _ in range(95)]
    # Past the limit less the share counted in process, each call is an exchange.
    for _ in range(5):
        exchanges = cache.exchanges
        states.append(await limiter.hit("u"))
        assert cache.exchanges == exchanges + 1
    states.append(await limiter.hit("u"))
    assert [s.allowed for s in states] == [True] * 100 + [False]
    exchanges = cache.exchanges
    await limiter.hit("u")
    await limiter.hit("u")
    assert cache.exchanges == exchanges + 2


async def test_processes_sharing_a_cache_let_through_at_most_their_share_more() -> None:
    clock = Clock(6000.0)
    cache = Counting(clock)
    limit, share = 100, 0.05
    processes = [RateLimiter(cache, limit=limit, window_s=60, clock=clock, local_share=share)
                 for _ in range(3)]
    allowed = 0
    for n in range(600):  # round-robin, no sync in between: the worst case for the estimate
        allowed += (await processes[n % 3].hit("u")).allowed
    assert limit <= allowed <= limit + (len(processes) - 1) * int(limit * share)


async def test_a_failed_exchange_sends_every_call_to_the_cache_until_one_succeeds() -> None:
    cache, limiter = counting_locally(1000)
    for _ in range(5):
        await limiter.hit("u")
    cache.down = True
    await limiter.sync()  # the four calls counted here stay counted here
    with pytest.raises(ConnectionError):
        await limiter.hit("u")
    cache.down = False
    assert (await limiter.hit("u")).remaining == 1000 - 6
    assert await cache.get("rl:u:100") == b"6"
    await limiter.hit("u")
    assert cache.exchanges == 2  # in step again: counted here


async def test_closing_adds_what_was_counted_here() -> None:
    cache, limiter = counting_locally(1000)
    for _ in range(7):
        await limiter.hit("u")
    await limiter.close()
    assert await cache.get("rl:u:100") == b"7"


async def test_calls_counted_here_in_a_window_that_ended_are_still_added() -> None:
    clock = Clock(6000.0)
    cache, limiter = counting_locally(1000, clock)
    for _ in range(4):
        await limiter.hit("u")
    clock.now += 60
    await limiter.hit("u")
    await limiter.sync()
    assert await cache.get("rl:u:100") == b"4"
    assert await cache.get("rl:u:101") == b"1"


async def test_refused_calls_are_not_counted() -> None:
    """Each refused call was counted, so a client that kept calling stayed over the limit for
    ever: its refusals now leave the count as it was."""
    clock = Clock(6000.5)
    cache = MemoryCache(clock=clock)
    limiter = RateLimiter(cache, limit=3, window_s=60, clock=clock)
    for _ in range(3):
        assert (await limiter.hit("u")).allowed
    for _ in range(50):
        assert not (await limiter.hit("u")).allowed
    assert await cache.get("rl:u:100") == b"3"
    clock.now = 6080.5  # the next window, where the 3 weigh 2/3: 1 + 2 is within 3
    assert (await limiter.hit("u")).allowed


@pytest.mark.parametrize(("at", "calls", "retry_after"), [
    # 3 calls at the start of the window: the next window's first call is let through once
    # the 3 weigh at most 2, 20 s into it (80 s, not the 60 s to this window's end).
    pytest.param(6000.5, [0.0] * 3, 80, id="this-window-full"),
    # 4 calls in the previous window and 1 in this one, 15.5 s in: the next is let through
    # once 1 + 1 + 4 * overlap is within 4, 30 s into the window: 15 s from now, not the 45 s
    # to its end.
    pytest.param(6075.5, [-60.0] * 4 + [0.0], 15, id="previous-window-weighs"),
])
async def test_retry_after_is_when_one_more_call_gets_through(
        at: float, calls: list[float], retry_after: int) -> None:
    clock = Clock(at)
    limit = len([c for c in calls if c == calls[0]])
    limiter = RateLimiter(MemoryCache(clock=clock), limit=limit, window_s=60, clock=clock)
    for offset in calls:
        clock.now = at + offset
        assert (await limiter.hit("u")).allowed
    clock.now = at
    refused = await limiter.hit("u")
    assert not refused.allowed
    assert refused.reset_s == retry_after
    clock.now = at + retry_after - 1
    assert not (await limiter.hit("u")).allowed
    clock.now = at + retry_after
    assert (await limiter.hit("u")).allowed
