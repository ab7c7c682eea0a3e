"""The embedded bus and dedupe store do not grow for ever: events past the retention that every
group reading their topic has processed are forgotten, and processed ids past their time."""

from __future__ import annotations

import uuid
from pathlib import Path

from bloop.platform.kit.events.bus.embedded import EmbeddedEventBus
from bloop.platform.kit.events.bus.port import Message, Subscription
from bloop.platform.kit.events.dedupe import SqliteProcessedEvents
from bloop.platform.kit.events.envelope import Envelope
from bloop.platform.kit.events.types import registry
from bloop.platform.kit.metrics import Metrics
from bloop.platform.kit.sqlite import SqliteDB
from tests.support import PingSent, eventually

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


async def test_the_log_keeps_a_week_and_what_a_group_has_not_read(tmp_path: Path) -> None:
    clock = Clock()
    db = SqliteDB(tmp_path / "events.sqlite3")
    processed = SqliteProcessedEvents(db, clock=clock)
    await processed.setup()
    bus = EmbeddedEventBus(db, registry, processed, Metrics(), poll_interval_s=0.02, clock=clock)
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
    bus = EmbeddedEventBus(db, registry, processed, Metrics(), clock=clock)
    clock.now += 3 * DAY
    await bus.publish(pings("read.topic", 5))
    clock.now += 5 * DAY  # past a week for the first four, not for the fifth
    await bus.publish(pings("read.topic", 6))  # an hour has passed: this publish prunes

    kept = {t: [m.offset for m in await bus.read(t)] for t in ("read.topic", "read.topic.dlq")}
    assert len(kept["read.topic"]) == 2  # 5 (too young, and unread) and 6
    assert kept["read.topic.dlq"] == []  # read by no group: by age alone
    clock.now += 30 * DAY
    assert await bus.prune() == 0  # old now, but the group has not processed them
    assert len(await bus.read("read.topic")) == 2

    bus = EmbeddedEventBus(db, registry, processed, Metrics(), poll_interval_s=0.02, clock=clock)
    bus.subscribe(Subscription("readers", ("read.topic",), handler))
    await bus.start()  # the group comes back

    async def rest_read() -> bool:
        return handled == [1, 2, 3, 5, 6]

    await eventually(rest_read, what="the events that waited for the group")
    assert await bus.prune() == 2
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
