"""Paths through the prerequisite graph, as pure functions over the subgraph a store returns.

The store answers one query per path: the goal's prerequisite closure with, for each concept, its
direct prerequisites, the lessons that teach it and the learner's mastery and progress (one round
trip, see `stores/neo4j.py`). Ordering that subgraph here is a topological sort with a priority
queue (Kahn's algorithm), linear in its size: a Cypher `ORDER BY` on a per-node depth would need
the longest distance of every node, which Cypher cannot compute without enumerating paths.
"""

from __future__ import annotations

import heapq
from collections import defaultdict, deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

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


def required_closure(sub: Subgraph) -> set[str]:
    """The concepts the goals reach through required edges only."""
    seen = {g for g in sub.goals if g in sub.concepts}
    todo = deque(seen)
    while todo:
        c = sub.concepts[todo.popleft()]
        for p, kind in c.prerequisites:
            if kind == "required" and p not in seen and p in sub.concepts:
                seen.add(p)
                todo.append(p)
    return seen


def _lesson_key(lesson: LessonInfo) -> tuple[bool, int, int, str]:
    return (lesson.status == "completed", lesson.minutes, lesson.position, lesson.id)


def compute_path(goal: str, sub: Subgraph) -> LearningPath:
    """The lessons to take towards `goal`: one per unmastered concept of the closure (the
    shortest of those teaching it that the learner has not completed), ordered so that every
    prerequisite's lesson comes first; among lessons ready at the same time, those on required
    edges first, then shorter, then by their place in their course."""
    pending = {cid: c for cid, c in sub.concepts.items() if not c.mastered}
    required = required_closure(sub)
    unit_of: dict[str, str] = {}
    lessons: dict[str, LessonInfo] = {}
    taught: dict[str, list[str]] = defaultdict(list)
    uncovered: list[str] = []
    for cid in sorted(pending):
        options = sorted(pending[cid].lessons, key=_lesson_key)
        if options and options[0].status != "completed":
            lesson = options[0]
            unit_of[cid] = lesson.id
            lessons[lesson.id] = lesson
            taught[lesson.id].append(cid)
        else:
            # Taught by no lesson yet, or only by lessons already completed: nothing to take,
            # but it still orders what depends on it.
            unit_of[cid] = "~" + cid
            if not options:
                uncovered.append(cid)
    deps: dict[str, set[str]] = defaultdict(set)
    for cid in pending:
        for p, _ in pending[cid].prerequisites:
            if p in pending and unit_of[p] != unit_of[cid]:
                deps[unit_of[cid]].add(unit_of[p])

    def key(unit: str) -> tuple[bool, int, int, str]:
        concepts = taught[unit] if unit in lessons else [unit[1:]]
        is_required = any(c in required for c in concepts)
        lesson = lessons.get(unit)
        return (not is_required, lesson.minutes if lesson else 0,
                lesson.position if lesson else 0, unit)

    order = _topological(set(unit_of.values()), deps, key)
    blockers: dict[str, list[str]] = {}
    for unit in order:
        if unit not in lessons:
            continue
        blocked = sorted({p for c in taught[unit] for p, kind in pending[c].prerequisites
                          if kind == "required" and p in pending and unit_of[p] in lessons
                          and unit_of[p] != unit})
        blockers[unit] = blocked
    steps = [PathStep(lesson_id=u, title=lessons[u].title, course_id=lessons[u].course_id,
                      estimated_minutes=lessons[u].minutes, concepts=sorted(taught[u]),
                      required=any(c in required for c in taught[u]),
                      status="started" if lessons[u].status == "started" else "todo",
                      blocked_by=blockers[u])
             for u in order if u in lessons]
    mastered = sum(1 for c in sub.concepts.values() if c.mastered)
    return LearningPath(goal=goal, steps=steps, uncovered=uncovered,
                        concepts=len(sub.concepts), mastered=mastered)


def _topological(units: set[str], deps: Mapping[str, set[str]],
                 key: Callable[[str], Any]) -> list[str]:
    """Kahn's algorithm, taking the smallest `key` among the ready units. Should the units form
    a cycle (two lessons each teaching a prerequisite of the other), the unit with the fewest
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
