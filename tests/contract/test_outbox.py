"""The outbox contract over SQLite, MongoDB (FerretDB) and Neo4j: an event is stored in the same
atomic write as its state change, and the relay publishes pending events in order, once."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import socket
import uuid
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any, Protocol

import pytest
from neo4j import AsyncManagedTransaction
from pymongo.errors import DuplicateKeyError

from bloop.platform.kit import stores
from bloop.platform.kit.errors import StoreUnavailable
from bloop.platform.kit.events.bus.port import Message
from bloop.platform.kit.events.envelope import Envelope, MalformedEvent, parse_envelope
from bloop.platform.kit.events.outbox import OutboxRelay, OutboxStore
from bloop.platform.kit.events.outbox.mongo import MongoOutbox
from bloop.platform.kit.events.outbox.neo4j import Neo4jOutbox
from bloop.platform.kit.events.outbox.port import MAX_EVENT_BYTES, EventTooLarge, Scanning
from bloop.platform.kit.events.outbox.sqlite import SqliteOutbox
from bloop.platform.kit.events.types import registry
from bloop.platform.kit.metrics import Metrics
from bloop.platform.kit.mongo_guard import MongoGuard, is_ferretdb
from bloop.platform.kit.settings import MongoSettings, Neo4jSettings, OutboxSettings
from bloop.platform.kit.sqlite import SqliteDB
from tests.support import TEST_TOPIC, PingSent, require_server

PING = PingSent.event_type  # type: ignore[attr-defined]


class Rollback(Exception):
    pass


class Case(Protocol):
    @property
    def outbox(self) -> OutboxStore: ...

    async def write(self, thing_id: str, envelopes: Sequence[Envelope], fail: bool = False) -> None:
        """Stores a thing and its events atomically; with `fail`, the write fails midway."""

    async def things(self) -> int: ...


class SqliteCase:
    def __init__(self, tmp: Path) -> None:
        self.db = SqliteDB(tmp / "svc.sqlite3")
        self.outbox = SqliteOutbox(self.db, registry)

    async def setup(self) -> None:
        await self.outbox.setup()
        await self.db.run(lambda c: c.execute("CREATE TABLE things (id TEXT PRIMARY KEY)"))

    async def write(self, thing_id: str, envelopes: Sequence[Envelope], fail: bool = False) -> None:
        def txn(c: Any) -> None:
            c.execute("INSERT OR IGNORE INTO things (id) VALUES (?)", (thing_id,))
            self.outbox.add(c, *envelopes)
            if fail:
                raise Rollback

        await self.db.transaction(txn)

    async def things(self) -> int:
        return int((await self.db.run(lambda c: c.execute("SELECT count(*) FROM things").fetchone()))[0])


class MongoCase:
    def __init__(self) -> None:
        self.client = stores.mongo_client(MongoSettings())
        self.dbname = f"outbox_test_{uuid.uuid4().hex[:8]}"
        self.coll = self.client[self.dbname]["things"]
        self.outbox = MongoOutbox([self.coll], registry)

    async def setup(self) -> None:
        await self.outbox.setup()

    async def write(self, thing_id: str, envelopes: Sequence[Envelope], fail: bool = False) -> None:
        if await self.coll.find_one({"_id": thing_id}) is None:
            doc = self.outbox.new_document({"_id": thing_id, "n": 0}, *envelopes)
            await self.coll.insert_one(doc)
            if fail:
                await self.coll.insert_one(self.outbox.new_document({"_id": thing_id}, *envelopes))
        else:
            update = self.outbox.with_events({"$inc": {"n": 1}}, *envelopes)
            await self.coll.update_one({"_id": thing_id}, update)

    async def things(self) -> int:
        return await self.coll.count_documents({})

    async def close(self) -> None:
        await self.client.drop_database(self.dbname)
        await self.client.close()


class Neo4jCase:
    def __init__(self) -> None:
        self.driver = stores.neo4j_driver(Neo4jSettings())
        self.label = f"Thing{uuid.uuid4().hex[:8]}"
        self.outbox = Neo4jOutbox(self.driver, registry, name=f"outbox-{self.label}")

    async def setup(self) -> None:
        await self.outbox.setup()

    async def write(self, thing_id: str, envelopes: Sequence[Envelope], fail: bool = False) -> None:
        async def work(tx: AsyncManagedTransaction) -> None:
            await tx.run(f"MERGE (t:{self.label} {{id: $id}})", id=thing_id)
            await self.outbox.add(tx, *envelopes)
            if fail:
                raise Rollback

        async with self.driver.session() as session:
            await session.execute_write(work)

    async def things(self) -> int:
        records, _, _ = await self.driver.execute_query(f"MATCH (t:{self.label}) RETURN count(t) AS n")
        return int(records[0]["n"])

    async def close(self) -> None:
        await self.driver.execute_query(f"MATCH (t:{self.label}) DETACH DELETE t")
        await self.driver.execute_query("MATCH (e:BloopOutbox {name: $n}) DELETE e", n=self.outbox.name)
        await self.driver.execute_query("MATCH (s:BloopOutboxSeq {name: $n}) DELETE s", n=self.outbox.name)
        await self.driver.close()


@pytest.fixture(params=["sqlite", "mongo", "neo4j"])
async def case(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Case]:
    c: SqliteCase | MongoCase | Neo4jCase
    if request.param == "sqlite":
        c = SqliteCase(tmp_path)
    elif request.param == "mongo":
        require_server("mongo")
        c = MongoCase()
    else:
        require_server("neo4j")
        c = Neo4jCase()
    await c.setup()
    yield c
    if isinstance(c, SqliteCase):
        await c.db.close()
    else:
        await c.close()


class RecordingBus:
    """Stands in for the bus: the port under test here is the outbox."""

    def __init__(self) -> None:
        self.published: list[Message] = []
        self.down = False

    async def publish(self, messages: Sequence[Message]) -> None:
        if self.down:
            raise StoreUnavailable("kafka", "broker down")
        self.published.extend(messages)


def relay_for(outbox: OutboxStore, bus: RecordingBus, lease_s: float = 10) -> OutboxRelay:
    return OutboxRelay(outbox, bus, Metrics(), OutboxSettings(batch_size=7, lease_s=lease_s))  # type: ignore[arg-type]


def numbers(bus: RecordingBus) -> list[int]:
    return [parse_envelope(m.value).data["n"] for m in bus.published]


def ping(n: int, subject: str) -> Envelope:
    return PING.envelope(PingSent(run="outbox", n=n), tenant="t1", subject=subject)  # type: ignore[no-any-return]


async def test_events_are_stored_with_their_state_change(case: Case) -> None:
    await case.write("a", [ping(1, "a"), ping(2, "a")])
    assert await case.things() == 1
    assert await case.outbox.count_pending() >= 1
    pending = await case.outbox.pending(100)
    assert [m.message.topic for m in pending] == [TEST_TOPIC, TEST_TOPIC]


async def test_marking_nothing_sent_changes_nothing(case: Case) -> None:
    await case.write("a", [ping(1, "a")])
    await case.outbox.mark_sent([])
    assert len(await case.outbox.pending(100)) == 1


async def test_writes_without_events_never_hold_back_those_with_them(case: Case) -> None:
    """Many records changed with no event (profile edits), then one with an event: it is
    read and relayed, and nothing stays pending (on MongoDB a pending mark set with no event
    never cleared, and a page of such records hid every event behind them)."""
    for n in range(12):
        await case.write(f"quiet{n}", [])
        await case.write(f"quiet{n}", [])
    await case.write("loud", [ping(1, "loud")])
    assert [m.message.topic for m in await case.outbox.pending(5)] == [TEST_TOPIC]
    bus = RecordingBus()
    await relay_for(case.outbox, bus).flush()
    assert len(bus.published) == 1
    assert await case.outbox.count_pending() == 0


async def test_a_failed_write_leaves_neither_state_nor_event(case: Case) -> None:
    with pytest.raises((Rollback, DuplicateKeyError)):
        await case.write("b", [ping(1, "b")], fail=True)
    pending = await case.outbox.pending(100)
    if isinstance(case, MongoCase):
        # The failed second write is the one that carried no state; the first is whole.
        assert await case.things() == 1
        assert len(pending) == 1
    else:
        assert await case.things() == 0
        assert pending == []


async def test_an_invalid_event_is_refused_before_anything_is_written(case: Case) -> None:
    bad = dataclasses.replace(ping(1, "c"), data={"run": "outbox", "n": "one"})
    with pytest.raises(MalformedEvent):
        await case.write("c", [bad])
    assert await case.things() == 0


async def test_an_event_too_large_for_the_bus_is_refused_before_anything_is_written(
        case: Case) -> None:
    """Stored, it would stop the outbox: the relay sends in order, and Kafka refuses a record
    past its limit every time."""
    big = PING.envelope(PingSent(run="x" * MAX_EVENT_BYTES, n=1), tenant="t1", subject="d")
    with pytest.raises(EventTooLarge) as refused:
        await case.write("d", [ping(0, "d"), big])
    assert (refused.value.status, refused.value.code) == (422, "change_too_large")
    assert refused.value.extra["max_bytes"] == MAX_EVENT_BYTES
    assert await case.things() == 0
    assert await case.outbox.pending(100) == []
    largest = PING.envelope(PingSent(run="x" * (MAX_EVENT_BYTES - 1024), n=2), tenant="t1",
                            subject="e")
    await case.write("e", [largest])
    bus = RecordingBus()
    await relay_for(case.outbox, bus).flush()
    assert [parse_envelope(m.value).id for m in bus.published] == [largest.id]


async def test_the_relay_publishes_in_order_and_marks_sent(case: Case) -> None:
    written: dict[str, list[int]] = {}
    for n in range(30):
        subject = f"agg{n % 3}"
        await case.write(subject, [ping(n, subject)])
        written.setdefault(subject, []).append(n)
    bus = RecordingBus()
    relay = relay_for(case.outbox, bus)
    await relay.flush()
    assert await case.outbox.count_pending() == 0
    assert await case.outbox.pending(100) == []
    got: dict[str, list[int]] = {}
    for m in bus.published:
        env = parse_envelope(m.value)
        assert m.key == env.subject.encode()
        got.setdefault(env.subject, []).append(env.data["n"])
    assert got == written
    await relay.flush()
    assert len(bus.published) == 30


async def test_events_wait_while_the_bus_is_down(case: Case) -> None:
    await case.write("d", [ping(1, "d"), ping(2, "d")])
    bus = RecordingBus()
    bus.down = True
    relay = relay_for(case.outbox, bus)
    with pytest.raises(StoreUnavailable):
        await relay.run_once()
    assert len(await case.outbox.pending(100)) == 2
    bus.down = False
    await relay.flush()
    assert numbers(bus) == [1, 2]
    assert await case.outbox.pending(100) == []


async def test_one_relay_at_a_time_publishes_an_outbox(case: Case) -> None:
    """Every process writing to an outbox runs a relay for it: one leads and publishes, the
    others stand by, so each event is sent once (both published everything, about half of it
    twice, and one aggregate's events could go out of order)."""
    buses = RecordingBus(), RecordingBus()
    relays = [relay_for(case.outbox, bus) for bus in buses]
    for n in range(12):
        await case.write("agg", [ping(n, "agg")])
        await asyncio.gather(*(relay.run_once() for relay in relays))
    assert sorted(relay.leads for relay in relays) == [False, True]
    leader, standby = sorted(range(2), key=lambda i: not relays[i].leads)
    assert numbers(buses[leader]) == list(range(12))
    assert buses[standby].published == []
    assert await case.outbox.count_pending() == 0

    await relays[leader].stop()  # a clean stop hands the lease over at once
    await case.write("agg", [ping(12, "agg")])
    assert await relays[standby].run_once() == 1
    assert numbers(buses[standby]) == [12]
    assert await relays[leader].run_once() == 0


async def test_a_relay_that_stops_unannounced_is_taken_over_once_its_lease_runs_out(
        case: Case) -> None:
    gone, standby = RecordingBus(), RecordingBus()
    await case.write("agg", [ping(1, "agg")])
    assert await relay_for(case.outbox, gone, lease_s=1).run_once() == 1  # then never again
    await case.write("agg", [ping(2, "agg")])
    relay = relay_for(case.outbox, standby, lease_s=1)
    assert await relay.run_once() == 0
    await asyncio.sleep(1.2)
    await relay.flush()
    assert (numbers(gone), numbers(standby)) == ([1], [2])


async def test_the_lease_of_a_process_that_ended_on_this_machine_is_not_waited_out(
        case: Case) -> None:
    """A server killed and started again: its new relay takes over at once, not a lease
    later. A live process's lease is waited out."""
    ended = await asyncio.create_subprocess_exec("true")
    await ended.wait()
    host = socket.gethostname()
    await case.write("agg", [ping(1, "agg")])
    bus = RecordingBus()
    await case.outbox.lead(f"{host}:{os.getppid()}:alive", 60)
    assert await relay_for(case.outbox, bus).run_once() == 0
    await case.outbox.step_down(f"{host}:{os.getppid()}:alive")
    await case.outbox.lead(f"{host}:{ended.pid}:killed", 60)
    relay = relay_for(case.outbox, bus)
    assert await relay.run_once() == 1
    assert relay.leads
    assert numbers(bus) == [1]


async def test_a_mongodb_outbox_says_its_looks_read_everything_on_ferretdb_only() -> None:
    """Its relay looks less often while idle there (`OutboxRelay.next_look`)."""
    require_server("mongo")
    case = MongoCase()
    try:
        guard = MongoGuard(case.client[case.dbname]["guard_claims"])
        guarded = MongoOutbox([case.coll], registry, guard=guard)
        ferretdb = is_ferretdb(await case.client.admin.command("buildInfo"))
        assert isinstance(guarded, Scanning)
        assert await guarded.looks_scan() == ferretdb
        assert await case.outbox.looks_scan() is False  # no guard: nothing known of the server
    finally:
        await case.close()
