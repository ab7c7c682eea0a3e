"""The quiz attempt store contract, run against the embedded (SQLite) adapter and a real
MongoDB-wire server (FerretDB v1 from infra/, or MongoDB). Each real case uses a database of its
own, dropped afterwards."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bloop.platform.content.attempts.model import Attempt, PublishedQuiz
from bloop.platform.content.attempts.ports import AttemptStore
from bloop.platform.content.attempts.service import graded_event
from bloop.platform.content.attempts.stores.embedded import EmbeddedAttemptStore
from bloop.platform.content.attempts.stores.mongo import MongoAttemptStore
from bloop.platform.content.quiz import QuizBlock, grade
from bloop.platform.kit.events.envelope import Envelope
from bloop.platform.kit.events.types import registry
from bloop.platform.kit.pagination import BadCursor, Slice
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


ANSWERS: dict[str, object] = {"tf": True, "mc": ["a", "b"], "m": {"l1": "r1"}}


def attempt(learner: str = "ada", number: int = 1, minutes: int = 0, tenant: str = "acme",
            lesson: str = "lesson-1", quiz: QuizBlock = QUIZ,
            answers: dict[str, object] = ANSWERS) -> Attempt:
    return Attempt.graded(published(tenant, lesson, quiz), learner, answers,  # type: ignore[arg-type]
                          grade(quiz, answers), number, at=T0 + timedelta(minutes=minutes))


async def add(store: AttemptStore, learner: str = "ada", minutes: int = 0, tenant: str = "acme",
              lesson: str = "lesson-1", quiz: QuizBlock = QUIZ,
              answers: dict[str, object] = ANSWERS) -> Attempt:
    def make(number: int, previous: datetime | None) -> tuple[Attempt, Sequence[Envelope]]:
        a = attempt(learner, number, minutes, tenant, lesson, quiz, answers)
        return a, [graded_event(a, published(tenant, lesson, quiz), previous)]

    return await store.add(tenant, learner, lesson, quiz.id, make)


async def told_previous(store: AttemptStore) -> dict[str, datetime | None]:
    """The `previous_graded_at` of each attempt's event waiting in the outbox, by attempt id."""
    sent = [json.loads(p.message.value)["data"] for p in await store.outbox.pending(100)]
    return {d["attempt_id"]: d["previous_graded_at"] and datetime.fromisoformat(
        d["previous_graded_at"]) for d in sent}


async def numbers(store: AttemptStore, learner: str = "ada", tenant: str = "acme",
                  lesson: str = "lesson-1", quiz: str = "check") -> list[int]:
    return sorted(a.number for a in (await store.of_learner(
        tenant, learner, lesson_id=lesson, quiz_id=quiz, limit=None)).items)


async def test_an_attempt_reads_back_as_stored_with_its_event_in_the_outbox(
        store: AttemptStore) -> None:
    a = await add(store)
    [back] = (await store.of_learner("acme", "ada")).items
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


async def test_numbers_count_per_learner_and_quiz(store: AttemptStore) -> None:
    assert [(await add(store, minutes=n)).number for n in range(3)] == [1, 2, 3]
    # other learners, quizzes, lessons and tenants count on their own
    other_quiz = QUIZ.model_copy(update={"id": "other"})
    assert (await add(store, learner="grace")).number == 1
    assert (await add(store, quiz=other_quiz)).number == 1
    assert (await add(store, lesson="lesson-2")).number == 1
    assert (await add(store, tenant="beta")).number == 1
    assert (await add(store, minutes=5)).number == 4
    assert await numbers(store) == [1, 2, 3, 4]
    assert await numbers(store, quiz="other") == [1]
    assert await store.outbox.count_pending() == 8


