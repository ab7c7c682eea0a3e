"""A graph edit announces `path.changed` to the enrolled learners whose path it changes, as it
is made (not at their next read)."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Collection
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from bloop.platform.content.events import (
    CourseArchived,
    CoursePublished,
    CourseUnarchived,
    LessonDeleted,
    LessonPublished,
)
from bloop.platform.kit.events.envelope import Envelope
from bloop.platform.kit.events.types import type_of
from bloop.platform.learning import service as service_module
from bloop.platform.learning.consumers import Consumers
from bloop.platform.learning.model import (
    CourseNode,
    Edge,
    GraphDocument,
    LearningPath,
    LessonNode,
    NewConcept,
    NewEnrolment,
    ProgressUpdate,
)
from bloop.platform.learning.service import LearningService
from tests.support import count_calls
from tests.unit.learning import embedded_learning

T = "acme"
AT = datetime(2025, 1, 1, tzinfo=UTC)


@pytest.fixture
async def service(tmp_path: Path) -> AsyncIterator[LearningService]:
    async with embedded_learning(tmp_path) as service:
        yield service


async def announced(service: LearningService) -> list[tuple[str, list[str]]]:
    """(learner, lesson ids) of each `path.changed` waiting in the outbox, oldest first."""
    out = []
    for p in await service.repo.outbox.pending(1000):
        if dict(p.message.headers)["type"] == b"bloop.learning.path.changed.v1":
            data = json.loads(p.message.value)["data"]
            out.append((data["learner_id"], data["lesson_ids"]))
    return out


async def test_graph_edits_announce_the_paths_they_change(service: LearningService) -> None:
    for c in ("a", "b", "goal", "other"):
        await service.add_concept(T, NewConcept(id=c, name=c))
    for i, c in enumerate(("a", "b", "goal", "other")):
        await service.project_lesson(LessonNode(
            id=f"L{c}", tenant=T, course_id="py", position=i, title=c, estimated_minutes=10,
            teaches=[c], requires=[], version=1))
    await service.enrol(T, "ada", NewEnrolment(goal_concept="goal"))
    await service.enrol(T, "bob", NewEnrolment(goal_concept="other"))
    assert await announced(service) == [("ada", ["Lgoal"]), ("bob", ["Lother"])]

    await service.add_edge(T, Edge(concept="goal", requires="b"))
    await service.settled()
    assert (await announced(service))[2:] == [("ada", ["Lb", "Lgoal"])]
    await service.add_edge(T, Edge(concept="goal", requires="b", kind="recommended"))
    await service.settled()
    assert len(await announced(service)) == 3  # same lessons: nothing to announce
    await service.import_graph(T, GraphDocument(concepts=[], edges=[
        Edge(concept="b", requires="a")]))
    await service.settled()
    assert (await announced(service))[3:] == [("ada", ["La", "Lb", "Lgoal"])]
    await service.remove_edge(T, "goal", "b")
    await service.settled()
    assert (await announced(service))[4:] == [("ada", ["Lgoal"])]
    # bob's goal never reached the edits.
    assert [who for who, _ in await announced(service)].count("bob") == 1


async def test_a_graph_edit_answers_before_its_learners_paths_are_announced(
        service: LearningService, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each learner reached took 0.1 s inside the edit's request (30 learners: 3 s). Edits
    made while the announcing runs join it; a shutdown stops it, and a learner's next read
    announces what it left."""
    for c in ("a", "b", "goal"):
        await service.add_concept(T, NewConcept(id=c, name=c))
        await service.project_lesson(LessonNode(
            id=f"L{c}", tenant=T, course_id="py", position=0, title=c, estimated_minutes=10,
            teaches=[c], requires=[], version=1))
    for learner in ("ada", "bob"):
        await service.enrol(T, learner, NewEnrolment(goal_concept="goal"))
    release = asyncio.Event()
    refresh = service.refresh_paths
    refreshed: list[str] = []

    async def slow(tenant: str, learner: str) -> list[LearningPath]:
        await release.wait()
        refreshed.append(learner)
        return await refresh(tenant, learner)

    monkeypatch.setattr(service, "refresh_paths", slow)
    await asyncio.wait_for(service.add_edge(T, Edge(concept="goal", requires="b")), 1)
    await asyncio.wait_for(service.add_edge(T, Edge(concept="b", requires="a")), 1)
    assert len(await announced(service)) == 2
    release.set()
    await service.settled()
    assert refreshed in (["ada", "bob"], ["ada", "bob", "ada", "bob"])  # one round or two
    assert (await announced(service))[2:] == [("ada", ["La", "Lb", "Lgoal"]),
                                              ("bob", ["La", "Lb", "Lgoal"])]

    release.clear()
    await service.remove_edge(T, "b", "a")
    await service.close(wait_s=0.1)
    assert not service._announcing.running()
    monkeypatch.setattr(service, "refresh_paths", refresh)
    await service.paths(T, "ada")
    assert (await announced(service))[-1] == ("ada", ["Lb", "Lgoal"])


