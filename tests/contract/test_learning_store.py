"""The learning store contract, run against the embedded (SQLite) adapter and a real Neo4j.
Each case works in tenants of its own (every query filters by tenant), deleted afterwards, with
an outbox of its own."""

from __future__ import annotations

import asyncio
import itertools
import json
import random
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from bloop.platform.kit import stores
from bloop.platform.kit.events.types import registry, type_of
from bloop.platform.kit.pagination import BadCursor, cursor
from bloop.platform.kit.settings import Neo4jSettings
from bloop.platform.kit.sqlite import SqliteDB
from bloop.platform.learning import review
from bloop.platform.learning.events import Enrolled, LessonCompleted, Unenrolled
from bloop.platform.learning.model import (
    BktParams,
    Card,
    CardEdit,
    CardState,
    Concept,
    ConceptEdit,
    CourseNode,
    Edge,
    Enrolment,
    HeldUntil,
    LearnerSettings,
    LessonNode,
    LessonVersion,
    Mastery,
    ModuleRef,
    NewCard,
    NewConcept,
    Placement,
    PlacementAnswer,
    Progress,
    ProgressUpdate,
)
from bloop.platform.learning.paths import PathPlan, ranks, to_path
from bloop.platform.learning.ports import (
    CycleFound,
    Duplicate,
    LearningRepository,
    Missing,
    StaleVersion,
    UnknownConcepts,
)
from bloop.platform.learning.stores.embedded import EmbeddedLearningStore
from bloop.platform.learning.stores.neo4j import Neo4jLearningStore
from tests.support import paged, require_server

T0 = datetime(2025, 1, 6, 9, 0, tzinfo=UTC)
TOKYO, PARIS = "Asia/Tokyo", "Europe/Paris"


class Case:
    def __init__(self, store: LearningRepository) -> None:
        self.store = store
        self.tenant = f"t{uuid.uuid4().hex[:10]}"
        self.other = f"o{uuid.uuid4().hex[:10]}"


@pytest.fixture(params=["embedded", pytest.param("neo4j", marks=pytest.mark.real)])
async def case(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Case]:
    if request.param == "embedded":
        db = SqliteDB(tmp_path / "learning.sqlite3")
        embedded = EmbeddedLearningStore(db, registry)
        await embedded.setup()
        yield Case(embedded)
        await db.close()
        return
    require_server("neo4j")
    driver = stores.neo4j_driver(Neo4jSettings())
    neo = Neo4jLearningStore(driver, registry, outbox_name=f"learning-test-{uuid.uuid4().hex[:8]}")
    c = Case(neo)
    try:
        await neo.setup()
        yield c
    finally:
        await neo.drop_tenant(c.tenant)
        await neo.drop_tenant(c.other)
        await driver.execute_query("MATCH (e:BloopOutbox {name: $n}) DELETE e", n=neo.outbox.name)
        await driver.execute_query("MATCH (s:BloopOutboxSeq {name: $n}) DELETE s",
                                   n=neo.outbox.name)
        await driver.close()


async def concepts(case: Case, *ids: str, tenant: str | None = None) -> None:
    for i in ids:
        await case.store.add_concept(Concept.create(tenant or case.tenant,
                                                    NewConcept(id=i, name=i.title())))


async def chain(case: Case, *ids: str) -> None:
    """ids[1] requires ids[0], ids[2] requires ids[1], …"""
    await concepts(case, *ids)
    for lower, upper in itertools.pairwise(ids):
        await case.store.add_edge(case.tenant, Edge(concept=upper, requires=lower))


def lesson(case: Case, lid: str, teaches: list[str], minutes: int = 10, version: int = 1,
           course: str = "py", position: int = 0, module: str | None = None) -> LessonNode:
    return LessonNode(id=lid, tenant=case.tenant, course_id=course, position=position,
                      title=lid.upper(), estimated_minutes=minutes, teaches=teaches, requires=[],
                      version=version, module_id=module)


async def test_concepts_are_per_tenant(case: Case) -> None:
    await concepts(case, "loops", "recursion")
    with pytest.raises(Duplicate):
        await concepts(case, "loops")
    await concepts(case, "loops", tenant=case.other)
    assert [c.id for c in await case.store.list_concepts(case.tenant)] == ["loops", "recursion"]
    assert [c.id for c in await case.store.get_concepts(case.tenant, ["recursion", "nope"])] == [
        "recursion"]
    await case.store.ensure_concepts(case.tenant, ["loops", "sets"])
    found = {c.id: c for c in await case.store.list_concepts(case.tenant)}
    assert found["loops"].name == "Loops"  # kept, not replaced by a placeholder
    assert found["sets"].name == "Sets"
    await case.store.set_bkt(case.tenant, "loops", BktParams(prior=0.4, fitted_on=12))
    detail = await case.store.get_concept(case.tenant, "loops")
    assert detail is not None
    assert detail.bkt.prior == 0.4
    assert detail.bkt.fitted_on == 12
    with pytest.raises(Missing):
        await case.store.set_bkt(case.tenant, "ghost", BktParams())
    assert await case.store.get_concept(case.other, "recursion") is None

    await case.store.describe_concept(
        case.tenant, "sets", ConceptEdit(name="Sets and maps", description="Unordered."))
    detail = await case.store.get_concept(case.tenant, "sets")
    assert detail is not None
    assert (detail.name, detail.description) == ("Sets and maps", "Unordered.")
    await case.store.describe_concept(case.tenant, "loops", ConceptEdit(description="Repeating."))
    detail = await case.store.get_concept(case.tenant, "loops")
    assert detail is not None
    assert (detail.name, detail.description, detail.bkt.prior) == ("Loops", "Repeating.", 0.4)
    await case.store.describe_concept(case.tenant, "loops", ConceptEdit(name="Loops and ranges"))
    detail = await case.store.get_concept(case.tenant, "loops")
    assert detail is not None
    assert (detail.name, detail.description) == ("Loops and ranges", "Repeating.")
    with pytest.raises(Missing):
        await case.store.describe_concept(case.tenant, "ghost", ConceptEdit(name="G"))
    assert [c.name for c in await case.store.list_concepts(case.other)] == ["Loops"]


async def test_a_concept_edit_naming_a_version_past_is_refused(case: Case) -> None:
    """Concepts had no version: two educators renaming one lost an edit unknowingly."""
    await concepts(case, "loops", "sets")
    await concepts(case, "loops", tenant=case.other)
    assert [c.version for c in await case.store.list_concepts(case.tenant)] == [1, 1]
    edited = await case.store.describe_concept(case.tenant, "loops", ConceptEdit(name="Loops 2"),
                                               expected=1)
    assert (edited.name, edited.version) == ("Loops 2", 2)
    with pytest.raises(StaleVersion):
        await case.store.describe_concept(case.tenant, "loops", ConceptEdit(name="Iteration"),
                                          expected=1)
    with pytest.raises(Missing):
        await case.store.describe_concept(case.tenant, "ghost", ConceptEdit(name="G"),
                                          expected=1)
    detail = await case.store.get_concept(case.tenant, "loops")
    assert detail is not None
    assert (detail.name, detail.version) == ("Loops 2", 2)
    edited = await case.store.describe_concept(case.tenant, "loops",
                                               ConceptEdit(description="Repeating."))
    assert (edited.name, edited.description, edited.version) == ("Loops 2", "Repeating.", 3)
    await case.store.set_bkt(case.tenant, "loops", BktParams(prior=0.4))  # not a description
    # a lesson's publication naming it otherwise renames it: one version on; the same name,
    # or a concept it creates, none
    assert await case.store.upsert_lesson(lesson(case, "L1", ["loops", "sets", "maps"]),
                                          {"loops": "Loops", "sets": "Sets", "maps": "Maps"})
    assert {c.id: (c.name, c.version) for c in await case.store.list_concepts(case.tenant)} == {
        "loops": ("Loops", 4), "maps": ("Maps", 1), "sets": ("Sets", 1)}
    with pytest.raises(StaleVersion):
        await case.store.describe_concept(case.tenant, "loops", ConceptEdit(name="Mine"),
                                          expected=3)
    assert [(c.name, c.version) for c in await case.store.list_concepts(case.other)] == [
        ("Loops", 1)]

    # a concept stored before concepts had versions reads as version 1
    if isinstance(case.store, EmbeddedLearningStore):
        await case.store.db.transaction(lambda c: c.execute(
            "UPDATE concepts SET doc = json_remove(doc, '$.version') WHERE tenant = ?",
            (case.tenant,)))
    else:
        assert isinstance(case.store, Neo4jLearningStore)
        await case.store.driver.execute_query(
            "MATCH (c:Concept {tenant: $tenant}) REMOVE c.version", tenant=case.tenant)
    assert [c.version for c in (await case.store.page_concepts(case.tenant)).items] == [1, 1, 1]
    edited = await case.store.describe_concept(case.tenant, "sets", ConceptEdit(name="Sets 2"),
                                               expected=1)
    assert edited.version == 2
    assert await case.store.upsert_lesson(lesson(case, "L1", ["maps"], version=2),
                                          {"maps": "Maps 2"})
    assert [c.version for c in await case.store.get_concepts(case.tenant, ["maps", "sets"])] == [
        2, 2]


async def test_edges_and_their_kinds(case: Case) -> None:
    await concepts(case, "a", "b", "c")
    assert await case.store.add_edge(case.tenant, Edge(concept="b", requires="a"))
    assert await case.store.add_edge(case.tenant, Edge(concept="c", requires="a",
                                                       kind="recommended"))
    assert not await case.store.add_edge(case.tenant, Edge(concept="c", requires="a"))
    assert await case.store.list_edges(case.tenant) == [
        Edge(concept="b", requires="a"), Edge(concept="c", requires="a")]
    detail = await case.store.get_concept(case.tenant, "a")
    assert detail is not None
    assert [e.concept for e in detail.required_by] == ["b", "c"]
    assert detail.requires == []
    await case.store.remove_edge(case.tenant, "b", "a")
    with pytest.raises(Missing):
        await case.store.remove_edge(case.tenant, "b", "a")
    assert await case.store.list_edges(case.other) == []


async def test_an_edge_to_an_unknown_concept_is_refused(case: Case) -> None:
    await concepts(case, "a")
    await concepts(case, "b", tenant=case.other)
    with pytest.raises(UnknownConcepts) as raised:
        await case.store.add_edge(case.tenant, Edge(concept="a", requires="b"))
    assert raised.value.ids == ["b"]  # b exists, but in another tenant
    assert await case.store.list_edges(case.tenant) == []


async def test_an_edge_closing_a_cycle_is_refused_and_named(case: Case) -> None:
    await chain(case, "a", "b", "c", "d")  # d requires c requires b requires a
    with pytest.raises(CycleFound) as raised:
        await case.store.add_edge(case.tenant, Edge(concept="a", requires="d"))
    assert raised.value.cycle == ["a", "d", "c", "b", "a"]
    with pytest.raises(CycleFound) as raised:
        await case.store.add_edge(case.tenant, Edge(concept="b", requires="c", kind="recommended"))
    assert raised.value.cycle == ["b", "c", "b"]
    assert len(await case.store.list_edges(case.tenant)) == 3
    # The same ids in another tenant form no cycle with this one's edges.
    await concepts(case, "a", "d", tenant=case.other)
    assert await case.store.add_edge(case.other, Edge(concept="a", requires="d"))


async def test_concurrent_edges_never_close_a_cycle_together(case: Case) -> None:
    await chain(case, "a", "b")  # b requires a
    await concepts(case, "c")
    await case.store.add_edge(case.tenant, Edge(concept="c", requires="b"))
    # Either edge alone is fine; both together would make a → c → b → a... or c → a → c.
    results = await asyncio.gather(
        case.store.add_edge(case.tenant, Edge(concept="a", requires="c")),
        case.store.add_edge(case.tenant, Edge(concept="a", requires="b")),
        return_exceptions=True)
    assert all(isinstance(r, CycleFound) for r in results)
    await concepts(case, "x", "y")
    results = await asyncio.gather(
        case.store.add_edge(case.tenant, Edge(concept="x", requires="y")),
        case.store.add_edge(case.tenant, Edge(concept="y", requires="x")),
        return_exceptions=True)
    assert sorted(type(r).__name__ for r in results) == ["CycleFound", "bool"]
    assert len([e for e in await case.store.list_edges(case.tenant) if e.concept in "xy"]) == 1