async def test_an_attempts_event_says_when_the_learners_previous_one_at_the_quiz_was_graded(
        store: AttemptStore) -> None:
    """What learning needs to tell a retry right after the feedback from a fresh attempt."""
    first = await add(store, minutes=0)
    second = await add(store, minutes=3)
    # other learners, quizzes, lessons and tenants count on their own
    others = [await add(store, learner="grace", minutes=4),
              await add(store, quiz=QUIZ.model_copy(update={"id": "other"}), minutes=5),
              await add(store, lesson="lesson-2", minutes=6),
              await add(store, tenant="beta", minutes=7)]
    third = await add(store, minutes=13 * 60)

    told = await told_previous(store)
    assert [told[a.id] for a in (first, second, third)] == [
        None, first.graded_at, second.graded_at]
    assert [told[a.id] for a in others] == [None] * 4
    await store.erase_learner("acme", "ada")
    again = await add(store, minutes=14 * 60)  # after an erasure, a first attempt again
    assert (await told_previous(store))[again.id] is None


async def test_a_blank_attempt_is_passed_over_as_the_previous_one(store: AttemptStore) -> None:
    """An attempt answering no question says nothing of what the learner knows, so it starts
    no retry gap: a learner's first real attempt right after a blank submit is a first one."""
    only_blank = await add(store, learner="grace", minutes=0, answers={})
    after_blank = await add(store, learner="grace", minutes=1)
    first = await add(store, minutes=0)
    blank = await add(store, minutes=2, answers={"mc": [], "m": {}})
    again = await add(store, minutes=3, answers={})
    part = await add(store, minutes=4, answers={"tf": False})  # one question answered counts
    last = await add(store, minutes=5)
    told = await told_previous(store)
    assert [told[a.id] for a in (only_blank, after_blank)] == [None, None]
    assert [told[a.id] for a in (blank, again, part, last)] == [
        first.graded_at, first.graded_at, first.graded_at, part.graded_at]
    assert [a.answered for a in (blank, again, part, last)] == [0, 0, 1, 3]
    assert await numbers(store) == [1, 2, 3, 4, 5]
    assert await numbers(store, learner="grace") == [1, 2]


async def test_attempts_added_at_once_get_consecutive_numbers_each_with_its_event(
        store: AttemptStore) -> None:
    added = await asyncio.gather(*(add(store, minutes=n) for n in range(20)),
                                 add(store, learner="grace"))
    ada = added[:20]
    assert sorted(a.number for a in ada) == list(range(1, 21))
    assert await numbers(store) == list(range(1, 21))
    assert added[20].number == 1
    pending = await store.outbox.pending(100)
    graded = {e["data"]["attempt_id"]: e["data"]["attempt_number"]
              for e in (json.loads(p.message.value) for p in pending)}
    assert len(pending) == 21
    assert graded == {a.id: a.number for a in added}
    assert (await add(store, minutes=30)).number == 21


async def test_lists_run_newest_first_filter_and_page(store: AttemptStore) -> None:
    ada = [await add(store, "ada", minutes=n * 2) for n in (1, 2, 3)]
    grace = [await add(store, "grace", minutes=n * 2 + 1) for n in (1, 2)]
    other = await add(store, "ada", minutes=20, lesson="lesson-2")
    await add(store, "ada", minutes=30, tenant="beta")

    assert (await store.of_learner("acme", "ada")).items == [other, *reversed(ada)]
    assert (await store.of_learner("acme", "ada", lesson_id="lesson-1")).items == list(
        reversed(ada))
    assert (await store.of_learner("acme", "ada", lesson_id="lesson-1",
                                   quiz_id="nope")).items == []
    lesson = (await store.of_lesson("acme", "lesson-1")).items
    assert lesson == sorted(ada + grace, key=lambda a: a.graded_at, reverse=True)
    assert (await store.of_lesson("acme", "lesson-1", learner="grace")).items == list(
        reversed(grace))
    first = await store.of_lesson("acme", "lesson-1", quiz_id="check", limit=2)
    assert first.items == lesson[:2]
    assert first.next is not None
    second = await store.of_lesson("acme", "lesson-1", after=first.next, limit=2)
    assert second.items == lesson[2:4]
    mine = await store.of_learner("acme", "ada", limit=1)
    assert mine.items == [other]
    assert mine.next is not None
    assert (await store.of_learner("acme", "ada", after=mine.next, limit=None)) == Slice(
        list(reversed(ada)))
    assert (await store.of_lesson("beta", "lesson-1")).items != []
    assert (await store.of_lesson("zeta", "lesson-1")).items == []


