"""Revocation marks: the access tokens, sessions and API keys refused before they expire.

A mark is a cache entry that lives as long as what it refuses could. `Revocations` reads the
marks from the cache on every check. `MirroredRevocations` (the Redis cache) also keeps every
process's copy of the live marks: a revocation writes its mark, adds it to a sorted set of live
marks and announces it on a channel, in one transaction; each process subscribes to the channel,
then loads the set, and from then on checks its copy without a round trip. An announcement
reaches the other processes as fast as Redis delivers it (under a millisecond here). While a
process's copy is not in step (starting, or its subscription lost), its checks read the cache
as `Revocations` does, so a cache that is down still refuses to vouch for anyone."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
from collections.abc import Callable, Sequence
from typing import cast

from redis.asyncio.client import PubSub
from redis.exceptions import RedisError

from bloop.platform.kit.cache import Cache, RedisCache
from bloop.platform.kit.sqlite import SqliteDB
from bloop.platform.kit.waiting import stopped

log = logging.getLogger(__name__)


class Revocations:
    def __init__(self, cache: Cache) -> None:
        self.cache = cache

    async def revoke(self, mark: str, ttl_s: float) -> None:
        """Refuses what `mark` names for `ttl_s` seconds, in every process."""
        await self.cache.set(mark, b"1", ttl_s=ttl_s)

    async def any_revoked(self, marks: Sequence[str]) -> bool:
        return any(value is not None for value in await self.cache.get_many(marks))

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None


class StoredRevocations(Revocations):
    """The embedded stores' marks, kept in a SQLite file beside them: the in-process cache
    forgets them at a restart (a deleted person's token worked again) and may evict them among
    its other entries. Each process checks its own copy, loaded at start and read again every
    `reload_s` (what other processes on the same files revoked meanwhile)."""

    def __init__(self, cache: Cache, db: SqliteDB, reload_s: float = 30.0,
                 clock: Callable[[], float] = time.time) -> None:
        super().__init__(cache)
        self.db, self.reload_s, self.clock = db, reload_s, clock
        self._marks: dict[str, float] = {}  # mark -> expiry (epoch s)
        self._reloader: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.db.transaction(lambda c: c.execute(
            "CREATE TABLE IF NOT EXISTS revocations (mark TEXT PRIMARY KEY, expires REAL NOT NULL)"))
        await self._load()
        if self._reloader is None:
            self._reloader = asyncio.create_task(self._reload(), name="revocations")

    async def close(self) -> None:
        if self._reloader is not None:
            await stopped(self._reloader)
            self._reloader = None

    async def revoke(self, mark: str, ttl_s: float) -> None:
        now = self.clock()
        expires = now + ttl_s

        def write(c: sqlite3.Connection) -> None:
            c.execute("INSERT INTO revocations (mark, expires) VALUES (?, ?) ON CONFLICT (mark)"
                      " DO UPDATE SET expires = max(expires, excluded.expires)", (mark, expires))
            c.execute("DELETE FROM revocations WHERE expires <= ?", (now,))

        await self.db.transaction(write)
        self._marks[mark] = max(expires, self._marks.get(mark, 0.0))

    async def any_revoked(self, marks: Sequence[str]) -> bool:
        now = self.clock()
        return any(self._marks.get(m, 0.0) > now for m in marks)

    async def _load(self) -> None:
        now = self.clock()
        rows = await self.db.run(lambda c: c.execute(
            "SELECT mark, expires FROM revocations WHERE expires > ?", (now,)).fetchall())
        self._marks = {str(r[0]): float(r[1]) for r in rows}

    async def _reload(self) -> None:
        while True:
            await asyncio.sleep(self.reload_s)
            try:
                await self._load()
            except Exception:  # the copy stays as it was; the next round tries again
                log.exception("reading the revocation marks failed")


class MirroredRevocations(Revocations):
    LIVE = "auth:revoked:live"  # sorted set: mark -> expiry (epoch ms)
    CHANNEL = "auth:revoked"

    def __init__(self, cache: RedisCache, reload_s: float = 30.0, retry_s: float = 0.5) -> None:
        super().__init__(cache)
        self.redis = cache.redis
        self.ns = cache.ns
        self.reload_s = reload_s
        self.retry_s = retry_s
        self._marks: dict[str, float] = {}  # mark -> expiry (epoch s)
        self._in_step = False
        self._follower: asyncio.Task[None] | None = None
        self.in_step_event = asyncio.Event()

    @property
    def in_step(self) -> bool:
        return self._in_step

    async def revoke(self, mark: str, ttl_s: float) -> None:
        ttl_ms = max(1, int(ttl_s * 1000))
        now_ms = int(time.time() * 1000)
        expires_ms = now_ms + ttl_ms
        async with self.redis.pipeline(transaction=True) as tx:
            tx.set(self.ns + mark, b"1", px=ttl_ms)
            tx.zadd(self.ns + self.LIVE, {mark: expires_ms})
            tx.zremrangebyscore(self.ns + self.LIVE, "-inf", now_ms)
            tx.publish(self.ns + self.CHANNEL, f"{expires_ms} {mark}")
            await tx.execute()
        self._marks[mark] = expires_ms / 1000

    async def any_revoked(self, marks: Sequence[str]) -> bool:
        if not self._in_step:
            return await super().any_revoked(marks)
        now = time.time()
        for mark in marks:
            expires = self._marks.get(mark)
            if expires is not None and expires > now:
                return True
        return False

    async def start(self) -> None:
        if self._follower is None:
            self._follower = asyncio.create_task(self._follow(), name="revocations")

    async def close(self) -> None:
        self._set_in_step(False)
        if self._follower is not None:
            await stopped(self._follower)
            self._follower = None

    async def _follow(self) -> None:
        while True:
            pubsub = self.redis.pubsub()
            try:
                await pubsub.subscribe(self.ns + self.CHANNEL)
                await self._listen(pubsub)
            except (RedisError, OSError) as exc:
                if self._in_step:
                    log.warning("revocations: subscription lost, checking the cache on every "
                                "request until it is back", extra={"error": str(exc)})
                self._set_in_step(False)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
            await asyncio.sleep(self.retry_s)

    async def _listen(self, pubsub: PubSub) -> None:
        # Subscribed (confirmed) before loading: a revocation made in between is in the set,
        # announced, or both, never lost.
        while True:
            message = await pubsub.get_message(timeout=self.reload_s)
            if message is None:
                raise RedisError("no confirmation of the subscription")
            if message.get("type") == "subscribe":
                break
        await self._load()
        self._set_in_step(True)
        loaded_at = time.monotonic()
        while True:
            message = await pubsub.get_message(timeout=1.0)
            if message is not None and message.get("type") == "message":
                self._learn(message["data"])
            if time.monotonic() - loaded_at >= self.reload_s:
                await self._load()
                loaded_at = time.monotonic()

    async def _load(self) -> None:
        now_ms = int(time.time() * 1000)
        live = cast("list[tuple[bytes, float]]", await self.redis.zrangebyscore(
            self.ns + self.LIVE, now_ms, "+inf", withscores=True))
        marks = {mark.decode(): score / 1000 for mark, score in live}
        # Announcements received while loading are kept: they may be newer than the set.
        now = now_ms / 1000
        self._marks = {**{m: e for m, e in self._marks.items() if e > now}, **marks}

    def _learn(self, data: bytes | str) -> None:
        text = data.decode() if isinstance(data, bytes) else data
        expires_ms, _, mark = text.partition(" ")
        if mark and expires_ms.isdigit():
            self._marks[mark] = int(expires_ms) / 1000

    def _set_in_step(self, value: bool) -> None:
        self._in_step = value
        if value:
            self.in_step_event.set()
        else:
            self.in_step_event.clear()
