"""Request rate limits: a sliding-window counter per caller, kept in the Cache port.

The estimate for the window ending now is this fixed window's count plus the previous window's
count weighted by how much of it still overlaps; two counters per caller, whatever the rate.

With a `local_share` above 0, a process may count up to that share of a caller's limit itself
between two exchanges with the shared counters, while the caller's estimate stays under the
rest of the limit; it adds what it counted every `sync_s` (all callers in one batch). A
caller's first call of a window, a call near the limit and a call beyond the local share are
added to the shared counter before they are answered. So a caller far from its limit costs no
round trip, and near it the count is exact but for what other processes have not added yet:
at most `local_share` of the limit each. A failed exchange puts the limiter back to counting
every call in the cache (which then answers 503 while the cache is down) until one succeeds.

A refused call is given back (a second exchange, `incr` by -1): refusals do not count, so a
caller that keeps calling gets through as its count falls. Its `Retry-After` is the time until
the weighted count lets one more call through."""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from bloop.platform.kit.cache import Cache
from bloop.platform.kit.errors import Problem
from bloop.platform.kit.waiting import stopped


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

    def raw_headers(self) -> list[tuple[bytes, bytes]]:
        """`headers()` as ASGI header pairs, to append to a response's own."""
        return [(b"ratelimit-limit", b"%d" % self.limit),
                (b"ratelimit-remaining", b"%d" % self.remaining),
                (b"ratelimit-reset", b"%d" % self.reset_s),
                (b"ratelimit-policy", b"%d;w=%d" % (self.limit, self.window_s))]


class RateLimited(Problem):
    """`limit`: which limiter refused, as `bloop_rate_limited_total` counts it."""

    status, code = 429, "rate_limited"

    def __init__(self, state: RateState, limit: str) -> None:
        super().__init__(f"more than {state.limit} requests in {state.window_s} s; slow down",
                         headers={**state.headers(), "Retry-After": str(max(1, state.reset_s))})
        self.limit = limit


@dataclass
class _Tally:
    """One caller's counts for one window as this process knows them."""

    window: int
    shared: int  # the window's shared counter at the last exchange
    previous: int  # the previous window's shared counter
    pending: int = 0  # calls counted here and not yet added to the shared counter


