"""What the SQLite outbox adds to the outbox contract: committed events reach the relay from
memory, anything memory does not hold is read from the table, and older tables are taken over."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

import pytest

from bloop.platform.kit.events.bus.port import Message
from bloop.platform.kit.events.envelope import Envelope, parse_envelope
from bloop.platform.kit.events.outbox import relay as relay_module
from bloop.platform.kit.events.outbox.port import Pending
from bloop.platform.kit.events.outbox.relay import OutboxRelay
from bloop.platform.kit.events.outbox.sqlite import SqliteOutbox
from bloop.platform.kit.events.types import registry
from bloop.platform.kit.metrics import Metrics
from bloop.platform.kit.settings import OutboxSettings
from bloop.platform.kit.sqlite import SqliteDB
from tests.support import PingSent, eventually

PING = PingSent.event_type  # type: ignore[attr-defined]


def ping(n: int) -> Envelope:
    return PING.envelope(PingSent(run="sqlite-outbox", n=n), tenant="t1", subject=f"s{n % 4}")  # type: ignore[no-any-return]


class Bus:
    def __init__(self) -> None:
        self.published: list[Message] = []
        self.arrived = asyncio.Event()

    async def publish(self, messages: list[Message]) -> None:
        self.published.extend(messages)
        self.arrived.set()

    def numbers(self) -> list[int]:
        return [parse_envelope(m.value).data["n"] for m in self.published]


async def write(db: SqliteDB, outbox: SqliteOutbox, *ns: int) -> None:
    await db.transaction(lambda c: outbox.add(c, *(ping(n) for n in ns)))


async def test_committed_events_wake_the_relay_and_need_no_read(tmp_path: Path) -> None:
    db = SqliteDB(tmp_path / "s.sqlite3")
    outbox = SqliteOutbox(db, registry)
    await outbox.setup()
    bus = Bus()
    relay = OutboxRelay(outbox, bus, Metrics(), OutboxSettings(poll_interval_s=60))  # type: ignore[arg-type]
    relay.start()
    await asyncio.sleep(0.05)
    reads: list[str] = []
    await db.run(lambda c: c.set_trace_callback(reads.append))
    started = time.monotonic()
    await asyncio.gather(*(write(db, outbox, n) for n in range(40)))
    while len(bus.published) < 40:
        await asyncio.wait_for(bus.arrived.wait(), 5)
        bus.arrived.clear()
    assert time.monotonic() - started < 5, "a poll interval of 60 s was not waited out"
    assert sorted(bus.numbers()) == list(range(40))
    assert not [s for s in reads if s.lstrip().upper().startswith("SELECT SEQ")]
    await relay.stop()
    assert await outbox.count_pending() == 0
    await db.close()


async def test_events_memory_does_not_hold_are_read_from_the_table_in_order(tmp_path: Path) -> None:
    db = SqliteDB(tmp_path / "m.sqlite3")
    mine, other = SqliteOutbox(db, registry), SqliteOutbox(db, registry)
    await mine.setup()
    await other.setup()
    await write(db, mine, 0, 1)
    await write(db, other, 2)  # as another process writing to the same file would
    await db.run(lambda c: mine.add(c, ping(3)))  # outside any transaction
    await write(db, mine, 4)
    bus = Bus()
    relay = OutboxRelay(mine, bus, Metrics(), OutboxSettings(batch_size=2))  # type: ignore[arg-type]
    await relay.flush()
    assert bus.numbers() == [0, 1, 2, 3, 4]
    await write(db, mine, 5, 6)
    await write(db, other, 7)
    await relay.flush()
    assert bus.numbers() == [0, 1, 2, 3, 4, 5, 6, 7]
    assert await mine.count_pending() == 0
    await db.close()


async def test_a_restarted_outbox_sends_only_what_was_not_sent(tmp_path: Path) -> None:
    path = tmp_path / "r.sqlite3"
    db = SqliteDB(path)
    outbox = SqliteOutbox(db, registry)
    await outbox.setup()
    bus = Bus()
    await write(db, outbox, 0, 1)
    await OutboxRelay(outbox, bus, Metrics(), OutboxSettings()).flush()  # type: ignore[arg-type]
    await write(db, outbox, 2)
    await db.close()
    db = SqliteDB(path)
    again = SqliteOutbox(db, registry)
    await again.setup()
    assert await again.count_pending() == 1
    await OutboxRelay(again, bus, Metrics(), OutboxSettings()).flush()  # type: ignore[arg-type]
    assert bus.numbers() == [0, 1, 2]
    await db.close()


async def test_what_another_process_sent_is_not_sent_again(tmp_path: Path) -> None:
    """A command run beside the server writes and sends its own events; the server's relay,
    reading the table later for its own, starts after them."""
    path = tmp_path / "two.sqlite3"
    server_db, command_db = SqliteDB(path), SqliteDB(path)
    server, command = SqliteOutbox(server_db, registry), SqliteOutbox(command_db, registry)
    await server.setup()
    await command.setup()
    server_bus, command_bus = Bus(), Bus()
    await write(command_db, command, 0, 1)
    await OutboxRelay(command, command_bus, Metrics(), OutboxSettings()).flush()  # type: ignore[arg-type]
    await server_db.transaction(lambda c: c.execute(  # not through the server's memory
        "INSERT INTO outbox (id, topic, key, type, value, created_at) SELECT 'x' || id, topic,"
        " key, type, value, created_at FROM outbox WHERE seq = 2"))
    await OutboxRelay(server, server_bus, Metrics(), OutboxSettings()).flush()  # type: ignore[arg-type]
    assert command_bus.numbers() == [0, 1]
    assert server_bus.numbers() == [1]
    await server_db.close()
    await command_db.close()


async def test_a_table_from_before_the_relay_mark_is_taken_over(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    conn = sqlite3.connect(path)
    conn.executescript(
        "CREATE TABLE outbox (seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL,"
        " topic TEXT NOT NULL, key TEXT NOT NULL, type TEXT NOT NULL, value TEXT NOT NULL,"
        " created_at REAL NOT NULL, sent_at REAL);"
        "CREATE INDEX outbox_unsent ON outbox (seq) WHERE sent_at IS NULL;")
    for n in range(3):
        env = ping(n)
        conn.execute("INSERT INTO outbox (id, topic, key, type, value, created_at, sent_at)"
                     " VALUES (?, ?, ?, ?, ?, ?, ?)",
                     (str(env.id), PING.topic, env.subject, env.type, env.to_bytes().decode(),
                      time.time(), time.time() if n == 0 else None))
    conn.commit()
    conn.close()
    db = SqliteDB(path)
    outbox = SqliteOutbox(db, registry)
    await outbox.setup()
    assert await outbox.count_pending() == 2
    await write(db, outbox, 3)
    bus = Bus()
    await OutboxRelay(outbox, bus, Metrics(), OutboxSettings()).flush()  # type: ignore[arg-type]
    assert bus.numbers() == [1, 2, 3]
    indexes = await db.run(lambda c: c.execute(
        "SELECT name FROM sqlite_master WHERE type='index' AND name='outbox_unsent'").fetchall())
    assert indexes == []
    await db.close()


async def test_prune_forgets_only_sent_events(tmp_path: Path) -> None:
    db = SqliteDB(tmp_path / "p.sqlite3")
    outbox = SqliteOutbox(db, registry)
    await outbox.setup()
    await write(db, outbox, 0, 1)
    await OutboxRelay(outbox, Bus(), Metrics(), OutboxSettings()).flush()  # type: ignore[arg-type]
    await write(db, outbox, 2)
    assert await outbox.prune(-1) == 2
    assert await outbox.count_pending() == 1
    assert [p.message.topic for p in await outbox.pending(10)] == [PING.topic]
    await db.close()


async def test_events_in_memory_carry_the_numbers_the_table_gave_them(tmp_path: Path) -> None:
    db = SqliteDB(tmp_path / "n.sqlite3")
    outbox = SqliteOutbox(db, registry)
    await outbox.setup()
    await asyncio.gather(*(write(db, outbox, *range(n * 200, n * 200 + 200)) for n in range(3)))
    reads: list[str] = []
    await db.run(lambda c: c.set_trace_callback(reads.append))
    held = await outbox.pending(1000)
    assert not [s for s in reads if s.lstrip().upper().startswith("SELECT SEQ")], "read from memory"
    rows = await db.run(lambda c: c.execute("SELECT seq, value FROM outbox ORDER BY seq").fetchall())
    assert [(p.ref, p.message.value) for p in held] == [(r[0], r[1]) for r in rows]
    assert len(held) == 600
    await db.close()


async def test_the_backlog_is_counted_while_the_bus_is_down(tmp_path: Path) -> None:
    class Down(Bus):
        tries = 0

        async def publish(self, messages: list[Message]) -> None:
            self.tries += 1
            if self.tries == 2:  # the first failure has been handled
                self.arrived.set()
            raise ConnectionError("the bus is down")

    db = SqliteDB(tmp_path / "s.sqlite3")
    outbox = SqliteOutbox(db, registry)
    await outbox.setup()
    metrics = Metrics()
    bus = Down()
    relay = OutboxRelay(outbox, bus, metrics, OutboxSettings())  # type: ignore[arg-type]
    await write(db, outbox, 1, 2, 3)
    relay.start()
    await asyncio.wait_for(bus.arrived.wait(), 5)
    await relay.stop()
    await db.close()
    assert metrics.registry.get_sample_value("bloop_outbox_pending", {"outbox": outbox.name}) == 3


async def test_an_idle_relay_and_one_standing_by_count_no_backlog(tmp_path: Path) -> None:
    """Every relay counted its outbox's pending events once a second, idle or standing by: on
    FerretDB, whose indexes serve no such query, each count read every document of the
    collections (an idle server kept it at 75% of a core)."""
    class Watched(SqliteOutbox):
        """Counts its backlog counts; `looked` is set once the relay has looked `enough` times
        for events (or, standing by, for the lease)."""

        def __init__(self, db: SqliteDB, enough: int) -> None:
            super().__init__(db, registry)
            self.counts, self.looks, self.enough = 0, 0, enough
            self.looked = asyncio.Event()

        def _look(self) -> None:
            self.looks += 1
            if self.looks >= self.enough:
                self.looked.set()

        async def count_pending(self) -> int:
            self.counts += 1
            return await super().count_pending()

        async def pending(self, limit: int) -> list[Pending]:
            self._look()
            return await super().pending(limit)

        async def lead(self, holder: str, ttl_s: float, replacing: str | None = None) -> str | None:
            if self.enough < 5:
                self._look()
            return await super().lead(holder, ttl_s, replacing)

    path = tmp_path / "shared.sqlite3"
    dbs = SqliteDB(path), SqliteDB(path)
    outboxes = Watched(dbs[0], enough=20), Watched(dbs[1], enough=3)
    for outbox in outboxes:
        await outbox.setup()
    metrics = Metrics(), Metrics()
    relays = [OutboxRelay(outbox, Bus(), m, OutboxSettings(poll_interval_s=0.01, lease_s=1))  # type: ignore[arg-type]
              for outbox, m in zip(outboxes, metrics, strict=True)]
    await write(dbs[0], outboxes[0], 1, 2, 3)
    relays[0].start()

    async def leads() -> bool:
        return relays[0].leads

    await eventually(leads)
    relays[1].start()
    await asyncio.wait_for(asyncio.gather(*(o.looked.wait() for o in outboxes)), 10)
    for relay in relays:
        await relay.stop()
    for db in dbs:
        await db.close()
    assert not relays[1].leads
    assert [o.counts for o in outboxes] == [0, 0]
    assert metrics[0].registry.get_sample_value("bloop_outbox_pending",
                                                {"outbox": outboxes[0].name}) == 0


async def test_two_processes_on_one_file_send_each_event_once(tmp_path: Path) -> None:
    """Two servers (or a server and a notebook) on the same embedded files both run a relay:
    the leader sends the events both write, each once and in order; when it stops, the other
    carries on."""
    path = tmp_path / "shared.sqlite3"
    dbs = SqliteDB(path), SqliteDB(path)
    outboxes = [SqliteOutbox(db, registry) for db in dbs]
    for outbox in outboxes:
        await outbox.setup()
    buses = Bus(), Bus()
    relays = [OutboxRelay(outbox, bus, Metrics(),  # type: ignore[arg-type]
                          OutboxSettings(poll_interval_s=0.05, lease_s=1))
              for outbox, bus in zip(outboxes, buses, strict=True)]

    async def arrived(count: int) -> None:
        """Until `count` events are sent and marked so (a relay stopped between the two sends
        its last batch again, which consumers drop by id)."""
        async def sent() -> bool:
            return (sum(len(bus.published) for bus in buses) >= count
                    and not await outboxes[0].count_pending())

        await eventually(sent, timeout_s=10)

    for relay in relays:
        relay.start()
    for n in range(0, 40, 2):  # the first writes the even numbers, the second the odd
        await asyncio.gather(write(dbs[0], outboxes[0], n), write(dbs[1], outboxes[1], n + 1))
    await arrived(40)
    leader = 0 if relays[0].leads else 1
    assert (relays[leader].leads, relays[1 - leader].leads) == (True, False)
    await relays[leader].stop()
    for n in range(40, 50, 2):
        await asyncio.gather(write(dbs[0], outboxes[0], n), write(dbs[1], outboxes[1], n + 1))
    await arrived(50)
    await asyncio.sleep(0.2)
    await relays[1 - leader].stop()
    sent = buses[leader].numbers() + buses[1 - leader].numbers()
    assert sorted(sent) == list(range(50))
    assert sorted(buses[1 - leader].numbers()) == list(range(40, 50))
    for subject in range(4):
        mine = [n for n in sent if n % 4 == subject]
        assert mine == sorted(mine)
    for db in dbs:
        await db.close()


async def test_a_leader_that_cannot_publish_hands_the_lease_to_one_that_can(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A relay whose bus could not be reached renewed its lease before every try, so it led
    for good while a healthy process's relay stood by and nothing was sent. Now it gives the
    lease up after failing for a lease; once its bus is back and the other stops, it leads again
    and sends only what was not sent. Tries are closer together than a lease, as they are at
    the default lease."""
    class Unreachable(Bus):
        up = False

        async def publish(self, messages: list[Message]) -> None:
            if not self.up:
                raise ConnectionError("the bus cannot be reached from here")
            await super().publish(messages)

        async def ping(self) -> None:
            if not self.up:
                raise ConnectionError("the bus cannot be reached from here")

    monkeypatch.setattr(relay_module, "RETRY_MAX_S", 0.1)
    path = tmp_path / "shared.sqlite3"
    dbs = SqliteDB(path), SqliteDB(path)
    outboxes = [SqliteOutbox(db, registry) for db in dbs]
    for outbox in outboxes:
        await outbox.setup()
    failing, healthy = Unreachable(), Bus()
    settings = OutboxSettings(poll_interval_s=0.05, lease_s=1)
    metrics = Metrics(), Metrics()
    relays = [OutboxRelay(outbox, bus, m, settings)  # type: ignore[arg-type]
              for outbox, bus, m in zip(outboxes, (failing, healthy), metrics, strict=True)]
    relays[0].start()

    async def leads(relay: OutboxRelay) -> bool:
        return relay.leads

    await eventually(lambda: leads(relays[0]), timeout_s=5, what="the failing relay to lead")
    relays[1].start()
    for n in range(0, 8, 2):
        await asyncio.gather(write(dbs[0], outboxes[0], n), write(dbs[1], outboxes[1], n + 1))

    async def sent_by_healthy() -> bool:
        return len(healthy.published) >= 8 and not await outboxes[0].count_pending()

    await eventually(sent_by_healthy, timeout_s=8, what="the healthy relay to send everything")
    assert (relays[0].leads, relays[1].leads) == (False, True)
    pending = metrics[0].outbox_pending.labels(outboxes[0].name)._value.get()
    assert pending == 0, "the backlog is the new leader's to show"
    await relays[1].stop()
    failing.up = True
    await write(dbs[0], outboxes[0], 8)
    await eventually(lambda: leads(relays[0]), timeout_s=5, what="the recovered relay to lead")
    await eventually(lambda: asyncio.sleep(0, bool(failing.published)), timeout_s=5)
    await relays[0].stop()
    for db in dbs:
        await db.close()
    assert sorted(healthy.numbers()) == list(range(8))
    assert failing.numbers() == [8]
    for subject in range(4):
        mine = [n for n in healthy.numbers() if n % 4 == subject]
        assert mine == sorted(mine)


