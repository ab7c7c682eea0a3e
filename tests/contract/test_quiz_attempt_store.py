"""The quiz attempt store contract, run against the embedded (SQLite) adapter and a real
MongoDB-wire server (FerretDB v1 from infra/, or MongoDB). Each real case uses a database of its
own, dropped afterwards."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bloop.platform.content.attempts.model import Attempt, PublishedQuiz
from bloop.platform.content.attempts.ports import AttemptStore, Duplicate
from bloop.platform.content.attempts.service import graded_event
from bloop.platform.content.attempts.stores.embedded import EmbeddedAttemptStore
from bloop.platform.content.attempts.stores.mongo import MongoAttemptStore
from bloop.platform.content.quiz import QuizBlock, grade
from bloop.platform.kit.events.types import registry
from bloop.platform.kit.sqlite import SqliteDB
from tests.support import scratch_mongo


@pytest.fixture(params=["embedded", pytest.param("real", marks=pytest.mark.real)])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[AttemptStore]:
    if request.param == "embedded":
        db = SqliteDB(tmp_path / "content.sqlite3")
        embedded = EmbeddedAttemptStore(db, registry)
        await embedded.setup()
        yield embedded
        await db.close()
        return
    async with scratch_mongo("attempts_test") as (client, name):
        mongo = MongoAttemptStore(client, registry, database=name)
        await mongo.setup()
        yield mongo


QUIZ = QuizBlock.model_validate({"id": "check", "title": "Check", "questions": [
    {"type": "true_false", "id": "tf", "prompt": "Sure?", "answer": True},
    {"type": "multiple_choice", "id": "mc", "prompt": "Which?", "options": [
        {"id": "a", "text": "A", "correct": True}, {"id": "b", "text": "B"}]},
    {"type": "matching", "id": "m", "prompt": "Match", "pairs": [
        {"left": {"id": "l1", "text": "1"}, "right": {"id": "r1", "text": "one"}},
        {"left": {"id": "l2", "text": "2"}, "right": {"id": "r2", "text": "two"}}]},
]})
T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def published(tenant: str = "acme", lesson: str = "lesson-1", quiz: QuizBlock = QUIZ) -> PublishedQuiz:
    return PublishedQuiz(tenant=tenant, lesson_id=lesson, lesson_version=3, course_id="py",
                         teaches=["loops"], quiz=quiz)


def attempt(learner: str = "ada", number: int = 1, minutes: int = 0, tenant: str = "acme",
            lesson: str = "lesson-1", quiz: QuizBlock = QUIZ) -> Attempt:
    answers: dict[str, object] = {"tf": True, "mc": ["a", "b"], "m": {"l1": "r1"}}
    return Attempt.graded(published(tenant, lesson, quiz), learner, answers,  # type: ignore[arg-type]
                          grade(quiz, answers), number, at=T0 + timedelta(minutes=minutes))


async def add(store: AttemptStore, a: Attempt) -> Attempt:
    await store.add(a, [graded_event(a, published(a.tenant, a.lesson_id))])
    return a


async def test_an_attempt_reads_back_as_stored_with_its_event_in_the_outbox(
        store: AttemptStore) -> None:
    a = await add(store, attempt())
    [back] = await store.of_learner("acme", "ada")
    assert back == a
    assert back.answers == {"tf": True, "mc": ["a", "b"], "m": {"l1": "r1"}}
    assert isinstance(back.answers["tf"], bool)
    assert (back.score, back.max_score) == (1.5, 3)
    [p] = await store.outbox.pending(10)
    assert p.message.topic == "content.events"
    assert p.message.key == b"lesson-1"
    envelope = json.loads(p.message.value)
    assert envelope["type"] == "bloop.content.quiz.attempt.graded.v1"
    assert envelope["tenant"] == "acme"
    assert envelope["data"]["attempt_id"] == a.id
    assert envelope["data"]["attempt_number"] == 1
    await store.outbox.mark_sent([p])
    assert await store.outbox.count_pending() == 0


async def test_numbers_are_unique_per_learner_and_quiz(store: AttemptStore) -> None:
    assert await store.last_number("acme", "ada", "lesson-1", "check") == 0
    await add(store, attempt(number=1))
    await add(store, attempt(number=2, minutes=1))
    assert await store.last_number("acme", "ada", "lesson-1", "check") == 2
    with pytest.raises(Duplicate):
        await add(store, attempt(number=2, minutes=2))
    assert len(await store.of_learner("acme", "ada")) == 2
    assert await store.outbox.count_pending() == 2
    # other learners, quizzes, lessons and tenants count on their own
    other_quiz = QUIZ.model_copy(update={"id": "other"})
    await add(store, attempt(learner="grace", number=1))
    await add(store, attempt(number=1, quiz=other_quiz))
    await add(store, attempt(number=1, lesson="lesson-2"))
    await add(store, attempt(number=1, tenant="beta"))
    assert await store.last_number("acme", "ada", "lesson-1", "check") == 2
    assert await store.last_number("acme", "grace", "lesson-1", "check") == 1
    assert await store.last_number("beta", "ada", "lesson-1", "check") == 1
    assert await store.last_number("beta", "ada", "lesson-1", "other") == 0


async def test_lists_run_newest_first_filter_and_page(store: AttemptStore) -> None:
    ada = [await add(store, attempt("ada", n, minutes=n * 2)) for n in (1, 2, 3)]
    grace = [await add(store, attempt("grace", n, minutes=n * 2 + 1)) for n in (1, 2)]
    other = await add(store, attempt("ada", 1, minutes=20, lesson="lesson-2"))
    await add(store, attempt("ada", 1, minutes=30, tenant="beta"))

    assert await store.of_learner("acme", "ada") == [other, *reversed(ada)]
    assert await store.of_learner("acme", "ada", lesson_id="lesson-1") == list(reversed(ada))
    assert await store.of_learner("acme", "ada", lesson_id="lesson-1", quiz_id="nope") == []
    lesson = await store.of_lesson("acme", "lesson-1")
    assert lesson == sorted(ada + grace, key=lambda a: a.graded_at, reverse=True)
    assert await store.of_lesson("acme", "lesson-1", learner="grace") == list(reversed(grace))
    assert await store.of_lesson("acme", "lesson-1", quiz_id="check", limit=2) == lesson[:2]
    assert await store.of_lesson("acme", "lesson-1", before=lesson[1].sort_key,
                                 limit=2) == lesson[2:4]
    assert await store.of_learner("acme", "ada", before=other.sort_key, limit=None) == list(
        reversed(ada))
    assert await store.of_lesson("beta", "lesson-1") != []
    assert await store.of_lesson("zeta", "lesson-1") == []


async def test_ties_in_time_are_ordered_by_id_and_paged_without_loss(store: AttemptStore) -> None:
    same = [await add(store, attempt(f"learner-{n}", 1)) for n in range(5)]
    listed = await store.of_lesson("acme", "lesson-1")
    assert listed == sorted(same, key=lambda a: a.id, reverse=True)
    first = await store.of_lesson("acme", "lesson-1", limit=3)
    rest = await store.of_lesson("acme", "lesson-1", before=first[-1].sort_key, limit=3)
    assert first + rest == listed


async def test_erasing_a_learner_deletes_their_attempts_only_and_is_idempotent(
        store: AttemptStore) -> None:
    await add(store, attempt("ada", 1))
    await add(store, attempt("ada", 1, lesson="lesson-2"))
    kept = await add(store, attempt("grace", 1))
    beta = await add(store, attempt("ada", 1, tenant="beta"))
    assert await store.erase_learner("acme", "ada") == 2
    assert await store.erase_learner("acme", "ada") == 0
    assert await store.of_learner("acme", "ada") == []
    assert await store.last_number("acme", "ada", "lesson-1", "check") == 0
    assert await store.of_lesson("acme", "lesson-1") == [kept]
    assert await store.of_learner("beta", "ada") == [beta]
