"""The embedded stores' reads that pick a few rows out of a tenant's many go along an index,
not through every row of the tenant (the plans SQLite makes for them, on small tables)."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bloop.ai.jobs.stores.embedded import EmbeddedJobStore
from bloop.platform.identity.model import RefreshToken
from bloop.platform.identity.stores.embedded import EmbeddedIdentityStore
from bloop.platform.kit.events.types import registry
from bloop.platform.kit.sqlite import SqliteDB
from bloop.platform.learning.model import (
    Card,
    CourseNode,
    Edge,
    HeldUntil,
    LessonNode,
    LessonVersion,
    NewCard,
    NewConcept,
    NewEnrolment,
)
from bloop.platform.learning.service import LearningService
from bloop.platform.learning.stores.embedded import EmbeddedLearningStore
from tests.support import count_calls, query_plans

T = "acme"
AT = datetime(2026, 12, 1, tzinfo=UTC)


def along_indexes(plans: list[list[str]]) -> list[str]:
    """The plans' steps, each checked to read neither the whole table nor the whole tenant."""
    steps = [step for plan in plans for step in plan]
    for step in steps:
        assert not step.startswith("SCAN"), step
        assert not step.endswith("(tenant=?)"), step
        assert "TEMP B-TREE" not in step, step
    return steps


