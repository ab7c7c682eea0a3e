"""Paths through the prerequisite graph: what the stores answer and the pure functions around it.

A learner's path is computed by the store in one query (see `stores/neo4j.py`): the goal's
prerequisite closure minus what the learner mastered, each concept's shortest lesson, ordered by
the concepts' `rank`. A concept's rank is the length of its longest prerequisite chain (0 without
prerequisites), so it is strictly greater than each prerequisite's: ordering by rank puts every
prerequisite first. Stores keep ranks in the transaction that changes an edge (`ranks` computes
them for a whole graph on import). `Subgraph` is the closure as data, which placement walks.
"""

from __future__ import annotations

import heapq
from collections import defaultdict, deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from bloop.platform.learning.model import Edge, LearningPath, PathStep


@dataclass(frozen=True)
class LessonInfo:
    id: str
    title: str
    course_id: str
    minutes: int
    position: int
    status: str | None = None  # the learner's progress: None, "started" or "completed"


@dataclass(frozen=True)
class ConceptInfo:
    id: str
    prerequisites: tuple[tuple[str, str], ...] = ()  # (concept id, edge kind)
    lessons: tuple[LessonInfo, ...] = ()
    mastered: bool = False


@dataclass(frozen=True)
class Subgraph:
    """A goal's prerequisite closure (the goal concepts included), as the store read it."""

    goals: tuple[str, ...]
    concepts: Mapping[str, ConceptInfo] = field(default_factory=dict)


@dataclass(frozen=True)
class PlannedLesson:
    """One step of a path as the store ordered it."""

    lesson: LessonInfo
    concepts: tuple[str, ...]  # the unmastered concepts of the closure it teaches
    required: bool  # one of them is reached from the goal through required edges only
    prerequisites: tuple[str, ...] = ()  # the required prerequisites of those concepts


@dataclass(frozen=True)
class PathPlan:
    goals: tuple[str, ...]
    lessons: tuple[PlannedLesson, ...] = ()  # in the order to take them
    uncovered: tuple[str, ...] = ()  # unmastered concepts of the closure that no lesson teaches
    concepts: int = 0  # concepts in the closure
    mastered: int = 0  # of them, those the learner mastered
    loose: tuple[LessonInfo, ...] = ()  # the course's lessons teaching no concept, by place


def to_path(goal: str, plan: PathPlan) -> LearningPath:
    """The store's plan as the API shows it; a step is blocked by the prerequisites taught by
    another step of the same path, a completed one's included. A lesson comes after the lessons
    teaching what it needs: the stores order lessons by their deepest concept, which can put a
    lesson teaching a shallow and a deep concept after one that needs its shallow one. A
    completed step (read, but what it teaches is not mastered) waits for none and holds none
    back: it keeps the place the store gave it."""
    lesson_of = {c: p.lesson.id for p in plan.lessons for c in p.concepts}
    steps = [PathStep(
        lesson_id=p.lesson.id, title=p.lesson.title, course_id=p.lesson.course_id,
        estimated_minutes=p.lesson.minutes, concepts=sorted(p.concepts), required=p.required,
        status=_status(p.lesson),
        blocked_by=sorted({c for c in p.prerequisites
                           if lesson_of.get(c, p.lesson.id) != p.lesson.id}))
        for p in plan.lessons]
    place = {step.lesson_id: i for i, step in enumerate(steps)}
    waiting = {s.lesson_id for s in steps if s.status != "completed"}
    needs = {step.lesson_id: {lesson_of[c] for c in step.blocked_by} & waiting
             if step.lesson_id in waiting else set() for step in steps}
    order = _topological(set(place), needs, place.__getitem__)
    steps = _with_loose([steps[place[lesson_id]] for lesson_id in order],
                        {p.lesson.id: p.lesson.position for p in plan.lessons}, plan.loose)
    return LearningPath(goal=goal, steps=steps, uncovered=sorted(plan.uncovered),
                        concepts=plan.concepts, mastered=plan.mastered)


def _status(lesson: LessonInfo) -> Literal["todo", "started", "completed"]:
    match lesson.status:
        case "started":
            return "started"
        case "completed":
            return "completed"
    return "todo"


def _with_loose(steps: list[PathStep], positions: Mapping[str, int],
                loose: Sequence[LessonInfo]) -> list[PathStep]:
    """`steps` with the course's lessons that teach no concept (an introduction, a summing-up)
    among them: each before the first step of its course that comes later in the course, or
    at the end. Nothing is learned or mastered from them, so nothing skips them."""
    out = list(steps)
    for lesson in reversed(loose):
        at = next((i for i, s in enumerate(out) if s.course_id == lesson.course_id
                   and positions.get(s.lesson_id, -1) > lesson.position), len(out))
        out.insert(at, PathStep(
            lesson_id=lesson.id, title=lesson.title, course_id=lesson.course_id,
            estimated_minutes=lesson.minutes, concepts=[], required=True,
            status=_status(lesson), blocked_by=[]))
        positions = {**positions, lesson.id: lesson.position}
    return out


