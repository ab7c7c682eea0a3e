"""The revocation-marks contract over the in-process cache and Redis (mirrored in every process),
and what the Redis mirror adds: other processes learn a revocation without a round trip per
check, a process that starts later learns earlier ones, and one whose copy is not in step reads
Redis itself."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from bloop.platform.kit import stores
from bloop.platform.kit.auth.revocations import (
    MirroredRevocations,
    Revocations,
    StoredRevocations,
)
from bloop.platform.kit.cache import MemoryCache, RedisCache
from bloop.platform.kit.settings import RedisSettings
from bloop.platform.kit.sqlite import SqliteDB
from tests.support import eventually, require_server


@pytest.fixture
async def namespace() -> AsyncIterator[str]:
    require_server("redis")
    ns = f"test:{uuid.uuid4().hex[:8]}"
    yield ns
    client = stores.redis_client(RedisSettings())
    await RedisCache(client, namespace=ns).delete_prefix("")
    await client.aclose()


@pytest.fixture
async def processes(namespace: str) -> AsyncIterator[list[MirroredRevocations]]:
    """Started mirrors, each on a client of its own as separate processes would be; add with
    `started(namespace, made)`."""
    made: list[MirroredRevocations] = []
    yield made
    for r in made:
        await r.close()
        await r.redis.aclose()


async def started(namespace: str, made: list[MirroredRevocations]) -> MirroredRevocations:
    r = MirroredRevocations(RedisCache(stores.redis_client(RedisSettings()), namespace=namespace))
    made.append(r)
    await r.start()
    await asyncio.wait_for(r.in_step_event.wait(), 5)
    return r


@pytest.fixture(params=["memory", "stored", "redis"])
async def revocations(request: pytest.FixtureRequest,
                      tmp_path: Path) -> AsyncIterator[Revocations]:
    if request.param == "memory":
        yield Revocations(MemoryCache())
        return
    if request.param == "stored":
        db = SqliteDB(tmp_path / "auth.sqlite3")
        stored = StoredRevocations(MemoryCache(), db)
        await stored.start()
        yield stored
        await stored.close()
        await db.close()
        return
    require_server("redis")
    made: list[MirroredRevocations] = []
    r = await started(f"test:{uuid.uuid4().hex[:8]}", made)
    yield r
    await r.cache.delete_prefix("")
    await r.close()
    await r.redis.aclose()


async def test_a_revoked_mark_is_refused_and_others_are_not(revocations: Revocations) -> None:
    assert not await revocations.any_revoked(["auth:revoked:jti:a", "auth:revoked:sid:s"])
    await revocations.revoke("auth:revoked:sid:s", ttl_s=30)
    assert await revocations.any_revoked(["auth:revoked:jti:a", "auth:revoked:sid:s"])
    assert not await revocations.any_revoked(["auth:revoked:jti:a", "auth:revoked:sid:t"])
    assert not await revocations.any_revoked([])


async def test_a_mark_lapses_with_what_it_refuses(revocations: Revocations) -> None:
    await revocations.revoke("auth:revoked:jti:short", ttl_s=0.3)
    await revocations.revoke("auth:revoked:jti:long", ttl_s=30)
    assert await revocations.any_revoked(["auth:revoked:jti:short"])
    await asyncio.sleep(0.45)
    assert not await revocations.any_revoked(["auth:revoked:jti:short"])
    assert await revocations.any_revoked(["auth:revoked:jti:long"])


async def test_other_processes_learn_a_revocation_without_asking(
        namespace: str, processes: list[MirroredRevocations]) -> None:
    here, there = await started(namespace, processes), await started(namespace, processes)
    await here.revoke("auth:revoked:sid:s1", ttl_s=30)
    assert await here.any_revoked(["auth:revoked:sid:s1"])  # its own, at once
    began = time.perf_counter()
    await eventually(lambda: there.any_revoked(["auth:revoked:sid:s1"]), timeout_s=2,
                     interval_s=0.001, what="the other process to learn the revocation")
    assert time.perf_counter() - began < 0.5
    # from then on `there` checks its copy: no command reaches Redis
    before = await commands_processed(here.redis)
    for _ in range(50):
        assert await there.any_revoked(["auth:revoked:sid:s1"])
        assert not await there.any_revoked(["auth:revoked:sid:s2"])
    assert await commands_processed(here.redis) - before == 1  # the INFO that reads the count


async def test_a_process_that_starts_later_learns_earlier_revocations(
        namespace: str, processes: list[MirroredRevocations]) -> None:
    first = await started(namespace, processes)
    await first.revoke("auth:revoked:key:acme:k1", ttl_s=30)
    await first.revoke("auth:revoked:key:acme:gone", ttl_s=0.2)
    await asyncio.sleep(0.3)
    later = await started(namespace, processes)
    assert await later.any_revoked(["auth:revoked:key:acme:k1"])
    assert not await later.any_revoked(["auth:revoked:key:acme:gone"])


async def test_a_copy_not_in_step_reads_the_cache_and_fails_when_it_is_down(
        namespace: str) -> None:
    down = Redis(host="127.0.0.1", port=9, socket_connect_timeout=0.2)
    r = MirroredRevocations(RedisCache(down, namespace=namespace), retry_s=0.05)
    await r.start()
    try:
        await asyncio.sleep(0.3)
        assert not r.in_step
        with pytest.raises(RedisConnectionError):
            await r.any_revoked(["auth:revoked:jti:x"])
    finally:
        await r.close()
        await down.aclose()


async def commands_processed(redis: Redis) -> int:
    return int((await redis.info("stats"))["total_commands_processed"])


async def test_stored_marks_outlive_the_process_and_reach_others_on_the_file(
        tmp_path: Path) -> None:
    """The embedded stores' marks: a process started later, or one reading the same file,
    refuses what another revoked (the latter within its reload interval)."""
    first_db, second_db = SqliteDB(tmp_path / "auth.sqlite3"), SqliteDB(tmp_path / "auth.sqlite3")
    first = StoredRevocations(MemoryCache(), first_db)
    second = StoredRevocations(MemoryCache(), second_db, reload_s=0.05)
    await first.start()
    await second.start()
    await first.revoke("auth:revoked:sid:s1", ttl_s=30)
    await first.revoke("auth:revoked:jti:brief", ttl_s=0.2)
    await eventually(lambda: second.any_revoked(["auth:revoked:sid:s1"]), timeout_s=2,
                     what="the other process to read the revocation")
    await first.close()
    await first_db.close()
    await asyncio.sleep(0.3)
    later_db = SqliteDB(tmp_path / "auth.sqlite3")
    later = StoredRevocations(MemoryCache(), later_db)
    await later.start()
    assert await later.any_revoked(["auth:revoked:sid:s1"])
    assert not await later.any_revoked(["auth:revoked:jti:brief"])
    for r, db in ((second, second_db), (later, later_db)):
        await r.close()
        await db.close()