async def test_an_import_is_all_or_nothing(case: Case) -> None:
    await concepts(case, "a")
    new = [Concept.create(case.tenant, NewConcept(id=i, name=i)) for i in ("b", "c")]
    with pytest.raises(CycleFound) as raised:
        await case.store.import_graph(case.tenant, new, [
            Edge(concept="b", requires="a"), Edge(concept="c", requires="b"),
            Edge(concept="a", requires="c")])
    assert set(raised.value.cycle) == {"a", "b", "c"}
    with pytest.raises(UnknownConcepts):
        await case.store.import_graph(case.tenant, new, [Edge(concept="b", requires="zed")])
    assert [c.id for c in await case.store.list_concepts(case.tenant)] == ["a"]
    assert await case.store.list_edges(case.tenant) == []
    await case.store.import_graph(case.tenant, new, [
        Edge(concept="b", requires="a"), Edge(concept="c", requires="b", kind="recommended")])
    assert len(await case.store.list_edges(case.tenant)) == 2
    await case.store.import_graph(case.tenant, [], [Edge(concept="c", requires="b")])
    assert (await case.store.list_edges(case.tenant))[1].kind == "required"


async def test_lessons_keep_their_latest_version(case: Case) -> None:
    assert await case.store.upsert_lesson(lesson(case, "l1", ["loops"], version=2))
    assert not await case.store.upsert_lesson(lesson(case, "l1", ["sets"], version=1))
    stored = await case.store.get_lesson(case.tenant, "l1")
    assert stored is not None
    assert stored.teaches == ["loops"]
    assert [c.id for c in await case.store.list_concepts(case.tenant)] == ["loops"]
    assert not await case.store.delete_lesson(case.tenant, "l1", 1)
    assert await case.store.delete_lesson(case.tenant, "l1", 3)
    assert await case.store.get_lesson(case.tenant, "l1") is None
    assert not await case.store.upsert_lesson(lesson(case, "l1", ["loops"], version=2))
    assert await case.store.get_lesson(case.tenant, "l1") is None
    assert await case.store.delete_lesson(case.tenant, "gone", 1)  # deleted before it came
    # a publication of the version deleted, arriving after the deletion, leaves it deleted
    assert not await case.store.upsert_lesson(lesson(case, "l1", ["loops"], version=3))
    assert await case.store.get_lesson(case.tenant, "l1") is None
    assert await case.store.upsert_lesson(lesson(case, "l1", ["loops"], version=4))  # revived
    assert await case.store.get_lesson(case.tenant, "l1") is not None


async def test_a_course_lists_its_lessons_in_order(case: Case) -> None:
    for i, lid in enumerate(("l2", "l1", "l3")):
        await case.store.upsert_lesson(lesson(case, lid, [f"c{lid}"], position=i, module="m1"))
    course = CourseNode(id="py", tenant=case.tenant, title="Py", version=2,
                        lesson_ids=["l2", "l1", "l3"], modules=[ModuleRef(id="m1", lesson_ids=["l2"])])
    assert await case.store.upsert_course(course)
    assert not await case.store.upsert_course(course.model_copy(update={"version": 1,
                                                                        "lesson_ids": []}))
    stored = await case.store.get_course(case.tenant, "py")
    assert stored == course
    assert [x.id for x in await case.store.lessons_of_course(case.tenant, "py")] == ["l2", "l1", "l3"]
    assert await case.store.get_course(case.other, "py") is None


async def test_courses_are_read_with_their_lessons_at_once(case: Case) -> None:
    for i, lid in enumerate(("l2", "l1", "l3")):
        await case.store.upsert_lesson(lesson(case, lid, ["loops"], position=i, module="m1"))
    await case.store.upsert_lesson(lesson(case, "g1", ["sets"], course="go"))
    py = CourseNode(id="py", tenant=case.tenant, title="Py", version=1,
                    lesson_ids=["l2", "gone", "l1", "l3"],
                    modules=[ModuleRef(id="m1", lesson_ids=["l2"])])
    go = CourseNode(id="go", tenant=case.tenant, title="Go", version=1, lesson_ids=["g1"])
    empty = CourseNode(id="empty", tenant=case.tenant, title="Empty", version=1, lesson_ids=[])
    for course in (py, go, empty):
        assert await case.store.upsert_course(course)
    await case.store.delete_lesson(case.tenant, "l1", 2)
    found = await case.store.courses_with_lessons(case.tenant, ["py", "none", "empty", "go", "py"])
    assert {c: (course, [x.id for x in lessons]) for c, (course, lessons) in found.items()} == {
        "py": (py, ["l2", "l3"]), "go": (go, ["g1"]), "empty": (empty, [])}
    assert found["py"][1][0] == await case.store.get_lesson(case.tenant, "l2")
    assert await case.store.courses_with_lessons(case.other, ["py", "go"]) == {}
    assert await case.store.courses_with_lessons(case.tenant, []) == {}


async def test_an_archived_course_stays_archived_until_a_later_revision_puts_it_back(
        case: Case) -> None:
    course = CourseNode(id="py", tenant=case.tenant, title="Py", version=1, lesson_ids=["l1"])
    assert not await case.store.archive_course(case.tenant, "py", True, 3)  # not known yet
    await case.store.upsert_course(course)
    assert await case.store.archive_course(case.tenant, "py", True, 3)
    assert not await case.store.archive_course(case.tenant, "py", False, 2)  # an older change
    assert await case.store.upsert_course(course.model_copy(update={"title": "Python"}))
    stored = await case.store.get_course(case.tenant, "py")
    assert stored == course.model_copy(update={
        "title": "Python", "archived": True, "archived_revision": 3})
    assert await case.store.archive_course(case.tenant, "py", True, 3)  # once more: the same
    assert await case.store.archive_course(case.tenant, "py", False, 5)
    assert await case.store.upsert_course(course.model_copy(update={"version": 2}))
    stored = await case.store.get_course(case.tenant, "py")
    assert stored is not None
    assert (stored.version, stored.archived, stored.archived_revision) == (2, False, 5)
    assert not await case.store.archive_course(case.other, "py", True, 9)
    assert (await case.store.get_course(case.tenant, "py")) == stored


async def test_the_path_subgraph_is_the_goal_closure(case: Case) -> None:
    # recursion requires functions (required) and expressions (recommended); functions requires
    # variables; sets is unrelated.
    await chain(case, "variables", "functions", "recursion")
    await concepts(case, "expressions", "sets")
    await case.store.add_edge(case.tenant, Edge(concept="recursion", requires="expressions",
                                                 kind="recommended"))
    await case.store.upsert_lesson(lesson(case, "intro", ["variables"], minutes=5, position=0))
    await case.store.upsert_lesson(lesson(case, "fun", ["functions"], minutes=15, position=1))
    await case.store.upsert_lesson(lesson(case, "fun-short", ["functions"], minutes=8,
                                          course="other"))
    await case.store.upsert_lesson(lesson(case, "rec", ["recursion"], minutes=15, position=2))
    await case.store.upsert_lesson(lesson(case, "sets", ["sets"], position=3))
    learner = "u1"
    await case.store.save_progress(case.tenant, learner, Progress(
        lesson_id="fun", status="started", started_at=T0), [])
    await case.store.save_mastery(case.tenant, learner, [Mastery(
        concept="variables", p_known=0.97, mastered=True, version=1, updated_at=T0)], [])

    sub = await case.store.path_subgraph(case.tenant, learner, ["recursion"])
    assert sub.goals == ("recursion",)
    assert set(sub.concepts) == {"variables", "functions", "recursion", "expressions"}
    assert sub.concepts["variables"].mastered
    assert not sub.concepts["functions"].mastered
    assert sorted(sub.concepts["recursion"].prerequisites) == [
        ("expressions", "recommended"), ("functions", "required")]
    fun = {x.id: x for x in sub.concepts["functions"].lessons}
    assert set(fun) == {"fun", "fun-short"}
    assert fun["fun"].status == "started"
    assert fun["fun-short"].minutes == 8
    assert sub.concepts["expressions"].lessons == ()

    path = to_path("concept:recursion",
                   await case.store.learning_path(case.tenant, learner, ["recursion"]))
    assert [s.lesson_id for s in path.steps] == ["fun-short", "rec"]
    assert path.uncovered == ["expressions"]
    assert (path.concepts, path.mastered) == (4, 1)
    assert path.steps[1].blocked_by == ["functions"]

    by_course = await case.store.path_subgraph(case.tenant, learner, [], course="py")
    assert set(by_course.goals) == {"variables", "functions", "recursion", "sets"}
    assert (await case.store.path_subgraph(case.other, learner, ["recursion"])).goals == ()
    assert (await case.store.path_subgraph(case.tenant, learner, ["ghost"])).goals == ()
    other_learner = await case.store.path_subgraph(case.tenant, "u2", ["recursion"])
    assert not other_learner.concepts["variables"].mastered


async def test_enrolment_is_once_per_goal_with_its_event(case: Case) -> None:
    at = T0
    enrolment = Enrolment(learner="u1", course_id="py", enrolled_at=at)
    event = type_of(Enrolled).envelope(Enrolled(learner_id="u1", course_id="py",
                                                goal_concept=None, enrolled_at=at),
                                       tenant=case.tenant, subject="u1")
    assert await case.store.enrol(case.tenant, enrolment, [event])
    assert not await case.store.enrol(case.tenant, enrolment, [event])
    assert await case.store.enrolments(case.tenant, "u1") == [enrolment]
    assert await case.store.enrolments(case.other, "u1") == []
    pending = await case.store.outbox.pending(100)
    assert [p.message.topic for p in pending] == ["learning.events"]


async def test_leaving_a_goal_removes_it_and_its_path_with_its_event(case: Case) -> None:
    for goal in ({"course_id": "py"}, {"goal_concept": "loops"}):
        await case.store.enrol(case.tenant, Enrolment(learner="u1", enrolled_at=T0, **goal), [])
    await case.store.save_path_snapshot(case.tenant, "u1", "course:py", ["l1", "l2"], [])
    await case.store.save_path_snapshot(case.tenant, "u1", "concept:loops", ["l1"], [])
    await case.store.outbox.mark_sent(await case.store.outbox.pending(100))
    left = type_of(Unenrolled).envelope(Unenrolled(learner_id="u1", course_id="py",
                                                   goal_concept=None, unenrolled_at=T0),
                                        tenant=case.tenant, subject="u1")
    assert not await case.store.unenrol(case.other, "u1", "course:py", [left])
    assert not await case.store.unenrol(case.tenant, "u2", "course:py", [left])
    assert await case.store.outbox.pending(100) == []
    assert await case.store.unenrol(case.tenant, "u1", "course:py", [left])
    assert [e.goal for e in await case.store.enrolments(case.tenant, "u1")] == ["concept:loops"]
    assert await case.store.path_snapshot(case.tenant, "u1", "course:py") is None
    assert await case.store.path_snapshot(case.tenant, "u1", "concept:loops") == ["l1"]
    assert [json.loads(p.message.value)["type"] for p in await case.store.outbox.pending(100)] == [
        "bloop.learning.unenrolled.v1"]
    assert not await case.store.unenrol(case.tenant, "u1", "course:py", [left])
    assert await case.store.enrol(case.tenant, Enrolment(learner="u1", course_id="py",
                                                          enrolled_at=T0), [])


