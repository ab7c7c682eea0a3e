"""learning against real servers: content's lesson, course and graded-attempt events arriving on
Kafka are projected into Neo4j and update the learner's mastery; learning's own events leave
through the Neo4j outbox onto Kafka's `learning.events`, keyed by the learner; a `user.deleted`
on `user.events` erases the learner's nodes, the time zone `user.time_zone_changed` kept too."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from bloop.platform.content.attempts.events import QuestionGraded, QuizAttemptGraded
from bloop.platform.content.events import TOPIC as CONTENT_EVENTS
from bloop.platform.content.events import CoursePublished, LessonPublished
from bloop.platform.identity.events import TOPIC as USER_EVENTS
from bloop.platform.identity.events import UserDeleted, UserTimeZoneChanged
from bloop.platform.kit import stores
from bloop.platform.kit.events.bus.kafka import KafkaEventBus
from bloop.platform.kit.events.bus.port import DLQ_SUFFIX, Message, Subscription
from bloop.platform.kit.events.dedupe import SqliteProcessedEvents
from bloop.platform.kit.events.envelope import Envelope
from bloop.platform.kit.events.outbox.relay import OutboxRelay
from bloop.platform.kit.events.types import registry, type_of
from bloop.platform.kit.metrics import Metrics
from bloop.platform.kit.settings import KafkaSettings, Neo4jSettings, OutboxSettings
from bloop.platform.kit.sqlite import SqliteDB
from bloop.platform.learning.consumers import GROUP, USER_DELETED, subscriptions
from bloop.platform.learning.events import TOPIC as LEARNING_EVENTS
from bloop.platform.learning.model import Edge, NewEnrolment
from bloop.platform.learning.service import LearningService
from bloop.platform.learning.stores.neo4j import Neo4jLearningStore
from tests.support import eventually, require_server

AT = datetime(2025, 5, 1, tzinfo=UTC)


@dataclass
class Running:
    tenant: str
    service: LearningService
    store: Neo4jLearningStore
    bus: KafkaEventBus
    seen: list[Envelope]


@pytest.fixture
async def running(tmp_path: Path) -> AsyncIterator[Running]:
    require_server("neo4j")
    require_server("kafka")
    tenant = f"t{uuid.uuid4().hex[:10]}"
    run = uuid.uuid4().hex[:8]
    driver = stores.neo4j_driver(Neo4jSettings())
    store = Neo4jLearningStore(driver, registry, outbox_name=f"learning-it-{run}")
    await store.setup()
    processed_db = SqliteDB(tmp_path / "processed.sqlite3")
    processed = SqliteProcessedEvents(processed_db)
    await processed.setup()
    metrics = Metrics()
    bus = KafkaEventBus(KafkaSettings(request_timeout_ms=5000), registry, processed, metrics)
    relay = OutboxRelay(store.outbox, bus, metrics, OutboxSettings(poll_interval_s=0.1))
    service = LearningService(store, on_write=relay.wake)
    seen: list[Envelope] = []

    async def watch(envelope: Envelope) -> None:
        if envelope.tenant == tenant:
            seen.append(envelope)

    bus.subscribe(Subscription(f"learning-watch-it-{run}", (LEARNING_EVENTS,), watch))
    for sub in subscriptions(service):
        bus.subscribe(Subscription(f"{sub.group}-it-{run}", sub.topics, sub.handler, sub.types))
    await bus.start()
    relay.start()
    try:
        yield Running(tenant, service, store, bus, seen)
    finally:
        await relay.stop()
        await bus.close()
        await processed_db.close()
        await store.drop_tenant(tenant)
        await driver.execute_query("MATCH (e:BloopOutbox {name: $n}) DELETE e", n=store.outbox.name)
        await driver.execute_query("MATCH (s:BloopOutboxSeq {name: $n}) DELETE s",
                                   n=store.outbox.name)
        await driver.close()


def lesson(tenant: str, lid: str, teaches: str, requires: list[str], position: int) -> Envelope:
    return type_of(LessonPublished).envelope(LessonPublished(
        lesson_id=lid, course_id="py", course_version=1, lesson_version=1, position=position,
        title=lid, estimated_minutes=10, teaches=[teaches], requires=requires, published_at=AT,
        module="basics"), tenant=tenant, subject=lid)


def graded(tenant: str, learner: str, concept: str, attempt_id: str, at: datetime,
           right: bool = True, questions: int = 3) -> Envelope:
    return type_of(QuizAttemptGraded).envelope(QuizAttemptGraded(
        attempt_id=attempt_id, user_id=learner, lesson_id="names", lesson_version=1,
        course_id="py", quiz_id="q", concepts=[concept], attempt_number=1,
        score=questions if right else 0, max_score=questions,
        questions=[QuestionGraded(question_id=f"q{i}", correct=right,
                                  outcome="correct" if right else "incorrect",
                                  score=float(right), max_score=1.0) for i in range(questions)],
        graded_at=at), tenant=tenant, subject="names")


async def test_content_events_on_kafka_drive_mastery_and_paths(running: Running) -> None:
    tenant, service = running.tenant, running.service
    await running.bus.publish([Message.of(e, CONTENT_EVENTS) for e in (
        lesson(tenant, "names", "variables", [], 0),
        lesson(tenant, "exprs", "expressions", ["variables"], 1),
        type_of(CoursePublished).envelope(CoursePublished(
            course_id="py", version=1, title="Python", summary="", language="en",
            level="beginner", tags=[], lesson_ids=["names", "exprs"], published_at=AT),
            tenant=tenant, subject="py"))])

    async def projected() -> bool:
        return await running.store.get_course(tenant, "py") is not None and len(
            await running.store.lessons_of_course(tenant, "py")) == 2

    await eventually(projected, timeout_s=60, what="the course projected into Neo4j")
    await service.add_edge(tenant, Edge(concept="expressions", requires="variables"))
    _, created = await service.enrol(tenant, "ada", NewEnrolment(course_id="py"))
    assert created
    [path] = await service.paths(tenant, "ada")
    assert [s.lesson_id for s in path.steps] == ["names", "exprs"]

    attempts = [graded(tenant, "ada", "variables", f"a{i}", AT + timedelta(minutes=i))
                for i in range(4)]
    # each attempt twice (a redelivery), the last first (out of order)
    await running.bus.publish([Message.of(e, CONTENT_EVENTS)
                               for e in [attempts[-1], *attempts, attempts[0]]])

    async def mastered() -> bool:
        found = await running.store.get_mastery(tenant, "ada", ["variables"])
        return bool(found) and len(found[0].attempt_ids) == 4

    await eventually(mastered, timeout_s=60, what="ada's mastery of variables")
    [m] = await running.store.get_mastery(tenant, "ada", ["variables"])
    assert m.mastered
    assert len(m.observations) == 12
    [path] = await service.paths(tenant, "ada")
    assert [s.lesson_id for s in path.steps] == ["exprs"]
    report = await service.progress_report(tenant, "ada")
    assert [(c.id, [(x.id, x.lessons) for x in c.modules]) for c in report.courses] == [
        ("py", [("basics", 2)])]

    def types() -> list[str]:
        return [e.type for e in running.seen]

    async def announced() -> bool:
        return "bloop.learning.concept.mastered.v1" in types()

    await eventually(announced, timeout_s=60, what="learning's events on Kafka")
    assert "bloop.learning.enrolled.v1" in types()
    assert types().count("bloop.learning.concept.mastered.v1") == 1
    assert {e.subject for e in running.seen} == {"ada"}
    assert all(e.key == b"ada" for e in running.seen)
    assert await running.store.outbox.count_pending() == 0

    # Ten wrong answers take variables below mastery: announced once, in Neo4j's outbox with
    # the mastery it wrote.
    await running.bus.publish([Message.of(graded(
        tenant, "ada", "variables", "wrong", AT + timedelta(hours=1), right=False,
        questions=10), CONTENT_EVENTS)])

    async def lost() -> bool:
        return "bloop.learning.concept.unmastered.v1" in types()

    await eventually(lost, timeout_s=60, what="concept.unmastered on Kafka")
    [m] = await running.store.get_mastery(tenant, "ada", ["variables"])
    assert not m.mastered
    [fall] = [e for e in running.seen if e.type == "bloop.learning.concept.unmastered.v1"]
    assert (fall.key, fall.data["concept_id"], fall.data["attempt_id"]) == (
        b"ada", "variables", "wrong")
    assert fall.data["p_known"] < 0.95

    await running.bus.publish([Message.of(type_of(UserTimeZoneChanged).envelope(
        UserTimeZoneChanged(user_id="ada", time_zone="America/St_Johns",
                            changed_at=datetime.now(UTC)),
        tenant=tenant, subject="ada"), USER_EVENTS)])

    async def zoned() -> bool:
        return (await running.store.learner_settings(tenant, "ada")).time_zone == "America/St_Johns"

    await eventually(zoned, timeout_s=60, what="ada's time zone kept")

    await running.bus.publish([Message.of(type_of(UserDeleted).envelope(
        UserDeleted(user_id="ada", deleted_by="admin", deleted_at=datetime.now(UTC)),
        tenant=tenant, subject="ada"), USER_EVENTS)])

    async def erased() -> bool:
        return await service.personal_data(tenant, "ada") == {
            "enrolments": [], "paths_last_announced": {}, "placements": [], "progress": [],
            "mastery": [], "cards": [], "cards_taken_out": [], "review_logs": [],
            "scheduler_parameters": None, "time_zone": None}

    await eventually(erased, timeout_s=60, what="ada's learning nodes erased")
    assert [c.id for c in await service.concepts(tenant)] == ["expressions", "variables"]


async def test_zones_reach_learning_past_a_member_of_an_earlier_version(tmp_path: Path) -> None:
    """A learning process of the version before zones were announced, a member of group
    `learning` during a rolling upgrade, skips `user.time_zone_changed` and commits past it:
    learning reads zones in a group of its own, and hears of the zone all the same. (The
    users' topic is the test's own: a learning process running on these servers reads
    `user.events`.)"""
    require_server("neo4j")
    require_server("kafka")
    tenant, run = f"t{uuid.uuid4().hex[:10]}", uuid.uuid4().hex[:8]
    users_topic = f"{USER_EVENTS}-it-{run}"
    driver = stores.neo4j_driver(Neo4jSettings())
    store = Neo4jLearningStore(driver, registry, outbox_name=f"learning-it-{run}")
    await store.setup()
    processed_db = SqliteDB(tmp_path / "processed.sqlite3")
    processed = SqliteProcessedEvents(processed_db)
    await processed.setup()
    service = LearningService(store)
    buses: list[KafkaEventBus] = []

    def new_bus() -> KafkaEventBus:
        buses.append(KafkaEventBus(KafkaSettings(request_timeout_ms=5000), registry, processed,
                                   Metrics()))
        return buses[-1]

    try:
        earlier = new_bus()
        await earlier.publish([Message.of(type_of(UserTimeZoneChanged).envelope(
            UserTimeZoneChanged(user_id="ada", time_zone="America/St_Johns",
                                changed_at=datetime.now(UTC)),
            tenant=tenant, subject="ada"), users_topic)])
        skipped: list[str] = []

        async def earlier_member(envelope: Envelope) -> None:
            skipped.append(envelope.type)

        member_group = f"{GROUP}-it-{run}"
        earlier.subscribe(Subscription(member_group, (users_topic,), earlier_member,
                                       frozenset({USER_DELETED})))
        await earlier.start()

        async def past() -> bool:
            return await earlier.drained(member_group)

        await eventually(past, timeout_s=60, what="the earlier member past the zone")
        await earlier.close()
        assert "bloop.identity.user.time_zone_changed.v1" not in skipped

        bus = new_bus()
        for sub in subscriptions(service):
            if USER_EVENTS in sub.topics:
                bus.subscribe(Subscription(f"{sub.group}-it-{run}", (users_topic,), sub.handler,
                                           sub.types))
        await bus.start()

        async def zoned() -> bool:
            return (await store.learner_settings(tenant, "ada")).time_zone == "America/St_Johns"

        await eventually(zoned, timeout_s=60, what="ada's time zone kept")
    finally:
        for each in buses:
            await each.close()
        admin = AIOKafkaAdminClient(bootstrap_servers=KafkaSettings().bootstrap)
        await admin.start()
        with contextlib.suppress(KafkaError):
            await admin.delete_topics([users_topic, users_topic + DLQ_SUFFIX])
        await admin.close()
        await processed_db.close()
        await store.drop_tenant(tenant)
        await driver.execute_query("MATCH (e:BloopOutbox {name: $n}) DELETE e", n=store.outbox.name)
        await driver.execute_query("MATCH (s:BloopOutboxSeq {name: $n}) DELETE s",
                                   n=store.outbox.name)
        await driver.close()
