"""The embedded bus and dedupe store do not grow for ever: events past the retention that every
group reading their topic has processed are forgotten (a group that has not committed within the
retention counting as gone), and processed ids past their time."""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from bloop.platform.kit.events import dedupe
from bloop.platform.kit.events.bus import embedded
from bloop.platform.kit.events.bus.embedded import EmbeddedEventBus
from bloop.platform.kit.events.bus.port import Message, Subscription
from bloop.platform.kit.events.dedupe import SqliteProcessedEvents
from bloop.platform.kit.events.envelope import Envelope, parse_envelope
from bloop.platform.kit.events.types import registry
from bloop.platform.kit.metrics import Metrics
from bloop.platform.kit.sqlite import SqliteDB
from tests.support import PingSent, bounded, eventually

PING = PingSent.event_type  # type: ignore[attr-defined]
DAY = 86_400.0


class Clock:
    def __init__(self) -> None:
        self.now = 1_750_000_000.0

    def __call__(self) -> float:
        return self.now


def pings(topic: str, *numbers: int) -> list[Message]:
    return [Message.of(PING.envelope(PingSent(run="retention", n=n), tenant="t1", subject="a"),
                       topic) for n in numbers]


async def clocked_bus(tmp_path: Path, clock: Clock
                      ) -> tuple[SqliteDB, SqliteProcessedEvents, EmbeddedEventBus]:
    db = SqliteDB(tmp_path / "events.sqlite3")
    processed = SqliteProcessedEvents(db, clock=clock)
    await processed.setup()
    return db, processed, EmbeddedEventBus(db, registry, processed, Metrics(),
                                           poll_interval_s=0.02, prune_every_s=None, clock=clock)


async def test_the_log_keeps_a_week_and_what_a_group_has_not_read(tmp_path: Path) -> None:
    clock = Clock()
    db, processed, bus = await clocked_bus(tmp_path, clock)
    handled: list[int] = []

    async def handler(envelope: Envelope) -> None:
        handled.append(envelope.data["n"])

    bus.subscribe(Subscription("readers", ("read.topic",), handler))
    await bus.start()
    await bus.publish(pings("read.topic", 1, 2, 3) + pings("read.topic.dlq", 4))

    async def all_read() -> bool:
        return handled == [1, 2, 3]

    await eventually(all_read, what="the three events")
    await bus.close()  # the group stops: what comes next waits for it
    bus = EmbeddedEventBus(db, registry, processed, Metrics(), prune_every_s=None, clock=clock)
    clock.now += 3 * DAY
    await bus.publish(pings("read.topic", 5))
    clock.now += 5 * DAY  # past a week for the first four, not for the fifth
    await bus.publish(pings("read.topic", 6))
    assert await bus.prune() == 4

    kept = {t: [m.offset for m in await bus.read(t)] for t in ("read.topic", "read.topic.dlq")}
    assert len(kept["read.topic"]) == 2  # 5 (too young, and unread) and 6
    assert kept["read.topic.dlq"] == []  # read by no group: by age alone

    bus = EmbeddedEventBus(db, registry, processed, Metrics(), poll_interval_s=0.02,
                           prune_every_s=None, clock=clock)
    bus.subscribe(Subscription("readers", ("read.topic",), handler))
    await bus.start()  # the group comes back

    async def rest_read() -> bool:
        return handled == [1, 2, 3, 5, 6]

    await eventually(rest_read, what="the events that waited for the group")
    assert await bus.prune() == 0  # read, but not a week old
    clock.now += 8 * DAY
    assert await bus.prune() == 2
    await bus.close()
    await db.close()