async def test_a_learners_path_snapshots_are_read_at_once(case: Case) -> None:
    assert await case.store.path_snapshots(case.tenant, "u1") == {}
    for learner, goal in (("u1", {"course_id": "py"}), ("u1", {"goal_concept": "loops"}),
                          ("u1", {"goal_concept": "sets"}), ("u2", {"course_id": "py"})):
        await case.store.enrol(case.tenant, Enrolment(learner=learner, enrolled_at=T0, **goal),
                               [])
    await case.store.save_path_snapshot(case.tenant, "u1", "course:py", ["l1", "l2"], [])
    await case.store.save_path_snapshot(case.tenant, "u1", "concept:loops", [], [])
    await case.store.save_path_snapshot(case.tenant, "u2", "course:py", ["l2"], [])
    assert await case.store.path_snapshots(case.tenant, "u1") == {
        "course:py": ["l1", "l2"], "concept:loops": []}
    assert await case.store.path_snapshots(case.tenant, "u2") == {"course:py": ["l2"]}
    assert await case.store.path_snapshots(case.other, "u1") == {}
    # a page's goals only (a goal never announced, or someone else's, left out)
    assert await case.store.path_snapshots(
        case.tenant, "u1", ["concept:loops", "concept:sets", "concept:ghost"]) == {
        "concept:loops": []}
    assert await case.store.path_snapshots(case.tenant, "u2", ["concept:loops"]) == {}
    assert await case.store.path_snapshots(case.tenant, "u1", []) == {}


async def test_a_path_snapshot_is_written_over_the_one_read_while_enrolled(case: Case) -> None:
    """Two refreshes at once announce a change once; a refresh that read the enrolment before
    the learner left keeps no path for the goal."""
    assert not await case.store.save_path_snapshot(case.tenant, "u1", "course:py", ["l1"], [])
    await case.store.enrol(case.tenant, Enrolment(learner="u1", course_id="py", enrolled_at=T0),
                           [])
    assert await case.store.save_path_snapshot(case.tenant, "u1", "course:py", ["l1"], [])
    assert not await case.store.save_path_snapshot(case.tenant, "u1", "course:py", ["l2"], [])
    assert not await case.store.save_path_snapshot(case.tenant, "u1", "course:py", ["l2"], [],
                                                   previous=["l0"])
    assert await case.store.save_path_snapshot(case.tenant, "u1", "course:py", ["l2"], [],
                                               previous=["l1"])
    assert await case.store.path_snapshot(case.tenant, "u1", "course:py") == ["l2"]
    left = type_of(Unenrolled).envelope(Unenrolled(learner_id="u1", course_id="py",
                                                   goal_concept=None, unenrolled_at=T0),
                                        tenant=case.tenant, subject="u1")
    assert await case.store.unenrol(case.tenant, "u1", "course:py", [left])
    assert not await case.store.save_path_snapshot(case.tenant, "u1", "course:py", ["l3"], [],
                                                   previous=["l2"])
    assert await case.store.path_snapshot(case.tenant, "u1", "course:py") is None


async def test_mastery_writes_are_version_guarded(case: Case) -> None:
    m = Mastery(concept="loops", p_known=0.3, mastered=False, observations=[("2025", 1)],
                attempt_ids=["a1"], version=1, updated_at=T0)
    await case.store.save_mastery(case.tenant, "u1", [m], [])
    with pytest.raises(StaleVersion):
        await case.store.save_mastery(case.tenant, "u1", [m], [])
    both = [m.model_copy(update={"version": 2, "p_known": 0.5}),
            Mastery(concept="sets", p_known=0.1, mastered=False, version=3, updated_at=T0)]
    with pytest.raises(StaleVersion):
        await case.store.save_mastery(case.tenant, "u1", both, [])
    assert [x.p_known for x in await case.store.get_mastery(case.tenant, "u1")] == [0.3]
    await case.store.save_mastery(case.tenant, "u1", both[:1], [])
    assert (await case.store.get_mastery(case.tenant, "u1", ["loops"]))[0].p_known == 0.5
    assert await case.store.mastery_sequences(case.tenant, "loops") == [[1]]
    assert await case.store.get_mastery(case.tenant, "u2") == []


async def test_mastery_sequences_are_each_learners_answers_in_time_order(case: Case) -> None:
    """A BKT fit counts each learner's first answers: the store keeps the order it is given
    (the service's, by grading time)."""
    answers = {"u1": [1, 0, 0, 1, 1], "u2": [0, 0, 1]}
    for learner, seq in answers.items():
        await case.store.save_mastery(case.tenant, learner, [Mastery(
            concept="loops", p_known=0.5, mastered=False, version=1, updated_at=T0,
            observations=[(f"2025-03-01T09:0{i}", a) for i, a in enumerate(seq)])], [])
    found = await case.store.mastery_sequences(case.tenant, "loops")
    assert sorted(found, key=len) == [answers["u2"], answers["u1"]]


async def test_progress_writes_are_version_guarded(case: Case) -> None:
    """Two updates read at one version: the second is refused, and nothing of it (its events
    included) is written."""
    first = Progress(lesson_id="l1", status="started", seconds=30, started_at=T0)
    await case.store.save_progress(case.tenant, "u1", first, [])
    with pytest.raises(StaleVersion):
        await case.store.save_progress(case.tenant, "u1", first, [])
    more = first.updated(ProgressUpdate(status="started", seconds=10), T0)
    done = first.updated(ProgressUpdate(status="completed"), T0)
    assert more.version == done.version == 2
    await case.store.save_progress(case.tenant, "u1", more, [])
    before = len(await case.store.outbox.pending(100))
    with pytest.raises(StaleVersion):
        await case.store.save_progress(case.tenant, "u1", done, [type_of(LessonCompleted).envelope(
            LessonCompleted(learner_id="u1", lesson_id="l1", course_id="py", seconds_spent=30,
                            completed_at=T0), tenant=case.tenant, subject="u1")])
    assert len(await case.store.outbox.pending(100)) == before
    assert await case.store.get_progress(case.tenant, "u1") == [more]
    await case.store.save_progress(case.tenant, "u1", more.updated(
        ProgressUpdate(status="completed"), T0), [])
    [stored] = await case.store.get_progress(case.tenant, "u1")
    assert (stored.status, stored.seconds, stored.version) == ("completed", 40, 3)
    await case.store.save_progress(case.tenant, "u1", Progress(
        lesson_id="l2", status="started", started_at=T0, version=1), [])
    assert [p.lesson_id for p in await case.store.get_progress(case.tenant, "u1")] == ["l1", "l2"]
    assert await case.store.get_progress(case.tenant, "u1", ["l2", "ghost"]) == [
        Progress(lesson_id="l2", status="started", started_at=T0, version=1)]
    assert await case.store.get_progress(case.tenant, "u1", []) == []


async def test_placement_answers_are_stored_one_at_a_time(case: Case) -> None:
    """Two answers to one question at once: the second is refused, not written over the
    first."""
    started = Placement(id="p1", learner="u1", goal="concept:loops", order=["a", "b"],
                        prerequisites={"a": [], "b": ["a"]}, question="a", max_questions=2,
                        created_at=T0)
    await case.store.save_placement(case.tenant, started)
    with pytest.raises(StaleVersion):
        await case.store.save_placement(case.tenant, started)
    knows = started.model_copy(update={"answers": [PlacementAnswer(concept="a", correct=True)],
                                       "known": ["a"], "question": "b"})
    not_known = started.model_copy(update={
        "answers": [PlacementAnswer(concept="a", correct=False)], "unknown": ["a", "b"],
        "question": None, "done": True})
    await case.store.save_placement(case.tenant, knows)
    with pytest.raises(StaleVersion):
        await case.store.save_placement(case.tenant, not_known)
    assert await case.store.get_placement(case.tenant, "u1", "p1") == knows
    later = started.model_copy(update={"id": "p0"})
    await case.store.save_placement(case.tenant, later)
    await case.store.save_placement(case.tenant, started.model_copy(update={
        "id": "p2", "learner": "u2"}))
    assert await case.store.placements(case.tenant, "u1") == [later, knows]
    assert await case.store.placements(case.other, "u1") == []


async def test_cards_schedules_and_review_logs(case: Case) -> None:
    await concepts(case, "loops")
    card = Card.create(case.tenant, "loops", NewCard(front="for?", back="repeats"), at=T0)
    assert await case.store.add_card(card) is True
    with pytest.raises(Missing):
        await case.store.add_card(Card.create(case.tenant, "ghost", NewCard(front="x", back="y")))
    with pytest.raises(Duplicate):
        await case.store.add_card(card.model_copy(update={"front": "again"}))
    assert await case.store.cards_of(case.tenant, ["loops"]) == [card]
    assert await case.store.get_card(case.other, card.id) is None

    state = review.new_state(card.id, "loops", T0)
    await case.store.add_card_states(case.tenant, "u1", [state])
    assert await case.store.due(case.tenant, "u1", T0 - timedelta(seconds=1), 10) == []
    assert await case.store.due(case.tenant, "u1", T0, 10) == [state]
    # The same instants in another zone: as text, 13:59+05:00 would sort after 09:00+00:00.
    east = timezone(timedelta(hours=5))
    assert await case.store.due(case.tenant, "u1", (T0 - timedelta(minutes=1)).astimezone(east),
                                10) == []
    assert await case.store.due(case.tenant, "u1", T0.astimezone(east), 10) == [state]
    assert await case.store.due(case.tenant, "u1", T0, 10, after=(state.due, "")) == [state]
    assert await case.store.due(case.tenant, "u1", T0, 10, after=(state.due, card.id)) == []
    assert await case.store.due(case.tenant, "u1", T0, 10,
                                after=(state.due - timedelta(microseconds=1), "~")) == [state]
    after, log, _ = review.review(state, 3, T0, None)
    await case.store.save_review(case.tenant, "u1", after, log, [], None)
    with pytest.raises(StaleVersion):
        await case.store.save_review(case.tenant, "u1", after, log, [], None)
    await case.store.add_card_states(case.tenant, "u1", [state])  # already there: kept
    assert await case.store.card_states(case.tenant, "u1") == [after]
    assert await case.store.review_logs(case.tenant, "u1") == [log]
    await case.store.save_scheduler_params(case.tenant, "u1", [0.5] * 21)
    assert (await case.store.learner_settings(case.tenant, "u1")).parameters == [0.5] * 21
    assert (await case.store.learner_settings(case.tenant, "u2")).parameters is None


async def test_due_cards_come_most_overdue_first_and_page_in_that_order(case: Case) -> None:
    await concepts(case, "loops")
    await concepts(case, "loops", tenant=case.other)
    cards = [Card.create(case.tenant, "loops", NewCard(front=f"Q{n}?", back="A"), at=T0)
             for n in range(4)]
    for card in cards:
        await case.store.add_card(card)
    # Due in the opposite order to their ids, so neither order passes for the other.
    by_id = sorted(cards, key=lambda c: c.id)
    states = [review.new_state(c.id, "loops", T0 - timedelta(days=n))
              for n, c in enumerate(by_id)]
    await case.store.add_card_states(case.tenant, "u1", states)
    overdue_first = [s.card_id for s in reversed(states)]
    assert [s.card_id for s in await case.store.due(case.tenant, "u1", T0, 10)] == overdue_first
    first = await case.store.due(case.tenant, "u1", T0, 2)
    rest = await case.store.due(case.tenant, "u1", T0, 10,
                                after=(first[-1].due, first[-1].card_id))
    assert [s.card_id for s in first + rest] == overdue_first
    # The same learner id in another tenant has a deck of its own.
    theirs = Card.create(case.other, "loops", NewCard(front="Q?", back="A"), at=T0)
    await case.store.add_card(theirs)
    await case.store.add_card_states(case.other, "u1", [
        review.new_state(theirs.id, "loops", T0 - timedelta(days=30))])
    assert [s.card_id for s in await case.store.due(case.tenant, "u1", T0, 10)] == overdue_first
    assert [s.card_id for s in await case.store.due(case.other, "u1", T0, 10)] == [theirs.id]