def ranks(edges: Iterable[tuple[str, str]]) -> dict[str, int]:
    """Each concept named by `edges` (concept, requires) with the length of its longest
    prerequisite chain; linear in the edges. The edges must form no cycle."""
    out: dict[str, list[str]] = defaultdict(list)
    into: dict[str, int] = defaultdict(int)
    nodes: set[str] = set()
    for c, r in edges:
        out[r].append(c)
        into[c] += 1
        nodes |= {c, r}
    rank = dict.fromkeys(nodes, 0)
    todo = deque(n for n in nodes if into[n] == 0)
    while todo:
        n = todo.popleft()
        for d in out[n]:
            rank[d] = max(rank[d], rank[n] + 1)
            into[d] -= 1
            if into[d] == 0:
                todo.append(d)
    return rank


def _topological(units: set[str], deps: Mapping[str, set[str]],
                 key: Callable[[str], Any]) -> list[str]:
    """Kahn's algorithm, taking the smallest `key` among the ready units. Should the units form
    a cycle (the stores refuse them, so only in data from elsewhere), the unit with the fewest
    unmet prerequisites goes next, so every unit is placed once."""
    waiting = {u: len(deps.get(u, ())) for u in units}
    dependants: dict[str, list[str]] = defaultdict(list)
    for u, ds in deps.items():
        for d in ds:
            dependants[d].append(u)
    ready = [(key(u), u) for u, n in waiting.items() if n == 0]
    heapq.heapify(ready)
    order: list[str] = []
    placed: set[str] = set()
    while len(order) < len(units):
        if not ready:
            stuck = min((u for u in units if u not in placed), key=lambda u: (waiting[u], key(u)))
            heapq.heappush(ready, (key(stuck), stuck))
        _, u = heapq.heappop(ready)
        if u in placed:
            continue
        placed.add(u)
        order.append(u)
        for d in dependants[u]:
            waiting[d] -= 1
            if waiting[d] == 0 and d not in placed:
                heapq.heappush(ready, (key(d), d))
    return order


def concept_order(sub: Subgraph) -> list[str]:
    """Every concept of the subgraph, prerequisites first (ties by id)."""
    deps = {cid: {p for p, _ in c.prerequisites if p in sub.concepts}
            for cid, c in sub.concepts.items()}
    return _topological(set(sub.concepts), deps, lambda u: u)


def find_cycle(edges: Iterable[tuple[str, str]], new: tuple[str, str]) -> list[str] | None:
    """The cycle adding `new` (concept, requires) to `edges` would close, named from the new
    edge's concept back to it (`[a, b, c, a]`: a requires b requires c requires a); None when
    it closes none. A self-edge is a cycle of one."""
    concept, requires = new
    if concept == requires:
        return [concept, concept]
    out: dict[str, list[str]] = defaultdict(list)
    for c, r in edges:
        out[c].append(r)
    # Breadth-first from `requires` towards its prerequisites: reaching `concept` closes a cycle.
    parent: dict[str, str | None] = {requires: None}
    todo = deque([requires])
    while todo:
        node = todo.popleft()
        if node == concept:
            chain: list[str] = []
            at: str | None = node
            while at is not None:
                chain.append(at)
                at = parent[at]
            return [concept, *reversed(chain)]
        for nxt in sorted(out[node]):
            if nxt not in parent:
                parent[nxt] = node
                todo.append(nxt)
    return None


def first_cycle(edges: Sequence[Edge]) -> list[str] | None:
    """A cycle among `edges` (`[a, b, a]`: a requires b requires a); None when they form a DAG.
    Depth-first, linear in the number of edges."""
    out: dict[str, list[str]] = defaultdict(list)
    for e in edges:
        out[e.concept].append(e.requires)
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    for root in sorted(out):
        if root in state:
            continue
        path = [root]
        state[root] = 1
        stack = [iter(sorted(out[root]))]
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:
                state[path.pop()] = 2
                stack.pop()
                continue
            seen = state.get(nxt)
            if seen == 1:
                return [*path[path.index(nxt):], nxt]
            if seen is None:
                state[nxt] = 1
                path.append(nxt)
                stack.append(iter(sorted(out[nxt])))
    return None
