"""An in-process event bus whose log and group offsets live in SQLite, so events survive a
restart. One ordered log per topic; a group's offset moves only after its handler is done.
Events are kept for `retention_s` (a week, as the Kafka servers infra/ starts keep them), and
past it until every group that reads their topic has passed them; a group that has not committed
for longer than the retention (stopped, renamed, or a rebuilt search index's) counts as gone.
Each process forgets them at start and every `prune_every_s` after (an hour). Every `lag_every_s`
(5 s), whatever the handlers are doing, it counts each group's lag on the topics it reads.
A consumer commits each chunk of a batch once it is marked processed; told to stop, it ends after
the event in hand and commits what it handled; one whose lease ran out leaves the rest of its
batch to the process that took the lease."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
from collections.abc import Callable, Sequence
from functools import partial

import orjson

from bloop.platform.kit.errors import is_store_down
from bloop.platform.kit.events.bus.port import (
    DLQ_SUFFIX,
    Message,
    Subscription,
    record_published,
)
from bloop.platform.kit.events.bus.processor import EventProcessor
from bloop.platform.kit.events.dedupe import ProcessedEvents
from bloop.platform.kit.events.lease import Lease, new_holder
from bloop.platform.kit.events.sqlite_lease import give_up_lease, take_lease
from bloop.platform.kit.events.types import EventRegistry
from bloop.platform.kit.every import Every
from bloop.platform.kit.metrics import Metrics
from bloop.platform.kit.sqlite import SqliteDB, at_once
from bloop.platform.kit.waiting import stopped, woken

log = logging.getLogger("bloop.events.embedded")
PRUNE_CHUNK = 10_000

SCHEMA = """
CREATE TABLE IF NOT EXISTS bus_log (
  pos INTEGER PRIMARY KEY AUTOINCREMENT, topic TEXT NOT NULL, key BLOB, value BLOB NOT NULL,
  headers BLOB NOT NULL, at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS bus_log_topic ON bus_log (topic, pos);
CREATE TABLE IF NOT EXISTS bus_offsets (
  grp TEXT NOT NULL, topic TEXT NOT NULL, next_pos INTEGER NOT NULL,
  at REAL NOT NULL,  -- when the group last committed its offset for the topic
  PRIMARY KEY (grp, topic));
CREATE TABLE IF NOT EXISTS bus_leases (
  grp TEXT NOT NULL, topic TEXT NOT NULL, holder TEXT NOT NULL, until REAL NOT NULL,
  PRIMARY KEY (grp, topic));
"""


def _migrate(c: sqlite3.Connection, now: float) -> None:
    c.executescript(SCHEMA)
    if _timed(c):
        return

    def add_times(c: sqlite3.Connection) -> None:
        if not _timed(c):
            # A file from before commits were timed: its groups count as committed now, so
            # that none loses what it has not read until a retention after the upgrade.
            c.execute("ALTER TABLE bus_offsets ADD COLUMN at REAL NOT NULL DEFAULT 0")
            c.execute("UPDATE bus_offsets SET at = ?", (now,))

    at_once(c, add_times)


def _timed(c: sqlite3.Connection) -> bool:
    return "at" in {row[1] for row in c.execute("PRAGMA table_info(bus_offsets)")}


class EmbeddedEventBus:
    def __init__(self, db: SqliteDB, registry: EventRegistry, processed: ProcessedEvents,
                 metrics: Metrics, *, max_attempts: int = 3, backoff_s: float = 0.2,
                 poll_interval_s: float = 0.5, batch: int = 500,
                 retention_s: float = 7 * 86_400, lease_s: float = 10,
                 prune_every_s: float | None = 3600, lag_every_s: float = 5,
                 stop_s: float = 5, clock: Callable[[], float] = time.time) -> None:
        self.db, self.registry, self.processed, self.metrics = db, registry, processed, metrics
        self.max_attempts, self.backoff_s = max_attempts, backoff_s
        self.poll_interval_s, self.batch = poll_interval_s, batch
        self.retention_s, self.lease_s, self.clock = retention_s, lease_s, clock
        self.stop_s = stop_s
        self._stopping = False
        self._consumers: list[asyncio.Task[None]] = []
        # None: only when `prune` is called (tests that count what it forgets).
        self._pruner = None if prune_every_s is None else Every(
            "bus:prune", self.prune, prune_every_s, log=log,
            failed="embedded bus cannot forget old events yet; trying again later")
        self._lag_counter = Every("bus:lag", self.count_lag, lag_every_s, log=log,
                                  failed="embedded bus cannot count consumer lag yet")
        self._subs: list[Subscription] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._wakeups: list[asyncio.Event] = []
        self._started = False
        self.holder = new_holder()  # one per bus, so a process's consumers of a group share it
        self._leases: dict[tuple[str, str], Lease] = {}
        self._said: dict[tuple[str, str], bool] = {}  # whether each leads, as last shown
        self._renewals = asyncio.Event()

    async def start(self) -> None:
        now = self.clock()
        await self.db.run(lambda c: _migrate(c, now))
        self._started = True
        self._tasks.append(asyncio.create_task(self._keep_leases(), name="consume:leases"))
        if self._pruner is not None:
            self._pruner.start()
        self._lag_counter.start()
        for sub in self._subs:
            self._launch(sub)

    def subscribe(self, subscription: Subscription) -> None:
        self._subs.append(subscription)
        if self._started:
            self._launch(subscription)

    def _launch(self, sub: Subscription) -> None:
        for topic in sub.topics:
            if (sub.group, topic) not in self._leases:
                self._leases[sub.group, topic] = self._lease(sub.group, topic)
                self._renewals.set()
        wake = asyncio.Event()
        self._wakeups.append(wake)
        task = asyncio.create_task(self._consume(sub, wake), name=f"consume:{sub.group}")
        self._consumers.append(task)
        self._tasks.append(task)

    def _lease(self, group: str, topic: str) -> Lease:
        key = {"grp": group, "topic": topic}

        async def take(holder: str, ttl_s: float, replacing: str | None) -> str | None:
            return await self.db.transaction(
                lambda c: take_lease(c, "bus_leases", key, holder, ttl_s, replacing))

        async def give_up(holder: str) -> None:
            await self.db.transaction(lambda c: give_up_lease(c, "bus_leases", key, holder))

        return Lease(take, give_up, self.lease_s, key, holder=self.holder)

    async def _keep_leases(self) -> None:
        """Takes or renews every lease of this bus's groups once a quarter of a lease has
        passed (at once for a new subscription's), and wakes the consumers when one is taken."""
        while True:
            self._renewals.clear()
            taken = False
            for (group, topic), lease in list(self._leases.items()):
                try:
                    leads = await lease.renew()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    log.warning("embedded consumer cannot renew its lease yet", extra={
                        "group": group, "topic": topic, "error": repr(exc)})
                    continue
                if leads != self._said.get((group, topic)):
                    self._said[group, topic] = leads
                    taken |= leads
                    self.metrics.consumer_leading.labels(topic, group).set(int(leads))
                    if leads:
                        self.metrics.began_reading(topic, group)
                    log.info("embedded consumer leads" if leads else
                             "embedded consumer stands by: another process leads",
                             extra={"group": group, "topic": topic, "this_process": self.holder})
            if taken:
                for wake in self._wakeups:
                    wake.set()
            await woken(self._renewals, self.lease_s / 4)

    async def close(self) -> None:
        """Lets each consumer end after the event in hand and commit, for at most `stop_s`;
        then cancels what is still running (a handler still waiting) and gives up the leases."""
        self._stopping = True
        for wake in self._wakeups:
            wake.set()
        if self._pruner is not None:
            await self._pruner.stop()
        await self._lag_counter.stop()
        if self._consumers:
            await asyncio.wait(self._consumers, timeout=self.stop_s)
        await asyncio.gather(*(stopped(task) for task in self._tasks))
        self._tasks.clear()
        self._consumers.clear()
        for (group, topic), lease in self._leases.items():
            if self._said.pop((group, topic), False):
                self.metrics.consumer_leading.labels(topic, group).set(0)
            await lease.give_up()

    async def ping(self) -> None:
        await self.db.ping()

    async def publish(self, messages: Sequence[Message]) -> None:
        now = self.clock()
        rows = [(m.topic, m.key, m.value, orjson.dumps([[k, v.decode()] for k, v in m.headers]), now)
                for m in messages]
        await self.db.transaction(lambda c: c.executemany(
            "INSERT INTO bus_log (topic, key, value, headers, at) VALUES (?, ?, ?, ?, ?)", rows))
        record_published(self.metrics, messages)
        for wake in self._wakeups:
            wake.set()

    async def prune(self) -> int:
        """Forgets events older than the retention that every group reading their topic has
        processed (those of a topic no group reads, such as a dead-letter topic, by age alone);
        returns how many. A group that has not committed within the retention holds nothing
        back, as with Kafka's retention by time (a live group idle that long has read
        everything, so has nothing to hold back). The old positions are found on the reader
        thread and deleted PRUNE_CHUNK positions at a time, so an hour's prune of a busy log
        (or a week's, at the start of a process) never holds the loop for long."""
        cutoff = self.clock() - self.retention_s

        def old_positions(c: sqlite3.Connection) -> tuple[int, int]:
            # Positions grow with time: the old events are the ones before the first new one.
            first_new = c.execute("SELECT pos FROM bus_log WHERE at >= ? ORDER BY pos LIMIT 1",
                                  (cutoff,)).fetchone()
            first = c.execute("SELECT min(pos) FROM bus_log").fetchone()[0]
            end = first_new[0] if first_new else c.execute("SELECT max(pos) + 1 FROM bus_log").fetchone()[0]
            return (first or 0), (end or 0)

        def forget(c: sqlite3.Connection, lo: int, hi: int) -> int:
            return int(c.execute(
                "DELETE FROM bus_log WHERE pos >= ? AND pos < ? AND pos < coalesce(("
                "SELECT min(o.next_pos) FROM bus_offsets o WHERE o.topic = bus_log.topic"
                " AND o.at >= ?), ?)", (lo, hi, cutoff, hi)).rowcount)

        first, end = await self.db.run(old_positions)
        removed = 0
        for lo in range(first, end, PRUNE_CHUNK):
            removed += await self.db.transaction(partial(forget, lo=lo, hi=min(lo + PRUNE_CHUNK, end)))
        return removed

    async def count_lag(self) -> None:
        """Sets the lag of each group's topic this process reads: the events from its committed
        offset on, so those of a batch its handler is still on too. Others' series are dropped:
        the process that reads shows them."""
        pairs = list(self._leases)
        held = [(group, topic) for group, topic in pairs if self._leases[group, topic].holds()]

        def q(c: sqlite3.Connection) -> list[int]:
            return [c.execute(
                "SELECT count(*) FROM bus_log WHERE topic=? AND pos >= coalesce("
                "(SELECT next_pos FROM bus_offsets WHERE grp=? AND topic=?), 0)",
                (topic, group, topic)).fetchone()[0] for group, topic in held]

        counts = await self.db.run(q) if held else []
        for (group, topic), lag in zip(held, counts, strict=True):
            self.metrics.consumer_lag.labels(topic, "0", group).set(lag)
        for group, topic in pairs:
            if (group, topic) not in held:
                with contextlib.suppress(KeyError):
                    self.metrics.consumer_lag.remove(topic, "0", group)

    async def drained(self, group: str) -> bool:
        topics = {t for s in self._subs if s.group == group for t in s.topics}

        def q(c: sqlite3.Connection) -> bool:
            for topic in topics:
                row = c.execute(
                    "SELECT 1 FROM bus_log WHERE topic=? AND pos >= coalesce("
                    "(SELECT next_pos FROM bus_offsets WHERE grp=? AND topic=?), 0) LIMIT 1",
                    (topic, group, topic)).fetchone()
                if row:
                    return False
            return True

        return await self.db.run(q)

    async def read(self, topic: str, after: int = 0, limit: int = 1000) -> list[Message]:
        """The topic's log from `after` on: for tools and tests that inspect a topic."""
        rows = await self.db.run(lambda c: c.execute(
            "SELECT pos, key, value, headers FROM bus_log WHERE topic=? AND pos>? ORDER BY pos LIMIT ?",
            (topic, after, limit)).fetchall())
        return [self._message(topic, r) for r in rows]

    async def dead_letters(self, topic: str) -> list[Message]:
        found: list[Message] = []
        while page := await self.read(topic + DLQ_SUFFIX, found[-1].offset if found else 0):
            found += page
        return found

    @staticmethod
    def _message(topic: str, row: sqlite3.Row) -> Message:
        headers = tuple((k, v.encode()) for k, v in orjson.loads(row["headers"]))
        return Message(topic=topic, key=row["key"], value=row["value"], headers=headers,
                       partition=0, offset=row["pos"])

    async def _consume(self, sub: Subscription, wake: asyncio.Event) -> None:
        processor = EventProcessor(sub, self.registry, self.processed, self.publish, self.metrics,
                                   max_attempts=self.max_attempts, backoff_s=self.backoff_s)
        while not self._stopping:
            wake.clear()
            busy = False
            try:
                for topic in sub.topics:
                    if self._leases[sub.group, topic].holds():
                        busy |= await self._consume_topic(sub, topic, processor)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if self._stopping:
                    return
                if is_store_down(exc):  # the bus's own file, locked elsewhere past the wait
                    log.warning("embedded consumer waits for its store", extra={
                        "group": sub.group, "error": repr(exc)})
                else:
                    log.exception("embedded consumer failed; retrying", extra={"group": sub.group})
                await asyncio.sleep(self.poll_interval_s)
            if not busy:
                await woken(wake, self.poll_interval_s)

    async def _commit(self, group: str, topic: str, next_pos: int) -> None:
        now = self.clock()
        # Never back: a process whose lease ran out mid-batch may commit after the next leader.
        await self.db.run(lambda c: c.execute(
            "INSERT INTO bus_offsets (grp, topic, next_pos, at) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (grp, topic) DO UPDATE SET"
            " next_pos=max(next_pos, excluded.next_pos), at=excluded.at",
            (group, topic, next_pos, now)))

    async def _consume_topic(self, sub: Subscription, topic: str, processor: EventProcessor) -> bool:
        def fetch(c: sqlite3.Connection) -> list[sqlite3.Row]:
            row = c.execute("SELECT next_pos FROM bus_offsets WHERE grp=? AND topic=?",
                            (sub.group, topic)).fetchone()
            start = row["next_pos"] if row else 0
            return c.execute(
                "SELECT pos, key, value, headers FROM bus_log WHERE topic=? AND pos>=? "
                "ORDER BY pos LIMIT ?", (topic, start, self.batch)).fetchall()

        rows = await self.db.run(fetch)
        if rows and not self._stopping:
            # Counted before the batch is handled: a handler waiting for its store shows as lag.
            lag: int = await self.db.run(lambda c: c.execute(
                "SELECT count(*) FROM bus_log WHERE topic=? AND pos>=?",
                (topic, rows[0]["pos"])).fetchone()[0])
            gauge = self.metrics.consumer_lag.labels(topic, "0", sub.group)
            gauge.set(lag)
            lease = self._leases[sub.group, topic]

            def go_on(m: Message) -> bool:
                return not self._stopping and lease.holds()

            async def done(messages: Sequence[Message]) -> None:
                nonlocal lag
                if messages:
                    await self._commit(sub.group, topic, messages[-1].offset + 1)
                    lag -= len(messages)
                    gauge.set(max(lag, 0))

            await processor.process([self._message(topic, row) for row in rows],
                                    go_on=go_on, done=done)
        return len(rows) == self.batch and not self._stopping