async def test_a_learner_takes_a_card_out_of_their_deck_and_back(case: Case) -> None:
    await concepts(case, "loops")
    card = Card.create(case.tenant, "loops", NewCard(front="for?", back="repeats"), at=T0)
    assert await case.store.add_card(card) is True
    state = review.new_state(card.id, "loops", T0)
    assert not await case.store.keep_in_deck(case.tenant, "u1", card.id, False)  # never had it
    for learner in ("u1", "u2"):
        await case.store.add_card_states(case.tenant, learner, [state])
    after, log, _ = review.review(state, 3, T0, None)
    await case.store.save_review(case.tenant, "u1", after, log, [], None)

    assert await case.store.keep_in_deck(case.tenant, "u1", card.id, False)
    assert not await case.store.keep_in_deck(case.tenant, "u1", card.id, False)  # already out
    assert not await case.store.keep_in_deck(case.tenant, "u2", card.id, True)  # already in
    far = T0 + timedelta(days=3650)
    assert await case.store.card_states(case.tenant, "u1") == []
    assert await case.store.taken_out_cards(case.tenant, "u1") == [after]
    assert await case.store.taken_out_cards(case.tenant, "u2") == []
    assert await case.store.due(case.tenant, "u1", far, 10) == []
    with pytest.raises(StaleVersion):
        await case.store.save_review(case.tenant, "u1", review.review(after, 3, far, None)[0],
                                     log, [], None)
    await case.store.add_card_states(case.tenant, "u1", [state])  # not brought back
    assert await case.store.card_states(case.tenant, "u1") == []
    assert await case.store.due(case.tenant, "u2", T0, 10) == [state]  # others keep it

    assert await case.store.keep_in_deck(case.tenant, "u1", card.id, True)
    assert await case.store.card_states(case.tenant, "u1") == [after]  # with its schedule
    assert await case.store.taken_out_cards(case.tenant, "u1") == []
    assert await case.store.review_logs(case.tenant, "u1") == [log]



async def test_cards_move_to_another_due_unless_reviewed_since(case: Case) -> None:
    """A learner's schedules take a new due at the version read (a learner moved to another
    time zone), those taken out of the deck too; one reviewed since keeps its review's."""
    await concepts(case, "loops")
    await concepts(case, "loops", tenant=case.other)
    cards = [Card.create(case.tenant, "loops", NewCard(front=f"Q{n}?", back="A"), at=T0)
             for n in range(4)]
    for card in cards:
        await case.store.add_card(card)
    states = [review.new_state(c.id, "loops", T0) for c in cards]
    for learner in ("u1", "u2"):
        await case.store.add_card_states(case.tenant, learner, states)
    theirs = Card.create(case.other, "loops", NewCard(front="Q?", back="A"), at=T0)
    await case.store.add_card(theirs)
    await case.store.add_card_states(case.other, "u1", [review.new_state(theirs.id, "loops", T0)])
    reviewed, log, _ = review.review(states[0], 3, T0, None)
    await case.store.save_review(case.tenant, "u1", reviewed, log, [], None)
    assert await case.store.keep_in_deck(case.tenant, "u1", cards[2].id, False)
    for learner in ("u1", "u2"):
        assert await case.store.save_time_zone(case.tenant, learner, TOKYO, T0) == "stored"
    await case.store.save_time_zone(case.other, "u1", TOKYO, T0)

    def later(state: CardState, days: int) -> CardState:
        return state.model_copy(update={"due": T0 + timedelta(days=days)})

    moved = [later(reviewed, 5), later(states[1], 3), later(states[2], 4)]
    stale = later(states[3], 9).model_copy(update={"version": 1})  # not its version
    gone = later(review.new_state("nope", "loops", T0), 2)
    assert await case.store.reschedule_cards(case.tenant, "u1", [*moved, stale, gone],
                                             TOKYO, T0) == 3
    assert await case.store.reschedule_cards(case.tenant, "u1", [], TOKYO, T0) == 0
    assert {s.card_id: s for s in await case.store.card_states(case.tenant, "u1")} == {
        s.card_id: s for s in (moved[0], moved[1], states[3])}
    assert await case.store.taken_out_cards(case.tenant, "u1") == [moved[2]]
    assert [s.card_id for s in await case.store.due(case.tenant, "u1", T0 + timedelta(days=5),
                                                    10)] == [cards[3].id, cards[1].id,
                                                             cards[0].id]
    assert await case.store.card_states(case.tenant, "u2") == sorted(
        states, key=lambda s: (s.due, s.card_id))
    assert [s.due for s in await case.store.card_states(case.other, "u1")] == [T0]
    # the version stays: the card's next review is made against it
    again, log, _ = review.review(moved[0], 3, T0 + timedelta(days=5), None)
    await case.store.save_review(case.tenant, "u1", again, log, [], TOKYO)
    # a review written since: a move read before it is left out
    assert await case.store.reschedule_cards(case.tenant, "u1", [later(moved[0], 1)],
                                             TOKYO, T0) == 0
    assert (await case.store.card_states(case.tenant, "u1", [cards[0].id])) == [again]


async def test_cards_move_only_while_the_zone_they_move_to_is_kept(case: Case) -> None:
    """A move to a zone read the cards, and a move to a newer zone wrote its dues, before the
    first wrote: the older zone's dues stayed over the newer's until each card's next review."""
    await concepts(case, "loops")
    card = Card.create(case.tenant, "loops", NewCard(front="Q?", back="A"), at=T0)
    await case.store.add_card(card)
    state = review.new_state(card.id, "loops", T0)
    for learner in ("u1", "u2"):
        await case.store.add_card_states(case.tenant, learner, [state])
    assert await case.store.save_time_zone(case.tenant, "u1", TOKYO, T0) == "stored"
    to_tokyo = state.model_copy(update={"due": T0 + timedelta(days=2)})
    assert await case.store.save_time_zone(case.tenant, "u1", PARIS,
                                           T0 + timedelta(hours=1)) == "stored"
    to_paris = state.model_copy(update={"due": T0 + timedelta(days=3)})
    assert await case.store.reschedule_cards(case.tenant, "u1", [to_paris], PARIS,
                                             T0 + timedelta(hours=1)) == 1
    assert await case.store.reschedule_cards(case.tenant, "u1", [to_tokyo], TOKYO, T0) == 0
    # the zone kept, as of another time; or another zone as of that time
    assert await case.store.reschedule_cards(case.tenant, "u1", [to_tokyo], PARIS, T0) == 0
    assert await case.store.reschedule_cards(case.tenant, "u1", [to_tokyo], TOKYO,
                                             T0 + timedelta(hours=1)) == 0
    assert await case.store.card_states(case.tenant, "u1") == [to_paris]
    # a learner with no zone stored has none to move to
    assert await case.store.reschedule_cards(case.tenant, "u2", [to_tokyo], TOKYO, T0) == 0
    assert await case.store.card_states(case.tenant, "u2") == [state]


async def test_a_review_is_stored_only_in_the_zone_it_was_scheduled_in(case: Case) -> None:
    """A review that read the learner's zone before a new one was stored (and their cards
    moved to it) stored a due of the old zone's day over the move."""
    await concepts(case, "loops")
    card = Card.create(case.tenant, "loops", NewCard(front="Q?", back="A"), at=T0)
    await case.store.add_card(card)
    state = review.new_state(card.id, "loops", T0)
    for learner in ("u1", "u2"):
        await case.store.add_card_states(case.tenant, learner, [state])
    after, log, _ = review.review(state, 3, T0, None)
    # none stored: the review was scheduled in UTC
    with pytest.raises(StaleVersion):
        await case.store.save_review(case.tenant, "u2", after, log, [], TOKYO)
    await case.store.save_review(case.tenant, "u2", after, log, [], None)
    assert await case.store.card_states(case.tenant, "u2") == [after]
    assert await case.store.save_time_zone(case.tenant, "u1", TOKYO, T0) == "stored"
    assert await case.store.save_time_zone(case.tenant, "u1", PARIS,
                                           T0 + timedelta(hours=1)) == "stored"
    for read in (None, TOKYO):
        with pytest.raises(StaleVersion):
            await case.store.save_review(case.tenant, "u1", after, log, [], read)
    assert await case.store.card_states(case.tenant, "u1") == [state]
    assert await case.store.review_logs(case.tenant, "u1") == []
    await case.store.save_review(case.tenant, "u1", after, log, [], PARIS)
    assert await case.store.card_states(case.tenant, "u1") == [after]


async def test_a_card_edit_made_against_an_older_version_is_refused(case: Case) -> None:
    await concepts(case, "loops")
    card = Card.create(case.tenant, "loops", NewCard(front="f", back="b"), at=T0)
    await case.store.add_card(card)
    assert card.version == 1
    rivals = await asyncio.gather(*(
        case.store.edit_card(case.tenant, card.id, CardEdit(back=text), T0, expected=1)
        for text in ("mine", "yours")), return_exceptions=True)
    [won] = [r for r in rivals if isinstance(r, Card)]
    assert [type(r) for r in rivals if not isinstance(r, Card)] == [StaleVersion]
    assert won.version == 2
    assert await case.store.get_card(case.tenant, card.id) == won
    with pytest.raises(StaleVersion):
        await case.store.edit_card(case.tenant, card.id, CardEdit(front="x"), T0, expected=1)
    again = await case.store.edit_card(case.tenant, card.id, CardEdit(front="x"), T0, expected=2)
    assert again is not None
    assert (again.front, again.back, again.version) == ("x", won.back, 3)
    assert await case.store.edit_card(case.tenant, "ghost", CardEdit(back="x"), T0,
                                      expected=1) is None

async def test_a_retired_card_leaves_every_deck_and_is_never_added_again(case: Case) -> None:
    await concepts(case, "loops")
    card, kept = (Card.create(case.tenant, "loops", NewCard(front=f, back="b"), at=T0)
                  for f in ("wrong", "right"))
    for c in (card, kept):
        await case.store.add_card(c)
        for learner in ("u1", "u2"):
            await case.store.add_card_states(case.tenant, learner,
                                             [review.new_state(c.id, "loops", T0)])
    later = T0 + timedelta(minutes=1)
    fixed = await case.store.edit_card(case.tenant, kept.id, CardEdit(back="better"), T0)
    assert fixed == kept.model_copy(update={"back": "better", "updated_at": T0, "version": 2})
    fixed = await case.store.edit_card(case.tenant, kept.id, CardEdit(front="good"), later)
    assert fixed == kept.model_copy(update={"front": "good", "back": "better", "updated_at": later,
                                            "version": 3})
    assert await case.store.get_card(case.tenant, kept.id) == fixed
    assert await case.store.edit_card(case.tenant, "ghost", CardEdit(back="x"), later) is None
    assert await case.store.edit_card(case.other, kept.id, CardEdit(back="x"), later) is None

    assert await case.store.retire_card(case.tenant, card.id)
    assert not await case.store.retire_card(case.tenant, card.id)
    assert await case.store.get_card(case.tenant, card.id) is None
    assert await case.store.cards_of(case.tenant, ["loops"]) == [fixed]
    assert await case.store.get_cards(case.tenant, [card.id, kept.id, kept.id, "ghost"]) == [fixed]
    assert await case.store.get_cards(case.other, [kept.id]) == []
    assert await case.store.get_cards(case.tenant, []) == []
    for learner in ("u1", "u2"):
        assert [s.card_id for s in await case.store.card_states(case.tenant, learner)] == [
            kept.id]
    assert await case.store.edit_card(case.tenant, card.id, CardEdit(back="again"), later) is None
    for learner in ("u1", "u3"):  # a retired card, or one never made, joins no deck
        await case.store.add_card_states(case.tenant, learner, [
            review.new_state(i, "loops", T0) for i in (card.id, "ghost", kept.id)])
        assert [s.card_id for s in await case.store.card_states(case.tenant, learner)] == [
            kept.id]
    with pytest.raises(Duplicate):
        await case.store.add_card(card)
    assert await case.store.get_card(case.tenant, card.id) is None


