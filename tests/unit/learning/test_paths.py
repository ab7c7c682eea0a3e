"""The pure parts of paths: ranks, the store's plan as a path, the concept order placement
walks, cycles named. The path itself is the stores' (tests/contract/test_learning_store.py)."""

from __future__ import annotations

import random

from bloop.platform.learning.model import Edge
from bloop.platform.learning.paths import (
    ConceptInfo,
    LessonInfo,
    PathPlan,
    PlannedLesson,
    Subgraph,
    concept_order,
    find_cycle,
    first_cycle,
    ranks,
    to_path,
)


def one(lid: str, minutes: int = 10, position: int = 0, status: str | None = None) -> LessonInfo:
    return LessonInfo(id=lid, title=lid, course_id="c", minutes=minutes, position=position,
                      status=status)


def test_a_rank_is_the_longest_prerequisite_chain() -> None:
    # d requires b and c; c requires b; b requires a; e stands alone with its prerequisite a.
    edges = [("d", "b"), ("d", "c"), ("c", "b"), ("b", "a"), ("e", "a")]
    assert ranks(edges) == {"a": 0, "b": 1, "c": 2, "d": 3, "e": 1}
    assert ranks([]) == {}


def test_random_ranks_exceed_every_prerequisite() -> None:
    rng = random.Random(7)
    for _ in range(30):
        n = rng.randint(2, 60)
        edges = [(f"c{i}", f"c{j}") for i in range(1, n)
                 for j in rng.sample(range(i), k=min(i, rng.randint(0, 3)))]
        rank = ranks(edges)
        for c, p in edges:
            assert rank[c] > rank[p]
        for c in rank:  # and is the least such: a prerequisite sits exactly one below
            prereqs = [rank[p] for x, p in edges if x == c]
            assert rank[c] == (max(prereqs) + 1 if prereqs else 0)


def test_a_plan_becomes_a_path_blocked_by_earlier_steps() -> None:
    plan = PathPlan(goals=("d",), lessons=(
        PlannedLesson(one("La"), ("a",), True),
        PlannedLesson(one("Lbc", status="started"), ("c", "b"), True, ("a", "b")),
        PlannedLesson(one("Ld", 5), ("d",), False, ("b", "c", "x"))),
        uncovered=("z", "x"), concepts=7, mastered=2)
    path = to_path("concept:d", plan)
    assert [s.lesson_id for s in path.steps] == ["La", "Lbc", "Ld"]
    # b is taught by the same step; x by no step (mastered or uncovered).
    assert [s.blocked_by for s in path.steps] == [[], ["a"], ["b", "c"]]
    assert [s.status for s in path.steps] == ["todo", "started", "todo"]
    assert path.steps[1].concepts == ["b", "c"]
    assert path.steps[2].estimated_minutes == 5
    assert not path.steps[2].required
    assert (path.uncovered, path.concepts, path.mastered) == (["x", "z"], 7, 2)


def test_a_completed_step_blocks_the_steps_needing_it_but_waits_for_none() -> None:
    """A completed lesson whose concept is not mastered stays on the path, named in the
    `blocked_by` of the steps needing it; in the order it waits for nothing and holds nothing
    back (its quiz or reviews will show what was learned, not reading it again)."""
    # c requires b requires a; the learner completed La and Lc (neither mastered). The store
    # put Lc before Lb, which it needs: a completed step keeps its place.
    plan = PathPlan(goals=("c",), lessons=(
        PlannedLesson(one("La", status="completed"), ("a",), True),
        PlannedLesson(one("Lc", status="completed"), ("c",), True, ("b",)),
        PlannedLesson(one("Lb", position=1), ("b",), True, ("a",))),
        loose=(LessonInfo(id="intro", title="intro", course_id="c", minutes=5, position=0),),
        concepts=4, mastered=1)
    path = to_path("course:c", plan)
    assert [(s.lesson_id, s.status, s.blocked_by) for s in path.steps] == [
        ("La", "completed", []), ("Lc", "completed", ["b"]), ("intro", "todo", []),
        ("Lb", "todo", ["a"])]
    taught = {c for s in path.steps for c in s.concepts}
    assert path.concepts == path.mastered + len(taught) + len(path.uncovered)


def test_a_course_s_lessons_teaching_nothing_sit_by_their_place_in_it() -> None:
    def at(lesson_id: str, position: int, course: str = "py") -> LessonInfo:
        return LessonInfo(id=lesson_id, title=lesson_id, course_id=course, minutes=5,
                          position=position)

    plan = PathPlan(goals=("b",), lessons=(
        PlannedLesson(at("La", 1), ("a",), True), PlannedLesson(at("Lx", 0, "base"), ("x",), True),
        PlannedLesson(at("Lb", 4), ("b",), True, ("a",))),
        loose=(at("intro", 0), at("recap", 2), at("wrap", 3), at("outro", 9)))
    path = to_path("course:py", plan)
    assert [s.lesson_id for s in path.steps] == ["intro", "La", "Lx", "recap", "wrap", "Lb",
                                                 "outro"]
    assert [s.required for s in path.steps] == [True] * 7
    assert path.steps[0].concepts == path.steps[0].blocked_by == []
    alone = to_path("course:py", PathPlan(goals=(), loose=(at("intro", 0),)))
    assert [s.lesson_id for s in alone.steps] == ["intro"]


def test_the_concept_order_puts_prerequisites_first() -> None:
    rng = random.Random(5)
    for _ in range(20):
        n = rng.randint(2, 40)
        prereqs = {f"c{i}": [f"c{j}" for j in rng.sample(range(i), k=min(i, rng.randint(0, 3)))]
                   for i in range(n)}
        sub = Subgraph(goals=(f"c{n - 1}",), concepts={
            c: ConceptInfo(id=c, prerequisites=tuple((p, "required") for p in ps))
            for c, ps in prereqs.items()})
        order = concept_order(sub)
        assert sorted(order) == sorted(prereqs)
        for c, ps in prereqs.items():
            assert all(order.index(p) < order.index(c) for p in ps)


def test_cycles_are_named_from_the_new_edge() -> None:
    edges = [("b", "a"), ("c", "b"), ("d", "c")]
    assert find_cycle(edges, ("a", "d")) == ["a", "d", "c", "b", "a"]
    assert find_cycle(edges, ("a", "x")) is None
    assert find_cycle(edges, ("a", "a")) == ["a", "a"]
    assert first_cycle([Edge(concept=c, requires=r) for c, r in edges]) is None
    cycle = first_cycle([Edge(concept=c, requires=r) for c, r in [*edges, ("a", "c")]])
    assert cycle is not None
    assert cycle[0] == cycle[-1]
    assert set(cycle) == {"a", "b", "c"}


def test_a_self_edge_is_refused_by_the_model() -> None:
    import pydantic
    import pytest

    with pytest.raises(pydantic.ValidationError, match="cannot require itself"):
        Edge(concept="a", requires="a")
