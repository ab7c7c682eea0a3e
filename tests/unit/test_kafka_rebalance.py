"""A consumer whose commit is refused because its group rebalanced without it (it was paused
past its session, its partitions given to another member) leaves the rest of its batch to
their new owner and polls on; it used to handle the whole batch, then rebuild the consumer and
fetch the same records again."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, NamedTuple

import pytest
from aiokafka import TopicPartition
from aiokafka.errors import CommitFailedError

from bloop.platform.kit.events.bus import kafka as kafka_bus
from bloop.platform.kit.events.bus.kafka import KafkaEventBus
from bloop.platform.kit.events.bus.port import DLQ_SUFFIX, Message, Subscription
from bloop.platform.kit.events.dedupe import SqliteProcessedEvents
from bloop.platform.kit.events.envelope import Envelope
from bloop.platform.kit.events.types import registry
from bloop.platform.kit.metrics import Metrics
from bloop.platform.kit.settings import KafkaSettings
from bloop.platform.kit.sqlite import SqliteDB
from tests.support import TEST_TOPIC, PingSent, eventually

PING = PingSent.event_type  # type: ignore[attr-defined]
TP = TopicPartition(TEST_TOPIC, 0)


class Record(NamedTuple):
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, bytes], ...]


class Evicted:
    """aiokafka's consumer of a member its group has rebalanced without: it fetches one batch,
    and every commit is refused."""

    made: list[Evicted] = []
    batch: list[Record] = []

    def __init__(self, *topics: str, **settings: Any) -> None:
        self.polls = 0
        Evicted.made.append(self)

    def subscribe(self, topics: list[str], listener: Any = None) -> None:
        del topics, listener

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    def assignment(self) -> set[TopicPartition]:
        return {TP}

    def highwater(self, tp: TopicPartition) -> int | None:
        return None

    async def getmany(self, timeout_ms: int) -> dict[TopicPartition, list[Record]]:
        self.polls += 1
        if self.polls == 1:
            return {TP: Evicted.batch}
        await asyncio.sleep(timeout_ms / 1000)
        return {}

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        raise CommitFailedError("the group has already rebalanced")


async def test_a_refused_commit_leaves_the_rest_of_the_batch_and_polls_on(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    values = [Message.of(PING.envelope(PingSent(run="evicted", n=n), tenant="t1", subject="s"),
                         TEST_TOPIC).value for n in range(1500)]
    Evicted.made, Evicted.batch = [], [Record(TEST_TOPIC, 0, n, b"s", v, ())
                                       for n, v in enumerate(values)]
    monkeypatch.setattr(kafka_bus, "AIOKafkaConsumer", Evicted)
    db = SqliteDB(tmp_path / "processed.sqlite3")
    processed = SqliteProcessedEvents(db)
    await processed.setup()
    bus = KafkaEventBus(KafkaSettings(), registry, processed, Metrics(), lag_every_s=3600)
    bus._topics_ready.update({TEST_TOPIC, TEST_TOPIC + DLQ_SUFFIX})
    handled: list[int] = []

    async def handle(env: Envelope) -> None:
        handled.append(env.data["n"])
        await asyncio.sleep(0)

    bus.subscribe(Subscription("g", (TEST_TOPIC,), handle))
    await bus.start()
    try:
        await eventually(lambda: _polled_on(), what="the consumer polling on")
    finally:
        await bus.close()
        await db.close()
    assert len(Evicted.made) == 1  # the same consumer, not one rebuilt
    assert 0 < len(handled) < len(values) // 2  # a chunk, and the event in hand


async def _polled_on() -> bool:
    return len(Evicted.made) > 1 or (bool(Evicted.made) and Evicted.made[0].polls >= 2)
