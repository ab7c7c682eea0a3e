"""Work a request leaves to run after its answer, per tenant: one task per tenant at a time,
and what is added while it runs joins it."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable

from bloop.platform.kit.waiting import stop_all


class Backlog:
    """`work(tenant, items)` runs on the items gathered for a tenant, again as long as more
    arrive meanwhile. A run that fails is logged with `failed` (what is left undone and what
    makes up for it) and not retried."""

    def __init__(self, name: str, work: Callable[[str, set[str]], Awaitable[None]],
                 failed: str, log: logging.Logger) -> None:
        self.name, self.work, self.failed, self.log = name, work, failed, log
        self._items: dict[str, set[str]] = {}
        self._running: dict[str, asyncio.Task[None]] = {}

    def add(self, tenant: str, items: Iterable[str]) -> None:
        added = set(items)
        if not added:
            return
        self._items.setdefault(tenant, set()).update(added)
        if tenant not in self._running:
            self._running[tenant] = asyncio.create_task(self._run(tenant),
                                                        name=f"{self.name}-{tenant}")

    def running(self) -> list[asyncio.Task[None]]:
        return list(self._running.values())

    async def _run(self, tenant: str) -> None:
        try:
            while items := self._items.pop(tenant, None):
                await self.work(tenant, items)
        except Exception:
            self.log.exception(self.failed, extra={"tenant": tenant})
        finally:
            del self._running[tenant]


async def settled(*backlogs: Backlog) -> None:
    """Waits until every run of `backlogs` has ended, those started meanwhile too."""
    while tasks := [t for b in backlogs for t in b.running()]:
        await asyncio.wait(tasks)


async def close(*backlogs: Backlog, wait_s: float = 5.0) -> None:
    """Gives the runs under way `wait_s` to end, then stops them."""
    tasks = [t for b in backlogs for t in b.running()]
    if tasks:
        await asyncio.wait(tasks, timeout=wait_s)
    await stop_all([t for t in tasks if not t.done()])
