"""The processed-events contract (consumer idempotency) over SQLite and Redis."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bloop.platform.kit import stores
from bloop.platform.kit.events.dedupe import (
    ProcessedEvents,
    RedisProcessedEvents,
    SqliteProcessedEvents,
)
from bloop.platform.kit.settings import RedisSettings
from bloop.platform.kit.sqlite import SqliteDB
from bloop.platform.kit.waiting import stopped
from tests.support import require_server


@pytest.fixture(params=["sqlite", "redis"])
async def processed(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[ProcessedEvents]:
    if request.param == "sqlite":
        db = SqliteDB(tmp_path / "p.sqlite3")
        store = SqliteProcessedEvents(db)
        await store.setup()
        yield store
        await db.close()
        return
    require_server("redis")
    client = stores.redis_client(RedisSettings())
    yield RedisProcessedEvents(client, ttl_s=60, prefix=f"test:processed:{uuid.uuid4().hex[:8]}")
    await client.aclose()


async def test_marked_ids_are_seen_by_their_group_only(processed: ProcessedEvents) -> None:
    a, b, c = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    assert await processed.seen("g1", [a, b, c]) == set()
    await processed.mark("g1", [a, b])
    assert await processed.seen("g1", [a, b, c]) == {a, b}
    assert await processed.seen("g2", [a, b, c]) == set()


async def test_marking_twice_and_empty_batches_are_harmless(processed: ProcessedEvents) -> None:
    a = uuid.uuid4()
    await processed.mark("g", [a])
    await processed.mark("g", [a])
    await processed.mark("g", [])
    assert await processed.seen("g", []) == set()
    assert await processed.seen("g", [a, a]) == {a}


async def test_large_batches(processed: ProcessedEvents) -> None:
    ids = [uuid.uuid4() for _ in range(1500)]
    await processed.mark("big", ids[:1000])
    assert await processed.seen("big", ids) == set(ids[:1000])


async def test_a_consumer_looping_over_the_store_is_always_stopped(processed: ProcessedEvents) -> None:
    """redis-py sends under asyncio.wait_for, which loses some cancellations on Python 3.11:
    `stopped` must end the loop anyway, whenever the cancellation lands."""
    ids = [uuid.uuid4() for _ in range(5)]
    for n in range(60):
        async def consume() -> None:
            while True:
                await processed.seen("g", ids)
                await processed.mark("g", ids[:1])

        task = asyncio.create_task(consume())
        for _ in range(n % 12 + 1):
            await asyncio.sleep(0)
        await asyncio.wait_for(stopped(task, again_s=0.05), 5)
        assert task.done()
