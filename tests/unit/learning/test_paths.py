"""Paths over a subgraph: prerequisites first, shorter lessons and required edges preferred,
mastered and completed work left out; cycles named."""

from __future__ import annotations

import random

from bloop.platform.learning.model import Edge
from bloop.platform.learning.paths import (
    ConceptInfo,
    LessonInfo,
    Subgraph,
    compute_path,
    concept_order,
    find_cycle,
    first_cycle,
)


def graph(edges: dict[str, list[tuple[str, str]]], lessons: dict[str, list[LessonInfo]],
          goals: tuple[str, ...], mastered: frozenset[str] = frozenset()) -> Subgraph:
    ids = set(edges) | {p for ps in edges.values() for p, _ in ps} | set(lessons)
    return Subgraph(goals=goals, concepts={
        c: ConceptInfo(id=c, prerequisites=tuple(edges.get(c, [])),
                       lessons=tuple(lessons.get(c, [])), mastered=c in mastered) for c in ids})


def one(lid: str, minutes: int = 10, position: int = 0, status: str | None = None) -> LessonInfo:
    return LessonInfo(id=lid, title=lid, course_id="c", minutes=minutes, position=position,
                      status=status)


def test_prerequisites_come_first() -> None:
    sub = graph({"d": [("b", "required"), ("c", "required")], "b": [("a", "required")],
                 "c": [("a", "required")]},
                {x: [one(f"L{x}")] for x in "abcd"}, ("d",))
    path = compute_path("concept:d", sub)
    order = [s.lesson_id for s in path.steps]
    assert order[0] == "La"
    assert order[-1] == "Ld"
    assert set(order[1:3]) == {"Lb", "Lc"}
    assert path.steps[0].blocked_by == []
    assert path.steps[-1].blocked_by == ["b", "c"]


def test_shorter_lessons_and_required_edges_go_first_among_the_ready() -> None:
    sub = graph({"goal": [("long", "required"), ("short", "required"), ("soft", "recommended")]},
                {"goal": [one("Lgoal")], "long": [one("Llong", 30)],
                 "short": [one("Lshort", 5)], "soft": [one("Lsoft", 1)]}, ("goal",))
    path = compute_path("g", sub)
    assert [s.lesson_id for s in path.steps] == ["Lshort", "Llong", "Lsoft", "Lgoal"]
    assert [s.required for s in path.steps] == [True, True, False, True]


def test_the_shortest_lesson_not_yet_completed_teaches_a_concept() -> None:
    sub = graph({"b": [("a", "required")]},
                {"a": [one("La-long", 20), one("La-short", 5, status="completed"),
                       one("La-mid", 10)], "b": [one("Lb", status="started")]}, ("b",))
    path = compute_path("g", sub)
    assert [s.lesson_id for s in path.steps] == ["La-mid", "Lb"]
    assert path.steps[1].status == "started"


def test_mastered_concepts_leave_the_path_and_uncovered_ones_are_named() -> None:
    sub = graph({"c": [("b", "required")], "b": [("a", "required")]},
                {"a": [one("La")], "c": [one("Lc")]}, ("c",), mastered=frozenset({"a"}))
    path = compute_path("g", sub)
    assert [s.lesson_id for s in path.steps] == ["Lc"]
    assert path.uncovered == ["b"]
    assert (path.concepts, path.mastered) == (3, 1)


def test_a_lesson_teaching_two_concepts_comes_once_after_both_prerequisites() -> None:
    sub = graph({"x": [("a", "required")], "y": [("b", "required")]},
                {"a": [one("La")], "b": [one("Lb")], "x": [one("Lxy")], "y": [one("Lxy")]},
                ("x", "y"))
    order = [s.lesson_id for s in compute_path("g", sub).steps]
    assert order.index("Lxy") == 2
    assert sorted(order) == ["La", "Lb", "Lxy"]


def test_random_graphs_always_order_prerequisites_first() -> None:
    rng = random.Random(5)
    for _ in range(30):
        n = rng.randint(2, 40)
        edges: dict[str, list[tuple[str, str]]] = {}
        for i in range(1, n):
            for j in rng.sample(range(i), k=min(i, rng.randint(0, 3))):
                edges.setdefault(f"c{i}", []).append((f"c{j}", rng.choice(["required", "recommended"])))
        lessons = {f"c{i}": [one(f"L{i}", rng.randint(1, 30))] for i in range(n)}
        sub = graph(edges, lessons, (f"c{n - 1}",))
        place = {s.lesson_id: k for k, s in enumerate(compute_path("g", sub).steps)}
        for c, prereqs in edges.items():
            for p, _ in prereqs:
                assert place[f"L{p[1:]}"] < place[f"L{c[1:]}"]
        order = concept_order(sub)
        assert len(order) == len(sub.concepts)


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