async def test_the_learners_who_studied_a_concept(case: Case) -> None:
    """Those who completed a lesson teaching it now: not started ones, not a deleted lesson's,
    not another tenant's."""
    await concepts(case, "loops", "sets", "maps")
    await concepts(case, "loops", tenant=case.other)
    for lid, taught in (("L1", ["loops", "sets"]), ("L2", ["sets"]), ("L3", ["maps"])):
        await case.store.upsert_lesson(lesson(case, lid, taught))
    await case.store.upsert_lesson(lesson(case, "L1", ["loops"]).model_copy(
        update={"tenant": case.other}))
    for tenant, learner, lid, status in ((case.tenant, "ann", "L1", "completed"),
                                         (case.tenant, "bob", "L2", "completed"),
                                         (case.tenant, "bob", "L1", "started"),
                                         (case.tenant, "cy", "L1", "started"),
                                         (case.tenant, "dee", "L3", "completed"),
                                         (case.other, "eve", "L1", "completed")):
        await case.store.save_progress(tenant, learner, Progress(
            lesson_id=lid, status=status, started_at=T0), [])
    studied = case.store.learners_who_studied
    assert await studied(case.tenant, ["sets", "loops", "ghost"]) == {
        "loops": ["ann"], "sets": ["ann", "bob"]}
    assert await studied(case.other, ["loops", "sets"]) == {"loops": ["eve"]}
    assert await studied(case.tenant, []) == {}
    await case.store.upsert_lesson(lesson(case, "L2", ["maps"], version=2))
    await case.store.delete_lesson(case.tenant, "L3", 2)
    assert await studied(case.tenant, ["loops", "sets", "maps"]) == {
        "loops": ["ann"], "sets": ["ann"], "maps": ["bob"]}


async def test_cards_join_many_decks_at_once_as_they_join_one(case: Case) -> None:
    """A schedule kept, a card dropped, a retired or unknown card, an erased learner: as
    `add_card_states` leaves them, and another tenant's decks untouched."""
    await concepts(case, "loops")
    card, other, retired = (Card.create(case.tenant, "loops", NewCard(front=f, back="b"), at=T0)
                            for f in ("one", "two", "three"))
    for c in (card, other, retired):
        await case.store.add_card(c)
    first = review.new_state(card.id, "loops", T0)
    await case.store.add_card_states(case.tenant, "kept", [first])
    reviewed, log, _ = review.review(first, 3, T0, None)
    await case.store.save_review(case.tenant, "kept", reviewed, log, [], None)
    await case.store.add_card_states(case.tenant, "dropped", [first])
    assert await case.store.keep_in_deck(case.tenant, "dropped", card.id, False)
    await case.store.erase_learner(case.tenant, "gone")
    await case.store.retire_card(case.tenant, retired.id)

    later = T0 + timedelta(days=1)
    states = [review.new_state(c.id, "loops", later) for c in (card, other, retired)]
    states.append(review.new_state("ghost", "loops", later))
    learners = ["kept", "dropped", "gone", "new", "new"]
    for _ in range(2):  # twice: nothing more
        await case.store.add_to_decks(case.tenant, learners, states)
    by_card = {s.card_id: s for s in states}
    assert await case.store.card_states(case.tenant, "kept") == sorted(
        [reviewed, by_card[other.id]], key=lambda s: (s.due, s.card_id))
    assert await case.store.card_states(case.tenant, "dropped") == [by_card[other.id]]
    assert await case.store.card_states(case.tenant, "new") == sorted(
        [by_card[card.id], by_card[other.id]], key=lambda s: s.card_id)
    assert await case.store.card_states(case.tenant, "gone") == []
    assert await case.store.card_states(case.other, "new") == []
    await case.store.add_to_decks(case.tenant, [], states)
    await case.store.add_to_decks(case.tenant, ["late"], [])
    assert await case.store.card_states(case.tenant, "late") == []
    assert await case.store.keep_in_deck(case.tenant, "dropped", card.id, True)
    assert await case.store.card_states(case.tenant, "dropped") == sorted(
        [first, by_card[other.id]], key=lambda s: (s.due, s.card_id))


async def test_a_held_card_reaches_no_learner_until_its_lesson_is_released(case: Case) -> None:
    """A card generated from an unpublished lesson version was stored like any other, so it
    was listed to learners and dealt into their decks."""
    await concepts(case, "loops")
    live = Card.create(case.tenant, "loops", NewCard(front="live", back="b"), at=T0)
    held, later, retired = (
        Card.create(case.tenant, "loops", NewCard(front=f, back="b", source="ai"),
                    at=T0 + timedelta(seconds=n), held_until=HeldUntil(lesson_id=lid,
                                                                      lesson_version=v))
        for n, f, lid, v in ((1, "draft", "L1", 2), (2, "later draft", "L1", 4),
                             (3, "retired", "L1", 2)))
    elsewhere = Card.create(case.tenant, "loops", NewCard(front="other", back="b"),
                            at=T0 + timedelta(seconds=4),
                            held_until=HeldUntil(lesson_id="L2", lesson_version=1))
    for c in (live, held, later, retired, elsewhere):
        await case.store.add_card(c)
    await case.store.retire_card(case.tenant, retired.id)
    waiting = [held, later, elsewhere]
    ids = [c.id for c in (live, *waiting)]

    assert await case.store.cards_of(case.tenant, ["loops"]) == [live]
    assert await case.store.get_cards(case.tenant, ids) == [live]
    assert await case.store.get_card(case.tenant, held.id) is None
    assert await case.store.get_card(case.tenant, held.id, held=True) == held
    assert (await case.store.page_cards(case.tenant, "loops")).items == [live]
    assert (await case.store.page_cards(case.tenant, "loops", held=True)).items == [
        live, *waiting]
    states = [review.new_state(i, "loops", T0) for i in ids]
    await case.store.add_card_states(case.tenant, "u1", states)
    await case.store.add_to_decks(case.tenant, ["u2", "u3"], states)
    for learner in ("u1", "u2", "u3"):
        assert [s.card_id for s in await case.store.card_states(case.tenant, learner)] == [
            live.id]
    edited = await case.store.edit_card(case.tenant, held.id, CardEdit(back="fixed"), T0)
    assert edited is not None
    assert edited.held_until == held.held_until

    assert await case.store.release_cards(case.tenant, "L1", 1) == []
    assert await case.store.release_cards(case.other, "L1", 2) == []
    assert await case.store.release_cards(case.tenant, "L1", 3) == []  # not the text they drill
    assert await case.store.release_cards(case.tenant, "L1", 2) == [held.id]
    assert await case.store.release_cards(case.tenant, "L1", 2) == []
    released = edited.released()
    assert released.held_until is None
    assert await case.store.get_card(case.tenant, held.id) == released
    assert await case.store.cards_of(case.tenant, ["loops"]) == [live, released]
    assert (await case.store.page_cards(case.tenant, "loops")).items == [live, released]
    await case.store.add_to_decks(case.tenant, ["u2"], states)
    assert sorted(s.card_id for s in await case.store.card_states(case.tenant, "u2")) == sorted(
        [live.id, held.id])
    assert await case.store.get_card(case.tenant, retired.id, held=True) is None
    assert await case.store.release_cards(case.tenant, "L1", 9) == []
    assert await case.store.release_cards(case.tenant, "L1", 4) == [later.id]
    assert await case.store.get_card(case.tenant, later.id) == later.released()
    assert await case.store.get_card(case.tenant, elsewhere.id) is None


async def test_a_held_card_made_again_live_is_released_in_that_write(case: Case) -> None:
    """Flashcards made from a draft and made again from the version published (the draft was
    edited once more before publishing: same text, another version) hit the held card's id
    and were skipped as duplicates: the card stayed held for good."""
    await concepts(case, "loops")
    draft = HeldUntil(lesson_id="L1", lesson_version=11)
    held, retired = (Card.create(case.tenant, "loops", NewCard(front=f, back="b", source="ai"),
                                 at=T0 + timedelta(seconds=n), card_id=f"card-{f}",
                                 held_until=draft)
                     for n, f in ((1, "held"), (2, "retired")))
    for card in (held, retired):
        await case.store.add_card(card)
    await case.store.retire_card(case.tenant, retired.id)
    with pytest.raises(Duplicate):  # made from another draft: it stays held
        await case.store.add_card(held.model_copy(update={
            "held_until": HeldUntil(lesson_id="L1", lesson_version=13)}))
    assert await case.store.get_card(case.tenant, held.id) is None

    again = held.model_copy(update={"held_until": None, "created_at": T0 + timedelta(hours=1)})
    assert await case.store.add_card(again) is False
    assert await case.store.get_card(case.tenant, held.id) == held.released()
    assert await case.store.cards_of(case.tenant, ["loops"]) == [held.released()]
    assert await case.store.release_cards(case.tenant, "L1", 11) == []
    await case.store.add_to_decks(case.tenant, ["u1"], [
        review.new_state(c.id, "loops", T0) for c in (held, retired)])
    assert [s.card_id for s in await case.store.card_states(case.tenant, "u1")] == [held.id]
    with pytest.raises(Duplicate):  # live now
        await case.store.add_card(again)
    with pytest.raises(Duplicate):  # a retired card never comes back
        await case.store.add_card(retired.released())
    assert await case.store.get_card(case.tenant, retired.id, held=True) is None


async def test_a_deleted_lessons_cards_are_retired_a_batch_at_a_time(case: Case) -> None:
    """AI cards kept no lesson once live, so those of a deleted lesson stayed in every deck."""
    await concepts(case, "loops")
    await concepts(case, "loops", tenant=case.other)

    def ai(front: str, lesson_id: str | None, *, tenant: str | None = None,
           held: int | None = None) -> Card:
        made = None if lesson_id is None else LessonVersion(lesson_id=lesson_id, lesson_version=1)
        return Card.create(tenant or case.tenant, "loops",
                           NewCard(front=front, back="b", source="ai"), at=T0, card_id=front,
                           made_from=made, held_until=None if held is None else HeldUntil(
                               lesson_id="L1", lesson_version=held))

    educators = Card.create(case.tenant, "loops", NewCard(front="mine", back="b"), at=T0)
    made = [ai(f"l1-{n}", "L1") for n in range(3)]
    held = [ai("held", "L1", held=2), ai("held-before", None, held=3)]  # one kept no lesson
    kept = [educators, ai("l2", "L2"), ai("before", None)]
    elsewhere = ai("l1-0", "L1", tenant=case.other)
    for card in (*made, *held, *kept, elsewhere):
        await case.store.add_card(card)
    assert await case.store.get_card(case.tenant, "l1-0") == made[0]
    assert made[0].lesson_id == "L1"
    assert made[0].lesson_version == 1
    assert educators.lesson_id is None
    live = [*made, *kept]
    await case.store.add_to_decks(case.tenant, ["u1", "u2"], [
        review.new_state(c.id, "loops", T0) for c in live])
    assert await case.store.keep_in_deck(case.tenant, "u2", "l1-1", False)
    state = review.new_state("l1-0", "loops", T0)
    reviewed, log, _ = review.review(state, 3, T0, None)
    await case.store.save_review(case.tenant, "u1", reviewed, log, [], None)

    retired = [await case.store.retire_lesson_cards(case.tenant, "L1", 2) for _ in range(4)]
    assert retired == [2, 2, 1, 0]
    for card in (*made, *held):
        assert await case.store.get_card(case.tenant, card.id, held=True) is None
    assert await case.store.cards_of(case.tenant, ["loops"]) == sorted(kept, key=lambda c: c.id)
    for learner in ("u1", "u2"):
        assert sorted(s.card_id for s in await case.store.card_states(case.tenant, learner)) == \
            sorted(c.id for c in kept)
    assert await case.store.taken_out_cards(case.tenant, "u2") == []
    assert await case.store.review_logs(case.tenant, "u1") == [log]  # their history stays
    assert await case.store.get_card(case.other, "l1-0") == elsewhere
    assert await case.store.release_cards(case.tenant, "L1", 2) == []
    with pytest.raises(Duplicate):  # made again: it stays retired
        await case.store.add_card(made[0])
    assert await case.store.retire_lesson_cards(case.tenant, "L2", 10) == 1
    assert await case.store.retire_lesson_cards(case.tenant, "L1", 10) == 0