async def test_a_page_is_the_last_when_nothing_follows_it(store: AttemptStore) -> None:
    """A list of exactly `limit` items, or a page that ends the list, has no `next`."""
    ada = [await add(store, "ada", minutes=n) for n in range(4)]
    assert await store.of_learner("acme", "ada", limit=4) == Slice(list(reversed(ada)))
    first = await store.of_learner("acme", "ada", limit=2)
    assert first.next is not None
    assert await store.of_learner("acme", "ada", after=first.next, limit=2) == Slice(
        [ada[1], ada[0]])
    with pytest.raises(BadCursor):
        await store.of_lesson("acme", "lesson-1", after=ada[0].sort_key)


async def test_ties_in_time_are_ordered_by_id_and_paged_without_loss(store: AttemptStore) -> None:
    same = [await add(store, f"learner-{n}") for n in range(5)]
    listed = (await store.of_lesson("acme", "lesson-1")).items
    assert listed == sorted(same, key=lambda a: a.id, reverse=True)
    first = await store.of_lesson("acme", "lesson-1", limit=3)
    assert first.next is not None
    rest = await store.of_lesson("acme", "lesson-1", after=first.next, limit=3)
    assert first.items + rest.items == listed
    assert rest.next is None


async def test_erasing_a_learner_deletes_their_attempts_only_and_is_idempotent(
        store: AttemptStore) -> None:
    await add(store, "ada")
    await add(store, "ada", minutes=1)
    await add(store, "ada", lesson="lesson-2")
    kept = await add(store, "grace")
    beta = await add(store, "ada", tenant="beta")
    assert await store.erase_learner("acme", "ada") == 3
    assert await store.erase_learner("acme", "ada") == 0
    assert (await store.of_learner("acme", "ada")).items == []
    assert (await store.of_lesson("acme", "lesson-1")).items == [kept]
    assert (await store.of_learner("beta", "ada")).items == [beta]
    assert (await add(store, "ada", minutes=2)).number == 1  # numbering starts again
    assert (await add(store, "ada", tenant="beta", minutes=1)).number == 2


async def stored_without_counter(mongo: MongoAttemptStore, number: int) -> None:
    """Stores an attempt as Bloop did before attempt counters: its number chosen outside."""
    a = attempt(number=number, minutes=number)
    doc = {"_id": f"{a.tenant}/{a.id}", **a.model_dump(mode="json"), "sort_key": a.sort_key}
    await mongo.attempts.insert_one(mongo.outbox.new_document(
        doc, graded_event(a, published(a.tenant, a.lesson_id))))


@pytest.mark.real
async def test_mongo_numbers_follow_attempts_stored_without_a_counter() -> None:
    async with scratch_mongo("attempts_test") as (client, name):
        mongo = MongoAttemptStore(client, registry, database=name)
        await mongo.setup()
        for n in (1, 2, 3):
            await stored_without_counter(mongo, n)
        added = await asyncio.gather(*(add(mongo, minutes=10 + n) for n in range(5)))
        assert sorted(a.number for a in added) == [4, 5, 6, 7, 8]
        # one written by a Bloop before counters while this one runs (an upgrade) takes 9
        await stored_without_counter(mongo, 9)
        assert (await add(mongo, minutes=20)).number == 10
        assert await numbers(mongo) == list(range(1, 11))
        assert await mongo.outbox.count_pending() == 10
