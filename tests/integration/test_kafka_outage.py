"""While the broker is down, an outbox relay says so and counts its backlog within the
producer's request timeout (aiokafka alone waits for the leader it knows for as long as the
outage lasts); once the broker is back every event arrives, once and in order per key."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import uuid
from collections import defaultdict
from pathlib import Path

import pytest

from bloop import infra
from bloop.platform.kit.errors import StoreUnavailable
from bloop.platform.kit.events.bus.kafka import KafkaEventBus
from bloop.platform.kit.events.bus.port import Message, Subscription
from bloop.platform.kit.events.dedupe import SqliteProcessedEvents
from bloop.platform.kit.events.envelope import Envelope
from bloop.platform.kit.events.outbox.relay import OutboxRelay
from bloop.platform.kit.events.outbox.sqlite import SqliteOutbox
from bloop.platform.kit.events.types import registry
from bloop.platform.kit.metrics import Metrics
from bloop.platform.kit.settings import KafkaSettings, OutboxSettings
from bloop.platform.kit.sqlite import SqliteDB
from tests.support import TEST_TOPIC, PingSent, bounded, eventually, require_server, unretrieved

PING = PingSent.event_type  # type: ignore[attr-defined]


async def test_a_relay_reports_an_outage_and_delivers_in_order_after_it(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    server = require_server("kafka")
    if not server.managed():
        pytest.fail("this test stops the broker, so it needs one started by `bloop infra up kafka`")
    run = uuid.uuid4().hex
    metrics = Metrics()
    service_db = SqliteDB(tmp_path / "service.sqlite3")
    outbox = SqliteOutbox(service_db, registry)
    await outbox.setup()
    processed_db = SqliteDB(tmp_path / "processed.sqlite3")
    processed = SqliteProcessedEvents(processed_db)
    await processed.setup()
    bus = KafkaEventBus(KafkaSettings(request_timeout_ms=2000), registry, processed, metrics)
    seen: dict[str, list[int]] = defaultdict(list)

    async def consumer(env: Envelope) -> None:
        if env.data["run"] == run:
            seen[str(env.subject)].append(int(env.data["n"]))

    bus.subscribe(Subscription(f"outage-{run[:8]}", (TEST_TOPIC,), consumer))
    await bus.start()
    relay = OutboxRelay(outbox, bus, metrics, OutboxSettings(poll_interval_s=0.1, batch_size=20))
    caplog.set_level(logging.WARNING, "bloop.outbox")
    written = 0

    async def write(count: int) -> None:
        nonlocal written
        def store(c: sqlite3.Connection) -> None:
            for n in range(written, written + count):
                outbox.add(c, PING.envelope(PingSent(run=run, n=n), tenant="t1",
                                            subject=f"agg-{n % 5}"))

        await service_db.transaction(store)
        written += count
        relay.wake()

    def arrived() -> int:
        return sum(len(ns) for ns in seen.values())

    # A second process's bus, with a batch queued for the broker when it goes away.
    leaving = KafkaEventBus(KafkaSettings(request_timeout_ms=2000), registry, processed, metrics)
    await leaving.start()
    lone_event = PING.envelope(PingSent(run=f"{run}-lone", n=0), tenant="t1", subject="agg-0")
    lone = Message(TEST_TOPIC, b"agg-0", lone_event.to_bytes(), ())
    relay.start()
    try:
        await leaving.publish([lone])
        await write(30)

        async def all_arrived() -> bool:
            return arrived() == written

        await eventually(all_arrived, timeout_s=60, what="the events before the outage")
        await asyncio.to_thread(infra.stop, "kafka")
        await write(50)

        async def reported() -> bool:
            return any("cannot publish yet" in r.getMessage() for r in caplog.records)

        await eventually(reported, timeout_s=15, what="the relay's warning")
        with pytest.raises(StoreUnavailable):
            await leaving.publish([lone])
        # Stopping while the broker is away gives the queued batch up (its outbox still holds
        # it) instead of waiting for the broker to return.
        # ... and leaves no failed batch's future for the loop to report as never retrieved.
        with unretrieved() as reported_to_loop:
            await bounded(leaving.close(), 10, "closing a bus while the broker is away")
            await asyncio.sleep(0)
        assert [(c["message"], repr(c.get("exception"))) for c in reported_to_loop] == []
        assert (metrics.registry.get_sample_value("bloop_outbox_pending", {"outbox": outbox.name})
                or 0) > 0
        await asyncio.to_thread(infra.start, "kafka")
        await write(20)
        await eventually(all_arrived, timeout_s=120, interval_s=0.2, what="every event")
        for subject, ns in seen.items():
            assert ns == sorted(set(ns)), subject
        assert await outbox.count_pending() == 0
    finally:
        if not server.reachable():  # first: a producer waits for the broker as it closes
            await asyncio.to_thread(infra.start, "kafka")
        await relay.stop()
        await leaving.close()
        await bus.close()
        await service_db.close()
        await processed_db.close()
