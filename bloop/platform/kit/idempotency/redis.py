"""Idempotency-Keys in Redis: one string per key, expiring with it, named within its tenant
(`<prefix>:<tenant>:<key>`), so that a tenant's are found (SCAN) and dropped together."""

from __future__ import annotations

import re
from typing import cast

from redis.asyncio import Redis

from bloop.platform.kit.idempotency.port import Entry

RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
FINISH = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
end
return false
"""
CLAIM_TRIES = 3  # a key that expires between SET NX and GET is taken again
DROP_BATCH = 500
_GLOB = re.compile(r"([*?\[\]\\])")


class RedisIdempotency:
    def __init__(self, redis: Redis, prefix: str = "bloop:idempotency") -> None:
        self.redis, self.prefix = redis, prefix + ":"
        self._release = redis.register_script(RELEASE)
        self._finish = redis.register_script(FINISH)

    def _name(self, tenant: str, key: str) -> str:
        return f"{self.prefix}{tenant}:{key}"

    async def claim(self, tenant: str, key: str, fingerprint: str, lock_s: float
                    ) -> Entry | None:
        name, pending = self._name(tenant, key), Entry(fingerprint, None).encode()
        for _ in range(CLAIM_TRIES):
            if await self.redis.set(name, pending, nx=True, px=_ms(lock_s)):
                return None
            held = cast("bytes | None", await self.redis.get(name))
            if held is not None:
                return Entry.decode(held)
        raise RuntimeError(f"the Idempotency-Key {key} expired {CLAIM_TRIES} times while taken")

    async def finish(self, tenant: str, key: str, fingerprint: str, response: bytes,
                     keep_s: float) -> None:
        await self._finish(keys=[self._name(tenant, key)], args=[
            Entry(fingerprint, None).encode(), Entry(fingerprint, response).encode(),
            _ms(keep_s)])

    async def release(self, tenant: str, key: str, fingerprint: str) -> None:
        await self._release(keys=[self._name(tenant, key)],
                            args=[Entry(fingerprint, None).encode()])

    async def drop_tenant(self, tenant: str) -> None:
        batch: list[bytes] = []
        async for name in self.redis.scan_iter(match=self._name(_GLOB.sub(r"\\\1", tenant), "*"),
                                               count=DROP_BATCH):
            batch.append(name)
            if len(batch) == DROP_BATCH:
                await self.redis.unlink(*batch)
                batch.clear()
        if batch:
            await self.redis.unlink(*batch)

    async def ping(self) -> None:
        await self.redis.ping()


def _ms(seconds: float) -> int:
    return max(1, int(seconds * 1000))
