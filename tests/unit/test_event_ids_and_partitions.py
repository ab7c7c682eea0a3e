"""Event ids (UUIDv7), the envelope's bytes, and the Kafka partition chosen for a key."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import pickle
import sqlite3
import sys
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest
from aiokafka.partitioner import DefaultPartitioner

from bloop.platform.kit.events.bus.kafka import partition_of
from bloop.platform.kit.events.bus.port import Message
from bloop.platform.kit.events.dedupe import SqliteProcessedEvents
from bloop.platform.kit.events.envelope import Envelope, parse_envelope
from bloop.platform.kit.ids import id_text, new_id
from bloop.platform.kit.sqlite import SqliteDB
from tests.support import PingSent


def test_ids_are_version_7_unique_and_later_ids_sort_later() -> None:
    first = [new_id() for _ in range(5000)]
    time.sleep(0.002)
    later = new_id()
    assert all(i.version == 7 and i.variant == uuid.RFC_4122 for i in first)
    assert len(set(first)) == len(first)
    assert later > max(first)
    stamp_ms = first[0].int >> 80
    assert abs(stamp_ms - time.time() * 1000) < 60_000
    made = first[0]
    assert uuid.UUID(str(made)) == made
    assert hash(uuid.UUID(str(made))) == hash(made)
    assert pickle.loads(pickle.dumps(made)) == made


def test_an_envelopes_bytes_carry_every_field_as_orjson_writes_the_dataclass() -> None:
    et = PingSent.event_type  # type: ignore[attr-defined]
    for request_id in (None, "req-1"):
        env = dataclasses.replace(et.envelope(PingSent(run="bytes", n=3), tenant="t", subject="s"),
                                  request_id=request_id)
        assert env.to_bytes() == orjson.dumps(env)
        assert list(orjson.loads(env.to_bytes())) == [f.name for f in dataclasses.fields(Envelope)]
        assert parse_envelope(env.to_bytes()) == env


def test_a_key_goes_to_the_partition_aiokafkas_default_partitioner_picks() -> None:
    default = DefaultPartitioner()
    for count in (1, 3, 7, 12):
        partitions = list(range(count))
        for n in range(300):
            key = f"learner-{n}".encode()
            assert partition_of(key, partitions) == default(key, partitions, partitions)
            assert partition_of(key, partitions) == default(key, partitions, partitions)  # cached


def test_a_message_without_a_key_goes_to_some_partition() -> None:
    assert {partition_of(None, [0, 1, 2]) for _ in range(200)} <= {0, 1, 2}


def test_a_forked_child_draws_randomness_of_its_own() -> None:
    new_id()  # the parent holds drawn randomness the child would otherwise copy
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.write(write, new_id().bytes)
        os._exit(0)
    os.waitpid(pid, 0)
    child, parent = uuid.UUID(bytes=os.read(read, 16)), new_id()
    os.close(read)
    os.close(write)
    assert child.int & (1 << 62) - 1 != parent.int & (1 << 62) - 1


def test_an_ids_text_is_its_canonical_form() -> None:
    ids = [new_id() for _ in range(1000)] + [uuid.uuid4(), uuid.UUID(int=0),
                                             uuid.UUID(int=2**128 - 1)]
    assert all(id_text(i) == str(i) for i in ids)


def test_an_events_message_is_a_full_message_with_its_type_header() -> None:
    made = Message.event("t", b"k", "bloop.x.y.v1", b"{}")
    assert made == Message("t", b"k", b"{}", (("type", b"bloop.x.y.v1"),))
    assert type(made) is Message
    assert (made.partition, made.offset) == (0, -1)


async def test_processed_ids_are_kept_as_the_text_earlier_versions_wrote(tmp_path: Path) -> None:
    db = SqliteDB(tmp_path / "processed.sqlite3")
    processed = SqliteProcessedEvents(db)
    await processed.setup()
    old, new = new_id(), new_id()
    await db.transaction(lambda c: c.execute(
        "INSERT INTO processed_events (grp, id, at) VALUES ('g', ?, ?)", (str(old), time.time())))
    await processed.mark("g", [new])
    assert await processed.seen("g", [old, new, new_id()]) == {old, new}
    rows = await db.run(lambda c: c.execute("SELECT id FROM processed_events").fetchall())
    assert sorted(r[0] for r in rows) == sorted([str(old), str(new)])
    await db.close()


def test_a_trusted_envelope_is_built_without_its_frozen_init(monkeypatch: pytest.MonkeyPatch) -> None:
    def refused(*args: object, **kwargs: object) -> None:
        raise AssertionError("built through __init__")

    when = datetime(2026, 1, 2, tzinfo=UTC)
    made = Envelope.trusted(type_id="bloop.x.y.v1", source="s", tenant="t", subject="k",
                            data={"a": 1}, request_id="r", time=when)
    monkeypatch.setattr(Envelope, "__init__", refused)
    again = Envelope.trusted(type_id="bloop.x.y.v1", source="s", tenant="t", subject="k",
                             data={"a": 1}, request_id=None, time=when)
    assert type(again) is Envelope
    assert dataclasses.astuple(again)[1:] == (*dataclasses.astuple(made)[1:-1], None)
    assert again.id != made.id
    assert parse_envelope(again.to_bytes()) == again
    with pytest.raises(dataclasses.FrozenInstanceError):
        again.tenant = "other"  # type: ignore[misc]


async def test_transactions_of_one_turn_look_the_loop_up_once(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    looked = 0
    get_running_loop = asyncio.get_running_loop

    def counted() -> asyncio.AbstractEventLoop:
        nonlocal looked
        looked += sys._getframe(1).f_code.co_name == "_enqueue"
        return get_running_loop()

    db = SqliteDB(tmp_path / "turn.sqlite3")
    await db.transaction(lambda c: c.execute("CREATE TABLE t (n INTEGER)"))
    monkeypatch.setattr(asyncio, "get_running_loop", counted)

    def insert(n: int) -> Callable[[sqlite3.Connection], int]:
        return lambda c: c.execute("INSERT INTO t VALUES (?)", (n,)).rowcount

    results = await asyncio.gather(*(db.transaction(insert(n)) for n in range(20)))
    assert results == [1] * 20
    assert looked == 1
    assert await db.run(lambda c: c.execute("SELECT count(*) FROM t").fetchone()[0]) == 20
    await db.close()
