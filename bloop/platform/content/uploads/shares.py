"""A process's places of one kind (export builds, kept zips, PDF readers) shared fairly: at most
`size` in all, at most `per_user` held by one user (principal) and `per_tenant` by one tenant,
so that one user, or one tenant, never holds all of them while others wait.

The tenant share is kept only while another tenant competes, so a deployment of one tenant
uses every place (work-conserving):
 - places refused at once (`Shares.refusal`, export builds and kept zips): another tenant
   competes while it holds one of these places, or asked for one (given or refused) within
   the last `RECENT_S` seconds (`Recent`);
 - places waited for (`Queue`, PDF readers): another tenant competes while one of its requests
   waits. A free place goes to the first waiter (FIFO) whose tenant is under its share, and
   to the first waiter when none is: a tenant beyond its share waits only while another
   tenant's request is queued for the place."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

Refusal = Literal["all", "user", "tenant"]

RECENT_S = 60.0


def tenant_share(size: int) -> int:
    """What one tenant may hold of `size` places: all but one when there is more than one."""
    return size - 1 if size > 1 else 1


@dataclass
class Recent:
    """When each tenant last asked for a place (monotonic seconds), forgotten after
    `recent_s`."""

    recent_s: float = RECENT_S
    clock: Callable[[], float] = time.monotonic
    asked: dict[str, float] = field(default_factory=dict)

    def note(self, tenant: str) -> None:
        self.asked[tenant] = self.clock()

    def others(self, tenant: str) -> bool:
        """Whether a tenant other than `tenant` asked within `recent_s`."""
        since = self.clock() - self.recent_s
        for old in [t for t, at in self.asked.items() if at < since]:
            del self.asked[old]
        return any(t != tenant for t in self.asked)


class Shares:
    def __init__(self, size: int, per_user: int, per_tenant: int,
                 recent: Recent | None = None) -> None:
        self.size, self.per_user, self.per_tenant = size, per_user, per_tenant
        self.recent = recent or Recent()
        self.taken = 0
        self.users: Counter[str] = Counter()
        self.tenants: Counter[str] = Counter()
        self.freed: Callable[[], None] = lambda: None

    def contended(self, tenant: str) -> bool:
        """Whether another tenant than `tenant` holds a place or asked for one recently; notes
        that `tenant` asks."""
        others = any(t != tenant for t in self.tenants) or self.recent.others(tenant)
        self.recent.note(tenant)
        return others

    def refusal(self, user: str | None, tenant: str, contended: bool = True) -> Refusal | None:
        """Why `user` of `tenant` may not take a place now (`user` None: counted by tenant
        alone), or None when it may; the tenant's share is kept only when `contended`."""
        if self.taken >= self.size:
            return "all"
        if user is not None and self.users[user] >= self.per_user:
            return "user"
        if contended and self.tenants[tenant] >= self.per_tenant:
            return "tenant"
        return None

    def take(self, user: str | None, tenant: str) -> Callable[[], None]:
        """A place, which `refusal` allows, and what gives it back (once is enough)."""
        self.taken += 1
        self.tenants[tenant] += 1
        if user is not None:
            self.users[user] += 1
        given = False

        def give() -> None:
            nonlocal given
            if given:
                return
            given = True
            self.taken -= 1
            self.tenants[tenant] -= 1
            if not self.tenants[tenant]:
                del self.tenants[tenant]
            if user is not None:
                self.users[user] -= 1
                if not self.users[user]:
                    del self.users[user]
            self.freed()

        return give


@dataclass(eq=False)
class _Waiter:
    user: str | None
    tenant: str
    given: asyncio.Future[Callable[[], None]]


class Queue:
    """`Shares` waited for, in turn: a free place goes to the first waiter under its tenant's
    share, else to the first waiter (within its user's share either way)."""

    def __init__(self, shares: Shares) -> None:
        self.shares = shares
        self.waiters: list[_Waiter] = []
        shares.freed = self._hand_out

    def _next(self) -> _Waiter | None:
        allowed = [w for w in self.waiters if not w.given.done()
                   and self.shares.refusal(w.user, w.tenant, False) is None]
        under = (w for w in allowed if self.shares.refusal(w.user, w.tenant) is None)
        return next(under, allowed[0] if allowed else None)

    def _hand_out(self) -> None:
        while (waiter := self._next()) is not None:
            self.waiters.remove(waiter)
            waiter.given.set_result(self.shares.take(waiter.user, waiter.tenant))

    async def take(self, user: str | None, tenant: str) -> Callable[[], None]:
        """A place once it is this request's turn (cancel the wait to give up), and what gives
        it back."""
        waiter = _Waiter(user, tenant, asyncio.get_running_loop().create_future())
        self.waiters.append(waiter)
        self._hand_out()
        try:
            return await waiter.given
        except asyncio.CancelledError:
            if waiter in self.waiters:
                self.waiters.remove(waiter)
            elif waiter.given.done() and not waiter.given.cancelled():
                waiter.given.result()()  # handed a place as it gave up
            raise
