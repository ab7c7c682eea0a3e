"""Events per second through Bloop's event path against raw aiokafka, in the same run.

Both start from the same event data, made before the clock starts. Raw gets it as finished
messages; ours gets the data model a service hands to `EventType.envelope`.
Ours: build the envelope, check and serialise it, store it in a SQLite outbox (one transaction
per event, from 64 concurrent writers, as concurrent requests would), relay it to Kafka
(idempotent, acks=all), consume it in a consumer group that validates the envelope and its
schema, drops duplicates by id, runs the handler and commits.
Raw: the same messages (key, value and type header) through an idempotent acks=all aiokafka
producer, one `send` each, and a consumer group that commits per fetched batch.
Target: ours >= 50% of raw.

Rounds alternate raw and ours, each on a topic of its own; medians are reported, with this
process's CPU time an event (all its threads). The process runs as `bloop serve` and
`bloop worker` do, where relays and consumers run: on uvloop, the event loop they get from
uvicorn, with the garbage collector tuned as `tune_for_serving` tunes theirs. For context it
also measures the bus without the outbox, and each stage of our path alone.

    python bench/events.py [--events 20000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import NamedTuple

import uvloop
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from pydantic import BaseModel, ConfigDict

from bloop.platform.kit.events.bus.kafka import KafkaEventBus
from bloop.platform.kit.events.bus.port import Message, Subscription
from bloop.platform.kit.events.dedupe import SqliteProcessedEvents
from bloop.platform.kit.events.envelope import Envelope
from bloop.platform.kit.events.outbox.relay import OutboxRelay
from bloop.platform.kit.events.outbox.sqlite import SqliteOutbox
from bloop.platform.kit.events.types import EventType, registry
from bloop.platform.kit.gc_tuning import tune_for_serving
from bloop.platform.kit.metrics import Metrics
from bloop.platform.kit.settings import KafkaSettings, OutboxSettings
from bloop.platform.kit.sqlite import SqliteDB

RUN = uuid.uuid4().hex[:10]
WRITERS = 64  # concurrent producers, as concurrent requests would be


class LessonViewed(BaseModel):
    model_config = ConfigDict(extra="forbid")
    learner_id: str
    lesson_id: str
    seconds: int


def viewed_type(tag: str) -> EventType[LessonViewed]:
    """A registered event type on a topic of its own, so each measurement starts empty."""
    et = EventType(name=f"bloop.bench.{tag}.lesson_viewed", version=1,
                   topic=f"bench.{RUN}.{tag}", model=LessonViewed)
    registry.register(et)
    return et


def event_data(count: int) -> list[LessonViewed]:
    return [LessonViewed(learner_id=f"learner-{n % 500}", lesson_id=f"lesson-{n % 80}",
                         seconds=n % 900) for n in range(count)]


def envelope(et: EventType[LessonViewed], data: LessonViewed) -> Envelope:
    return et.envelope(data, tenant="bench", subject=data.learner_id)


class OurPath:
    """Our path's parts for one measurement: an outbox, a relay, a bus and a consumer group."""

    def __init__(self, tmp: Path, tag: str) -> None:
        self.et = viewed_type(tag)
        self.metrics = Metrics()
        self.db = SqliteDB(tmp / f"service-{tag}.sqlite3")
        self.outbox = SqliteOutbox(self.db, registry)
        self.processed_db = SqliteDB(tmp / f"processed-{tag}.sqlite3")
        self.processed = SqliteProcessedEvents(self.processed_db)
        self.bus = KafkaEventBus(KafkaSettings(), registry, self.processed, self.metrics)
        self.relay = OutboxRelay(self.outbox, self.bus, self.metrics,
                                 OutboxSettings(poll_interval_s=0.05, batch_size=500))
        self.group = f"bench-{RUN}-{tag}"

    async def setup(self) -> None:
        await self.outbox.setup()
        await self.processed.setup()
        await self.bus.ensure_topics([self.et.topic, self.et.topic + ".dlq"])

    async def write(self, data: list[LessonViewed]) -> None:
        async def writer(start: int) -> None:
            for n in range(start, len(data), WRITERS):
                env = envelope(self.et, data[n])

                def store(c: sqlite3.Connection, e: Envelope = env) -> None:
                    self.outbox.add(c, e)

                await self.db.transaction(store)
                self.relay.wake()

        await asyncio.gather(*(writer(w) for w in range(WRITERS)))

    async def join(self, count: int) -> asyncio.Event:
        """Joins the consumer group (before any timing) and returns an event set after `count`
        events were handled."""
        done = asyncio.Event()
        handled = 0

        async def handler(env: Envelope) -> None:
            nonlocal handled
            handled += 1
            if handled == count:
                done.set()

        self.bus.subscribe(Subscription(self.group, (self.et.topic,), handler))
        await self.bus.start()
        for _ in range(100):
            if self.bus.joined(self.group):
                break
            await asyncio.sleep(0.1)
        return done

    async def close(self) -> None:
        await self.relay.stop()
        await self.bus.close()
        await self.db.close()
        await self.processed_db.close()


