"""An in-process cache: LRU-bounded by entries and by bytes, with per-key expiry on a monotonic
clock. Expired entries are swept as the cache is used, whether they are read or not: each
read or write drops a few of those whose time has passed, soonest first (a heap of expiry
times), so a process that only reads frees them too."""

from __future__ import annotations

import heapq
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence

DEFAULT_MAX_BYTES = 64 * 1024 * 1024
LARGEST_SHARE = 16
"""A value over `max_bytes // LARGEST_SHARE` is not kept: one would push out many others."""
SWEEP_PER_CALL = 32
"""At most this many expired entries are dropped by one call, so none waits on a mass expiry."""


class MemoryCache:
    def __init__(self, max_entries: int = 10_000, max_bytes: int = DEFAULT_MAX_BYTES,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.largest = max_bytes // LARGEST_SHARE
        self.clock = clock
        self.size = 0
        """The bytes of every key and value held."""
        self._data: OrderedDict[str, tuple[bytes, float | None]] = OrderedDict()
        # (expiry, key) of each entry given a ttl; an entry since dropped, or given another
        # expiry, leaves its pair behind until the sweep reaches it or the heap is rebuilt.
        self._expiries: list[tuple[float, str]] = []

    def _live(self, key: str, now: float | None = None) -> bytes | None:
        """The value of `key`, unless it expired (by `now`, if the clock was read already)."""
        item = self._data.get(key)
        if item is None:
            return None
        value, expires = item
        if expires is not None and expires <= (self.clock() if now is None else now):
            self._drop(key)
            return None
        self._data.move_to_end(key)
        return value

    def _drop(self, key: str) -> None:
        value, _ = self._data.pop(key)
        self.size -= len(key) + len(value)

    def _put(self, key: str, value: bytes, expires: float | None) -> None:
        """Stores `value` as the newest entry, then drops the oldest past either bound."""
        data = self._data
        old = data.get(key)
        size = self.size + len(key) + len(value)
        if old is not None:
            size -= len(key) + len(old[0])
        data[key] = (value, expires)
        data.move_to_end(key)
        while len(data) > self.max_entries or size > self.max_bytes:
            oldest, (dropped, _) = data.popitem(last=False)
            size -= len(oldest) + len(dropped)
        self.size = size

    def _swept(self) -> float | None:
        """Drops a few expired entries, if any is due; the clock's reading, if it was read (only
        when an entry has a ttl)."""
        heap = self._expiries
        if not heap:
            return None
        now = self.clock()
        if heap[0][0] <= now:
            self._sweep(now)
        return now

    def _sweep(self, now: float) -> None:
        heap = self._expiries
        for _ in range(SWEEP_PER_CALL):
            if not heap or heap[0][0] > now:
                return
            expires, key = heapq.heappop(heap)
            item = self._data.get(key)
            if item is not None and item[1] == expires:
                self._drop(key)

    async def get(self, key: str) -> bytes | None:
        return self._live(key, self._swept())

    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        now = self._swept()
        return [self._live(k, now) for k in keys]

    async def set(self, key: str, value: bytes, ttl_s: float | None = None) -> None:
        heap = self._expiries
        now = self.clock() if heap or ttl_s is not None else 0.0
        if heap and heap[0][0] <= now:
            self._sweep(now)
        if len(key) + len(value) > self.largest:
            # Not kept (a cache may miss), and no older value is left to be read in its place.
            if key in self._data:
                self._drop(key)
            return
        if ttl_s is None:
            self._put(key, bytes(value), None)
            return
        expires = now + ttl_s
        self._put(key, bytes(value), expires)
        heapq.heappush(heap, (expires, key))
        if len(heap) > 4 * len(self._data) + 1024:
            self._expiries = [(e, k) for k, (_, e) in self._data.items() if e is not None]
            heapq.heapify(self._expiries)

    async def set_many(self, items: Mapping[str, bytes], ttl_s: float | None = None) -> None:
        for key, value in items.items():
            await self.set(key, value, ttl_s)

    async def set_if(self, key: str, value: bytes, ttl_s: float | None = None, *, guard: str,
                     seen: bytes | None) -> bool:
        if (self._live(guard) or b"") != (seen or b""):
            return False
        await self.set(key, value, ttl_s)  # awaits nothing: no other task runs in between
        return True

    async def delete(self, *keys: str) -> int:
        removed = 0
        for key in keys:
            if self._live(key) is not None:
                self._drop(key)
                removed += 1
        return removed

    async def delete_prefix(self, prefix: str) -> int:
        doomed = [k for k in self._data if k.startswith(prefix)]
        return await self.delete(*doomed)

    async def incr(self, key: str, by: int = 1, ttl_s: float | None = None) -> int:
        current = self._live(key)
        if current is None:
            value = by
            await self.set(key, str(value).encode(), ttl_s)
            return value
        value = int(current) + by
        self._put(key, str(value).encode(), self._data[key][1])
        self._swept()
        return value

    async def decr(self, key: str, by: int = 1) -> int:
        current = self._live(key)
        if current is None:
            return 0
        value = int(current) - by
        if value <= 0:
            self._drop(key)
            return 0
        self._put(key, str(value).encode(), self._data[key][1])
        self._swept()
        return value

    async def incr_and_get_many(self, counter: str, keys: Sequence[str], by: int = 1,
                                ttl_s: float | None = None) -> tuple[int, list[bytes | None]]:
        return await self.incr(counter, by, ttl_s), await self.get_many(keys)

    async def ping(self) -> None:
        return None