async def many_goals(service: LearningService) -> None:
    """ada enrolled in g0..g19 (each taught by Lg<i>; g0 requires p, taught by Lp in course
    "js") and in course "py", whose only lesson Lloose teaches nothing."""
    await service.add_concept(T, NewConcept(id="p", name="p"))
    await service.project_lesson(LessonNode(
        id="Lp", tenant=T, course_id="js", title="p", estimated_minutes=10, teaches=["p"],
        requires=[], version=1))
    await service.project_lesson(LessonNode(
        id="Lloose", tenant=T, course_id="py", title="loose", estimated_minutes=10, teaches=[],
        requires=[], version=1))
    for i in range(20):
        await service.add_concept(T, NewConcept(id=f"g{i}", name=f"g{i}"))
        await service.project_lesson(LessonNode(
            id=f"Lg{i}", tenant=T, course_id="js", title=f"g{i}", estimated_minutes=10,
            teaches=[f"g{i}"], requires=[], version=1))
        await service.enrol(T, "ada", NewEnrolment(goal_concept=f"g{i}"))
    await service.add_edge(T, Edge(concept="g0", requires="p"))
    await service.project_course(CourseNode(id="py", tenant=T, title="py", version=1,
                                            lesson_ids=["Lloose"]))
    await service.enrol(T, "ada", NewEnrolment(course_id="py"))
    await service.settled()


async def test_an_attempt_recomputes_only_the_paths_reaching_its_concepts(
        service: LearningService, monkeypatch: pytest.MonkeyPatch) -> None:
    await many_goals(service)
    before = len(await announced(service))
    calls = count_calls(service.repo, monkeypatch)
    changed = await service.apply_attempt(T, "ada", "a1", ["p"], [True] * 10,
                                          datetime(2025, 1, 1, tzinfo=UTC))
    assert [m.mastered for m in changed] == [True]
    await service.settled()
    assert calls["learning_path"] == 1  # g0's path, not the 21 of ada's goals
    assert (await announced(service))[before:] == [("ada", ["Lg0"])]


async def test_an_enrolment_recomputes_only_its_own_path(
        service: LearningService, monkeypatch: pytest.MonkeyPatch) -> None:
    await many_goals(service)
    await service.add_concept(T, NewConcept(id="new", name="new"))
    before = len(await announced(service))
    calls = count_calls(service.repo, monkeypatch)
    await service.enrol(T, "ada", NewEnrolment(goal_concept="new"))
    assert calls["learning_path"] == 1
    assert (await announced(service))[before:] == [("ada", [])]


async def test_a_completed_lesson_recomputes_only_the_paths_that_can_hold_it(
        service: LearningService, monkeypatch: pytest.MonkeyPatch) -> None:
    await many_goals(service)
    before = len(await announced(service))
    calls = count_calls(service.repo, monkeypatch)
    await service.record_progress(T, "ada", "Lp", ProgressUpdate(status="completed"))
    await service.settled()
    assert calls["learning_path"] == 1  # g0 reaches p; ada is not enrolled in course js
    assert (await announced(service))[before:] == [("ada", ["Lg0"])]
    # A lesson teaching nothing is on its course's path only.
    calls.clear()
    await service.record_progress(T, "ada", "Lloose", ProgressUpdate(status="completed"))
    await service.settled()
    assert calls["learning_path"] == 1
    assert (await announced(service))[before + 1:] == [("ada", [])]