async def test_a_group_that_stopped_a_retention_ago_no_longer_holds_events(tmp_path: Path) -> None:
    clock = Clock()
    db, processed, bus = await clocked_bus(tmp_path, clock)
    handled: list[int] = []

    async def handler(envelope: Envelope) -> None:
        handled.append(envelope.data["n"])

    bus.subscribe(Subscription("gone", ("read.topic",), handler))  # a search index rebuilt since
    await bus.start()
    await bus.publish(pings("read.topic", 1))

    async def first_read() -> bool:
        return handled == [1]

    await eventually(first_read, what="the first event")
    await bus.close()  # "gone" committed now, and never again
    await bus.publish(pings("read.topic", 2, 3))
    clock.now += 8 * DAY  # the three events and "gone"'s commit are past the retention

    # "live" works through the backlog one event at a time and is held up by the third: its
    # commits are recent, so what it has not read stays.
    reached, release = asyncio.Event(), asyncio.Event()

    async def slow(envelope: Envelope) -> None:
        if envelope.data["n"] == 3:
            reached.set()
            await release.wait()

    bus = EmbeddedEventBus(db, registry, processed, Metrics(), poll_interval_s=0.02, batch=1,
                           prune_every_s=None, clock=clock)
    bus.subscribe(Subscription("live", ("read.topic",), slow))
    await bus.start()
    await bounded(reached.wait(), 30, "the live group at the third event")
    assert await bus.prune() == 2  # 1 and 2: "gone" has read neither, but holds nothing back
    assert [m.offset for m in await bus.read("read.topic")] == [3]
    release.set()
    await eventually(lambda: bus.drained("live"), what="the live group done")
    assert await bus.prune() == 1
    await bus.close()
    await db.close()


async def test_groups_of_a_file_from_before_commit_times_count_as_committed_at_the_upgrade(
        tmp_path: Path) -> None:
    path = tmp_path / "events.sqlite3"
    clock = Clock()
    with closing(sqlite3.connect(path)) as old, old:  # the schema before commits were timed
        old.executescript(
            "CREATE TABLE bus_log (pos INTEGER PRIMARY KEY AUTOINCREMENT, topic TEXT NOT NULL,"
            " key BLOB, value BLOB NOT NULL, headers BLOB NOT NULL, at REAL NOT NULL);"
            "CREATE INDEX bus_log_topic ON bus_log (topic, pos);"
            "CREATE TABLE bus_offsets (grp TEXT NOT NULL, topic TEXT NOT NULL,"
            " next_pos INTEGER NOT NULL, PRIMARY KEY (grp, topic));")
        old.executemany("INSERT INTO bus_log (topic, key, value, headers, at) VALUES (?, ?, ?, ?, ?)",
                        [(m.topic, m.key, m.value, b"[]", clock.now)
                         for m in pings("read.topic", 1, 2, 3)])
        old.executemany("INSERT INTO bus_offsets (grp, topic, next_pos) VALUES (?, ?, ?)",
                        [("behind", "read.topic", 2), ("ahead", "read.topic", 4)])
    clock.now += 8 * DAY  # the events, and whenever the groups last read, are past the retention
    db = SqliteDB(path)
    processed = SqliteProcessedEvents(db, clock=clock)
    await processed.setup()
    bus = EmbeddedEventBus(db, registry, processed, Metrics(), prune_every_s=None, clock=clock)
    await bus.start()
    assert await bus.prune() == 1  # what "behind" has read; it has not read 2 and 3
    assert [m.offset for m in await bus.read("read.topic")] == [2, 3]
    clock.now += 8 * DAY  # a retention after the upgrade, and "behind" has not moved
    upgraded = EmbeddedEventBus(db, registry, processed, Metrics(), prune_every_s=None, clock=clock)
    await upgraded.start()  # upgraded once
    assert await bus.prune() == 2
    await upgraded.close()
    await bus.close()
    await db.close()