async def test_a_relay_taking_the_lease_over_skips_what_the_last_leader_sent(
        tmp_path: Path) -> None:
    """Events one process wrote are held in its memory; when another process's relay has sent
    them meanwhile, the first one's relay, leading next, does not send them again."""
    path = tmp_path / "handover.sqlite3"
    writer_db, leader_db = SqliteDB(path), SqliteDB(path)
    writer, leader = SqliteOutbox(writer_db, registry), SqliteOutbox(leader_db, registry)
    await writer.setup()
    await leader.setup()
    await write(writer_db, writer, 0, 1, 2)
    leader_bus, writer_bus = Bus(), Bus()
    await OutboxRelay(leader, leader_bus, Metrics(), OutboxSettings()).flush()  # type: ignore[arg-type]
    await write(writer_db, writer, 3)
    await OutboxRelay(writer, writer_bus, Metrics(), OutboxSettings()).flush()  # type: ignore[arg-type]
    assert (leader_bus.numbers(), writer_bus.numbers()) == ([0, 1, 2], [3])
    await writer_db.close()
    await leader_db.close()


async def test_a_relay_looks_less_often_while_idle_only_where_a_look_reads_everything(
        tmp_path: Path) -> None:
    """On FerretDB a look for pending events reads every document of the outbox (330 ms with
    650 lessons), and an idle relay looked twice a second: the server was kept busy, and every
    other read waited (uncached lesson reads fell from 0.25 to 0.02 of a bare endpoint)."""
    class Scans(SqliteOutbox):
        async def looks_scan(self) -> bool:
            return True

    db = SqliteDB(tmp_path / "s.sqlite3")
    settings = OutboxSettings(poll_interval_s=0.5)
    scanning = OutboxRelay(Scans(db, registry), Bus(), Metrics(), settings)  # type: ignore[arg-type]
    looks, after = [], 0.5
    for sent in (0, 0, 0, 0, 0, 0, 3, 0):
        after = await scanning.next_look(after, sent)
        looks.append(after)
    assert looks == [1.0, 2.0, 4.0, 5.0, 5.0, 5.0, 0.5, 1.0]
    plain = OutboxRelay(SqliteOutbox(db, registry), Bus(), Metrics(), settings)  # type: ignore[arg-type]
    assert await plain.next_look(0.5, 0) == await plain.next_look(4.0, 0) == 0.5
    await db.close()
