"""Processed-event ids per consumer group, so redelivered events are dropped. Batched: one
round trip per fetched batch, not per event."""

from __future__ import annotations

import math
import sqlite3
import time
import uuid
from collections.abc import Callable, Sequence
from functools import partial
from typing import Protocol

from redis.asyncio import Redis

from bloop.platform.kit.ids import id_text
from bloop.platform.kit.sqlite import SqliteDB


class ProcessedEvents(Protocol):
    async def seen(self, group: str, ids: Sequence[uuid.UUID]) -> set[uuid.UUID]:
        """The ids among `ids` that `group` has already processed."""

    async def mark(self, group: str, ids: Sequence[uuid.UUID]) -> None: ...


PRUNE_CHUNK = 10_000
Key = tuple[str, str]


def _old_ids(c: sqlite3.Connection, after: Key, cutoff: float) -> tuple[list[Key], Key | None]:
    """The ids among the PRUNE_CHUNK after `after` (by group, then id) processed before
    `cutoff`, and the last key read (None at the end of the table)."""
    old = c.execute(
        "SELECT grp, id FROM (SELECT grp, id, at FROM processed_events WHERE (grp, id) > (?, ?)"
        " ORDER BY grp, id LIMIT ?) WHERE at < ?", (*after, PRUNE_CHUNK, cutoff)).fetchall()
    last = c.execute(
        "SELECT grp, id FROM processed_events WHERE (grp, id) > (?, ?) ORDER BY grp, id"
        " LIMIT 1 OFFSET ?", (*after, PRUNE_CHUNK - 1)).fetchone()
    return [(r[0], r[1]) for r in old], None if last is None else (last[0], last[1])


def _forget(c: sqlite3.Connection, keys: list[Key]) -> int:
    return int(c.executemany("DELETE FROM processed_events WHERE grp = ? AND id = ?",
                             keys).rowcount)


class SqliteProcessedEvents:
    """Ids are kept for `ttl_s`, as Redis keeps them; old ones are dropped at a process's first
    mark and once an hour after (a process restarted more often than hourly kept them all)."""

    def __init__(self, db: SqliteDB, ttl_s: float = 14 * 86_400,
                 clock: Callable[[], float] = time.time) -> None:
        self.db, self.ttl_s, self.clock = db, ttl_s, clock
        self._pruned_at = -math.inf

    async def setup(self) -> None:
        await self.db.run(lambda c: c.execute(
            "CREATE TABLE IF NOT EXISTS processed_events ("
            " grp TEXT NOT NULL, id TEXT NOT NULL, at REAL NOT NULL, PRIMARY KEY (grp, id))"
            " WITHOUT ROWID"))

    async def seen(self, group: str, ids: Sequence[uuid.UUID]) -> set[uuid.UUID]:
        if not ids:
            return set()
        wanted = {id_text(i): i for i in ids}

        def q(c: sqlite3.Connection) -> set[uuid.UUID]:
            found: set[uuid.UUID] = set()
            keys = list(wanted)
            for start in range(0, len(keys), 500):
                chunk = keys[start:start + 500]
                marks = ",".join("?" * len(chunk))
                rows = c.execute(f"SELECT id FROM processed_events WHERE grp=? AND id IN ({marks})",  # noqa: S608
                                 (group, *chunk)).fetchall()
                found.update(wanted[r[0]] for r in rows)
            return found

        return await self.db.run(q)

    async def mark(self, group: str, ids: Sequence[uuid.UUID]) -> None:
        if not ids:
            return
        now = self.clock()
        await self.db.transaction(lambda c: c.executemany(
            "INSERT OR IGNORE INTO processed_events (grp, id, at) VALUES (?, ?, ?)",
            [(group, id_text(i), now) for i in ids]))
        if now - self._pruned_at > 3600:
            self._pruned_at = now
            await self.prune()

    async def prune(self) -> int:
        """Forgets ids processed more than `ttl_s` ago; returns how many. The table has no index
        on `at` (every mark would pay for one), so it is read PRUNE_CHUNK rows at a time on the
        reader thread, and only the ids found old are deleted, by key, on the loop: a prune of
        millions of ids never holds the loop for long."""
        cutoff, removed = self.clock() - self.ttl_s, 0
        last: Key | None = ("", "")
        while last is not None:
            old, last = await self.db.run(partial(_old_ids, after=last, cutoff=cutoff))
            if old:
                removed += await self.db.transaction(partial(_forget, keys=old))
        return removed


class RedisProcessedEvents:
    """Ids expire after `ttl_s`: longer than any redelivery window (Kafka retention)."""

    def __init__(self, redis: Redis, ttl_s: int = 14 * 86_400, prefix: str = "bloop:processed") -> None:
        self.redis, self.ttl_s, self.prefix = redis, ttl_s, prefix

    def _key(self, group: str, event_id: uuid.UUID) -> str:
        return f"{self.prefix}:{group}:{id_text(event_id)}"

    async def seen(self, group: str, ids: Sequence[uuid.UUID]) -> set[uuid.UUID]:
        if not ids:
            return set()
        values = await self.redis.mget([self._key(group, i) for i in ids])
        return {i for i, v in zip(ids, values, strict=True) if v is not None}

    async def mark(self, group: str, ids: Sequence[uuid.UUID]) -> None:
        if not ids:
            return
        async with self.redis.pipeline(transaction=False) as pipe:
            for i in ids:
                pipe.set(self._key(group, i), b"1", ex=self.ttl_s)
            await pipe.execute()
