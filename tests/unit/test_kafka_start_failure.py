"""A Kafka consumer whose start fails is closed there, not left to the garbage collector: the
bus starts its consumers again and again while the broker is away, and each failed start left
one behind."""

from __future__ import annotations

import gc
import socket
import warnings
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer

from bloop.platform.kit.events.bus import kafka as kafka_bus
from bloop.platform.kit.events.bus.kafka import KafkaEventBus
from bloop.platform.kit.events.bus.port import Subscription
from bloop.platform.kit.events.bus.processor import EventProcessor
from bloop.platform.kit.events.dedupe import SqliteProcessedEvents
from bloop.platform.kit.events.envelope import Envelope
from bloop.platform.kit.events.types import registry
from bloop.platform.kit.metrics import Metrics
from bloop.platform.kit.settings import KafkaSettings
from bloop.platform.kit.sqlite import SqliteDB


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def handler(envelope: Envelope) -> None:
    del envelope


def consuming(settings: KafkaSettings, db: SqliteDB
              ) -> tuple[KafkaEventBus, Subscription, EventProcessor]:
    processed, metrics = SqliteProcessedEvents(db), Metrics()
    bus = KafkaEventBus(settings, registry, processed, metrics)
    sub = Subscription("g", ("nowhere",), handler)
    return bus, sub, EventProcessor(sub, registry, processed, bus.publish, metrics,
                                    max_attempts=3, backoff_s=0.01)


async def test_a_consumer_whose_start_fails_is_closed(tmp_path: Path) -> None:
    db = SqliteDB(tmp_path / "processed.sqlite3")
    await SqliteProcessedEvents(db).setup()
    bus, sub, processor = consuming(KafkaSettings(
        bootstrap=f"127.0.0.1:{closed_port()}", request_timeout_ms=1000), db)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(3):
            with pytest.raises(Exception, match="Unable to bootstrap"):
                await bus._run_consumer(sub, processor)
        gc.collect()
    assert [str(w.message) for w in caught if "Unclosed" in str(w.message)] == []
    assert not bus.joined("g")
    await bus.close()
    await db.close()


async def test_a_consumer_has_the_session_heartbeat_and_rebalance_time_it_needs(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """aiokafka's 10 s session applied whatever was wanted: a killed worker's partitions waited
    that long for another member."""
    made: list[AIOKafkaConsumer] = []

    class Recorded(AIOKafkaConsumer):  # type: ignore[misc]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            made.append(self)

    monkeypatch.setattr(kafka_bus, "AIOKafkaConsumer", Recorded)
    db = SqliteDB(tmp_path / "processed.sqlite3")
    bus, sub, processor = consuming(KafkaSettings(
        bootstrap=f"127.0.0.1:{closed_port()}", request_timeout_ms=1000,
        session_timeout_ms=6000, heartbeat_interval_ms=1500), db)
    with pytest.raises(Exception, match="Unable to bootstrap"):
        await bus._run_consumer(sub, processor)
    # A rebalance waits for a member to hear of it (a heartbeat) and end its batch (stop_s).
    assert [(c._session_timeout_ms, c._heartbeat_interval_ms, c._rebalance_timeout_ms)
            for c in made] == [(6000, 1500, 5000 + 1500 + 2000)]
    await bus.close()
    await db.close()
