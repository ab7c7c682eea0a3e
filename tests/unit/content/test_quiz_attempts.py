"""Quiz attempts' use cases over the embedded store: grading, numbering, the graded event in
the outbox, refusals, the data export and erasure (also through the user.deleted consumer)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bloop.platform.content.attempts.consumers import subscriptions
from bloop.platform.content.attempts.model import PublishedQuiz
from bloop.platform.content.attempts.service import AttemptService
from bloop.platform.content.attempts.stores.embedded import EmbeddedAttemptStore
from bloop.platform.content.quiz import QuizBlock
from bloop.platform.identity.events import UserDeleted
from bloop.platform.kit.errors import NotFound, Problem
from bloop.platform.kit.events.types import registry, type_of
from bloop.platform.kit.sqlite import SqliteDB

QUIZ = QuizBlock.model_validate({"id": "check", "title": "Check", "questions": [
    {"type": "single_choice", "id": "s", "prompt": "One?", "points": 2, "options": [
        {"id": "a", "text": "A", "correct": True}, {"id": "b", "text": "B"}]},
    {"type": "ordering", "id": "o", "prompt": "Order", "items": [
        {"id": "x", "text": "X"}, {"id": "y", "text": "Y"}, {"id": "z", "text": "Z"}]},
]})


ETAG = '"' + "a" * 24 + '"'


class PublishedLessons:
    """The published quizzes of one lesson `l1` of tenant `acme` (content's own source is
    exercised through the API in test_quiz_api)."""

    async def published_quiz(self, tenant: str, lesson_id: str, quiz_id: str) -> PublishedQuiz:
        if (tenant, lesson_id, quiz_id) != ("acme", "l1", "check"):
            raise NotFound(f"no quiz {quiz_id!r} in lesson {lesson_id!r}")
        return PublishedQuiz(tenant=tenant, lesson_id=lesson_id, lesson_version=4,
                             lesson_etag=ETAG, course_id="py", teaches=["loops", "lists"],
                             quiz=QUIZ)

    async def lesson_stored(self, tenant: str, lesson_id: str) -> bool:
        return (tenant, lesson_id) == ("acme", "l1")


@pytest.fixture
async def service(tmp_path: Path) -> AsyncIterator[AttemptService]:
    db = SqliteDB(tmp_path / "content.sqlite3")
    store = EmbeddedAttemptStore(db, registry)
    await store.setup()
    woken: list[int] = []
    svc = AttemptService(store, PublishedLessons(), on_write=lambda: woken.append(1))
    svc.woken = woken  # type: ignore[attr-defined]
    yield svc
    await db.close()


async def test_an_attempt_is_graded_numbered_stored_and_announced(service: AttemptService) -> None:
    first = await service.submit("acme", "ada", "l1", "check", {"s": "b", "o": ["y", "z", "x"]})
    assert (first.number, first.score, first.max_score) == (1, 0.3333, 3)
    assert [q.outcome for q in first.questions] == ["incorrect", "partial"]
    second = await service.submit("acme", "ada", "l1", "check", {"s": "a", "o": ["x", "y", "z"]})
    assert (second.number, second.score) == (2, 3)
    assert (await service.submit("acme", "grace", "l1", "check", {})).number == 1
    assert service.woken == [1, 1, 1]  # type: ignore[attr-defined]

    pending = await service.store.outbox.pending(10)
    events = [json.loads(p.message.value) for p in pending]
    assert [p.message.key for p in pending] == [b"l1"] * 3
    e = events[1]
    assert e["type"] == "bloop.content.quiz.attempt.graded.v1"
    assert (e["tenant"], e["subject"], e["source"]) == ("acme", "l1", "bloop/content")
    assert e["data"] == {
        "attempt_id": second.id, "user_id": "ada", "lesson_id": "l1", "lesson_version": 4,
        "course_id": "py", "quiz_id": "check", "concepts": ["loops", "lists"],
        "attempt_number": 2, "score": 3.0, "max_score": 3.0,
        "questions": [
            {"question_id": "s", "correct": True, "outcome": "correct", "score": 2.0,
             "max_score": 2.0},
            {"question_id": "o", "correct": True, "outcome": "correct", "score": 1.0,
             "max_score": 1.0}],
        "graded_at": second.graded_at.isoformat().replace("+00:00", "Z"),
        "previous_graded_at": first.graded_at.isoformat().replace("+00:00", "Z"),
    }
    assert events[0]["data"]["previous_graded_at"] is None  # ada's first
    assert events[2]["data"]["previous_graded_at"] is None  # grace's first
    assert datetime.fromisoformat(e["time"]) == second.graded_at.astimezone(UTC)

    assert [a.id for a in (await service.of_learner("acme", "ada", "l1", "check")).items] == [
        second.id, first.id]
    assert len((await service.of_lesson("acme", "l1")).items) == 3
    graces = await service.of_lesson("acme", "l1", learner="grace")
    assert [a.learner for a in graces.items] == ["grace"]


async def test_attempts_sent_at_once_are_all_stored_with_consecutive_numbers(
        service: AttemptService) -> None:
    """A double click, a retry, two tabs: none of the learner's answers is refused."""
    sent = await asyncio.gather(*(service.submit("acme", "ada", "l1", "check", {"s": "a"})
                                  for _ in range(10)))
    assert sorted(a.number for a in sent) == list(range(1, 11))
    assert service.woken == [1] * 10  # type: ignore[attr-defined]
    events = [json.loads(p.message.value)["data"]
              for p in await service.store.outbox.pending(100)]
    assert {e["attempt_id"]: e["attempt_number"] for e in events} == {
        a.id: a.number for a in sent}
    assert len(events) == 10


