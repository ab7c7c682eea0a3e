"""Events per second through Bloop's event path against raw aiokafka, in the same run.

Ours: build the envelope, store it in a SQLite outbox (one transaction per event, from 64
concurrent writers, as concurrent requests would), relay it to Kafka (idempotent, acks=all),
consume it in a consumer group that validates the envelope and its schema, drops duplicates by
id, runs the handler and commits.
Raw: the same payload bytes through an idempotent acks=all aiokafka producer and a consumer group
that commits per batch. Target: ours >= 50% of raw.

    python bench/events.py [--events 20000]
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import tempfile
import time
import uuid
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from pydantic import BaseModel, ConfigDict

from bloop.platform.kit.events.bus.kafka import KafkaEventBus
from bloop.platform.kit.events.bus.port import Subscription
from bloop.platform.kit.events.dedupe import SqliteProcessedEvents
from bloop.platform.kit.events.envelope import Envelope
from bloop.platform.kit.events.outbox.relay import OutboxRelay
from bloop.platform.kit.events.outbox.sqlite import SqliteOutbox
from bloop.platform.kit.events.types import EventType, event_type, registry, type_of
from bloop.platform.kit.metrics import Metrics
from bloop.platform.kit.settings import KafkaSettings, OutboxSettings
from bloop.platform.kit.sqlite import SqliteDB

RUN = uuid.uuid4().hex[:10]
WRITERS = 64  # concurrent producers, as concurrent requests would be


@event_type("bloop.bench.lesson.viewed", 1, f"bench.ours.{RUN}")
class LessonViewed(BaseModel):
    model_config = ConfigDict(extra="forbid")
    learner_id: str
    lesson_id: str
    seconds: int


VIEWED: EventType[LessonViewed] = type_of(LessonViewed)


def sample(n: int) -> Envelope:
    return VIEWED.envelope(LessonViewed(learner_id=f"learner-{n % 500}", lesson_id=f"lesson-{n % 80}",
                                        seconds=n % 900), tenant="bench", subject=f"learner-{n % 500}")


async def ours(count: int, tmp: Path) -> float:
    metrics = Metrics()
    db = SqliteDB(tmp / "service.sqlite3")
    outbox = SqliteOutbox(db, registry)
    await outbox.setup()
    processed_db = SqliteDB(tmp / "processed.sqlite3")
    processed = SqliteProcessedEvents(processed_db)
    await processed.setup()
    bus = KafkaEventBus(KafkaSettings(), registry, processed, metrics)
    await bus.ensure_topics([VIEWED.topic, VIEWED.topic + ".dlq"])
    done = asyncio.Event()
    handled = 0

    async def handler(env: Envelope) -> None:
        nonlocal handled
        handled += 1
        if handled == count:
            done.set()

    bus.subscribe(Subscription(f"bench-{RUN}", (VIEWED.topic,), handler))
    await bus.start()
    relay = OutboxRelay(outbox, bus, metrics, OutboxSettings(poll_interval_s=0.05, batch_size=500))
    relay.start()
    await asyncio.sleep(3)  # let the group join before timing
    start = time.perf_counter()

    async def writer(first: int) -> None:
        for n in range(first, count, WRITERS):
            env = sample(n)

            def store(c: sqlite3.Connection, e: Envelope = env) -> None:
                outbox.add(c, e)

            await db.transaction(store)
            relay.wake()

    await asyncio.gather(*(writer(w) for w in range(WRITERS)))
    await asyncio.wait_for(done.wait(), 600)
    elapsed = time.perf_counter() - start
    await relay.stop()
    await bus.close()
    await db.close()
    await processed_db.close()
    return count / elapsed


async def raw(count: int) -> float:
    bootstrap = KafkaSettings().bootstrap
    topic = f"bench.raw.{RUN}"
    payloads = [(sample(n).key, sample(n).to_bytes()) for n in range(count)]
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True, acks="all",
                                linger_ms=2, max_batch_size=1_048_576)
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=f"raw-{RUN}",
                                enable_auto_commit=False, auto_offset_reset="earliest")
    await producer.start()
    await producer.send_and_wait(topic, b"warm-up", key=b"warm-up")
    await consumer.start()
    await asyncio.sleep(3)
    received = 0

    async def consume() -> None:
        nonlocal received
        while received < count + 1:
            batches = await consumer.getmany(timeout_ms=500)
            for records in batches.values():
                received += len(records)
            if batches:
                await consumer.commit()

    start = time.perf_counter()
    consuming = asyncio.create_task(consume())
    futures = [await producer.send(topic, value, key=key) for key, value in payloads]
    await asyncio.gather(*futures)
    await asyncio.wait_for(consuming, 600)
    elapsed = time.perf_counter() - start
    await consumer.stop()
    await producer.stop()
    return count / elapsed


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=20_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        raw_rate = await raw(args.events)
        ours_rate = await ours(args.events, Path(tmp))
    ratio = ours_rate / raw_rate
    print(f"events: {args.events}")
    print(f"raw aiokafka produce->consume: {raw_rate:,.0f} events/s")
    print(f"bloop outbox->relay->bus->consumer: {ours_rate:,.0f} events/s")
    print(f"ratio ours/raw: {ratio:.2f} (target >= 0.50) {'PASS' if ratio >= 0.5 else 'BELOW TARGET'}")


if __name__ == "__main__":
    asyncio.run(main())