async def test_erasing_a_learner_leaves_everyone_else(case: Case) -> None:
    await concepts(case, "loops")
    card = Card.create(case.tenant, "loops", NewCard(front="f", back="b"))
    await case.store.add_card(card)
    for learner in ("gone", "stays"):
        await case.store.enrol(case.tenant, Enrolment(learner=learner, goal_concept="loops",
                                                      enrolled_at=T0), [])
        await case.store.save_progress(case.tenant, learner, Progress(
            lesson_id="l1", status="completed", started_at=T0, completed_at=T0), [])
        await case.store.save_mastery(case.tenant, learner, [Mastery(
            concept="loops", p_known=0.5, mastered=False, version=1, updated_at=T0)], [])
        await case.store.add_card_states(case.tenant, learner, [review.new_state(card.id, "loops", T0)])
        await case.store.save_path_snapshot(case.tenant, learner, "concept:loops", ["l1"], [])
        await case.store.save_scheduler_params(case.tenant, learner, [0.3] * 21)
        await case.store.save_time_zone(case.tenant, learner, "Europe/Paris", T0)
        await case.store.save_placement(case.tenant, Placement(
            id="p1", learner=learner, goal="concept:loops", order=["loops"],
            prerequisites={"loops": []}, max_questions=1, created_at=T0))
    assert not await case.store.is_erased(case.tenant, "gone")
    await case.store.erase_learner(case.tenant, "gone")
    await case.store.erase_learner(case.tenant, "gone")  # again: nothing to do
    assert await case.store.is_erased(case.tenant, "gone")
    assert not await case.store.is_erased(case.tenant, "stays")
    for learner, count in (("gone", 0), ("stays", 1)):
        assert len(await case.store.enrolments(case.tenant, learner)) == count
        assert len(await case.store.get_progress(case.tenant, learner)) == count
        assert len(await case.store.get_mastery(case.tenant, learner)) == count
        assert len(await case.store.card_states(case.tenant, learner)) == count
        assert (await case.store.path_snapshot(case.tenant, learner, "concept:loops")
                is not None) == bool(count)
        assert (await case.store.get_placement(case.tenant, learner, "p1") is not None) == bool(count)
        settings = await case.store.learner_settings(case.tenant, learner)
        assert (settings.parameters is not None) == bool(count)
        assert (settings.time_zone is not None) == bool(count)
    assert await case.store.cards_of(case.tenant, ["loops"]) == [card]
    # news of the erased learner's zone, late or redriven, does not bring it back
    assert await case.store.save_time_zone(case.tenant, "gone", "Asia/Tokyo",
                                           T0 + timedelta(days=1)) == "refused"
    assert (await case.store.learner_settings(case.tenant, "gone")).time_zone is None


async def test_a_zone_stored_while_a_review_or_a_move_is_written_is_seen(case: Case) -> None:
    """Neo4j reads what is committed: a review, or a move, that read the learner's zone while
    a new one was being stored, and wrote after it was, wrote the old zone's due."""
    if not isinstance(case.store, Neo4jLearningStore):
        pytest.skip("SQLite writes one transaction at a time")
    await concepts(case, "loops")
    card = Card.create(case.tenant, "loops", NewCard(front="Q?", back="A"), at=T0)
    await case.store.add_card(card)
    state = review.new_state(card.id, "loops", T0)
    await case.store.add_card_states(case.tenant, "u1", [state])
    assert await case.store.save_time_zone(case.tenant, "u1", TOKYO, T0) == "stored"
    after, log, _ = review.review(state, 3, T0, None)
    async with case.store.driver.session() as session:
        storing = await session.begin_transaction()
        await (await storing.run(
            "MATCH (l:Learner {tenant: $tenant, id: 'u1'}) SET l.zone = $zone, l.zone_at = $at",
            tenant=case.tenant, zone=PARIS, at=(T0 + timedelta(hours=1)).isoformat())).consume()
        saving = asyncio.create_task(case.store.save_review(case.tenant, "u1", after, log, [],
                                                            TOKYO))
        moving = asyncio.create_task(case.store.reschedule_cards(
            case.tenant, "u1", [state.model_copy(update={"due": T0 + timedelta(days=2)})],
            TOKYO, T0))
        await asyncio.sleep(0.5)
        assert not saving.done()
        assert not moving.done()
        await storing.commit()
    with pytest.raises(StaleVersion):
        await saving
    assert await moving == 0
    assert await case.store.card_states(case.tenant, "u1") == [state]


async def test_a_learners_time_zone_is_the_latest_stored(case: Case) -> None:
    assert (await case.store.learner_settings(case.tenant, "u1")).time_zone is None
    assert await case.store.save_time_zone(case.tenant, "u1", "America/St_Johns",
                                           T0) == "stored"
    assert (await case.store.learner_settings(case.tenant, "u1")).time_zone == "America/St_Johns"
    assert (await case.store.learner_settings(case.other, "u1")).time_zone is None
    assert (await case.store.learner_settings(case.tenant, "u2")).time_zone is None
    # an older change, or the same one again, changes nothing; the same one is told apart
    for zone, at in (("Europe/Paris", T0 - timedelta(seconds=1)),
                     ("America/St_Johns", T0 - timedelta(seconds=1)), ("Europe/Paris", T0)):
        assert await case.store.save_time_zone(case.tenant, "u1", zone, at) == "refused"
    assert await case.store.save_time_zone(case.tenant, "u1", "America/St_Johns",
                                           T0) == "again"
    assert (await case.store.learner_settings(case.tenant, "u1")).time_zone == "America/St_Johns"
    assert await case.store.save_time_zone(case.tenant, "u1", "Pacific/Kiritimati",
                                           T0 + timedelta(microseconds=1)) == "stored"
    assert (await case.store.learner_settings(case.tenant, "u1")).time_zone == "Pacific/Kiritimati"
    # the learner's FSRS parameters and zone live side by side
    await case.store.save_scheduler_params(case.tenant, "u1", [0.5] * 21)
    assert (await case.store.learner_settings(case.tenant, "u1")).time_zone == "Pacific/Kiritimati"
    assert await case.store.save_time_zone(case.tenant, "u1", "UTC",
                                           T0 + timedelta(days=1)) == "stored"
    assert await case.store.learner_settings(case.tenant, "u1") == LearnerSettings(
        parameters=[0.5] * 21, time_zone="UTC")
    # parameters without a zone, and nothing at all
    await case.store.save_scheduler_params(case.tenant, "u2", [0.25] * 21)
    assert await case.store.learner_settings(case.tenant, "u2") == LearnerSettings(
        parameters=[0.25] * 21)
    assert await case.store.learner_settings(case.tenant, "u3") == LearnerSettings()


# Paths: the store's one query, the same on both adapters.


async def plan(case: Case, *goals: str, learner: str = "u1", course: str | None = None) -> PathPlan:
    return await case.store.learning_path(case.tenant, learner, list(goals), course=course)


def order(p: PathPlan) -> list[str]:
    return [x.lesson.id for x in p.lessons]


async def graph(case: Case, edges: list[tuple[str, str, str]], *alone: str) -> None:
    """Concepts and edges (concept, requires, kind), imported as one graph."""
    ids = sorted({i for c, r, _ in edges for i in (c, r)} | set(alone))
    await case.store.import_graph(
        case.tenant, [Concept.create(case.tenant, NewConcept(id=i, name=i)) for i in ids],
        [Edge(concept=c, requires=r, kind=k) for c, r, k in edges])


async def teach(case: Case, lid: str, *concepts: str, minutes: int = 10, position: int = 0,
                course: str = "py") -> None:
    await case.store.upsert_lesson(lesson(case, lid, list(concepts), minutes=minutes,
                                          position=position, course=course))


async def master(case: Case, learner: str, *ids: str) -> None:
    await case.store.save_mastery(case.tenant, learner, [
        Mastery(concept=i, p_known=0.97, mastered=True, version=1, updated_at=T0) for i in ids], [])


async def test_a_path_puts_prerequisites_first_then_required_then_shorter(case: Case) -> None:
    # goal requires long (30 min), short (5), soft (recommended, 1 min) and deep; deep requires
    # short; tie (10 min, position 1) and tie2 (10 min, position 0) are required by goal too.
    await graph(case, [("goal", "long", "required"), ("goal", "short", "required"),
                       ("goal", "soft", "recommended"), ("goal", "deep", "required"),
                       ("deep", "short", "required"), ("goal", "tie", "required"),
                       ("goal", "tie2", "required")])
    await teach(case, "Lgoal", "goal")
    await teach(case, "Llong", "long", minutes=30)
    await teach(case, "Lshort", "short", minutes=5)
    await teach(case, "Lsoft", "soft", minutes=1)
    await teach(case, "Ldeep", "deep", minutes=1)
    await teach(case, "Ltie", "tie", position=1)
    await teach(case, "Ltie2", "tie2", position=0)
    p = await plan(case, "goal")
    assert order(p) == ["Lshort", "Ltie2", "Ltie", "Llong", "Lsoft", "Ldeep", "Lgoal"]
    assert [x.required for x in p.lessons] == [True, True, True, True, False, True, True]
    path = to_path("concept:goal", p)
    assert path.steps[5].blocked_by == ["short"]
    assert path.steps[6].blocked_by == ["deep", "long", "short", "tie", "tie2"]


async def test_a_recommended_edge_leads_to_steps_that_are_not_required(case: Case) -> None:
    # goal recommends r, which requires q; q is also required through goal → m.
    await graph(case, [("goal", "r", "recommended"), ("r", "q", "required"),
                       ("r", "only", "required"), ("goal", "m", "required"),
                       ("m", "q", "required")])
    for c in ("goal", "r", "q", "only", "m"):
        await teach(case, f"L{c}", c)
    p = await plan(case, "goal")
    required = {x.lesson.id: x.required for x in p.lessons}
    assert required == {"Lgoal": True, "Lr": False, "Lq": True, "Lonly": False, "Lm": True}
    assert order(p) == ["Lq", "Lonly", "Lm", "Lr", "Lgoal"]


async def test_mastered_concepts_leave_the_path_but_keep_its_order(case: Case) -> None:
    # d requires c requires b requires a; b is mastered (a middle concept), a is not.
    await graph(case, [("d", "c", "required"), ("c", "b", "required"), ("b", "a", "required")])
    for c in "abcd":
        await teach(case, f"L{c}", c, minutes=140 - ord(c))  # later ones shorter
    await master(case, "u1", "b")
    p = await plan(case, "d")
    assert order(p) == ["La", "Lc", "Ld"]
    assert (p.concepts, p.mastered) == (4, 1)
    assert to_path("g", p).steps[1].blocked_by == []  # b, its prerequisite, is mastered
    assert order(await plan(case, "d", learner="u2")) == ["La", "Lb", "Lc", "Ld"]


async def test_a_concept_takes_its_shortest_lesson_not_yet_completed(case: Case) -> None:
    await graph(case, [("b", "a", "required"), ("c", "b", "required")], "lone")
    await teach(case, "La-long", "a", minutes=20)
    await teach(case, "La-short", "a", minutes=5)
    await teach(case, "La-mid", "a", minutes=10, course="other")
    await teach(case, "Lb", "b")
    await teach(case, "Lc-done", "c")
    for lid, status in (("La-short", "completed"), ("Lb", "started"), ("Lc-done", "completed")):
        await case.store.save_progress(case.tenant, "u1", Progress(
            lesson_id=lid, status=status, started_at=T0,
            completed_at=T0 if status == "completed" else None), [])
    p = await plan(case, "c")
    # c's only lesson is completed: c is not mastered, so it stays, completed (not uncovered).
    assert order(p) == ["La-mid", "Lb", "Lc-done"]
    assert p.lessons[0].lesson.course_id == "other"
    assert [x.lesson.status for x in p.lessons] == [None, "started", "completed"]
    assert p.uncovered == ()
    assert adds_up(p)
    assert order(await plan(case, "c", learner="u2")) == ["La-short", "Lb", "Lc-done"]


def adds_up(p: PathPlan) -> bool:
    """Each concept of the closure is mastered, taught by a step or uncovered."""
    taught = {c for x in p.lessons for c in x.concepts}
    return p.concepts == p.mastered + len(taught) + len(p.uncovered)


