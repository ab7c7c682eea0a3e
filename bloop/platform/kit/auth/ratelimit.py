"""Request rate limits: a sliding-window counter per caller, kept in the Cache port.

The estimate for the window ending now is this fixed window's count plus the previous window's
count weighted by how much of it still overlaps; two counters per caller, whatever the rate."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from bloop.platform.kit.cache import Cache
from bloop.platform.kit.errors import Problem


@dataclass(frozen=True)
class RateState:
    limit: int
    remaining: int
    reset_s: int
    window_s: int
    allowed: bool

    def headers(self) -> dict[str, str]:
        return {"RateLimit-Limit": str(self.limit), "RateLimit-Remaining": str(self.remaining),
                "RateLimit-Reset": str(self.reset_s),
                "RateLimit-Policy": f"{self.limit};w={self.window_s}"}


class RateLimited(Problem):
    status, code = 429, "rate_limited"

    def __init__(self, state: RateState) -> None:
        super().__init__(f"more than {state.limit} requests in {state.window_s} s; slow down",
                         headers={**state.headers(), "Retry-After": str(max(1, state.reset_s))})


class RateLimiter:
    def __init__(self, cache: Cache, limit: int, window_s: int,
                 clock: Callable[[], float] = time.time) -> None:
        self.cache, self.limit, self.window_s, self.clock = cache, limit, window_s, clock

    async def hit(self, who: str) -> RateState:
        state, _ = await self.hit_and_get(who, ())
        return state

    async def hit_and_get(self, who: str, keys: Sequence[str]
                          ) -> tuple[RateState, list[bytes | None]]:
        """Counts a call by `who`, and reads `keys` from the cache in the same round trip
        (what else the request must check, such as revocation marks)."""
        now = self.clock()
        window = int(now // self.window_s)
        into = now - window * self.window_s
        current, values = await self.cache.incr_and_get_many(
            f"rl:{who}:{window}", [f"rl:{who}:{window - 1}", *keys], ttl_s=2 * self.window_s)
        previous = values[0]
        weight = 1 - into / self.window_s
        estimate = current + int(previous or 0) * weight
        state = RateState(limit=self.limit, remaining=max(0, self.limit - math.ceil(estimate)),
                          reset_s=max(1, math.ceil(self.window_s - into)),
                          window_s=self.window_s, allowed=estimate <= self.limit)
        return state, values[1:]
