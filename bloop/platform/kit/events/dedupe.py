"""Processed-event ids per consumer group, so redelivered events are dropped."""

from __future__ import annotations

import sqlite3
import time
import uuid
from typing import Protocol

from redis.asyncio import Redis

from bloop.platform.kit.sqlite import SqliteDB


class ProcessedEvents(Protocol):
    async def seen(self, group: str, event_id: uuid.UUID) -> bool: ...

    async def mark(self, group: str, event_id: uuid.UUID) -> None: ...


class SqliteProcessedEvents:
    def __init__(self, db: SqliteDB) -> None:
        self.db = db

    async def setup(self) -> None:
        await self.db.run(lambda c: c.execute(
            "CREATE TABLE IF NOT EXISTS processed_events ("
            " grp TEXT NOT NULL, id TEXT NOT NULL, at REAL NOT NULL, PRIMARY KEY (grp, id))"
            " WITHOUT ROWID"))

    async def seen(self, group: str, event_id: uuid.UUID) -> bool:
        def q(c: sqlite3.Connection) -> bool:
            row = c.execute("SELECT 1 FROM processed_events WHERE grp=? AND id=?",
                            (group, str(event_id))).fetchone()
            return row is not None

        return await self.db.run(q)

    async def mark(self, group: str, event_id: uuid.UUID) -> None:
        await self.db.run(lambda c: c.execute(
            "INSERT OR IGNORE INTO processed_events (grp, id, at) VALUES (?, ?, ?)",
            (group, str(event_id), time.time())))


class RedisProcessedEvents:
    """Ids expire after `ttl_s`: longer than any redelivery window (Kafka retention)."""

    def __init__(self, redis: Redis, ttl_s: int = 14 * 86_400, prefix: str = "bloop:processed") -> None:
        self.redis, self.ttl_s, self.prefix = redis, ttl_s, prefix

    def _key(self, group: str, event_id: uuid.UUID) -> str:
        return f"{self.prefix}:{group}:{event_id}"

    async def seen(self, group: str, event_id: uuid.UUID) -> bool:
        return bool(await self.redis.exists(self._key(group, event_id)))

    async def mark(self, group: str, event_id: uuid.UUID) -> None:
        await self.redis.set(self._key(group, event_id), b"1", ex=self.ttl_s)