async def test_a_learners_answer_comes_before_the_paths_it_changed_are_announced(
        service: LearningService, monkeypatch: pytest.MonkeyPatch) -> None:
    """A completion, a graded attempt and a placement worked out every path they could change
    before answering: with a hundred goals reaching a concept, a completion took 15-22 s.
    Answers that come meanwhile join the round under way or the next one."""
    await many_goals(service)
    before = len(await announced(service))
    release = asyncio.Event()
    refresh = service.refresh_paths
    asked: list[set[str]] = []

    async def slow(tenant: str, learner: str,
                   goals: Collection[str] | None = None) -> list[LearningPath]:
        await release.wait()
        asked.append(set(goals or ()))
        return await refresh(tenant, learner, goals)

    monkeypatch.setattr(service, "refresh_paths", slow)
    await asyncio.wait_for(service.record_progress(
        T, "ada", "Lp", ProgressUpdate(status="completed")), 1)
    await asyncio.wait_for(service.record_progress(
        T, "ada", "Lg3", ProgressUpdate(status="completed")), 1)
    changed = await asyncio.wait_for(service.apply_attempt(
        T, "ada", "a1", ["g5"], [True] * 10, datetime(2025, 1, 1, tzinfo=UTC)), 1)
    assert [m.mastered for m in changed] == [True]
    assert len(await announced(service)) == before
    release.set()
    await service.settled()
    assert set().union(*asked) == {"concept:g0", "concept:g3", "concept:g5", "course:js"}
    assert sorted((await announced(service))[before:]) == [
        ("ada", []), ("ada", []), ("ada", ["Lg0"])]


