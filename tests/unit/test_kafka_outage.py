"""While Kafka is away, publishing fails within the producer's request timeout (aiokafka alone
would wait for the broker it knows as the leader forever), so an outbox relay says it cannot
publish and counts its backlog; and a producer whose start is cancelled is closed."""

from __future__ import annotations

import asyncio
import gc
import logging
import sqlite3
import warnings
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bloop.platform.kit.errors import StoreUnavailable
from bloop.platform.kit.events.bus.kafka import KafkaEventBus
from bloop.platform.kit.events.bus.port import Message
from bloop.platform.kit.events.dedupe import SqliteProcessedEvents
from bloop.platform.kit.events.outbox.relay import OutboxRelay
from bloop.platform.kit.events.outbox.sqlite import SqliteOutbox
from bloop.platform.kit.events.types import registry
from bloop.platform.kit.metrics import Metrics
from bloop.platform.kit.settings import KafkaSettings, OutboxSettings
from bloop.platform.kit.sqlite import SqliteDB
from tests.support import TEST_TOPIC, PingSent, bounded, eventually

PING = PingSent.event_type  # type: ignore[attr-defined]


class Batch:
    def append(self, **record: Any) -> object:
        return record

    def close(self) -> None:
        pass


class LeaderGone:
    """aiokafka's producer while the broker it knows as a partition's leader is away: it takes
    every batch and answers none."""

    def __init__(self) -> None:
        self.sent: list[asyncio.Future[object]] = []

    async def partitions_for(self, topic: str) -> set[int]:
        return {0, 1, 2}

    def create_batch(self) -> Batch:
        return Batch()

    async def send_batch(self, batch: Batch, topic: str, *, partition: int) -> asyncio.Future[object]:
        self.sent.append(asyncio.get_running_loop().create_future())
        return self.sent[-1]

    async def stop(self) -> None:
        pass


@pytest.fixture
async def bus(tmp_path: Path) -> AsyncIterator[KafkaEventBus]:
    db = SqliteDB(tmp_path / "processed.sqlite3")
    processed = SqliteProcessedEvents(db)
    await processed.setup()
    made = KafkaEventBus(KafkaSettings(request_timeout_ms=1000), registry, processed, Metrics())
    made._producer = LeaderGone()
    made._topics_ready.add(TEST_TOPIC)
    yield made
    await made.close()
    await db.close()


async def test_publishing_to_a_broker_that_went_away_fails_within_the_request_timeout(
        bus: KafkaEventBus) -> None:
    message = Message.event(TEST_TOPIC, b"k", "bloop.test.ping.v1", b"{}")
    with pytest.raises(StoreUnavailable) as failed:
        await bounded(bus.publish([message]), 5, "publish with the broker away")
    assert failed.value.extra == {"store": "kafka"}
    assert bus.metrics.registry.get_sample_value(
        "bloop_events_published_total", {"topic": TEST_TOPIC, "type": "bloop.test.ping.v1"}) in (None, 0)


async def test_a_relay_says_it_cannot_publish_and_counts_its_backlog(
        bus: KafkaEventBus, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    db = SqliteDB(tmp_path / "service.sqlite3")
    outbox = SqliteOutbox(db, registry)
    await outbox.setup()

    def store(c: sqlite3.Connection) -> None:
        for n in range(3):
            outbox.add(c, PING.envelope(PingSent(run="outage", n=n), tenant="t1",
                                        subject=f"s{n}"))

    await db.transaction(store)
    relay = OutboxRelay(outbox, bus, bus.metrics, OutboxSettings(poll_interval_s=0.1))
    caplog.set_level(logging.WARNING, "bloop.outbox")
    relay.start()

    async def said() -> bool:
        return any("cannot publish yet" in r.getMessage() for r in caplog.records)

    try:
        await eventually(said, timeout_s=5, what="the relay's warning")
    finally:
        await relay.stop()
        await db.close()
    assert bus.metrics.registry.get_sample_value(
        "bloop_outbox_pending", {"outbox": outbox.name}) == 3


async def test_a_producer_whose_start_is_cancelled_is_closed(tmp_path: Path) -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # takes the request, never answers
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    db = SqliteDB(tmp_path / "processed.sqlite3")
    processed = SqliteProcessedEvents(db)
    await processed.setup()
    bus = KafkaEventBus(KafkaSettings(bootstrap=f"127.0.0.1:{port}", request_timeout_ms=30_000),
                        registry, processed, Metrics())
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            for _ in range(3):
                with pytest.raises(TimeoutError):
                    async with asyncio.timeout(0.3):
                        await bus.ping()
            await asyncio.sleep(0.1)
            gc.collect()
        assert [str(w.message) for w in caught if "Unclosed" in str(w.message)] == []
    finally:
        await bus.close()
        server.close()
        await db.close()
