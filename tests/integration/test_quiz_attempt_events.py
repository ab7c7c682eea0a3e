"""Quiz attempts against real servers: an attempt stored in MongoDB (FerretDB) publishes its
`quiz.attempt.graded` event on Kafka's `content.events` through the outbox relay, keyed by the
lesson and enveloped with the tenant; a `user.deleted` event arriving on Kafka's `user.events`
erases the user's attempts."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bloop.platform.content.attempts.consumers import subscriptions
from bloop.platform.content.attempts.model import PublishedQuiz
from bloop.platform.content.attempts.service import AttemptService
from bloop.platform.content.attempts.stores.mongo import MongoAttemptStore
from bloop.platform.content.quiz import QuizBlock
from bloop.platform.identity.events import TOPIC as USER_EVENTS
from bloop.platform.identity.events import UserDeleted
from bloop.platform.kit import stores
from bloop.platform.kit.events.bus.kafka import KafkaEventBus
from bloop.platform.kit.events.bus.port import Message, Subscription
from bloop.platform.kit.events.dedupe import SqliteProcessedEvents
from bloop.platform.kit.events.envelope import Envelope
from bloop.platform.kit.events.outbox.relay import OutboxRelay
from bloop.platform.kit.events.types import registry, type_of
from bloop.platform.kit.metrics import Metrics
from bloop.platform.kit.settings import KafkaSettings, MongoSettings, OutboxSettings
from bloop.platform.kit.sqlite import SqliteDB
from tests.support import eventually, require_server

GRADED = "bloop.content.quiz.attempt.graded.v1"
QUIZ = QuizBlock.model_validate({"id": "check", "title": "Check", "questions": [
    {"type": "true_false", "id": "tf", "prompt": "Sure?", "answer": True},
    {"type": "numeric", "id": "n", "prompt": "6 * 7", "answer": 42, "points": 3}]})


@dataclass
class OneLesson:
    tenant: str
    lesson_id: str = field(default_factory=lambda: uuid.uuid4().hex)

    async def published_quiz(self, tenant: str, lesson_id: str, quiz_id: str) -> PublishedQuiz:
        assert (tenant, lesson_id, quiz_id) == (self.tenant, self.lesson_id, QUIZ.id)
        return PublishedQuiz(tenant=tenant, lesson_id=lesson_id, lesson_version=2,
                             course_id="py", teaches=["arithmetic"], quiz=QUIZ)

    async def lesson_stored(self, tenant: str, lesson_id: str) -> bool:
        return (tenant, lesson_id) == (self.tenant, self.lesson_id)


@dataclass
class Running:
    service: AttemptService
    lesson: OneLesson
    bus: KafkaEventBus
    seen: list[Envelope]


@pytest.fixture
async def running(tmp_path: Path) -> AsyncIterator[Running]:
    mongo_server = require_server("mongo")
    require_server("kafka")
    tenant = f"t{uuid.uuid4().hex[:10]}"
    client = stores.mongo_client(MongoSettings(url=mongo_server.url, timeout_ms=3000))
    database = f"attempts_it_{uuid.uuid4().hex[:12]}"
    store = MongoAttemptStore(client, registry, database=database)
    await store.setup()
    processed_db = SqliteDB(tmp_path / "processed.sqlite3")
    processed = SqliteProcessedEvents(processed_db)
    await processed.setup()
    metrics = Metrics()
    bus = KafkaEventBus(KafkaSettings(request_timeout_ms=5000), registry, processed, metrics)
    relay = OutboxRelay(store.outbox, bus, metrics, OutboxSettings(poll_interval_s=0.1))
    lesson = OneLesson(tenant)
    service = AttemptService(store, lesson, on_write=relay.wake)
    seen: list[Envelope] = []

    async def watch(envelope: Envelope) -> None:
        if envelope.tenant == tenant:
            seen.append(envelope)

    run = uuid.uuid4().hex[:8]
    bus.subscribe(Subscription(f"quiz-it-{run}", ("content.events",), watch,
                               types=frozenset({GRADED})))
    # content's erasure consumer, in a group of this test's own
    for sub in subscriptions(service):
        bus.subscribe(Subscription(f"{sub.group}-it-{run}", sub.topics, sub.handler, sub.types))
    await bus.start()
    relay.start()
    try:
        yield Running(service, lesson, bus, seen)
    finally:
        await relay.stop()
        await bus.close()
        await processed_db.close()
        await client.drop_database(database)
        await client.close()


async def test_a_graded_attempt_arrives_on_kafka_keyed_by_its_lesson(running: Running) -> None:
    tenant, lesson = running.lesson.tenant, running.lesson.lesson_id
    first = await running.service.submit(tenant, "ada", lesson, "check", {"tf": True, "n": 41})
    second = await running.service.submit(tenant, "ada", lesson, "check", {"tf": True, "n": 42})

    async def both_arrived() -> bool:
        return len(running.seen) >= 2

    async def marked_sent() -> bool:
        # The relay marks events sent once Kafka acknowledged them; a consumer may see them first.
        return await running.service.store.outbox.count_pending() == 0

    await eventually(both_arrived, timeout_s=60, what="the graded events on Kafka")
    await eventually(marked_sent, timeout_s=10, what="the outbox marked sent")
    by_attempt = {e.data["attempt_id"]: e for e in running.seen}
    assert set(by_attempt) == {first.id, second.id}
    e = by_attempt[second.id]
    assert (e.type, e.source, e.tenant, e.subject) == (GRADED, "bloop/content", tenant, lesson)
    assert e.key == lesson.encode()
    assert e.data["user_id"] == "ada"
    assert e.data["concepts"] == ["arithmetic"]
    assert e.data["attempt_number"] == 2
    assert (e.data["score"], e.data["max_score"]) == (4, 4)
    assert by_attempt[first.id].data["attempt_number"] == 1
    assert [q["correct"] for q in by_attempt[first.id].data["questions"]] == [True, False]
    assert datetime.fromisoformat(e.data["graded_at"]) == second.graded_at


async def test_a_user_deleted_on_kafka_erases_their_attempts(running: Running) -> None:
    tenant, lesson = running.lesson.tenant, running.lesson.lesson_id
    await running.service.submit(tenant, "ada", lesson, "check", {"tf": False})
    kept = await running.service.submit(tenant, "grace", lesson, "check", {"tf": True})
    deleted = type_of(UserDeleted).envelope(
        UserDeleted(user_id="ada", deleted_by="admin", deleted_at=datetime.now(UTC)),
        tenant=tenant, subject="ada")
    await running.bus.publish([Message.of(deleted, USER_EVENTS)])

    async def erased() -> bool:
        return await running.service.personal_data(tenant, "ada") == {"quiz_attempts": []}

    await eventually(erased, timeout_s=60, what="ada's attempts erased")
    assert (await running.service.of_lesson(tenant, lesson)).items == [kept]