async def test_paths_are_read_a_page_at_a_time(
        service: LearningService, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every read of the paths worked out the path to each of the learner's goals (about 0.6 s
    with a hundred enrolments): a page works out only its own."""
    await many_goals(service)
    calls = count_calls(service.repo, monkeypatch)
    goals: list[str] = []
    after = None
    while True:
        page = await service.path_page(T, "ada", after, limit=8)
        assert calls["learning_path"] == len(page.items) <= 8
        calls.clear()
        goals += [p.goal for p in page.items]
        if page.next is None:
            break
        after = page.next
    assert goals == [*(f"concept:g{i}" for i in range(20)), "course:py"]
    # unasked, a page is 20 paths (it was 100: 15 s of graph queries with large prerequisites)
    first = await service.path_page(T, "ada")
    assert (len(first.items), calls["learning_path"], first.next is not None) == (20, 20, True)


async def test_the_next_lesson_works_out_paths_only_until_one_has_it(
        service: LearningService, monkeypatch: pytest.MonkeyPatch) -> None:
    """The next item worked out the path to every goal of the learner (0.1-0.6 s with a
    hundred enrolments) to take the first lesson of the first path."""
    await many_goals(service)
    calls = count_calls(service.repo, monkeypatch)
    item = await service.next_item(T, "ada")
    assert (item.kind, item.goal, item.lesson and item.lesson.lesson_id) == (
        "lesson", "concept:g0", "Lp")
    assert calls["learning_path"] == 1

    for lesson in ("Lp", *(f"Lg{i}" for i in range(20))):
        await service.record_progress(T, "ada", lesson, ProgressUpdate(status="completed"))
    await service.settled()
    calls.clear()
    item = await service.next_item(T, "ada")  # the 21st enrolment, on the second page
    assert (item.kind, item.goal, item.lesson and item.lesson.lesson_id) == (
        "lesson", "course:py", "Lloose")
    assert (calls["page_enrolments"], calls["learning_path"]) == (2, 21)
    await service.record_progress(T, "ada", "Lloose", ProgressUpdate(status="completed"))
    assert (await service.next_item(T, "ada")).kind == "nothing"


async def test_a_completed_lesson_not_mastered_stays_on_the_path_and_next_passes_it(
        service: LearningService) -> None:
    """A learner completed a lesson and failed its quiz: the lesson left the path, so what it
    teaches was nowhere and the next lesson named it in no `blocked_by`. It stays, completed;
    `next` never gives it (a lesson without a quiz would come back for ever) and does not wait
    for it."""
    for i, c in enumerate(("a", "b", "c")):
        await service.add_concept(T, NewConcept(id=c, name=c))
        await service.project_lesson(LessonNode(
            id=f"L{c}", tenant=T, course_id="py", position=i, title=c, estimated_minutes=10,
            teaches=[c], requires=[], version=1))
    await service.add_edge(T, Edge(concept="b", requires="a"))
    await service.add_edge(T, Edge(concept="c", requires="b"))
    await service.enrol(T, "ada", NewEnrolment(goal_concept="c"))
    await service.record_progress(T, "ada", "La", ProgressUpdate(status="completed"))
    [failed] = await service.apply_attempt(T, "ada", "q1", ["a"], [False] * 3,
                                           datetime(2025, 1, 1, tzinfo=UTC))
    assert not failed.mastered
    await service.settled()
    path = await service.path(T, "ada", concept="c")
    assert [(s.lesson_id, s.status, s.blocked_by) for s in path.steps] == [
        ("La", "completed", []), ("Lb", "todo", ["a"]), ("Lc", "todo", ["b"])]
    assert (path.concepts, path.mastered, path.uncovered) == (3, 0, [])
    item = await service.next_item(T, "ada")
    assert (item.goal, item.lesson and item.lesson.lesson_id) == ("concept:c", "Lb")
    # What is announced is what is left to take: completing La changed it.
    assert (await announced(service))[-1] == ("ada", ["Lb", "Lc"])

    for lesson in ("Lb", "Lc"):
        await service.record_progress(T, "ada", lesson, ProgressUpdate(status="completed"))
    await service.settled()
    assert {s.status for s in (await service.path(T, "ada", concept="c")).steps} == {"completed"}
    assert (await service.next_item(T, "ada")).kind == "nothing"
    assert (await announced(service))[-1] == ("ada", [])


def content(kind: type[Any], **data: Any) -> Envelope:
    return type_of(kind).envelope(kind(**data), tenant=T, subject="x")


def published(lesson: str, course: str, teaches: list[str], position: int = 0,
              version: int = 1, minutes: int = 10) -> Envelope:
    return content(LessonPublished, lesson_id=lesson, course_id=course, course_version=1,
                   lesson_version=version, position=position, title=lesson,
                   estimated_minutes=minutes, teaches=teaches, requires=[], published_at=AT)


async def test_content_that_reshapes_paths_announces_them(service: LearningService) -> None:
    """ada, enrolled in course py [D0, D1]: deleting D1 announced `lesson.deleted` and no
    `path.changed` (her path had one step), until she next read her paths."""
    consume = Consumers(service).handle
    for event in (published("D0", "py", []), published("D1", "py", ["d1"], 1),
                  published("Lg", "js", ["g"]), published("Lx", "old", ["x"], minutes=5),
                  published("Lx2", "js", ["x"], 1, minutes=20)):
        await consume(event)
    await consume(content(CoursePublished, course_id="py", version=1, title="py", summary="",
                          language="en", level="beginner", tags=[], lesson_ids=["D0", "D1"],
                          published_at=AT))
    await consume(content(CoursePublished, course_id="old", version=1, title="old",
                          summary="", language="en", level="beginner", tags=[],
                          lesson_ids=["Lx"], published_at=AT))
    await service.add_edge(T, Edge(concept="g", requires="d1"))
    await service.enrol(T, "ada", NewEnrolment(course_id="py"))
    await service.enrol(T, "bob", NewEnrolment(goal_concept="g"))
    await service.enrol(T, "cy", NewEnrolment(goal_concept="x"))
    await service.settled()
    assert await announced(service) == [("ada", ["D0", "D1"]), ("bob", ["D1", "Lg"]),
                                        ("cy", ["Lx"])]

    await consume(content(LessonDeleted, lesson_id="D1", course_id="py", lesson_version=2,
                          deleted_at=AT))
    await service.settled()
    # bob's goal reaches what D1 taught: no lesson teaches it now
    assert sorted((await announced(service))[3:]) == [("ada", ["D0"]), ("bob", ["Lg"])]

    await consume(published("D2", "py", [], 2))
    await service.settled()
    assert (await announced(service))[5:] == [("ada", ["D0", "D2"])]
    await consume(published("D2", "py", [], 1, version=2))
    await consume(published("D0", "py", [], 3, version=2))  # D0 now after D2
    await service.settled()
    assert (await announced(service))[6:] == [("ada", ["D2", "D0"])]

    # An archived course's lesson is taken only when no other teaches its concept.
    await consume(content(CourseArchived, course_id="old", revision=1, lesson_ids=["Lx"],
                          archived_at=AT))
    await service.settled()
    assert (await announced(service))[7:] == [("cy", ["Lx2"])]
    await consume(content(CourseUnarchived, course_id="old", revision=2, lesson_ids=["Lx"],
                          unarchived_at=AT))
    await service.settled()
    assert (await announced(service))[8:] == [("cy", ["Lx"])]


async def test_a_lesson_published_again_unchanged_works_out_no_path(
        service: LearningService, monkeypatch: pytest.MonkeyPatch) -> None:
    """A course's publication publishes each of its lessons again: one that moved nothing
    reshapes no path."""
    consume = Consumers(service).handle
    await consume(published("D0", "py", ["a"]))
    await service.enrol(T, "ada", NewEnrolment(goal_concept="a"))
    calls = count_calls(service.repo, monkeypatch)
    await consume(published("D0", "py", ["a"], version=2))
    await service.settled()
    assert calls["learning_path"] == 0


async def test_a_course_with_many_learners_is_announced_a_page_at_a_time(
        service: LearningService, monkeypatch: pytest.MonkeyPatch) -> None:
    """The consumer answers before the paths are worked out; the course's learners are read a
    page at a time, and content events meanwhile join the run."""
    consume = Consumers(service).handle
    for lesson, position in (("D0", 0), ("D1", 1), ("D2", 2)):
        await consume(published(lesson, "py", [], position))
    await consume(content(CoursePublished, course_id="py", version=1, title="py", summary="",
                          language="en", level="beginner", tags=[],
                          lesson_ids=["D0", "D1", "D2"], published_at=AT))
    learners = [f"u{i:02}" for i in range(25)]
    for learner in learners:
        await service.enrol(T, learner, NewEnrolment(course_id="py"))
    before = len(await announced(service))
    monkeypatch.setattr(service_module, "LEARNERS_A_PAGE", 10)
    release = asyncio.Event()
    refresh = service.refresh_paths

    async def slow(tenant: str, learner: str,
                   goals: Collection[str] | None = None) -> list[LearningPath]:
        await release.wait()
        return await refresh(tenant, learner, goals)

    monkeypatch.setattr(service, "refresh_paths", slow)
    calls = count_calls(service.repo, monkeypatch)
    await asyncio.wait_for(consume(content(
        LessonDeleted, lesson_id="D1", course_id="py", lesson_version=2, deleted_at=AT)), 1)
    await asyncio.wait_for(consume(content(
        LessonDeleted, lesson_id="D2", course_id="py", lesson_version=2, deleted_at=AT)), 1)
    release.set()
    await service.settled()
    assert calls["learners_enrolled"] in (3, 6)  # 10 + 10 + 5, in one round or two
    assert sorted((await announced(service))[before:]) == [(x, ["D0"]) for x in learners]


async def test_a_replayed_older_lesson_event_is_not_logged_at_info(
        service: LearningService, caplog: pytest.LogCaptureFixture) -> None:
    """A worker replaying a backlog logged one INFO line per older event it passed over."""
    consume = Consumers(service).handle
    await consume(published("L1", "py", ["a"], version=2))
    caplog.set_level(logging.INFO, logger="bloop.learning")
    for _ in range(3):
        await consume(published("L1", "py", ["a"], version=1))
    assert [r.getMessage() for r in caplog.records if r.name == "bloop.learning"] == []
    caplog.set_level(logging.DEBUG, logger="bloop.learning")
    await consume(published("L1", "py", ["a"], version=1))
    assert [r.getMessage() for r in caplog.records] == ["older lesson event ignored"]
