"""The Cache contract over the in-process cache and Redis."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest

from bloop.platform.kit import stores
from bloop.platform.kit.cache import Cache, MemoryCache, RedisCache
from bloop.platform.kit.cache.resp import PipelinedConnection
from bloop.platform.kit.settings import RedisSettings
from tests.support import require_server


@pytest.fixture(params=["memory", "redis"])
async def cache(request: pytest.FixtureRequest) -> AsyncIterator[Cache]:
    if request.param == "memory":
        yield MemoryCache()
        return
    require_server("redis")
    client = stores.redis_client(RedisSettings())
    c = RedisCache(client, namespace=f"test:{uuid.uuid4().hex[:8]}")
    yield c
    await c.delete_prefix("")
    await client.aclose()


async def test_set_get_delete(cache: Cache) -> None:
    assert await cache.get("lesson:1") is None
    await cache.set("lesson:1", b"\x00body")
    assert await cache.get("lesson:1") == b"\x00body"
    assert await cache.delete("lesson:1", "lesson:missing") == 1
    assert await cache.get("lesson:1") is None


async def test_entries_expire(cache: Cache) -> None:
    await cache.set("short", b"1", ttl_s=0.2)
    await cache.set("long", b"2", ttl_s=30)
    await asyncio.sleep(0.35)
    assert await cache.get("short") is None
    assert await cache.get("long") == b"2"


async def test_many_at_once(cache: Cache) -> None:
    await cache.set_many({"a": b"1", "b": b"2"})
    assert await cache.get_many(["a", "nope", "b"]) == [b"1", None, b"2"]
    assert await cache.get_many([]) == []


async def test_delete_by_prefix_takes_only_that_prefix(cache: Cache) -> None:
    await cache.set_many({"course:c[1]*:v1": b"x", "course:c[1]*:v2": b"y", "course:c2:v1": b"z"})
    assert await cache.delete_prefix("course:c[1]*:") == 2
    assert await cache.get("course:c2:v1") == b"z"


async def test_counters(cache: Cache) -> None:
    assert await cache.incr("hits", ttl_s=10) == 1
    assert await cache.incr("hits", by=4, ttl_s=10) == 5
    assert await cache.get("hits") == b"5"
    assert await cache.incr("hits", by=-1, ttl_s=10) == 4  # a refused call given back
    assert await cache.get("hits") == b"4"


async def test_a_counter_taken_from_never_goes_below_nothing(cache: Cache) -> None:
    """A count taken back after it expired came back as -1 (a sign-in's attempt forgiven)."""
    assert await cache.incr("hits", by=3, ttl_s=0.3) == 3
    assert await cache.decr("hits") == 2
    assert await cache.get("hits") == b"2"
    await asyncio.sleep(0.45)  # it kept its expiry
    assert await cache.get("hits") is None
    assert await cache.decr("hits") == 0
    assert await cache.get("hits") is None  # an absent counter is not made
    await cache.incr("hits", by=2, ttl_s=30)
    assert await cache.decr("hits", by=5) == 0
    assert await cache.get("hits") is None  # removed, not left at -3
    assert await cache.incr("hits", ttl_s=30) == 1


async def test_ping(cache: Cache) -> None:
    await cache.ping()


async def test_a_counter_and_reads_in_one_call(cache: Cache) -> None:
    await cache.set_many({"mark": b"1", "hits:prev": b"7"})
    count, values = await cache.incr_and_get_many("hits", ["hits:prev", "nope", "mark", "hits"],
                                                  ttl_s=0.3)
    assert count == 1
    assert values == [b"7", None, b"1", b"1"]  # the reads see the increment
    count, values = await cache.incr_and_get_many("hits", [], by=4, ttl_s=30)
    assert (count, values) == (5, [])
    await asyncio.sleep(0.45)  # the first call's expiry held: a later ttl does not extend it
    assert await cache.get("hits") is None
    assert (await cache.incr_and_get_many("hits", ["mark"]))[0] == 1


async def test_the_cache_survives_a_server_that_lost_its_script(cache: Cache) -> None:
    assert await cache.incr_and_get_many("n", ["k"]) == (1, [None])
    if isinstance(cache, RedisCache):
        await cache.redis.script_flush()
    await cache.set("k", b"v")
    assert await cache.incr_and_get_many("n", ["k"]) == (2, [b"v"])
    if isinstance(cache, RedisCache):
        await cache.redis.script_flush()
    assert await cache.decr("n") == 1


async def test_over_tls_or_a_unix_socket_the_cache_uses_redis_py_itself(
        monkeypatch: pytest.MonkeyPatch) -> None:
    require_server("redis")
    monkeypatch.setattr(PipelinedConnection, "supports", staticmethod(lambda redis: False))
    client = stores.redis_client(RedisSettings())
    c = RedisCache(client, namespace=f"test:{uuid.uuid4().hex[:8]}")
    try:
        assert c._pipe is None
        await c.set("k", b"v")
        assert await c.get("k") == b"v"
        assert await c.get_many(["k", "none"]) == [b"v", None]
        await client.script_flush()
        assert await c.incr_and_get_many("n", ["k"]) == (1, [b"v"])
        await client.script_flush()
        assert await c.decr("n") == 0
        assert await c.get("n") is None
    finally:
        await c.delete_prefix("")
        await client.aclose()
