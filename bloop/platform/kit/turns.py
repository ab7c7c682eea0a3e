"""Writers of one record taking turns within a process."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Hashable
from contextlib import asynccontextmanager


class Turns:
    """One holder at a time for each key, in this process: writers of one record queue here
    instead of racing for it (each read-and-write that loses to another is tried again, so a
    burst of N writers costs N rounds and the last ones run out of tries). Writers in other
    processes still race, and the store's own check decides between them. A key's lock is
    dropped when nobody holds or waits for it."""

    def __init__(self) -> None:
        self._locks: dict[Hashable, tuple[asyncio.Lock, int]] = {}

    @asynccontextmanager
    async def of(self, key: Hashable) -> AsyncIterator[None]:
        lock, users = self._locks.get(key) or (asyncio.Lock(), 0)
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users == 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)

    def __len__(self) -> int:
        return len(self._locks)


async def back_off(attempt: int, first_s: float = 0.005, most_s: float = 0.2) -> None:
    """Waits before trying again a read-and-write that lost to a writer in another process
    (`attempt` the tries lost so far, from 0): a random time up to `first_s` doubled at each
    try, `most_s` at most, so that writers racing for one record spread out instead of
    colliding again in step."""
    await asyncio.sleep(random.uniform(0, min(most_s, first_s * 2 ** attempt)))
