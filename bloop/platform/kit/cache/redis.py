"""The Redis cache adapter."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, cast

from redis.asyncio import Redis
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError

from bloop.platform.kit.cache.resp import PipelinedConnection

# INCRBY, PEXPIRE NX and the GETs as one command: atomic like MULTI/EXEC, and half its client
# cost in redis-py (one command to pack and one reply to parse instead of five).
INCR_AND_GET = """
local n = redis.call('INCRBY', KEYS[1], ARGV[1])
if tonumber(ARGV[2]) > 0 then redis.call('PEXPIRE', KEYS[1], ARGV[2], 'NX') end
local out = {n}
for i = 2, #KEYS do out[i] = redis.call('GET', KEYS[i]) end
return out
"""
# DECRBY, which keeps the counter's expiry, but a counter it would bring to 0 or below is
# deleted and an absent one is not made: checked and changed as one command.
DECR_NOT_BELOW_ZERO = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local n = redis.call('DECRBY', KEYS[1], ARGV[1])
if n <= 0 then
  redis.call('DEL', KEYS[1])
  return 0
end
return n
"""
# SET, only while KEYS[2] holds ARGV[2] ('' while it is absent), with a PX of ARGV[3] unless 0.
SET_IF = """
if (redis.call('GET', KEYS[2]) or '') ~= ARGV[2] then return 0 end
if tonumber(ARGV[3]) > 0 then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3])
else
  redis.call('SET', KEYS[1], ARGV[1])
end
return 1
"""


class RedisCache:
    def __init__(self, redis: Redis, namespace: str = "bloop:cache") -> None:
        self.redis = redis
        self.ns = namespace + ":"
        self._incr_and_get = redis.register_script(INCR_AND_GET)
        self._decr = redis.register_script(DECR_NOT_BELOW_ZERO)
        self._set_if = redis.register_script(SET_IF)
        # The hot reads and counts take the pipelined connection; over TLS or a Unix socket,
        # redis-py's own.
        self._pipe = PipelinedConnection(redis) if PipelinedConnection.supports(redis) else None
        self._call: Callable[..., Awaitable[Any]] = (
            redis.execute_command if self._pipe is None else self._pipe.call)

    async def get(self, key: str) -> bytes | None:
        return cast("bytes | None", await self._call("GET", self.ns + key))

    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        if not keys:
            return []
        return cast("list[bytes | None]",
                    await self._call("MGET", *(self.ns + k for k in keys)))

    async def set(self, key: str, value: bytes, ttl_s: float | None = None) -> None:
        await self.redis.set(self.ns + key, value, px=None if ttl_s is None else int(ttl_s * 1000))

    async def set_many(self, items: Mapping[str, bytes], ttl_s: float | None = None) -> None:
        async with self.redis.pipeline(transaction=False) as pipe:
            for key, value in items.items():
                pipe.set(self.ns + key, value, px=None if ttl_s is None else int(ttl_s * 1000))
            await pipe.execute()

    async def set_if(self, key: str, value: bytes, ttl_s: float | None = None, *, guard: str,
                     seen: bytes | None) -> bool:
        ttl_ms = 0 if ttl_s is None else max(1, int(ttl_s * 1000))
        return bool(await self._run(self._set_if, [self.ns + key, self.ns + guard],
                                    [value, seen or b"", ttl_ms]))

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

    async def decr(self, key: str, by: int = 1) -> int:
        return int(await self._run(self._decr, [self.ns + key], [by]))

    async def incr_and_get_many(self, counter: str, keys: Sequence[str], by: int = 1,
                                ttl_s: float | None = None) -> tuple[int, list[bytes | None]]:
        ttl_ms = 0 if ttl_s is None else max(1, int(ttl_s * 1000))
        names = [self.ns + counter, *(self.ns + k for k in keys)]
        result = cast("list[int | bytes | None]",
                      await self._run(self._incr_and_get, names, [by, ttl_ms]))
        # A missing key's GET is false in Lua, which keeps its place and comes back as nil.
        return int(cast(int, result[0])), [cast("bytes | None", v) for v in result[1:]]

    async def _run(self, script: AsyncScript, keys: list[str],
                   args: Sequence[int | bytes]) -> Any:
        try:
            return await self._call("EVALSHA", script.sha, len(keys), *keys, *args)
        except NoScriptError:  # a restarted or flushed server: load the script and run it
            return await script(keys=keys, args=args)

    async def ping(self) -> None:
        await self.redis.ping()

    def close(self) -> None:
        """Closes the pipelined connection (the Redis client is its owner's to close)."""
        if self._pipe is not None:
            self._pipe.close()
