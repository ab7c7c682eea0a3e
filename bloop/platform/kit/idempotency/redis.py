"""Idempotency-Keys in Redis: one string per key, expiring with it, named as the earlier
version named them (`<prefix>:<key>`, a key a hash of its tenant, caller and the client's key),
so a process of either version finds the other's; each tenant's are listed in a sorted set
(`<prefix>:tenant:<tenant>`, scored by when they expire) that an erasure reads to drop them.
Those a process of the earlier version took are listed nowhere: they expire."""

from __future__ import annotations

from typing import Any, cast

from redis.asyncio import Redis

from bloop.platform.kit.idempotency.port import Entry

# Both list the key in its tenant's set, which lives as long as its longest-lived key, and
# forget those expired, on the server's clock.
LISTED = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[2]), ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', '(' .. now)
if redis.call('PTTL', KEYS[2]) < tonumber(ARGV[2]) then redis.call('PEXPIRE', KEYS[2], ARGV[2]) end
"""
# Takes the key for ARGV[4] ms (its pending entry, ARGV[3], ends with when that lapses) and
# keeps it ARGV[2] ms; else answers the entry held and the time (a key expired meanwhile: none).
CLAIM = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local pending = ARGV[3] .. '/' .. string.format('%.0f', now + tonumber(ARGV[4]))
if redis.call('SET', KEYS[1], pending, 'NX', 'PX', ARGV[2]) then
""" + LISTED + """
  return 1
end
return {redis.call('GET', KEYS[1]), now}
"""
# A pending entry is matched on its prefix: its fingerprint and token, not when its lock lapses.
HELD = "local held = redis.call('GET', KEYS[1])\n"
FINISH = HELD + """
if held and string.sub(held, 1, #ARGV[3]) == ARGV[3] then
  redis.call('SET', KEYS[1], ARGV[4], 'PX', ARGV[2])
""" + LISTED + """
end
return 0
"""
RELEASE = HELD + """
if held and string.sub(held, 1, #ARGV[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
CLAIM_TRIES = 3  # a key that expires between the SET and the GET is taken again
DROP_BATCH = 500


class RedisIdempotency:
    def __init__(self, redis: Redis, prefix: str = "bloop:idempotency") -> None:
        self.redis, self.prefix = redis, prefix + ":"
        self._claim = redis.register_script(CLAIM)
        self._finish = redis.register_script(FINISH)
        self._release = redis.register_script(RELEASE)

    def _keys(self, tenant: str, key: str) -> list[str]:
        return [self.prefix + key, f"{self.prefix}tenant:{tenant}"]

    async def claim(self, tenant: str, key: str, fingerprint: str, lock_s: float,
                    keep_s: float = 0.0, token: str = "") -> Entry | None:
        pending = Entry(fingerprint, None, token).encode()
        for _ in range(CLAIM_TRIES):
            held = await self._claim(keys=self._keys(tenant, key),
                                     args=[key, _ms(lock_s + keep_s), pending, _ms(lock_s)])
            if held == 1:
                return None
            entry, now_ms = cast("list[Any]", held)
            if entry is not None:
                return Entry.decode(cast("bytes", entry), int(now_ms))
        raise RuntimeError(f"the Idempotency-Key {key} expired {CLAIM_TRIES} times while taken")

    async def finish(self, tenant: str, key: str, fingerprint: str, response: bytes,
                     keep_s: float, token: str = "") -> None:
        await self._finish(keys=self._keys(tenant, key), args=[
            key, _ms(keep_s), Entry(fingerprint, None, token).encode(),
            Entry(fingerprint, response).encode()])

    async def release(self, tenant: str, key: str, fingerprint: str, token: str = "") -> None:
        await self._release(keys=self._keys(tenant, key)[:1],
                            args=[Entry(fingerprint, None, token).encode()])

    async def drop_tenant(self, tenant: str) -> None:
        listed = self._keys(tenant, "")[1]
        keys = cast("list[bytes]", await self.redis.zrange(listed, 0, -1))
        for at in range(0, len(keys), DROP_BATCH):
            batch = keys[at:at + DROP_BATCH]
            await self.redis.unlink(*(self.prefix.encode() + k for k in batch))
            await self.redis.zrem(listed, *batch)  # not the set: a key listed meanwhile stays

    async def ping(self) -> None:
        await self.redis.ping()


def _ms(seconds: float) -> int:
    return max(1, int(seconds * 1000))

