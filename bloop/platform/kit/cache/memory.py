"""An in-process cache: LRU-bounded, with per-key expiry on a monotonic clock."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence


class MemoryCache:
    def __init__(self, max_entries: int = 10_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.max_entries = max_entries
        self.clock = clock
        self._data: OrderedDict[str, tuple[bytes, float | None]] = OrderedDict()

    def _live(self, key: str) -> bytes | None:
        item = self._data.get(key)
        if item is None:
            return None
        value, expires = item
        if expires is not None and expires <= self.clock():
            del self._data[key]
            return None
        self._data.move_to_end(key)
        return value

    async def get(self, key: str) -> bytes | None:
        return self._live(key)

    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        return [self._live(k) for k in keys]

    async def set(self, key: str, value: bytes, ttl_s: float | None = None) -> None:
        self._data[key] = (bytes(value), None if ttl_s is None else self.clock() + ttl_s)
        self._data.move_to_end(key)
        while len(self._data) > self.max_entries:
            self._data.popitem(last=False)

    async def set_many(self, items: Mapping[str, bytes], ttl_s: float | None = None) -> None:
        for key, value in items.items():
            await self.set(key, value, ttl_s)

    async def delete(self, *keys: str) -> int:
        removed = 0
        for key in keys:
            if self._live(key) is not None:
                del self._data[key]
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
        expires = self._data[key][1]
        self._data[key] = (str(value).encode(), expires)
        return value

    async def decr(self, key: str, by: int = 1) -> int:
        current = self._live(key)
        if current is None:
            return 0
        value = int(current) - by
        if value <= 0:
            del self._data[key]
            return 0
        self._data[key] = (str(value).encode(), self._data[key][1])
        return value

    async def incr_and_get_many(self, counter: str, keys: Sequence[str], by: int = 1,
                                ttl_s: float | None = None) -> tuple[int, list[bytes | None]]:
        return await self.incr(counter, by, ttl_s), await self.get_many(keys)

    async def ping(self) -> None:
        return None