async def test_processed_ids_are_forgotten_after_their_time(tmp_path: Path) -> None:
    clock = Clock()
    db = SqliteDB(tmp_path / "processed.sqlite3")
    processed = SqliteProcessedEvents(db, clock=clock)
    await processed.setup()
    old, new = uuid.uuid4(), uuid.uuid4()
    await processed.mark("g", [old])
    clock.now += 13 * DAY
    await processed.mark("g", [new])  # prunes (an hour has passed); `old` is not due yet
    assert await processed.seen("g", [old, new]) == {old, new}
    clock.now += 2 * DAY
    await processed.mark("g", [uuid.uuid4()])
    assert await processed.seen("g", [old, new]) == {new}
    await db.close()


async def test_prunes_go_a_chunk_at_a_time(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                           ) -> None:
    """An hour's prune of a busy log (or of a fortnight's ids) was one DELETE on the event
    loop, which it held meanwhile (a third of a second for an hour of a soak's events)."""
    monkeypatch.setattr(embedded, "PRUNE_CHUNK", 3)
    monkeypatch.setattr(dedupe, "PRUNE_CHUNK", 3)
    clock = Clock()
    db, processed, bus = await clocked_bus(tmp_path, clock)
    await bus.start()
    await bus.publish(pings("unread.topic", *range(10)))
    for group in ("a", "b"):
        await processed.mark(group, [uuid.uuid4() for _ in range(5)])
    await bus.close()
    clock.now += 15 * DAY
    processed = SqliteProcessedEvents(db, clock=clock)
    bus = EmbeddedEventBus(db, registry, processed, Metrics(), prune_every_s=None, clock=clock)
    await bus.publish(pings("unread.topic", 10))
    kept = uuid.uuid4()
    deletes: list[int] = []
    real = db.transaction

    async def counted(fn: Any) -> Any:
        result = await real(fn)
        if isinstance(result, int):
            deletes.append(result)
        elif isinstance(result, sqlite3.Cursor) and result.rowcount > 0:
            deletes.append(result.rowcount)
        return result

    monkeypatch.setattr(db, "transaction", counted)
    assert await bus.prune() == 10
    assert len(deletes) >= 4, deletes
    assert max(deletes) <= 3, deletes
    deletes.clear()
    await processed.mark("a", [kept])  # a process's first mark prunes
    insert, *chunks = deletes
    assert (insert, sum(chunks)) == (1, 10), deletes
    assert len(chunks) >= 4, deletes
    assert max(chunks) <= 3, deletes
    assert await processed.seen("a", [kept]) == {kept}
    assert [parse_envelope(m.value).data["n"] for m in await bus.read("unread.topic")] == [10]
    await db.close()


async def test_a_process_forgets_old_events_at_start(tmp_path: Path) -> None:
    """Pruning came only with a publish an hour after the bus was made: processes restarted
    more often kept events, personal data included, past the retention."""
    clock = Clock()
    db, processed, bus = await clocked_bus(tmp_path, clock)
    await bus.start()
    await bus.publish(pings("unread.topic", 1, 2))
    await bus.close()
    clock.now += 8 * DAY
    bus = EmbeddedEventBus(db, registry, processed, Metrics(), clock=clock)
    await bus.start()

    async def forgotten() -> bool:
        return await bus.read("unread.topic") == []

    await eventually(forgotten, what="the old events forgotten at start")
    await bus.close()
    await db.close()


async def test_a_process_forgets_old_events_on_a_timer(tmp_path: Path) -> None:
    clock = Clock()
    db = SqliteDB(tmp_path / "events.sqlite3")
    processed = SqliteProcessedEvents(db, clock=clock)
    await processed.setup()
    bus = EmbeddedEventBus(db, registry, processed, Metrics(), prune_every_s=0.05, clock=clock)
    await bus.start()
    await bus.publish(pings("unread.topic", 1, 2))
    clock.now += 8 * DAY  # no publish, no restart: only the timer forgets them

    async def forgotten() -> bool:
        return await bus.read("unread.topic") == []

    await eventually(forgotten, what="the old events forgotten by the timer")
    await bus.close()
    await db.close()
