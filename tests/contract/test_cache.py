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


async def test_a_value_is_set_only_while_its_guard_holds_what_was_seen(cache: Cache) -> None:
    assert await cache.set_if("copy", b"1", guard="gen", seen=None)
    assert await cache.get("copy") == b"1"
    await cache.set("gen", b"a")
    assert not await cache.set_if("copy", b"2", guard="gen", seen=None)
    assert not await cache.set_if("copy", b"2", guard="gen", seen=b"b")
    assert await cache.get("copy") == b"1"
    assert await cache.set_if("copy", b"3", ttl_s=0.2, guard="gen", seen=b"a")
    assert await cache.get("copy") == b"3"
    await cache.delete("gen")
    assert not await cache.set_if("other", b"1", guard="gen", seen=b"a")
    assert await cache.get("other") is None
    await asyncio.sleep(0.35)  # the ttl was kept
    assert await cache.get("copy") is None
    assert await cache.set_if("copy", b"4", guard="gen", seen=b"")  # b"" is absent too


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
    if isinstance(cache, RedisCache):
        await cache.redis.script_flush()
    assert await cache.set_if("k", b"w", guard="g", seen=None)
    assert await cache.get("k") == b"w"


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


def held(cache: MemoryCache) -> int:
    """The bytes of keys and values `cache` holds, counted afresh."""
    return sum(len(k) + len(v) for k, (v, _) in cache._data.items())


async def test_the_in_process_cache_is_bounded_by_bytes_least_recently_used_first() -> None:
    """It was bounded by entries alone: 10,000 lessons' JSON of up to 1 MiB each could be
    held, gigabytes."""
    cache = MemoryCache(max_bytes=1600)
    for i in range(20):
        await cache.set(f"k{i:02}", bytes(77))  # 80 bytes with its key
    assert cache.size == held(cache) == 1600
    assert await cache.get("k00") is not None
    await cache.set("k20", bytes(77))
    assert await cache.get("k01") is None
    assert await cache.get("k00") is not None
    assert cache.size == held(cache) == 1600
    await cache.set_many({"a": bytes(99), "b": bytes(99), "c": bytes(99)})
    assert cache.size == held(cache) <= 1600
    assert [await cache.get(k) for k in "abc"] == [bytes(99)] * 3


async def test_a_value_over_a_sixteenth_of_the_budget_is_not_kept() -> None:
    cache = MemoryCache(max_bytes=1600)
    await cache.set("small", b"1")
    await cache.set("big", b"old")
    await cache.set("big", bytes(100))  # 103 bytes with its key, over 1600 // 16
    assert await cache.get("big") is None  # nor is its older value left to be read
    assert await cache.get("small") == b"1"
    assert cache.size == held(cache) == len("small") + 1


async def test_expired_entries_are_freed_without_being_read() -> None:
    """An entry expired only when its key was read again, so its bytes stayed for ever."""
    now = [0.0]
    cache = MemoryCache(clock=lambda: now[0])
    await cache.set_many({f"lesson:{i}": bytes(1000) for i in range(40)}, ttl_s=600)
    await cache.set("lasting", b"1")
    await cache.incr("hits", ttl_s=900)
    now[0] = 601
    await cache.incr("other")
    await cache.set("another", b"1")  # a write frees a few (32): two are needed for 40
    assert sorted(cache._data) == ["another", "hits", "lasting", "other"]
    assert cache.size == held(cache)
    now[0] = 901
    await cache.set("lasting", b"2")
    assert sorted(cache._data) == ["another", "lasting", "other"]


async def test_expiries_of_keys_set_again_do_not_pile_up() -> None:
    now = [0.0]
    cache = MemoryCache(clock=lambda: now[0])
    for i in range(10_000):
        await cache.set("known", b"1", ttl_s=86_400 + i)
        await cache.incr("count", ttl_s=60)
        assert await cache.decr("count") == 0
    assert len(cache._expiries) <= 4 * len(cache._data) + 1024
    assert cache.size == held(cache)
    now[0] = 86_400 + 10_000
    for i in range(40):  # each write sweeps a few of the (at most 1,032) expiries held
        await cache.set(f"x{i:02}", b"1")
    assert "known" not in cache._data
    assert cache.size == held(cache) == 40 * 4


async def test_expired_entries_are_freed_by_reads_and_counts_too() -> None:
    """Only writes swept: a process that went on reading (or counting on keys it had) kept
    every expired entry's bytes until its next write."""
    now = [0.0]
    cache = MemoryCache(clock=lambda: now[0])
    await cache.set_many({f"lesson:{i}": bytes(1000) for i in range(40)}, ttl_s=600)
    await cache.set("lasting", b"1")
    assert await cache.incr("count") == 1
    now[0] = 601
    assert await cache.get("lasting") == b"1"  # a read frees a few (32): two are needed for 40
    assert len(cache._data) == 2 + 40 - 32
    assert await cache.get_many(["lasting"]) == [b"1"]
    assert sorted(cache._data) == ["count", "lasting"]
    assert cache.size == held(cache)
    await cache.set_many({f"mark:{i}": b"1" for i in range(40)}, ttl_s=60)
    now[0] = 662
    assert await cache.incr("count") == 2
    assert await cache.decr("count") == 1
    assert sorted(cache._data) == ["count", "lasting"]
    assert cache.size == held(cache)