class RateLimiter:
    def __init__(self, cache: Cache, limit: int, window_s: int,
                 clock: Callable[[], float] = time.time, *, local_share: float = 0.0,
                 sync_s: float = 0.1, max_callers: int = 100_000) -> None:
        self.cache, self.limit, self.window_s, self.clock = cache, limit, window_s, clock
        self.local_max = int(limit * local_share)
        self.local_below = limit - self.local_max
        self.sync_s = sync_s
        self.max_callers = max_callers
        self._tallies: dict[str, _Tally] = {}
        self._late: list[tuple[str, int, int]] = []  # calls of a past window, not yet added
        self._sync: asyncio.Task[None] | None = None
        self._in_step = True

    async def hit(self, who: str) -> RateState:
        """Counts a call by `who`: in this process while `who`'s estimate stays under the
        limit less `local_share` of it and fewer than that share were counted here since the
        last exchange (see the module); else in the cache, with what was counted here."""
        now = self.clock()
        window = int(now // self.window_s)
        tally = self._tallies.get(who)
        if (tally is not None and tally.window == window and self._in_step
                and tally.pending < self.local_max):
            estimate = (tally.shared + tally.pending + 1
                        + tally.previous * self._overlap(now, window))
            if estimate <= self.local_below:
                tally.pending += 1
                if self._sync is None:
                    self._sync = asyncio.create_task(self._sync_soon(), name="ratelimit-sync")
                return self._state(tally.shared + tally.pending, tally.previous, now, window)
        return await self._exchange(who, window, now)

    async def _exchange(self, who: str, window: int, now: float) -> RateState:
        tally = self._tallies.get(who)
        by = 1
        if tally is not None and tally.window == window:
            by, tally.pending = by + tally.pending, 0
        try:
            current, values = await self.cache.incr_and_get_many(
                self._key(who, window), [self._key(who, window - 1)], by=by,
                ttl_s=2 * self.window_s)
        except BaseException:
            if tally is not None and tally.window == window:
                tally.pending += by - 1  # only this call goes uncounted: it fails
            raise
        self._in_step = True
        previous = int(values[0] or 0)
        state = self._state(current, previous, now, window)
        if not state.allowed:
            # A refused call is not counted: the caller that keeps calling gets through once
            # its count falls (as Retry-After says), not never.
            current -= 1
            with contextlib.suppress(Exception):  # refused anyway; counted when it fails
                await self.cache.incr(self._key(who, window), -1, ttl_s=2 * self.window_s)
        tally = self._tallies.get(who)
        if tally is not None and tally.window == window:
            tally.shared, tally.previous = max(tally.shared, current), previous
        elif tally is None or tally.window < window:
            if tally is not None and tally.pending:
                self._late.append((who, tally.window, tally.pending))
            elif tally is None and len(self._tallies) >= self.max_callers:
                self._forget_idle()
            self._tallies[who] = _Tally(window, current, previous)
        return state

    def _forget_idle(self) -> None:
        for who in [w for w, t in self._tallies.items() if not t.pending]:
            del self._tallies[who]
            if len(self._tallies) < self.max_callers // 2:
                break

    async def _sync_soon(self) -> None:
        try:
            await asyncio.sleep(self.sync_s)
            await self.sync()
        finally:
            self._sync = None

    async def sync(self) -> None:
        """Adds the calls counted here to the shared counters, one exchange per caller, all in
        one batch; learns the other processes' counts on the way."""
        now = self.clock()
        current = int(now // self.window_s)
        waiting = [(who, t.window, t.pending) for who, t in self._tallies.items() if t.pending]
        for who, _, _ in waiting:
            self._tallies[who].pending = 0
        waiting += self._late
        self._late = []
        results = await asyncio.gather(*(self.cache.incr_and_get_many(
            self._key(who, window), [self._key(who, window - 1)], by=by,
            ttl_s=2 * self.window_s) for who, window, by in waiting), return_exceptions=True)
        for (who, window, by), result in zip(waiting, results, strict=True):
            tally = self._tallies.get(who)
            if isinstance(result, BaseException):
                self._in_step = False
                if tally is not None and tally.window == window:
                    tally.pending += by
                else:
                    self._late.append((who, window, by))
                continue
            shared, values = result
            if tally is not None and tally.window == window:
                tally.shared, tally.previous = max(tally.shared, shared), int(values[0] or 0)
        for who in [w for w, t in self._tallies.items() if t.window < current and not t.pending]:
            del self._tallies[who]

    async def close(self) -> None:
        """Adds what is still counted here to the shared counters (best effort)."""
        if self._sync is not None:
            await stopped(self._sync)
        with contextlib.suppress(Exception):
            await self.sync()

    def _overlap(self, now: float, window: int) -> float:
        return 1 - (now - window * self.window_s) / self.window_s

    def _state(self, count: int, previous: int, now: float, window: int) -> RateState:
        """The state after a call: `count` calls of this window with it, `previous` of the
        previous one. `reset_s`: when none remain, the seconds until the weighted count lets
        one more call through (`Retry-After`); else the end of this window."""
        estimate = count + previous * self._overlap(now, window)
        allowed = estimate <= self.limit
        remaining = max(0, self.limit - math.ceil(estimate))
        into = now - window * self.window_s
        if remaining:
            reset_s = max(1, math.ceil(self.window_s - into))
        else:
            reset_s = int(self._until_one_more(count if allowed else count - 1, previous, into)) + 1
        return RateState(limit=self.limit, remaining=remaining, reset_s=reset_s,
                         window_s=self.window_s, allowed=allowed)

    def _until_one_more(self, count: int, previous: int, into: float) -> float:
        """Seconds from `into` this window until `count + 1 + previous * overlap` is within
        the limit: later in this window, as the previous one's weight falls, or in the next,
        where this window's `count` is the one that weighs."""
        room = self.limit - count - 1  # what the previous window may still weigh
        if room >= 0:
            return 0.0 if previous <= room else max(
                0.0, self.window_s * (1 - room / previous) - into)
        room = self.limit - 1
        later = 0.0 if count <= room else self.window_s * (1 - room / count)
        return self.window_s - into + later

    @staticmethod
    def _key(who: str, window: int) -> str:
        return f"rl:{who}:{window}"
