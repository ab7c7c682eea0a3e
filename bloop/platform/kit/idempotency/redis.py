"""Idempotency-Keys in Redis: one string per key, expiring with it."""

from __future__ import annotations

from typing import cast

from redis.asyncio import Redis

from bloop.platform.kit.idempotency.port import Entry

RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
CLAIM_TRIES = 3  # a key that expires between SET NX and GET is taken again


class RedisIdempotency:
    def __init__(self, redis: Redis, prefix: str = "bloop:idempotency") -> None:
        self.redis, self.prefix = redis, prefix + ":"
        self._release = redis.register_script(RELEASE)

    async def claim(self, key: str, fingerprint: str, lock_s: float) -> Entry | None:
        pending = Entry(fingerprint, None).encode()
        for _ in range(CLAIM_TRIES):
            if await self.redis.set(self.prefix + key, pending, nx=True, px=_ms(lock_s)):
                return None
            held = cast("bytes | None", await self.redis.get(self.prefix + key))
            if held is not None:
                return Entry.decode(held)
        raise RuntimeError(f"the Idempotency-Key {key} expired {CLAIM_TRIES} times while taken")

    async def finish(self, key: str, fingerprint: str, response: bytes, keep_s: float) -> None:
        await self.redis.set(self.prefix + key, Entry(fingerprint, response).encode(),
                             px=_ms(keep_s))

    async def release(self, key: str, fingerprint: str) -> None:
        await self._release(keys=[self.prefix + key], args=[Entry(fingerprint, None).encode()])

    async def ping(self) -> None:
        await self.redis.ping()


def _ms(seconds: float) -> int:
    return max(1, int(seconds * 1000))