async def test_walking_the_graph_up_reads_edges_along_an_index(tmp_path: Path) -> None:
    """With the index of before, SQLite read the edges by the primary key's tenant column
    alone: completing a lesson on a concept that 2,000 others require took 1.6 s."""
    path = tmp_path / "learning.sqlite3"
    with sqlite3.connect(path) as c:  # a database of before, with its index on (tenant, requires)
        c.execute("CREATE TABLE edges (tenant TEXT NOT NULL, concept TEXT NOT NULL, requires"
                  " TEXT NOT NULL, kind TEXT NOT NULL, PRIMARY KEY (tenant, concept, requires))")
        c.execute("CREATE INDEX edges_requires ON edges (tenant, requires)")
    c.close()
    db = SqliteDB(path)
    store = EmbeddedLearningStore(db, registry)
    try:
        await store.setup()
        service = LearningService(store)
        for i in range(30):
            await service.add_concept(T, NewConcept(id=f"c{i}", name=f"c{i}"))
            if i:
                await service.add_edge(T, Edge(concept=f"c{i}", requires=f"c{i - 1}"))
        await service.enrol(T, "ada", NewEnrolment(goal_concept="c29"))
        await service.settled()

        async def reads() -> None:
            assert await store.goals_reaching(T, "ada", ["c0"]) == ["concept:c29"]
            assert await store.learners_reaching(T, ["c0"]) == ["ada"]

        plans = await query_plans(db, reads, "edges")
        assert len(plans) == 2
        for plan in plans:
            edges = [step for step in plan if " e " in f" {step} "]
            assert edges == ["SEARCH e USING COVERING INDEX edges_up (tenant=? AND requires=?)"], plan
        indexes = await db.run(lambda c: [r[0] for r in c.execute(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'edges'")])
        assert "edges_requires" not in indexes
    finally:
        await db.close()


async def test_a_persons_tokens_and_invitations_are_read_along_an_index(tmp_path: Path) -> None:
    """A role taken away read every refresh token of the tenant (kept 30 days after use): 243 ms
    with 24,000, the process held meanwhile."""
    db = SqliteDB(tmp_path / "identity.sqlite3")
    store = EmbeddedIdentityStore(db, registry)
    try:
        await store.setup()
        for i in range(20):
            await store.add_refresh_token(RefreshToken(
                token_hash=f"h{i}", tenant="acme", user_id=f"u{i % 4}", family=f"f{i}",
                scopes=["content:read"], created_at=AT, expires_at=AT + timedelta(days=30)))

        async def tokens() -> None:
            assert len(await store.refresh_tokens_of("acme", "u1")) == 5
            assert len(await store.revoke_user_sessions("acme", "u1")) == 5

        async def invitations() -> None:
            assert await store.invitations_by("acme", "u1") == []

        plans = await query_plans(db, tokens, "refresh_tokens") + await query_plans(
            db, invitations, "invitations")
        steps = along_indexes(plans)
        assert sum("refresh_tokens_user" in step for step in steps) == 2
        assert sum("invitations_by" in step for step in steps) == 1
    finally:
        await db.close()


async def test_a_persons_ai_jobs_are_read_along_an_index(tmp_path: Path) -> None:
    """A person's export read every AI job of the tenant."""
    db = SqliteDB(tmp_path / "ai.sqlite3")
    store = EmbeddedJobStore(db, registry)
    try:
        await store.setup()

        async def jobs() -> None:
            assert await store.by_requester(T, "u1") == []

        steps = along_indexes(await query_plans(db, jobs, "ai_jobs"))
        assert any("ai_jobs_requester" in step for step in steps), steps
    finally:
        await db.close()


async def test_a_deleted_lessons_cards_are_found_along_indexes(tmp_path: Path) -> None:
    """Retiring a deleted lesson's cards reads its cards (and their schedules), not the
    tenant's."""
    db = SqliteDB(tmp_path / "learning.sqlite3")
    store = EmbeddedLearningStore(db, registry)
    try:
        await store.setup()
        await store.ensure_concepts(T, ["loops"])
        for i in range(20):
            lesson = f"L{i % 4}"
            await store.add_card(Card.create(
                T, "loops", NewCard(front=f"f{i}", back="b", source="ai"), at=AT,
                made_from=LessonVersion(lesson_id=lesson, lesson_version=1),
                held_until=HeldUntil(lesson_id=lesson, lesson_version=2) if i % 3 else None))

        async def retire(lesson: str) -> None:
            assert await store.retire_lesson_cards(T, lesson, 50) == 5

        steps = along_indexes(await query_plans(db, lambda: retire("L1"), "cards"))
        assert any("cards_lesson" in step for step in steps), steps
        assert any("cards_held" in step for step in steps), steps
        along_indexes(await query_plans(db, lambda: retire("L2"), "card_states"))
    finally:
        await db.close()


async def test_a_page_of_paths_reads_its_courses_lessons_and_snapshots_only(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A path read its course's lessons, and the lessons teaching its concepts, through every
    lesson of the tenant (`lessons` had no index on the course, and the planner walked
    `teaches` by tenant), and a page of paths read the snapshots of every goal of the learner:
    each path cost more the more courses the tenant and the learner had, not the page."""
    db = SqliteDB(tmp_path / "learning.sqlite3")
    store = EmbeddedLearningStore(db, registry)
    try:
        await store.setup()
        service = LearningService(store)
        for k in range(6):
            ids = [f"c{k}-l{i}" for i in range(3)]
            for i, lesson in enumerate(ids):
                await store.upsert_lesson(LessonNode(
                    id=lesson, tenant=T, course_id=f"course-{k}", position=i, title=lesson,
                    estimated_minutes=5, teaches=[f"k{k}-{i}"] if i else [], requires=[],
                    version=1))
            await store.upsert_course(CourseNode(id=f"course-{k}", tenant=T, title=f"C{k}",
                                                 version=1, lesson_ids=ids))
            await store.add_edge(T, Edge(concept=f"k{k}-2", requires=f"k{k}-1"))
            await service.enrol(T, "ada", NewEnrolment(course_id=f"course-{k}"))
        await service.settled()
        read = count_calls(store, monkeypatch)
        snapshots: list[int] = []
        all_snapshots = store.path_snapshots

        async def path_snapshots(*args: object, **kwargs: object) -> dict[str, list[str]]:
            found = await all_snapshots(*args, **kwargs)  # type: ignore[arg-type]
            snapshots.append(len(found))
            return found

        monkeypatch.setattr(store, "path_snapshots", path_snapshots)

        async def page() -> None:
            assert len((await service.path_page(T, "ada", limit=2)).items) == 2

        plans = await query_plans(db, page, "lessons") + await query_plans(db, page, "teaches")
        assert read["learning_path"] == 4
        assert snapshots == [2, 2]
        steps = [step for plan in plans for step in plan if f" {step} ".split(" ")[2] in "lt"]
        assert steps
        for step in steps:
            assert not step.startswith("SCAN"), step
            assert not step.endswith("(tenant=?)"), "\n".join(str(p) for p in plans)
    finally:
        await db.close()
