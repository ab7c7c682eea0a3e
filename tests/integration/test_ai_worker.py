"""AI jobs against real servers: MongoDB-wire for jobs, Kafka for `ai.jobs` and `video.events`,
`bloop worker ai` processes in one consumer group. A worker killed (SIGKILL) in the middle of a
job does not lose it: its command was never committed, so the group hands it to the next
worker, which waits out the dead worker's lease and runs the job to its end, once."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer

from bloop.ai.jobs import events as _events  # noqa: F401  (registers the event types)
from bloop.ai.jobs.model import Job, JobRequest
from bloop.ai.jobs.service import JobService
from bloop.ai.jobs.stores.mongo import MongoJobStore
from bloop.ai.text.model import LessonText
from bloop.platform.demo import data
from bloop.platform.kit import stores
from bloop.platform.kit.events.bus.kafka import KafkaEventBus
from bloop.platform.kit.events.dedupe import SqliteProcessedEvents
from bloop.platform.kit.events.outbox.relay import OutboxRelay
from bloop.platform.kit.events.types import registry
from bloop.platform.kit.metrics import Metrics
from bloop.platform.kit.settings import AiSettings, KafkaSettings, MongoSettings, OutboxSettings
from bloop.platform.kit.sqlite import SqliteDB
from tests.support import eventually, require_server
from tests.unit.ai.fake_openai import FakeOpenAI

BLOOP = str(Path(sys.executable).parent / "bloop")
LESSON = LessonText(id="lesson-it", version=1, course="py", title=data.LESSONS[0].title,
                    text="\n\n".join(data.LESSONS[0].blocks), concepts=["variables"])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Workers:
    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self.env, self.logs = env, logs
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self) -> subprocess.Popen[bytes]:
        n = len(self.procs)
        log = (self.logs / f"worker-{n}.log").open("wb")
        proc = subprocess.Popen([BLOOP, "worker", "ai", "--port", str(free_port())],
                                env=self.env, stdout=log, stderr=subprocess.STDOUT)
        self.procs.append(proc)
        return proc

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.fixture
async def setup(tmp_path: Path) -> AsyncIterator[tuple[JobService, Workers, FakeOpenAI]]:
    mongo = require_server("mongo")
    require_server("kafka")
    require_server("redis")
    run = uuid.uuid4().hex[:10]
    database = f"ai_it_{run}"
    settings = AiSettings(database=database, lease_s=2.0)
    client = stores.mongo_client(MongoSettings(url=mongo.url))
    store = MongoJobStore(client, registry, database=database)
    await store.setup()
    processed_db = SqliteDB(tmp_path / "processed.sqlite3")
    processed = SqliteProcessedEvents(processed_db)
    await processed.setup()
    bus = KafkaEventBus(KafkaSettings(), registry, processed, Metrics())
    relay = OutboxRelay(store.outbox, bus, Metrics(), OutboxSettings(poll_interval_s=0.1))
    relay.start()
    service = JobService(store, settings, on_write=relay.wake)
    with FakeOpenAI() as fake:
        fake.default_delay_s = 4.0
        env = {k: v for k, v in os.environ.items() if not k.startswith("BLOOP_")} | {
            "BLOOP_STORE": "real", "BLOOP_DATA_DIR": str(tmp_path / "data"),
            "BLOOP_SEED_DEMO": "false", "BLOOP_AI_DATABASE": database,
            "BLOOP_AI_WORKER_GROUP": f"ai-it-{run}", "BLOOP_AI_LEASE_S": "2",
            "BLOOP_AI_SWEEP_INTERVAL_S": "1", "BLOOP_AI_OPENAI_BASE_URL": fake.base_url,
            "BLOOP_MONGO_URL": mongo.url}
        workers = Workers(env, tmp_path)
        try:
            yield service, workers, fake
        finally:
            workers.stop_all()
            await relay.stop()
            await bus.close()
            await processed_db.close()
            await client.drop_database(database)
            await client.close()


async def events_of(job_id: str, want: int, timeout_s: float = 30) -> list[dict[str, object]]:
    consumer = AIOKafkaConsumer("video.events", bootstrap_servers=KafkaSettings().bootstrap,
                                auto_offset_reset="earliest", enable_auto_commit=False,
                                group_id=None)
    await consumer.start()
    found: list[dict[str, object]] = []
    try:
        deadline = asyncio.get_running_loop().time() + timeout_s
        while asyncio.get_running_loop().time() < deadline:
            batches = await consumer.getmany(timeout_ms=500)
            for records in batches.values():
                found += [json.loads(r.value) for r in records if r.key == job_id.encode()]
            if sum(e["type"] == "bloop.ai.job.completed.v1" for e in found) >= want:
                await asyncio.sleep(1)  # anything after it would show up now
                for records in (await consumer.getmany(timeout_ms=500)).values():
                    found += [json.loads(r.value) for r in records if r.key == job_id.encode()]
                break
    finally:
        await consumer.stop()
    return found


async def test_a_worker_killed_mid_job_does_not_lose_it(
        setup: tuple[JobService, Workers, FakeOpenAI]) -> None:
    service, workers, fake = setup
    job, created = await service.request("acme", "u1", JobRequest(kind="summary",
                                                                  lesson_id=LESSON.id), LESSON)
    assert created
    first = workers.start()

    async def first_is_running() -> bool:
        current = await service.job("acme", job.id)
        return (current.status == "running" and current.lease is not None
                and f":{first.pid}:" in current.lease.owner and len(fake.requests) == 1)

    await eventually(first_is_running, timeout_s=90, interval_s=0.2,
                     what="the first worker to start the job")
    first.send_signal(signal.SIGKILL)
    first.wait()
    second = workers.start()

    async def finished() -> bool:
        return (await service.job("acme", job.id)).final

    await eventually(finished, timeout_s=150, interval_s=0.5, what="the job to end")
    done: Job = await service.job("acme", job.id)
    assert done.status == "succeeded", done.errors
    assert done.attempts == 2
    assert done.result is not None
    assert len(fake.requests) == 2
    assert second.poll() is None, "the second worker is still up"

    events = await events_of(job.id, want=1)
    # Every process's relay reads the same outbox, so an event may go out twice; it is the same
    # event (one id), which consumers drop as a duplicate.
    completed = {e["id"] for e in events if e["type"] == "bloop.ai.job.completed.v1"}
    assert len(completed) == 1, events
    progress = [e["data"] for e in events if e["type"] == "bloop.ai.job.progressed.v1"]
    assert {p["attempt"] for p in progress} == {1, 2}  # type: ignore[index]
