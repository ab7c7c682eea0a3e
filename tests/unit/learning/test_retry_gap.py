"""A retry of a quiz soon after the learner's previous attempt at it is no evidence of mastery:
its answers show the feedback just read. Only first attempts, attempts `RETRY_GAP` or more after
the previous one, and attempts whose event does not say when the previous one was, move
mastery (and feed BKT fits). An attempt that answered nothing is no previous attempt."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bloop.platform.content.attempts import model as attempt_model
from bloop.platform.content.attempts.events import QuestionGraded, QuizAttemptGraded
from bloop.platform.kit.events.envelope import Envelope
from bloop.platform.kit.events.types import type_of
from bloop.platform.learning.consumers import Consumers
from bloop.platform.learning.model import Mastery
from bloop.platform.learning.service import RETRY_GAP, LearningService
from tests.support import embedded_app, eventually, member
from tests.unit.learning import embedded_learning

T = "acme"
AT = datetime(2025, 1, 1, tzinfo=UTC)
ANSWERS = [False, True, True, True]
"""One true/false question answered wrong, then right three times."""


@pytest.fixture
async def service(tmp_path: Path) -> AsyncIterator[LearningService]:
    async with embedded_learning(tmp_path) as service:
        yield service


def times(gap: timedelta) -> list[datetime]:
    return [AT + i * gap for i in range(len(ANSWERS))]


async def take(service: LearningService, learner: str, at: list[datetime],
               order: list[int] | None = None) -> Mastery:
    """The learner's attempts answering `ANSWERS` at the times `at` (delivered in `order`),
    each event naming the one before; their mastery after."""
    for i in order or range(len(ANSWERS)):
        await service.apply_attempt(T, learner, f"{learner}-{i}", ["c"], [ANSWERS[i]], at[i],
                                    at[i - 1] if i else None)
    [m] = await service.mastery(T, learner)
    return m


async def test_retries_right_after_the_feedback_do_not_master_a_concept(
        service: LearningService) -> None:
    """Wrong, then right three times within a minute: p_known went 0.18, 0.57, 0.88, 0.974,
    mastered in seconds."""
    quick = await take(service, "ada", times(timedelta(seconds=20)))
    assert not quick.mastered
    assert [a for _, a in quick.observations] == [0]
    assert quick.attempt_ids == ["ada-0"]

    spaced = await take(service, "grace", times(timedelta(hours=13)))
    assert spaced.mastered
    assert spaced.p_known == pytest.approx(0.974, abs=1e-3)
    assert [a for _, a in spaced.observations] == [0, 1, 1, 1]
    # only the answers that counted are data for fitting the concept's BKT parameters
    assert sorted(await service.repo.mastery_sequences(T, "c")) == [[0], [0, 1, 1, 1]]

    just = await take(service, "alan", times(RETRY_GAP))
    assert [a for _, a in just.observations] == [0, 1, 1, 1]
    under = await take(service, "joan", times(RETRY_GAP - timedelta(seconds=1)))
    assert [a for _, a in under.observations] == [0]


async def test_the_rule_keeps_attempts_idempotent_and_order_free(
        service: LearningService) -> None:
    at = [AT, AT + timedelta(minutes=1), AT + timedelta(hours=13),
          AT + timedelta(hours=13, minutes=2)]
    in_order = await take(service, "ada", at)
    assert [a for _, a in in_order.observations] == [0, 1]
    assert in_order.attempt_ids == ["ada-0", "ada-2"]
    again = await take(service, "ada", at, order=[3, 2, 1, 0])  # redelivered, backwards
    assert again == in_order
    shuffled = await take(service, "grace", at, order=[2, 3, 1, 0])
    assert (shuffled.p_known, shuffled.observations) == (in_order.p_known, in_order.observations)


def graded(attempt_id: str, right: bool, at: datetime, previous: datetime | None) -> Envelope:
    return type_of(QuizAttemptGraded).envelope(QuizAttemptGraded(
        attempt_id=attempt_id, user_id="ada", lesson_id="l", lesson_version=1, course_id="py",
        quiz_id="q", concepts=["c"], attempt_number=1, score=float(right), max_score=1,
        questions=[QuestionGraded(question_id="tf", correct=right,
                                  outcome="correct" if right else "incorrect",
                                  score=float(right), max_score=1)],
        graded_at=at, previous_graded_at=previous), tenant=T, subject="l")


async def test_the_consumer_skips_a_retry_its_event_says_is_soon_and_counts_one_that_does_not_say(
        service: LearningService) -> None:
    consumers = Consumers(service)
    at = times(timedelta(minutes=1))
    events = [graded(f"a{i}", right, at[i], at[i - 1] if i else None)
              for i, right in enumerate(ANSWERS)]
    assert "previous_graded_at" in events[1].data
    for event in events:
        await consumers.handle(event)
    [m] = await service.mastery(T, "ada")
    assert (m.mastered, m.attempt_ids) == (False, ["a0"])

    # The same attempts from a content before the field: each counts, as before.
    for event in events[1:]:
        data = {k: v for k, v in event.data.items() if k != "previous_graded_at"}
        await consumers.handle(dataclasses.replace(event, data=data))
    [m] = await service.mastery(T, "ada")
    assert m.mastered
    assert m.attempt_ids == ["a0", "a1", "a2", "a3"]


async def test_quiz_retries_through_the_api_are_graded_but_master_nothing_until_spaced(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Content grades, stores and shows every retry; learning counts only the spaced ones."""
    clock = [datetime.now(UTC)]
    monkeypatch.setattr(attempt_model, "now", lambda: clock[0])
    base = "/v1/tenants/acme"
    async with embedded_app(tmp_path, monkeypatch, ["identity", "content", "learning"]) as (
            app, c):
        c.headers.update(await member(app, c, "acme", ["educator"]))
        assert (await c.post(f"{base}/concepts", json={"id": "loops", "name": "Loops"})
                ).status_code == 201
        assert (await c.post(f"{base}/courses", json={"id": "py", "title": "Python"})
                ).status_code == 201
        r = await c.post(f"{base}/courses/py/lessons", json={
            "title": "Loops", "teaches": ["loops"], "blocks": [
                {"type": "quiz", "id": "check", "title": "Check", "questions": [
                    {"type": "true_false", "id": "tf", "prompt": "Loops repeat?",
                     "answer": True}]}]})
        assert r.status_code == 201, r.text
        assert (await c.post(f"{base}/courses/py/publish")).status_code == 200
        url = f"{base}/lessons/{r.json()['id']}/quizzes/check/attempts"

        async def take(who: dict[str, str], gap: timedelta) -> None:
            for number, right in enumerate(ANSWERS, start=1):
                r = await c.post(url, json={"answers": {"tf": right}}, headers=who)
                assert r.status_code == 201, r.text
                assert (r.json()["number"], r.json()["score"]) == (number, float(right))
                clock[0] += gap

        async def mastery(who: dict[str, str]) -> list[dict[str, Any]]:
            r = await c.get(f"{base}/learning/me/mastery", headers=who)
            assert r.status_code == 200, r.text
            items: list[dict[str, Any]] = r.json()["items"]
            return items

        ada = await member(app, c, "acme", ["learner"])
        grace = await member(app, c, "acme", ["learner"])
        alan = await member(app, c, "acme", ["learner"])
        await take(ada, timedelta(seconds=20))
        # A blank submit answers nothing, so it is no attempt to retry: the real one right
        # after it counts (it once waited 12 hours, and the blank one counted nothing).
        for answers in ({}, {"tf": True}):
            r = await c.post(url, json={"answers": answers}, headers=alan)
            assert r.status_code == 201, r.text
            clock[0] += timedelta(seconds=20)
        clock[0] += RETRY_GAP
        await take(grace, timedelta(hours=13))

        async def graces_counted() -> bool:  # after ada's: one lesson's events keep their order
            items = await mastery(grace)
            return bool(items) and items[0]["mastered"] is True

        await eventually(graces_counted, timeout_s=20, what="grace's spaced attempts to count")
        [adas] = await mastery(ada)
        assert adas["mastered"] is False
        assert [a for _, a in adas["observations"]] == [0]
        assert len((await c.get(url, headers=ada)).json()["items"]) == 4
        [alans] = await mastery(alan)
        assert [a for _, a in alans["observations"]] == [1]
