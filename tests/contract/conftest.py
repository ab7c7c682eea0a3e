from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer

from bloop.platform.kit.events.bus.embedded import EmbeddedEventBus
from bloop.platform.kit.events.bus.kafka import KafkaEventBus
from bloop.platform.kit.events.bus.port import DLQ_SUFFIX, EventBus, Message
from bloop.platform.kit.events.dedupe import SqliteProcessedEvents
from bloop.platform.kit.events.types import registry
from bloop.platform.kit.metrics import Metrics
from bloop.platform.kit.settings import KafkaSettings
from bloop.platform.kit.sqlite import SqliteDB
from tests.support import eventually, require_server

LAG_EVERY_S = 0.2


@dataclass
class BusHarness:
    """Builds buses of one kind that share their durable state (log, offsets, processed ids)."""

    kind: str
    tmp: Path
    metrics: Metrics = field(default_factory=Metrics)
    opened: list[tuple[EventBus, SqliteDB]] = field(default_factory=list)

    async def new_bus(self) -> EventBus:
        processed_db = SqliteDB(self.tmp / "processed.sqlite3")
        processed = SqliteProcessedEvents(processed_db)
        await processed.setup()
        bus: EventBus
        if self.kind == "kafka":
            bus = KafkaEventBus(KafkaSettings(max_attempts=3, retry_backoff_s=0.01),
                                registry, processed, self.metrics, lag_every_s=LAG_EVERY_S)
        else:
            bus = EmbeddedEventBus(SqliteDB(self.tmp / "bus.sqlite3"), registry, processed,
                                   self.metrics, max_attempts=3, backoff_s=0.01,
                                   poll_interval_s=0.05, lag_every_s=LAG_EVERY_S)
        self.opened.append((bus, processed_db))
        return bus

    async def close(self, bus: EventBus) -> None:
        for b, db in list(self.opened):
            if b is bus:
                await b.close()
                await db.close()
                if isinstance(b, EmbeddedEventBus):
                    await b.db.close()
                self.opened.remove((b, db))

    async def dead_letters(self, bus: EventBus, topic: str, count: int) -> list[Message]:
        """The first `count` dead letters of `topic`, waited for: a consumer writes a batch's
        once it has handled the batch's last message, so they can come after what followed."""
        found: list[Message] = []

        async def arrived() -> bool:
            found[:] = await self.read(bus, topic + DLQ_SUFFIX, count)
            return len(found) >= count

        await eventually(arrived, what=f"{count} dead letters of {topic}")
        return found

    async def read(self, bus: EventBus, topic: str, count: int) -> list[Message]:
        """The first `count` messages of `topic`, straight from the log."""
        if isinstance(bus, EmbeddedEventBus):
            return await bus.read(topic)
        consumer = AIOKafkaConsumer(topic, bootstrap_servers=KafkaSettings().bootstrap,
                                    auto_offset_reset="earliest", enable_auto_commit=False,
                                    group_id=None)
        await consumer.start()
        out: list[Message] = []
        try:
            for _ in range(60):
                batches = await consumer.getmany(timeout_ms=500)
                for records in batches.values():
                    out += [Message(topic=r.topic, key=r.key, value=r.value,
                                    headers=tuple(r.headers), partition=r.partition,
                                    offset=r.offset) for r in records]
                if len(out) >= count:
                    break
        finally:
            await consumer.stop()
        return out


@pytest.fixture(params=["embedded", "kafka"])
async def harness(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[BusHarness]:
    if request.param == "kafka":
        require_server("kafka")
    h = BusHarness(request.param, tmp_path)
    yield h
    for bus, _ in list(h.opened):
        await h.close(bus)


@pytest.fixture
def topic() -> str:
    return f"test.{uuid.uuid4().hex[:12]}"


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def headers_of(message: Message) -> dict[str, str]:
    return {k: v.decode() for k, v in message.headers}


def subjects(messages: Sequence[Message]) -> list[str]:
    return [m.key.decode() if m.key else "" for m in messages]