class Measured(NamedTuple):
    rate: float  # events a second
    cpu_us: float  # this process's CPU time an event, all threads

    @classmethod
    def of(cls, count: int, start: float, cpu_start: float) -> Measured:
        elapsed = time.perf_counter() - start
        return cls(count / elapsed, (time.process_time() - cpu_start) * 1e6 / count)


async def ours(count: int, tmp: Path, tag: str) -> Measured:
    path = OurPath(tmp, tag)
    data = event_data(count)
    await path.setup()
    done = await path.join(count)
    path.relay.start()
    start, cpu_start = time.perf_counter(), time.process_time()
    await path.write(data)
    await asyncio.wait_for(done.wait(), 600)
    measured = Measured.of(count, start, cpu_start)
    await path.close()
    return measured


async def bus_only(count: int, tmp: Path, tag: str) -> float:
    """The bus without the outbox: envelopes published in batches of 500 straight to Kafka."""
    path = OurPath(tmp, tag)
    data = event_data(count)
    await path.setup()
    done = await path.join(count)
    start = time.perf_counter()
    for first in range(0, count, 500):
        await path.bus.publish([Message.of(envelope(path.et, d), path.et.topic)
                                for d in data[first:first + 500]])
    await asyncio.wait_for(done.wait(), 600)
    elapsed = time.perf_counter() - start
    await path.close()
    return count / elapsed


async def stages(count: int, tmp: Path) -> dict[str, float]:
    """Each stage alone: outbox writes, then the relay to Kafka, then the consumer group."""
    path = OurPath(tmp, "stages")
    data = event_data(count)
    await path.setup()
    start = time.perf_counter()
    await path.write(data)
    writes = count / (time.perf_counter() - start)
    start = time.perf_counter()
    await path.relay.flush(600)
    relay = count / (time.perf_counter() - start)
    done = await path.join(count)
    start = time.perf_counter()
    await asyncio.wait_for(done.wait(), 600)
    consumer = count / (time.perf_counter() - start)
    await path.close()
    return {"outbox writes": writes, "relay to Kafka": relay, "consumer group": consumer}


async def raw(count: int, tag: str) -> Measured:
    bootstrap = KafkaSettings().bootstrap
    topic = f"bench.{RUN}.{tag}"
    et = viewed_type(tag)
    payloads = [Message.of(envelope(et, d), topic) for d in event_data(count)]
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True, acks="all",
                                linger_ms=2, max_batch_size=1_048_576)
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=f"raw-{RUN}-{tag}",
                                enable_auto_commit=False, auto_offset_reset="earliest")
    await producer.start()
    await producer.send_and_wait(topic, b"warm-up", key=b"warm-up")
    await consumer.start()
    for _ in range(100):
        if consumer.assignment():
            break
        await asyncio.sleep(0.1)
    received = 0

    async def consume() -> None:
        nonlocal received
        while received < count + 1:
            batches = await consumer.getmany(timeout_ms=500)
            for records in batches.values():
                received += len(records)
            if batches:
                await consumer.commit()

    start, cpu_start = time.perf_counter(), time.process_time()
    consuming = asyncio.create_task(consume())
    futures = [await producer.send(topic, m.value, key=m.key, headers=list(m.headers)) for m in payloads]
    await asyncio.gather(*futures)
    await asyncio.wait_for(consuming, 600)
    measured = Measured.of(count, start, cpu_start)
    await consumer.stop()
    await producer.stop()
    return measured


def rates(values: list[float]) -> str:
    return f"{statistics.median(values):,.0f} events/s (rounds: {', '.join(f'{v:,.0f}' for v in values)})"


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    tune_for_serving()
    raw_runs: list[Measured] = []
    our_runs: list[Measured] = []
    bus_rates: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            raw_runs.append(await raw(args.events, f"raw{r}"))
            our_runs.append(await ours(args.events, Path(tmp), f"ours{r}"))
            bus_rates.append(await bus_only(args.events, Path(tmp), f"bus{r}"))
        parts = await stages(args.events, Path(tmp))
    raw_rates, our_rates = [m.rate for m in raw_runs], [m.rate for m in our_runs]
    raw_rate, our_rate = statistics.median(raw_rates), statistics.median(our_rates)
    raw_cpu, our_cpu = (statistics.median(m.cpu_us for m in runs) for runs in (raw_runs, our_runs))
    ratio = our_rate / raw_rate
    print(f"events per round: {args.events}, rounds: {args.rounds}")
    print(f"raw aiokafka produce->consume: {rates(raw_rates)}, {raw_cpu:.0f} µs of CPU an event")
    print(f"bloop outbox->relay->bus->consumer: {rates(our_rates)}, {our_cpu:.0f} µs of CPU an event")
    print(f"bloop bus alone (no outbox): {rates(bus_rates)} "
          f"= {statistics.median(bus_rates) / raw_rate:.2f} of raw")
    print("our stages alone: " + ", ".join(f"{k} {v:,.0f}/s" for k, v in parts.items()))
    print(f"CPU an event, raw/ours: {raw_cpu / our_cpu:.2f} "
          "(the rates' ratio is higher whenever raw waits on the broker rather than on the CPU)")
    print(f"ratio ours/raw: {ratio:.2f} (target >= 0.50) {'PASS' if ratio >= 0.5 else 'BELOW TARGET'}")


if __name__ == "__main__":
    uvloop.run(main())
