"""A graph edit announces `path.changed` to the enrolled learners whose path it changes, as it
is made (not at their next read)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bloop.platform.kit.events.types import registry
from bloop.platform.kit.sqlite import SqliteDB
from bloop.platform.learning.model import (
    Edge,
    GraphDocument,
    LessonNode,
    NewConcept,
    NewEnrolment,
)
from bloop.platform.learning.service import LearningService
from bloop.platform.learning.stores.embedded import EmbeddedLearningStore

T = "acme"


@pytest.fixture
async def service(tmp_path: Path) -> AsyncIterator[LearningService]:
    db = SqliteDB(tmp_path / "learning.sqlite3")
    store = EmbeddedLearningStore(db, registry)
    await store.setup()
    yield LearningService(store)
    await db.close()


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
    assert (await announced(service))[2:] == [("ada", ["Lb", "Lgoal"])]
    await service.add_edge(T, Edge(concept="goal", requires="b", kind="recommended"))
    assert len(await announced(service)) == 3  # same lessons: nothing to announce
    await service.import_graph(T, GraphDocument(concepts=[], edges=[
        Edge(concept="b", requires="a")]))
    assert (await announced(service))[3:] == [("ada", ["La", "Lb", "Lgoal"])]
    await service.remove_edge(T, "goal", "b")
    assert (await announced(service))[4:] == [("ada", ["Lgoal"])]
    # bob's goal never reached the edits.
    assert [who for who, _ in await announced(service)].count("bob") == 1
