"""Events written through the outbox reach an idempotent consumer exactly once, even when the
Kafka broker is killed and restarted in the middle of the stream."""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from collections import Counter
from pathlib import Path

import pytest

from bloop import infra
from bloop.platform.kit.events.bus.kafka import KafkaEventBus
from bloop.platform.kit.events.bus.port import Subscription
from bloop.platform.kit.events.dedupe import SqliteProcessedEvents
from bloop.platform.kit.events.envelope import Envelope
from bloop.platform.kit.events.outbox.relay import OutboxRelay
from bloop.platform.kit.events.outbox.sqlite import SqliteOutbox
from bloop.platform.kit.events.types import registry
from bloop.platform.kit.metrics import Metrics
from bloop.platform.kit.settings import KafkaSettings, OutboxSettings
from bloop.platform.kit.sqlite import SqliteDB
from tests.support import TEST_TOPIC, PingSent, eventually, require_server

PING = PingSent.event_type  # type: ignore[attr-defined]


async def test_exactly_once_through_a_broker_restart(tmp_path: Path) -> None:
    server = require_server("kafka")
    if not server.managed():
        pytest.fail("this test restarts the broker, so it needs one started by `bloop infra up kafka`")
    run = uuid.uuid4().hex
    metrics = Metrics()
    service_db = SqliteDB(tmp_path / "service.sqlite3")
    outbox = SqliteOutbox(service_db, registry)
    await outbox.setup()
    processed_db = SqliteDB(tmp_path / "processed.sqlite3")
    processed = SqliteProcessedEvents(processed_db)
    await processed.setup()
    bus = KafkaEventBus(KafkaSettings(request_timeout_ms=5000), registry, processed, metrics)
    effects: Counter[str] = Counter()

    async def idempotent_consumer(env: Envelope) -> None:
        if env.data["run"] == run:
            effects[str(env.id)] += 1

    bus.subscribe(Subscription(f"restart-{run[:8]}", (TEST_TOPIC,), idempotent_consumer))
    await bus.start()
    relay = OutboxRelay(outbox, bus, metrics, OutboxSettings(poll_interval_s=0.1, batch_size=50))
    relay.start()
    written: list[str] = []

    async def write(count: int) -> None:
        for _ in range(count):
            n = len(written)
            env = PING.envelope(PingSent(run=run, n=n), tenant="t1", subject=f"agg-{n % 7}")

            def store(c: sqlite3.Connection, e: Envelope = env) -> None:
                outbox.add(c, e)

            await service_db.transaction(store)
            written.append(str(env.id))
            relay.wake()
            await asyncio.sleep(0.002)

    try:
        await write(150)

        async def some_arrived() -> bool:
            return len(effects) >= 50

        await eventually(some_arrived, timeout_s=60, what="the first events")
        await asyncio.to_thread(infra.stop, "kafka")
        await write(100)
        assert await outbox.count_pending() > 0, "events written while Kafka is down must wait"
        await asyncio.to_thread(infra.start, "kafka")
        await write(50)

        async def all_arrived() -> bool:
            return len(effects) == len(written)

        await eventually(all_arrived, timeout_s=180, interval_s=0.2, what="every event")
        assert set(effects) == set(written)
        assert all(count == 1 for count in effects.values()), effects.most_common(3)
        assert await outbox.count_pending() == 0
    finally:
        await relay.stop()
        await bus.close()
        await service_db.close()
        await processed_db.close()
        if not server.reachable():
            await asyncio.to_thread(infra.start, "kafka")
