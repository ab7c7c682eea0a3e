"""The cache port: bytes by key, with optional expiry. Keys are namespaced by the adapter."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol


class Cache(Protocol):
    async def get(self, key: str) -> bytes | None: ...

    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]: ...

    async def set(self, key: str, value: bytes, ttl_s: float | None = None) -> None: ...

    async def set_many(self, items: Mapping[str, bytes], ttl_s: float | None = None) -> None: ...

    async def set_if(self, key: str, value: bytes, ttl_s: float | None = None, *, guard: str,
                     seen: bytes | None) -> bool:
        """Sets `key` only while `guard` still holds `seen` (None, or b"": while it is absent),
        checked and set as one step; whether it set. A copy read from a store is put back this
        way, `seen` read before the store: a writer that changes `guard` after its write (then
        drops the copy) keeps a reader's older copy out."""

    async def delete(self, *keys: str) -> int:
        """Removes the keys; returns how many existed."""

    async def delete_prefix(self, prefix: str) -> int:
        """Removes every key starting with `prefix` (invalidating a whole aggregate)."""

    async def incr(self, key: str, by: int = 1, ttl_s: float | None = None) -> int:
        """Adds to an integer counter, creating it (with `ttl_s`) when absent."""

    async def decr(self, key: str, by: int = 1) -> int:
        """Takes `by` from an integer counter, never below 0: a counter it brings to 0 or below
        is removed, an absent one is not made, one above keeps its expiry. Returns what is
        left."""

    async def incr_and_get_many(self, counter: str, keys: Sequence[str], by: int = 1,
                                ttl_s: float | None = None) -> tuple[int, list[bytes | None]]:
        """`incr(counter, by, ttl_s)` and `get_many(keys)` in one round trip, the reads after
        the increment: what a request pays to be counted and to learn what else it needs."""

    async def ping(self) -> None: ...
