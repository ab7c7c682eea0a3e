"""A process's places of one kind (export builds, kept zips, PDF readers) shared fairly: at most
`size` in all, at most `per_user` held by one user (principal) and `per_tenant` by one tenant,
so that one user, or one tenant, never holds all of them while others wait."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from typing import Literal

Refusal = Literal["all", "user", "tenant"]


def tenant_share(size: int) -> int:
    """What one tenant may hold of `size` places: all but one when there is more than one."""
    return size - 1 if size > 1 else 1


class Shares:
    def __init__(self, size: int, per_user: int, per_tenant: int) -> None:
        self.size, self.per_user, self.per_tenant = size, per_user, per_tenant
        self.taken = 0
        self.users: Counter[str] = Counter()
        self.tenants: Counter[str] = Counter()
        self.freed: Callable[[], None] = lambda: None

    def refusal(self, user: str | None, tenant: str) -> Refusal | None:
        """Why `user` of `tenant` may not take a place now (`user` None: counted by tenant
        alone), or None when it may."""
        if self.taken >= self.size:
            return "all"
        if user is not None and self.users[user] >= self.per_user:
            return "user"
        if self.tenants[tenant] >= self.per_tenant:
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


class Queue:
    """`Shares` waited for: a place is taken by the first waiter whose share allows it, so a
    tenant beyond its share waits while another tenant's request goes ahead."""

    def __init__(self, shares: Shares) -> None:
        self.shares = shares
        self.waiters: list[asyncio.Future[None]] = []
        shares.freed = self._wake

    def _wake(self) -> None:
        for waiter in self.waiters:
            if not waiter.done():
                waiter.set_result(None)

    async def take(self, user: str | None, tenant: str) -> Callable[[], None]:
        """A place once one is free within the shares of `user` and `tenant` (cancel the wait
        to give up), and what gives it back."""
        while self.shares.refusal(user, tenant) is not None:
            waiter = asyncio.get_running_loop().create_future()
            self.waiters.append(waiter)
            try:
                await waiter
            finally:
                self.waiters.remove(waiter)
        return self.shares.take(user, tenant)
