"""The Redis cache adapter."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import cast

from redis.asyncio import Redis


class RedisCache:
    def __init__(self, redis: Redis, namespace: str = "bloop:cache") -> None:
        self.redis = redis
        self.ns = namespace + ":"

    async def get(self, key: str) -> bytes | None:
        return cast("bytes | None", await self.redis.get(self.ns + key))

    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        if not keys:
            return []
        return cast("list[bytes | None]", await self.redis.mget([self.ns + k for k in keys]))

    async def set(self, key: str, value: bytes, ttl_s: float | None = None) -> None:
        await self.redis.set(self.ns + key, value, px=None if ttl_s is None else int(ttl_s * 1000))

    async def set_many(self, items: Mapping[str, bytes], ttl_s: float | None = None) -> None:
        async with self.redis.pipeline(transaction=False) as pipe:
            for key, value in items.items():
                pipe.set(self.ns + key, value, px=None if ttl_s is None else int(ttl_s * 1000))
            await pipe.execute()

    async def delete(self, *keys: str) -> int:
        if not keys:
            return 0
        return int(await self.redis.delete(*(self.ns + k for k in keys)))

    async def delete_prefix(self, prefix: str) -> int:
        removed = 0
        batch: list[bytes] = []
        async for key in self.redis.scan_iter(match=self._glob(prefix) + "*", count=500):
            batch.append(key)
            if len(batch) >= 500:
                removed += int(await self.redis.delete(*batch))
                batch.clear()
        if batch:
            removed += int(await self.redis.delete(*batch))
        return removed

    def _glob(self, prefix: str) -> str:
        escaped = "".join("\\" + ch if ch in "*?[]\\" else ch for ch in self.ns + prefix)
        return escaped

    async def incr(self, key: str, by: int = 1, ttl_s: float | None = None) -> int:
        count, _ = await self.incr_and_get_many(key, (), by, ttl_s)
        return count

    async def incr_and_get_many(self, counter: str, keys: Sequence[str], by: int = 1,
                                ttl_s: float | None = None) -> tuple[int, list[bytes | None]]:
        # One MULTI/EXEC pipeline: sent in one write, answered in one read.
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.incrby(self.ns + counter, by)
            if ttl_s is not None:
                pipe.pexpire(self.ns + counter, int(ttl_s * 1000), nx=True)
            if keys:
                pipe.mget([self.ns + k for k in keys])
            result = await pipe.execute()
        values = cast("list[bytes | None]", result[-1]) if keys else []
        return int(result[0]), values

    async def ping(self) -> None:
        await self.redis.ping()
