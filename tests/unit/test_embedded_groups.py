"""Processes on one data dir share the embedded bus's file: a consumer group's topic is read by
one of them at a time (the holder of its lease), as Kafka gives a partition to one member of a
group. Two `bloop worker learning` started together each handled every event before."""

from __future__ import annotations

import asyncio
import os
import socket
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bloop.platform.kit.events.bus.embedded import EmbeddedEventBus
from bloop.platform.kit.events.bus.port import Message, Subscription
from bloop.platform.kit.events.dedupe import SqliteProcessedEvents
from bloop.platform.kit.events.envelope import Envelope, parse_envelope
from bloop.platform.kit.events.sqlite_lease import take_lease
from bloop.platform.kit.events.types import registry, type_of
from bloop.platform.kit.metrics import Metrics
from bloop.platform.kit.sqlite import SqliteDB
from tests.support import PingSent, eventually

PING = type_of(PingSent)
TOPIC = "test.groups"
GROUP = "learning"


class Process:
    """What one process on the data dir opens: its own connections to the bus's file and to
    the processed-events file, and its bus."""

    def __init__(self, tmp: Path, name: str, lease_s: float) -> None:
        self.name = name
        self.bus_db = SqliteDB(tmp / "bus.sqlite3")
        self.processed_db = SqliteDB(tmp / "processed.sqlite3")
        self.metrics = Metrics()
        self.bus = EmbeddedEventBus(self.bus_db, registry, SqliteProcessedEvents(self.processed_db),
                                    self.metrics, poll_interval_s=0.02, lease_s=lease_s)
        self.open = True

    async def start(self, handled: list[tuple[str, uuid.UUID, float]],
                    gate: asyncio.Event | None = None) -> None:
        async def handle(envelope: Envelope) -> None:
            handled.append((self.name, envelope.id, time.time()))
            if gate is not None:
                await gate.wait()

        await SqliteProcessedEvents(self.processed_db).setup()
        self.bus.subscribe(Subscription(GROUP, (TOPIC,), handle))
        await self.bus.start()

    async def stop(self) -> None:
        if self.open:
            self.open = False
            await self.bus.close()
            await self.bus_db.close()
            await self.processed_db.close()


@pytest.fixture
async def processes(tmp_path: Path) -> AsyncIterator[list[Process]]:
    opened: list[Process] = []
    yield opened
    for process in opened:
        await process.stop()


def pings(count: int, first: int = 0) -> list[Message]:
    return [Message.of(PING.envelope(PingSent(run="groups", n=n), tenant="t1", subject=f"a{n % 7}"),
                       TOPIC) for n in range(first, first + count)]


async def published(tmp_path: Path, messages: list[Message]) -> None:
    """Events published while no consumer of the group runs (a `bloop worker` started later)."""
    db = SqliteDB(tmp_path / "bus.sqlite3")
    publisher = EmbeddedEventBus(db, registry, SqliteProcessedEvents(db), Metrics())
    await publisher.start()
    await publisher.publish(messages)
    await publisher.close()
    await db.close()


def ids(messages: list[Message]) -> list[uuid.UUID]:
    return sorted(parse_envelope(m.value).id for m in messages)


async def two_started(tmp_path: Path, processes: list[Process],
                      handled: list[tuple[str, uuid.UUID, float]], lease_s: float = 10,
                      gate: asyncio.Event | None = None) -> list[Process]:
    pair = [Process(tmp_path, name, lease_s) for name in ("one", "two")]
    processes += pair
    await asyncio.gather(*(p.start(handled, gate) for p in pair))
    return pair


def shown(process: Process, leads: int) -> bool:
    leading = f'bloop_consumer_leading{{group="{GROUP}",topic="{TOPIC}"}} {leads}.0'
    return leading in process.metrics.render().decode()


async def test_two_processes_in_one_group_handle_each_event_once(
        tmp_path: Path, processes: list[Process]) -> None:
    events = pings(300)
    await published(tmp_path, events)
    handled: list[tuple[str, uuid.UUID, float]] = []
    gate = asyncio.Event()
    pair = await two_started(tmp_path, processes, handled, gate=gate)

    async def both_in_or_one_stands_by() -> bool:
        # The first handler holds its batch uncommitted until the other process has either
        # entered a handler too (it read the same offset) or said it stands by.
        return len({name for name, _, _ in handled}) == 2 or any(shown(p, 0) for p in pair)

    await eventually(both_in_or_one_stands_by, what="the other process reading or standing by")
    gate.set()

    async def all_handled() -> bool:
        return len({i for _, i, _ in handled}) == 300 and await pair[0].bus.drained(GROUP)

    await eventually(all_handled, what="the 300 events")
    for p in pair:
        await p.stop()  # whatever the stand-by was doing is done
    assert sorted(i for _, i, _ in handled) == ids(events)
    assert len({name for name, _, _ in handled}) == 1  # the leader's, the stand-by read nothing
    counted = [p.metrics.events_consumed.labels(TOPIC, GROUP, "ok")._value.get() for p in pair]
    assert sorted(counted) == [0, 300]