async def test_refusals_change_nothing(service: AttemptService) -> None:
    with pytest.raises(NotFound):
        await service.submit("acme", "ada", "l1", "other", {})
    with pytest.raises(NotFound):
        await service.submit("beta", "ada", "l1", "check", {})
    with pytest.raises(Problem) as caught:
        await service.submit("acme", "ada", "l1", "check", {"s": "a", "o": ["x", "y", "q"]})
    assert (caught.value.status, caught.value.code) == (422, "invalid_answer")
    assert caught.value.extra == {"question": "o"}
    with pytest.raises(Problem, match="no such question"):
        await service.submit("acme", "ada", "l1", "check", {"extra": "a"})
    assert (await service.of_lesson("acme", "l1")).items == []
    assert await service.store.outbox.count_pending() == 0


async def test_an_attempt_at_a_lesson_read_before_its_last_publication_is_refused(
        service: AttemptService) -> None:
    """The learner read version 3, or a rendering whose ETag is no longer the lesson's: their
    answers are not graded against version 4, and nothing is stored."""
    for version, etag in ((3, None), (None, '"' + "b" * 24 + '"'), (4, '"' + "b" * 24 + '"')):
        with pytest.raises(Problem) as caught:
            await service.submit("acme", "ada", "l1", "check", {"s": "a"},
                                 lesson_version=version, lesson_etag=etag)
        assert (caught.value.status, caught.value.code) == (409, "stale_version")
        assert caught.value.extra == {"current_version": 4}
    with pytest.raises(Problem) as caught:
        await service.submit("acme", "ada", "l1", "check", {"s": "a"}, lesson_version=3,
                             lesson_etag=ETAG)
    assert (caught.value.status, caught.value.code) == (422, "version_mismatch")
    assert (await service.of_lesson("acme", "l1")).items == []
    assert await service.store.outbox.count_pending() == 0
    assert service.woken == []  # type: ignore[attr-defined]

    for version, etag in ((4, None), (None, ETAG), (4, ETAG), (None, None)):
        await service.submit("acme", "ada", "l1", "check", {"s": "a"}, lesson_version=version,
                             lesson_etag=etag)
    assert [a.number for a in (await service.of_lesson("acme", "l1")).items] == [4, 3, 2, 1]


async def test_export_and_erasure_of_a_learner(service: AttemptService) -> None:
    mine = await service.submit("acme", "ada", "l1", "check", {"s": "a"})
    await service.submit("acme", "grace", "l1", "check", {"s": "b"})
    exported = await service.personal_data("acme", "ada")
    assert exported == {"quiz_attempts": [mine.model_dump(mode="json")]}
    assert json.dumps(exported)

    [sub] = subscriptions(service)
    assert sub.topics == ("user.events",)
    assert sub.types == frozenset({"bloop.identity.user.deleted.v1"})
    deleted = type_of(UserDeleted).envelope(
        UserDeleted(user_id="ada", deleted_by="admin", deleted_at=datetime.now(UTC)),
        tenant="acme", subject="ada")
    await sub.handler(deleted)
    await sub.handler(deleted)  # a redelivery changes nothing
    assert await service.personal_data("acme", "ada") == {"quiz_attempts": []}
    assert [a.learner for a in (await service.of_lesson("acme", "l1")).items] == ["grace"]
    again = await service.submit("acme", "ada", "l1", "check", {})
    assert again.number == 1