async def complete(case: Case, learner: str, *lessons: str) -> None:
    for lid in lessons:
        await case.store.save_progress(case.tenant, learner, Progress(
            lesson_id=lid, status="completed", started_at=T0, completed_at=T0), [])


async def test_completed_lessons_of_unmastered_concepts_stay_on_the_path(case: Case) -> None:
    """A learner completed every lesson of a course and failed every quiz: the path was empty
    (`concepts` 4, `mastered` 0, nothing uncovered), and a failed prerequisite whose lesson was
    completed blocked nothing."""
    await graph(case, [("addition", "numbers", "required"), ("subtraction", "numbers", "required"),
                       ("multiplication", "addition", "required")])
    await teach(case, "Lnumbers", "numbers", minutes=5, position=0, course="arith")
    await teach(case, "Lnumbers-more", "numbers", position=1, course="arith")
    await teach(case, "Laddition", "addition", position=2, course="arith")
    await teach(case, "Lsubtraction", "subtraction", position=3, course="arith")
    await teach(case, "Lmultiplication", "multiplication", position=4, course="arith")
    everything = ["Lnumbers", "Lnumbers-more", "Laddition", "Lsubtraction", "Lmultiplication"]
    await complete(case, "u1", *everything)
    await case.store.save_mastery(case.tenant, "u1", [
        Mastery(concept=c, p_known=0.172, mastered=False, version=1, updated_at=T0)
        for c in ("numbers", "addition", "subtraction", "multiplication")], [])
    p = await plan(case, course="arith")
    assert order(p) == ["Lnumbers", "Laddition", "Lsubtraction", "Lmultiplication"]
    assert {x.lesson.status for x in p.lessons} == {"completed"}
    assert (p.concepts, p.mastered, p.uncovered) == (4, 0, ())
    assert adds_up(p)
    path = to_path("course:arith", p)
    assert [s.blocked_by for s in path.steps] == [[], ["numbers"], ["numbers"], ["addition"]]
    assert {s.status for s in path.steps} == {"completed"}

    # u2 completed the numbers lessons and failed their quiz: addition waits for numbers.
    await complete(case, "u2", "Lnumbers", "Lnumbers-more")
    await case.store.save_mastery(case.tenant, "u2", [
        Mastery(concept="numbers", p_known=0.17, mastered=False, version=1, updated_at=T0)], [])
    p = await plan(case, "addition", learner="u2")
    assert [(x.lesson.id, x.lesson.status) for x in p.lessons] == [
        ("Lnumbers", "completed"), ("Laddition", None)]
    assert adds_up(p)
    assert to_path("concept:addition", p).steps[1].blocked_by == ["numbers"]

    # u3 mastered numbers: the path counts it mastered, its lessons leave the path.
    await complete(case, "u3", *everything)
    await master(case, "u3", "numbers")
    p = await plan(case, course="arith", learner="u3")
    assert order(p) == ["Laddition", "Lsubtraction", "Lmultiplication"]
    assert (p.concepts, p.mastered, p.uncovered) == (4, 1, ())
    assert adds_up(p)


async def test_a_lesson_of_an_archived_course_is_taken_last(case: Case) -> None:
    await graph(case, [("b", "a", "required")])
    await teach(case, "La-old", "a", minutes=5, course="old")
    await teach(case, "La-new", "a", minutes=20, course="new")
    await teach(case, "Lb-old", "b", course="old")
    for cid, lessons in (("old", ["La-old", "Lb-old"]), ("new", ["La-new"])):
        await case.store.upsert_course(CourseNode(id=cid, tenant=case.tenant, title=cid,
                                                  version=1, lesson_ids=lessons))
    assert order(await plan(case, "b")) == ["La-old", "Lb-old"]
    await case.store.archive_course(case.tenant, "old", True, 1)
    # b has no other lesson; the old course's own learners keep its lessons
    assert order(await plan(case, "b")) == ["La-new", "Lb-old"]
    assert order(await plan(case, course="old")) == ["La-old", "Lb-old"]
    await case.store.archive_course(case.tenant, "old", False, 2)
    assert order(await plan(case, "b")) == ["La-old", "Lb-old"]


async def test_a_concept_no_lesson_teaches_is_uncovered(case: Case) -> None:
    await graph(case, [("c", "b", "required"), ("b", "a", "required")])
    await teach(case, "La", "a")
    await teach(case, "Lc", "c")
    p = await plan(case, "c")
    assert order(p) == ["La", "Lc"]
    assert p.uncovered == ("b",)
    assert p.lessons[1].prerequisites == ("b",)
    assert to_path("g", p).steps[1].blocked_by == []  # nothing on the path teaches b


async def test_a_lesson_teaching_two_concepts_is_one_step_after_both_prerequisites(
        case: Case) -> None:
    await graph(case, [("x", "a", "required"), ("y", "b", "required"), ("b", "a", "required"),
                       ("goal", "x", "required"), ("goal", "y", "required")])
    await teach(case, "La", "a")
    await teach(case, "Lb", "b")
    await teach(case, "Lxy", "x", "y")
    await teach(case, "Lgoal", "goal")
    p = await plan(case, "goal")
    assert order(p) == ["La", "Lb", "Lxy", "Lgoal"]
    assert p.lessons[2].concepts == ("x", "y")
    assert to_path("g", p).steps[2].blocked_by == ["a", "b"]


async def test_a_course_goal_and_an_unknown_goal(case: Case) -> None:
    await graph(case, [("b", "a", "required")], "z")
    await teach(case, "Lb", "b", course="py")
    await teach(case, "La", "a", course="base")
    await teach(case, "Lz", "z", course="py", minutes=1)
    p = await plan(case, course="py")
    assert p.goals == ("b", "z")
    assert order(p) == ["Lz", "La", "Lb"]
    assert (await plan(case, "ghost")).goals == ()
    assert await case.store.learning_path(case.other, "u1", ["b"]) == PathPlan(goals=())


async def test_a_lesson_brings_the_names_content_gives_its_concepts(case: Case) -> None:
    await concepts(case, "a")
    await case.store.describe_concept(case.tenant, "a", ConceptEdit(name="Named here"))
    stored = await case.store.upsert_lesson(lesson(case, "L1", ["a", "b"]),
                                            {"a": "Arrays & lists", "b": "Binary search"})
    assert stored
    assert {c.id: c.name for c in await case.store.list_concepts(case.tenant)} == {
        "a": "Arrays & lists", "b": "Binary search"}
    assert not await case.store.upsert_lesson(lesson(case, "L1", ["a"], version=0),
                                              {"a": "An older name"})
    assert (await case.store.get_concepts(case.tenant, ["a"]))[0].name == "Arrays & lists"
    assert await case.store.list_concepts(case.other) == []


async def test_a_course_goal_has_its_lessons_teaching_nothing(case: Case) -> None:
    """An introduction or a summing-up teaches no concept: a course's path read none of them,
    so a course of such lessons had an empty path while its progress counted them."""
    await concepts(case, "a")
    await teach(case, "intro", position=0)
    await teach(case, "La", "a", position=1)
    await teach(case, "outro", position=3)
    await teach(case, "recap", position=2)
    await teach(case, "elsewhere", course="other")
    assert [x.id for x in (await plan(case, course="py")).loose] == ["intro", "recap", "outro"]
    assert (await plan(case, "a")).loose == ()
    await case.store.save_progress(case.tenant, "u1", Progress(
        lesson_id="recap", status="completed", started_at=T0, completed_at=T0), [])
    await case.store.save_progress(case.tenant, "u1", Progress(
        lesson_id="intro", status="started", started_at=T0), [])
    p = await plan(case, course="py")
    assert [(x.id, x.status, x.position) for x in p.loose] == [("intro", "started", 0),
                                                               ("outro", None, 3)]
    assert order(p) == ["La"]
    await teach(case, "lone", course="bare")
    assert [x.id for x in (await plan(case, course="bare")).loose] == ["lone"]
    assert (await plan(case, course="bare")).goals == ()


async def test_ranks_follow_edges_added_and_removed(case: Case) -> None:
    await concepts(case, "a", "b", "c", "d")
    for c in "abcd":
        await teach(case, f"L{c}", c, minutes={"a": 40, "b": 30, "c": 20, "d": 10}[c])
    await concepts(case, "goal")
    for c in "abcd":
        await case.store.add_edge(case.tenant, Edge(concept="goal", requires=c))
    assert order(await plan(case, "goal")) == ["Ld", "Lc", "Lb", "La"]
    # c requires b requires a: a chain now, taken bottom up however long its lessons.
    await case.store.add_edge(case.tenant, Edge(concept="c", requires="b"))
    await case.store.add_edge(case.tenant, Edge(concept="b", requires="a"))
    assert order(await plan(case, "goal")) == ["Ld", "La", "Lb", "Lc"]
    # d on top of c: the ranks above c rise; then a leaves the chain and b, c, d fall.
    await case.store.add_edge(case.tenant, Edge(concept="d", requires="c"))
    assert order(await plan(case, "goal")) == ["La", "Lb", "Lc", "Ld"]
    await case.store.remove_edge(case.tenant, "b", "a")
    assert order(await plan(case, "goal")) == ["Lb", "La", "Lc", "Ld"]


async def test_random_graphs_give_the_path_by_rank(case: Case) -> None:
    rng = random.Random(11)
    n = 40
    edges = sorted({(f"c{i}", f"c{j}", rng.choice(["required", "required", "recommended"]))
                    for i in range(1, n) for j in rng.sample(range(i), k=min(i, rng.randint(0, 3)))})
    await graph(case, edges, *(f"c{i}" for i in range(n)))
    minutes = {f"c{i}": rng.randint(1, 30) for i in range(n)}
    for c, m in minutes.items():
        await teach(case, f"L{c}", c, minutes=m)
    mastered = {f"c{i}" for i in rng.sample(range(n - 1), k=8)}
    await master(case, "u1", *sorted(mastered))
    completed = {f"c{i}" for i in rng.sample(range(n), k=10)}  # mastered or not
    await complete(case, "u1", *(f"L{c}" for c in sorted(completed)))
    # Edges added one by one keep the same ranks as the import computed.
    await case.store.remove_edge(case.tenant, *edges[0][:2])
    await case.store.add_edge(case.tenant, Edge(concept=edges[0][0], requires=edges[0][1],
                                                kind=edges[0][2]))
    goal = f"c{n - 1}"
    closure, required = {goal}, {goal}
    for _ in range(n):
        closure |= {r for c, r, _ in edges if c in closure}
        required |= {r for c, r, k in edges if c in required and k == "required"}
    rank = ranks((c, r) for c, r, _ in edges)
    want = sorted((c for c in closure if c not in mastered),
                  key=lambda c: (rank.get(c, 0), c not in required, minutes[c], f"L{c}"))
    p = await plan(case, goal)
    assert completed & set(want)
    assert order(p) == [f"L{c}" for c in want]
    assert [x.lesson.status for x in p.lessons] == [
        "completed" if c in completed else None for c in want]
    assert (p.concepts, p.mastered) == (len(closure), len(closure & mastered))
    assert adds_up(p)


async def test_the_learners_a_graph_edit_reaches(case: Case) -> None:
    # c requires b requires a; z stands apart. Enrolled: u-c in c, u-z in z, u-course in a
    # course whose lesson teaches b, u-other in c of another tenant.
    await graph(case, [("c", "b", "required"), ("b", "a", "required")], "z")
    await teach(case, "Lb", "b", course="py")
    for learner, course, goal in (("u-c", None, "c"), ("u-z", None, "z"),
                                  ("u-course", "py", None)):
        assert await case.store.enrol(case.tenant, Enrolment(
            learner=learner, course_id=course, goal_concept=goal, enrolled_at=T0), [])
    await case.store.enrol(case.other, Enrolment(learner="u-other", goal_concept="c",
                                                 enrolled_at=T0), [])
    assert await case.store.learners_reaching(case.tenant, ["a"]) == ["u-c", "u-course"]
    assert await case.store.learners_reaching(case.tenant, ["c"]) == ["u-c"]
    assert await case.store.learners_reaching(case.tenant, ["c", "z"]) == ["u-c", "u-z"]
    assert await case.store.learners_reaching(case.tenant, ["ghost"]) == []


