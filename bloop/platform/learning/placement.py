"""Placement: a short diagnostic that finds how far along a goal's prerequisites a learner is.

The goal's closure is laid out prerequisites first. Each question asks about the middle one of
the concepts not yet settled; knowing it settles its prerequisites as known too, not knowing it
settles what depends on it as unknown. On a chain of n concepts that halves what is unsettled at
each answer, a binary search: at most ceil(log2(n + 1)) questions. On a wider graph an answer
may settle less, so the diagnostic also stops after ceil(log2(n)) + 2 questions and counts what
is still unsettled as unknown (to be learnt: the safe side).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping
from datetime import datetime

from bloop.platform.learning.model import Placement, PlacementAnswer


class WrongQuestion(ValueError):
    """The answer is not about the concept the placement asked."""


def question_limit(n: int) -> int:
    return 0 if n == 0 else math.ceil(math.log2(n)) + 2 if n > 1 else 1


def start(placement_id: str, learner: str, goal: str, order: list[str],
          prerequisites: Mapping[str, Iterable[str]], at: datetime) -> Placement:
    """A new placement over `order` (the goal's closure, prerequisites first)."""
    started = Placement(
        id=placement_id, learner=learner, goal=goal, order=order,
        prerequisites={c: sorted(set(prerequisites.get(c, ())) & set(order)) for c in order},
        max_questions=question_limit(len(order)), created_at=at)
    return _next(started)


def unsettled(p: Placement) -> list[str]:
    settled = set(p.known) | set(p.unknown)
    return [c for c in p.order if c not in settled]


def _next(p: Placement) -> Placement:
    open_ = unsettled(p)
    if not open_ or len(p.answers) >= p.max_questions:
        return p.model_copy(update={"question": None, "done": True,
                                    "unknown": [*p.unknown, *open_]})
    return p.model_copy(update={"question": open_[(len(open_) - 1) // 2]})


def _reach(start: str, step: Mapping[str, Iterable[str]]) -> set[str]:
    seen = {start}
    todo = [start]
    while todo:
        for nxt in step.get(todo.pop(), ()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def answer(p: Placement, given: PlacementAnswer) -> Placement:
    """Records the answer to the current question and picks the next one (or finishes)."""
    if p.done or given.concept != p.question:
        raise WrongQuestion(f"the placement asks about {p.question!r}, not {given.concept!r}"
                            if not p.done else "the placement is finished")
    settled = set(p.known) | set(p.unknown)
    if given.correct:
        newly = _reach(given.concept, p.prerequisites) - settled
        known, unknown = [*p.known, *[c for c in p.order if c in newly]], p.unknown
    else:
        dependants: dict[str, list[str]] = defaultdict(list)
        for c, prereqs in p.prerequisites.items():
            for q in prereqs:
                dependants[q].append(c)
        newly = _reach(given.concept, dependants) - settled
        known, unknown = p.known, [*p.unknown, *[c for c in p.order if c in newly]]
    return _next(p.model_copy(update={"known": known, "unknown": unknown,
                                      "answers": [*p.answers, given]}))
