"""Placement: a binary search over the goal's prerequisites that ends within ⌈log2 n⌉ + 2
questions and skips what the learner knows."""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime

import pytest

from bloop.platform.learning import placement
from bloop.platform.learning.model import Placement, PlacementAnswer

AT = datetime(2025, 1, 1, tzinfo=UTC)


def run(order: list[str], prereqs: dict[str, list[str]], knows: set[str]) -> Placement:
    p = placement.start("p", "u", "concept:x", order, prereqs, AT)
    while not p.done:
        assert p.question is not None
        p = placement.answer(p, PlacementAnswer(concept=p.question, correct=p.question in knows))
    return p


def chain(n: int) -> tuple[list[str], dict[str, list[str]]]:
    order = [f"c{i}" for i in range(n)]
    return order, {c: ([order[i - 1]] if i else []) for i, c in enumerate(order)}


@pytest.mark.parametrize("n", [1, 2, 3, 5, 8, 16, 17, 31, 64, 100])
def test_on_a_chain_every_level_is_found_within_the_bound(n: int) -> None:
    order, prereqs = chain(n)
    for level in range(n + 1):  # the learner knows the first `level` concepts
        knows = set(order[:level])
        p = run(order, prereqs, knows)
        assert set(p.known) == knows
        assert set(p.unknown) == set(order) - knows
        assert len(p.answers) <= math.ceil(math.log2(n)) + 2
        assert len(p.answers) <= math.ceil(math.log2(n + 1))


def test_on_a_wider_graph_it_stops_at_the_bound_and_stays_on_the_safe_side() -> None:
    rng = random.Random(2)
    for _ in range(50):
        n = rng.randint(2, 60)
        order = [f"c{i}" for i in range(n)]
        prereqs = {c: [order[j] for j in rng.sample(range(i), k=min(i, rng.randint(0, 2)))]
                   for i, c in enumerate(order)}
        # What a learner knows is closed under prerequisites.
        knows: set[str] = set()
        for c in order:
            if rng.random() < 0.5 and all(p in knows for p in prereqs[c]):
                knows.add(c)
        p = run(order, prereqs, knows)
        assert len(p.answers) <= math.ceil(math.log2(n)) + 2
        assert set(p.known) <= knows  # never claims knowledge the learner lacks
        assert set(p.known) | set(p.unknown) == set(order)


@pytest.mark.parametrize("n", [2, 5, 9, 40])
def test_concepts_that_settle_nothing_else_are_asked_up_to_the_bound(n: int) -> None:
    """Without prerequisites each answer settles one concept: the diagnostic asks all the
    questions it may, then counts the rest as unknown."""
    order = [f"c{i}" for i in range(n)]
    p = run(order, {c: [] for c in order}, set(order))
    asked = min(n, math.ceil(math.log2(n)) + 2)
    assert len(p.answers) == asked
    assert len(p.known) == asked
    assert len(p.unknown) == n - asked


def test_the_first_question_is_in_the_middle_and_a_wrong_answer_is_refused() -> None:
    order, prereqs = chain(7)
    p = placement.start("p", "u", "g", order, prereqs, AT)
    assert p.question == "c3"
    with pytest.raises(placement.WrongQuestion):
        placement.answer(p, PlacementAnswer(concept="c0", correct=True))
    p = placement.answer(p, PlacementAnswer(concept="c3", correct=True))
    assert p.known == ["c0", "c1", "c2", "c3"]
    assert p.question == "c5"


def test_an_empty_goal_needs_no_question() -> None:
    p = placement.start("p", "u", "g", [], {}, AT)
    assert p.done
    assert p.question is None