async def test_the_stand_by_takes_over_when_the_leader_stops(
        tmp_path: Path, processes: list[Process]) -> None:
    handled: list[tuple[str, uuid.UUID, float]] = []
    pair = await two_started(tmp_path, processes, handled, lease_s=1)
    await pair[0].bus.publish(pings(20))

    async def first_handled() -> bool:
        return len({i for _, i, _ in handled}) == 20 and await pair[0].bus.drained(GROUP)

    await eventually(first_handled, what="the first 20 events")
    leader = next(p for p in pair if p.name == handled[0][0])
    standby = next(p for p in pair if p is not leader)
    assert shown(leader, 1)
    assert shown(standby, 0)
    await leader.stop()
    later = pings(20, first=20)
    await standby.bus.publish(later)

    async def rest_handled() -> bool:
        return len(handled) >= 40 and await standby.bus.drained(GROUP)

    await eventually(rest_handled, what="the stand-by handling the next 20")
    await standby.stop()
    assert sorted(i for _, i, _ in handled[20:]) == ids(later)
    assert {name for name, _, _ in handled[20:]} == {standby.name}
    assert len(handled) == 40


async def test_a_dead_leaders_lease_is_waited_out(tmp_path: Path, processes: list[Process]) -> None:
    """A leader that died without stopping (on another machine, or hung) holds its group until
    its lease runs out; then the stand-by reads on from the group's offset."""
    events = pings(10)
    await published(tmp_path, events)
    db = SqliteDB(tmp_path / "bus.sqlite3")
    until = time.time() + 1.5
    await db.transaction(lambda c: take_lease(c, "bus_leases", {"grp": GROUP, "topic": TOPIC},
                                              "elsewhere:1:dead", 1.5, None))
    await db.close()
    handled: list[tuple[str, uuid.UUID, float]] = []
    process = Process(tmp_path, "standby", lease_s=1)
    processes.append(process)
    await process.start(handled)

    async def all_handled() -> bool:
        return len(handled) == 10

    await eventually(all_handled, what="the events, once the dead leader's lease ran out")
    assert min(at for _, _, at in handled) >= until


async def test_the_lease_of_a_process_that_ended_on_this_machine_is_not_waited_out(
        tmp_path: Path, processes: list[Process]) -> None:
    """A worker killed and started again reads on at once, not a lease later."""
    ended = await asyncio.create_subprocess_exec("true")
    await ended.wait()
    await published(tmp_path, pings(10))
    db = SqliteDB(tmp_path / "bus.sqlite3")
    until = time.time() + 600
    await db.transaction(lambda c: take_lease(c, "bus_leases", {"grp": GROUP, "topic": TOPIC},
                                              f"{socket.gethostname()}:{ended.pid}:killed", 600,
                                              None))
    await db.close()
    assert ended.pid != os.getpid()
    handled: list[tuple[str, uuid.UUID, float]] = []
    process = Process(tmp_path, "restarted", lease_s=1)
    processes.append(process)
    await process.start(handled)

    async def all_handled() -> bool:
        return len(handled) == 10

    await eventually(all_handled, what="the events, at once")
    assert max(at for _, _, at in handled) < until


async def test_a_leader_whose_lease_ran_out_mid_batch_leaves_the_rest_of_it(
        tmp_path: Path, processes: list[Process]) -> None:
    """A process whose lease ran out mid-batch (paused past it: another process may lead now)
    stops at the next event and commits what it handled; it used to handle its batch to the
    end while the new leader read the same events."""
    await published(tmp_path, pings(300))
    one = Process(tmp_path, "one", lease_s=10)
    processes.append(one)
    handled: list[int] = []

    async def another(holder: str, ttl_s: float, replacing: str | None) -> str | None:
        return "another"

    async def handle(envelope: Envelope) -> None:
        if len(handled) == 10:
            lease = one.bus._leases[GROUP, TOPIC]
            lease.take = another  # taken over meanwhile
            lease._valid_until = 0.0  # and this process's lease ran out
        handled.append(envelope.data["n"])

    await SqliteProcessedEvents(one.processed_db).setup()
    one.bus.subscribe(Subscription(GROUP, (TOPIC,), handle))
    await one.bus.start()

    async def committed() -> int:
        row = await one.bus_db.run(lambda c: c.execute(
            "SELECT next_pos FROM bus_offsets WHERE grp=? AND topic=?", (GROUP, TOPIC)).fetchone())
        return 0 if row is None else int(row[0])

    async def stopped() -> bool:
        return await committed() > 0

    await eventually(stopped, what="the batch ended")
    await asyncio.sleep(0.3)
    assert handled == list(range(11))  # the event in hand when its lease ran out, no more
    assert await committed() == 12  # positions start at 1