async def test_the_learners_enrolled_in_a_goal_a_page_at_a_time(case: Case) -> None:
    for learner in ("u-3", "u-1", "u-2", "u-4"):
        assert await case.store.enrol(case.tenant, Enrolment(
            learner=learner, course_id="py", goal_concept=None, enrolled_at=T0), [])
    await case.store.enrol(case.tenant, Enrolment(learner="u-5", course_id="js",
                                                  goal_concept=None, enrolled_at=T0), [])
    await case.store.enrol(case.other, Enrolment(learner="u-0", course_id="py",
                                                 goal_concept=None, enrolled_at=T0), [])
    enrolled = case.store.learners_enrolled
    assert await enrolled(case.tenant, "course:py", limit=3) == ["u-1", "u-2", "u-3"]
    assert await enrolled(case.tenant, "course:py", after="u-3", limit=3) == ["u-4"]
    assert await enrolled(case.tenant, "course:py", after="u-4") == []
    assert await enrolled(case.tenant, "course:ghost") == []


async def test_the_goals_of_one_learner_that_reach_concepts(case: Case) -> None:
    # c requires b requires a; z stands apart. u-1 is enrolled in c, z, course py (its lesson
    # teaches b), course js (teaches z) and course old (its only lesson teaching a is deleted);
    # u-2 in a, and u-1 in a in another tenant.
    await graph(case, [("c", "b", "required"), ("b", "a", "required")], "z")
    await teach(case, "Lb", "b", course="py")
    await teach(case, "Lz", "z", course="js")
    await teach(case, "La", "a", course="old")
    assert await case.store.delete_lesson(case.tenant, "La", 2)
    for course, goal in ((None, "c"), (None, "z"), ("py", None), ("js", None), ("old", None)):
        assert await case.store.enrol(case.tenant, Enrolment(
            learner="u-1", course_id=course, goal_concept=goal, enrolled_at=T0), [])
    await case.store.enrol(case.tenant, Enrolment(learner="u-2", goal_concept="a",
                                                  enrolled_at=T0), [])
    await case.store.enrol(case.other, Enrolment(learner="u-1", goal_concept="a",
                                                 enrolled_at=T0), [])
    reaching = case.store.goals_reaching
    assert await reaching(case.tenant, "u-1", ["a"]) == ["concept:c", "course:py"]
    assert await reaching(case.tenant, "u-1", ["b"]) == ["concept:c", "course:py"]
    assert await reaching(case.tenant, "u-1", ["c"]) == ["concept:c"]
    assert await reaching(case.tenant, "u-1", ["c", "z"]) == ["concept:c", "concept:z",
                                                               "course:js"]
    assert await reaching(case.tenant, "u-2", ["a"]) == ["concept:a"]
    assert await reaching(case.tenant, "u-2", ["z"]) == []
    assert await reaching(case.tenant, "u-1", ["ghost"]) == []
    assert await reaching(case.tenant, "u-1", []) == []


async def test_the_graph_comes_a_slice_at_a_time(case: Case) -> None:
    """Concepts by id, edges by concept then prerequisite, each slice read from its cursor on:
    nothing twice or left out, and what is added before the cursor between two slices moves
    nothing after it."""
    await chain(case, "e", "c", "a")
    await concepts(case, "d", "b")
    for concept, requires in (("b", "e"), ("d", "e"), ("d", "c"), ("a", "b")):
        await case.store.add_edge(case.tenant, Edge(concept=concept, requires=requires))
    await concepts(case, "aa", tenant=case.other)
    edges = await case.store.list_edges(case.tenant)
    assert [(e.concept, e.requires) for e in edges] == [
        ("a", "b"), ("a", "c"), ("b", "e"), ("c", "e"), ("d", "c"), ("d", "e")]
    for size in (1, 2, 5, 6):
        listed = await paged(lambda after, n: case.store.page_concepts(
            case.tenant, after=after, limit=n), size)
        assert [c.id for c in listed] == ["a", "b", "c", "d", "e"], size
        assert listed == await case.store.list_concepts(case.tenant)
        assert await paged(lambda after, n: case.store.page_edges(
            case.tenant, after=after, limit=n), size) == edges, size

    first = await case.store.page_concepts(case.tenant, limit=2)
    await concepts(case, "aa", "f")
    rest = await case.store.page_concepts(case.tenant, after=first.next, limit=10)
    assert [c.id for c in [*first.items, *rest.items]] == ["a", "b", "c", "d", "e", "f"]
    assert rest.next is None
    first_edges = await case.store.page_edges(case.tenant, limit=3)
    await case.store.add_edge(case.tenant, Edge(concept="a", requires="aa"))
    rest_edges = await case.store.page_edges(case.tenant, after=first_edges.next, limit=10)
    assert [*first_edges.items, *rest_edges.items] == edges
    for read in (case.store.page_concepts, case.store.page_edges):
        for bad in ("nope", cursor(1), cursor("a", "b", "c")):
            with pytest.raises(BadCursor):
                await read(case.tenant, after=bad)


async def test_a_learners_lists_and_a_concepts_cards_come_a_slice_at_a_time(
        case: Case) -> None:
    """Enrolments oldest first and cards oldest first (then by goal, by id), mastery by
    concept: each slice from its cursor on, with nothing twice or left out."""
    await concepts(case, "loops", "sets", "maps")
    goals = [({"goal_concept": "sets"}, T0), ({"course_id": "py"}, T0 + timedelta(minutes=1)),
             ({"goal_concept": "loops"}, T0 + timedelta(minutes=1)),
             ({"course_id": "js"}, T0 - timedelta(minutes=1))]
    for goal, at in goals:
        await case.store.enrol(case.tenant, Enrolment(learner="u1", enrolled_at=at, **goal), [])
    await case.store.enrol(case.tenant, Enrolment(learner="u2", course_id="py",
                                                  enrolled_at=T0), [])
    await case.store.save_mastery(case.tenant, "u1", [
        Mastery(concept=c, p_known=0.2, mastered=False, version=1, updated_at=T0)
        for c in ("sets", "loops", "maps")], [])
    cards = [Card.create(case.tenant, "loops", NewCard(front=f"q{n}", back="a"),
                         at=T0 + timedelta(seconds=n % 2)) for n in range(5)]
    for card in cards:
        await case.store.add_card(card)
    await case.store.add_card(Card.create(case.tenant, "sets", NewCard(front="s", back="a")))
    await case.store.retire_card(case.tenant, cards[0].id)

    enrolments = await case.store.enrolments(case.tenant, "u1")
    assert [e.goal for e in enrolments] == [
        "course:js", "concept:sets", "concept:loops", "course:py"]
    kept = sorted(cards[1:], key=lambda c: (c.created_at, c.id))
    assert await case.store.cards_of(case.tenant, ["loops"]) == kept
    for size in (1, 2, 4):
        assert await paged(lambda after, n: case.store.page_enrolments(
            case.tenant, "u1", after=after, limit=n), size) == enrolments, size
        mastery = await paged(lambda after, n: case.store.page_mastery(
            case.tenant, "u1", after=after, limit=n), size)
        assert [m.concept for m in mastery] == ["loops", "maps", "sets"], size
        assert await paged(lambda after, n: case.store.page_cards(
            case.tenant, "loops", after=after, limit=n), size) == kept, size
    assert (await case.store.page_enrolments(case.other, "u1")).items == []
    assert (await case.store.page_mastery(case.tenant, "u2")).items == []
    assert (await case.store.page_cards(case.tenant, "maps")).items == []

    first = await case.store.page_cards(case.tenant, "loops", limit=2)
    late = Card.create(case.tenant, "loops", NewCard(front="late", back="a"), at=T0)
    await case.store.add_card(late)
    rest = await case.store.page_cards(case.tenant, "loops", after=first.next, limit=10)
    found = [*first.items, *rest.items]
    assert [c for c in found if c != late] == kept
    for bad in ("nope", cursor("a"), cursor(1, "b")):
        with pytest.raises(BadCursor):
            await case.store.page_cards(case.tenant, "loops", after=bad)
        with pytest.raises(BadCursor):
            await case.store.page_enrolments(case.tenant, "u1", after=bad)
    with pytest.raises(BadCursor):
        await case.store.page_mastery(case.tenant, "u1", after=cursor("a", "b"))


async def newer_fields(case: Case, kind: str, where: dict[str, str], within: str = "") -> None:
    """Adds to a stored record (`kind`: its SQLite table, then Neo4j label) a field this
    version does not know, at its top and within its part `within` if given, as a newer
    version would. Neo4j keeps a concept's parameters (`bkt`) as a property of its own."""
    table, label = kind.split(":")
    paths = ["$.from_next"] + ([f"$.{within}.from_next"] if within else [])
    if isinstance(case.store, EmbeddedLearningStore):
        sets = ", ".join(f"'{path}', 1" for path in paths)
        match = " AND ".join(f"{column} = ?" for column in ["tenant", *where])
        await case.store.db.transaction(lambda c: c.execute(
            f"UPDATE {table} SET doc = json_set(doc, {sets}) WHERE {match}",
            (case.tenant, *where.values())))
        return
    assert isinstance(case.store, Neo4jLearningStore)
    match = ", ".join(f"{key}: ${key}" for key in ["tenant", *where])
    prop = "bkt" if label == "Concept" else "doc"
    keys = {"tenant": case.tenant, **where}
    [row], _, _ = await case.store.driver.execute_query(
        f"MATCH (n:{label} {{{match}}}) RETURN n.{prop} AS doc", keys)
    doc = json.loads(row["doc"])
    for part in [doc, doc[within]] if within and prop == "doc" else [doc]:
        part["from_next"] = 1
    await case.store.driver.execute_query(
        f"MATCH (n:{label} {{{match}}}) SET n.{prop} = $doc, n.from_next = 1",
        keys | {"doc": json.dumps(doc)})


async def test_records_a_newer_version_wrote_read_without_the_fields_it_added(
        case: Case) -> None:
    """During a rolling update, or after a rollback, this version reads what a newer one
    wrote (`Mastery.baseline_at`, `Progress.version`, `Card.held_until` once): the fields it
    does not know are left aside, by the API as by the consumer of quiz attempts."""
    await concepts(case, "loops")
    m = Mastery(concept="loops", p_known=0.3, mastered=False, observations=[("2025", 1)],
                attempt_ids=["a1"], version=1, updated_at=T0)
    await case.store.save_mastery(case.tenant, "u1", [m], [])
    p = Progress(lesson_id="l1", status="started", seconds=30, started_at=T0)
    await case.store.save_progress(case.tenant, "u1", p, [])
    card = Card.create(case.tenant, "loops", NewCard(front="for?", back="repeats"), at=T0)
    assert await case.store.add_card(card) is True
    [concept] = await case.store.get_concepts(case.tenant, ["loops"])
    await newer_fields(case, "concepts:Concept", {"id": "loops"}, within="bkt")
    await newer_fields(case, "mastery:Mastery", {"learner": "u1", "concept": "loops"})
    await newer_fields(case, "progress:LessonProgress", {"learner": "u1", "lesson": "l1"})
    await newer_fields(case, "cards:ReviewCard", {"id": card.id})
    assert await case.store.get_concepts(case.tenant, ["loops"]) == [concept]
    assert await case.store.list_concepts(case.tenant) == [concept]
    assert await case.store.get_mastery(case.tenant, "u1") == [m]
    assert await case.store.mastery_sequences(case.tenant, "loops") == [[1]]
    assert await case.store.get_progress(case.tenant, "u1") == [p]
    assert await case.store.get_card(case.tenant, card.id) == card
    assert await case.store.cards_of(case.tenant, ["loops"]) == [card]
    edited = await case.store.edit_card(case.tenant, card.id, CardEdit(back="runs again"), T0)
    assert edited is not None
    assert edited.back == "runs again"
