"""The Neo4j learning store (official async driver, parameterised Cypher only).

The graph: `(:Concept)-[:REQUIRES {kind}]->(:Concept)` (the left one needs the right one first),
`(:Lesson)-[:TEACHES]->(:Concept)`, `(:Course)`. What a learner does lives in nodes keyed by
(tenant, learner, …): `Enrolment`, `LessonProgress`, `Mastery`, `PathSnapshot`, `Placement`,
`CardSchedule`, `ReviewLog`, and `Learner` (their FSRS parameters and time zone); review cards are
`ReviewCard` nodes (a held one with the `held_lesson` and `held_version` it waits for, an AI one
with the `lesson` it was made from). Every node carries `tenant`, every query filters on it,
and every label has a uniqueness constraint on its key, created at start-up with the indexes
the queries use.

Writes that change edges take the tenant's `(:LearningGraph)` node's write lock first, so two
concurrent edges can never close a cycle together, and keep each concept's `rank` (its longest
prerequisite chain, see `paths.py`) in the same transaction: the concept whose edges changed is
recomputed from its prerequisites and, while ranks change, so are the concepts requiring it.
Version-guarded writes (mastery, schedules) lock the record before they read its version; those
of a learner's schedules that hang on their time zone (reviews, moves to a new zone) lock the
`Learner` node before (storing the zone locks it too) and read the zone after. Events
go to the Neo4j outbox in the same transaction as the change they describe.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, TypeVar

from neo4j import AsyncDriver, AsyncManagedTransaction, Record
from neo4j.exceptions import ConstraintError

from bloop.platform.kit.deadline import store_deadline
from bloop.platform.kit.events.envelope import Envelope
from bloop.platform.kit.events.outbox.neo4j import Neo4jOutbox
from bloop.platform.kit.events.types import EventRegistry
from bloop.platform.kit.pagination import Slice, key_of
from bloop.platform.kit.read_back import STORED
from bloop.platform.kit.stores import neo4j_records
from bloop.platform.kit.times import utc_iso
from bloop.platform.learning.model import (
    BktParams,
    Card,
    CardEdit,
    CardState,
    Concept,
    ConceptDetail,
    ConceptEdit,
    CourseNode,
    Edge,
    Enrolment,
    LearnerSettings,
    LessonNode,
    Mastery,
    Placement,
    Progress,
    ReviewLog,
    ZoneSaved,
)
from bloop.platform.learning.paths import (
    ConceptInfo,
    LessonInfo,
    PathPlan,
    PlannedLesson,
    Subgraph,
    first_cycle,
    ranks,
)
from bloop.platform.learning.ports import (
    CycleFound,
    Duplicate,
    Missing,
    StaleVersion,
    UnknownConcepts,
    described_concept,
    edited_card,
)

T = TypeVar("T")
Tx = AsyncManagedTransaction

KEYS = {
    "Concept": ("tenant", "id"),
    "Lesson": ("tenant", "id"),
    "Course": ("tenant", "id"),
    "LearningGraph": ("tenant",),
    "Learner": ("tenant", "id"),
    "ReviewCard": ("tenant", "id"),
    "Enrolment": ("tenant", "learner", "goal"),
    "LessonProgress": ("tenant", "learner", "lesson"),
    "Mastery": ("tenant", "learner", "concept"),
    "PathSnapshot": ("tenant", "learner", "goal"),
    "Placement": ("tenant", "learner", "id"),
    "CardSchedule": ("tenant", "learner", "card"),
    "ReviewLog": ("tenant", "learner", "id"),
    "ErasedLearner": ("tenant", "id"),
}
INDEXES = {
    "learning_lesson_course": ("Lesson", ("tenant", "course_id")),
    "learning_card_concept": ("ReviewCard", ("tenant", "concept")),
    "learning_card_held": ("ReviewCard", ("tenant", "held_lesson")),
    "learning_card_lesson": ("ReviewCard", ("tenant", "lesson")),
    "learning_schedule_due": ("CardSchedule", ("tenant", "learner", "due")),
    "learning_schedule_card": ("CardSchedule", ("tenant", "card")),
    "learning_mastery_concept": ("Mastery", ("tenant", "concept")),
    "learning_progress_lesson": ("LessonProgress", ("tenant", "lesson")),
    "learning_enrolment_goal": ("Enrolment", ("tenant", "goal")),
}
PER_LEARNER = ("Enrolment", "LessonProgress", "Mastery", "PathSnapshot", "Placement",
               "CardSchedule", "ReviewLog")
for _label in PER_LEARNER:
    INDEXES[f"learning_{_label.lower()}_learner"] = (_label, ("tenant", "learner"))

# The goal's closure by breadth-first expansion (the planner's pruning var-length expand visits
# each concept once, however many paths lead to it), each concept with its prerequisites and the
# lessons teaching it; beside them the learner's mastered concepts and lesson progress, each read
# once through its (tenant, learner) index. One round trip, one row. Edges and TEACHES only ever
# join nodes of one tenant (both ends are matched by tenant when they are made), so the tenant
# filter sits on the anchors and on the closure.
PATH = """
CALL () {
  MATCH (g:Concept {tenant: $tenant}) WHERE g.id IN $concepts RETURN g
  UNION
  MATCH (l:Lesson {tenant: $tenant, course_id: $course})-[:TEACHES]->(g:Concept)
  WHERE NOT l.deleted RETURN g
}
WITH collect(g) AS goals
UNWIND goals AS g
MATCH (g)-[:REQUIRES*0..]->(c)
WHERE c.tenant = $tenant
WITH goals, collect(DISTINCT c) AS closure
UNWIND closure AS c
WITH goals, c,
  COLLECT { MATCH (c)-[r:REQUIRES]->(p) RETURN [p.id, r.kind] } AS prereqs,
  COLLECT { MATCH (l:Lesson)-[:TEACHES]->(c) WHERE NOT l.deleted
            RETURN [l.id, l.title, l.course_id, l.minutes, l.position] } AS lessons
WITH goals, collect([c.id, prereqs, lessons]) AS concepts
RETURN [x IN goals | x.id] AS goals, concepts,
  COLLECT { MATCH (m:Mastery {tenant: $tenant, learner: $learner}) WHERE m.mastered
            RETURN m.concept } AS mastered,
  COLLECT { MATCH (pr:LessonProgress {tenant: $tenant, learner: $learner})
            RETURN [pr.lesson, pr.status] } AS progress
"""


# A learner's path, in one round trip. The closure is read twice by breadth-first expansion
# (the planner's pruning var-length expand visits each concept once): through every edge, and
# through required edges only, which marks the concepts a step is required for. Mastery and
# progress are read per concept and per lesson through their unique (tenant, learner, …)
# indexes. Each unmastered concept takes its shortest lesson the learner has not completed (a
# completed one when it has no other); the lessons come ordered by the deepest rank among the
# concepts they teach, required first, then shorter, then by their place in the course.
PLAN = """
CALL () {
  MATCH (g:Concept {tenant: $tenant}) WHERE g.id IN $concepts RETURN g
  UNION
  MATCH (l:Lesson {tenant: $tenant, course_id: $course})-[:TEACHES]->(g:Concept)
  WHERE NOT l.deleted RETURN g
}
WITH collect(g) AS goals
CALL (goals) {
  CALL (goals) {
    UNWIND goals AS g
    MATCH (g)-[:REQUIRES*0.. {kind: 'required'}]->(c) WHERE c.tenant = $tenant
    RETURN DISTINCT c, 1 AS req
    UNION
    UNWIND goals AS g
    MATCH (g)-[:REQUIRES*0..]->(c) WHERE c.tenant = $tenant
    RETURN DISTINCT c, 0 AS req
  }
  WITH c, max(req) = 1 AS req
  WITH c, req, EXISTS { MATCH (m:Mastery {tenant: $tenant, learner: $learner, concept: c.id})
                        WHERE m.mastered } AS done
  WITH c, req, done, COLLECT {
    MATCH (l:Lesson)-[:TEACHES]->(c) WHERE NOT l.deleted
    OPTIONAL MATCH (pr:LessonProgress {tenant: $tenant, learner: $learner, lesson: l.id})
    RETURN {id: l.id, title: l.title, course: l.course_id, minutes: l.minutes,
            position: l.position, status: pr.status}
    ORDER BY coalesce(pr.status = 'completed', false),
      EXISTS { MATCH (k:Course {tenant: $tenant, id: l.course_id})
               WHERE k.archived AND k.id <> coalesce($course, '') },
      l.minutes, l.position, l.id LIMIT 1
  } AS best
  RETURN count(c) AS concepts, sum(CASE WHEN done THEN 1 ELSE 0 END) AS mastered,
    collect(CASE WHEN NOT done AND size(best) = 0 THEN c.id END) AS uncovered,
    collect(CASE WHEN NOT done AND size(best) > 0 THEN {c: c, req: req, l: best[0]} END)
      AS chosen
}
CALL (chosen) {
  UNWIND chosen AS x
  WITH x.l.id AS lid, collect(x) AS xs
  WITH xs[0].l AS l, [x IN xs | x.c] AS cs, any(x IN xs WHERE x.req) AS req
  WITH l, cs, req,
    reduce(r = 0, x IN cs | CASE WHEN coalesce(x.rank, 0) > r THEN coalesce(x.rank, 0) ELSE r END)
      AS rank,
    COLLECT { UNWIND cs AS x MATCH (x)-[:REQUIRES {kind: 'required'}]->(p)
              RETURN DISTINCT p.id } AS prereqs
  ORDER BY rank, CASE WHEN req THEN 0 ELSE 1 END, l.minutes, l.position, l.id
  RETURN collect([l, [x IN cs | x.id], req, prereqs]) AS steps
}
CALL () {
  WITH $course AS course WHERE course IS NOT NULL
  MATCH (l:Lesson {tenant: $tenant, course_id: course})
  WHERE NOT l.deleted AND NOT EXISTS { (l)-[:TEACHES]->() }
  OPTIONAL MATCH (pr:LessonProgress {tenant: $tenant, learner: $learner, lesson: l.id})
  WITH l, pr WHERE coalesce(pr.status, '') <> 'completed'
  WITH l, pr ORDER BY l.position, l.id
  RETURN collect({id: l.id, title: l.title, minutes: l.minutes, position: l.position,
                  status: pr.status}) AS loose
}
RETURN [g IN goals | g.id] AS goals, steps, uncovered, concepts, mastered, loose
"""

# One round of rank maintenance: the concepts `$ids` recomputed from their prerequisites; those
# whose rank changed answer the concepts requiring them, which the next round recomputes.
RERANK = """
UNWIND $ids AS id
MATCH (x:Concept {tenant: $tenant, id: id})
WITH x, reduce(r = 0, k IN COLLECT { MATCH (x)-[:REQUIRES]->(p) RETURN coalesce(p.rank, 0) }
               | CASE WHEN k + 1 > r THEN k + 1 ELSE r END) AS rank
WHERE coalesce(x.rank, 0) <> rank
SET x.rank = rank
WITH x
OPTIONAL MATCH (d:Concept)-[:REQUIRES]->(x)
RETURN collect(DISTINCT d.id) AS up
"""


def _concept(props: dict[str, Any]) -> Concept:
    return Concept.model_validate(
        {"id": props["id"], "tenant": props["tenant"], "name": props["name"],
         "description": props.get("description") or "",
         "bkt": BktParams.model_validate_json(props["bkt"], context=STORED),
         "version": props.get("version") or 1}, context=STORED)


def _concept_props(c: Concept) -> dict[str, Any]:
    return {"id": c.id, "name": c.name, "description": c.description,
            "bkt": c.bkt.model_dump_json(), "version": c.version}


def _course(props: dict[str, Any]) -> CourseNode:
    return CourseNode.model_validate(
        {"id": props["id"], "tenant": props["tenant"], "title": props["title"],
         "version": props["version"], "lesson_ids": list(props["lesson_ids"]),
         "modules": json.loads(props["modules"]), "archived": bool(props.get("archived")),
         "archived_revision": props.get("archived_revision") or 0}, context=STORED)


def _lesson(props: dict[str, Any]) -> LessonNode:
    return LessonNode.model_validate(
        {"id": props["id"], "tenant": props["tenant"], "course_id": props["course_id"],
         "module_id": props.get("module_id"), "position": props["position"],
         "title": props["title"], "estimated_minutes": props["minutes"],
         "teaches": list(props["teaches"]), "requires": list(props["requires"]),
         "version": props["version"]}, context=STORED)


class Neo4jLearningStore:
    def __init__(self, driver: AsyncDriver, registry: EventRegistry, database: str = "neo4j",
                 outbox_name: str = "learning-outbox", deadline_s: float = 15.0) -> None:
        self.driver, self.database, self.deadline_s = driver, database, deadline_s
        self._outbox = Neo4jOutbox(driver, registry, database=database, name=outbox_name,
                                   deadline_s=deadline_s)

    @property
    def outbox(self) -> Neo4jOutbox:
        return self._outbox

    # The driver waits for a silent server as long as the server's own hint says (120 s by
    # default); operations after setup are bounded by `deadline_s` instead.

    async def _write(self, work: Callable[[Tx], Awaitable[T]]) -> T:
        async with store_deadline("neo4j", self.deadline_s), \
                self.driver.session(database=self.database) as session:
            return await session.execute_write(work)

    async def _execute(self, cypher: str, **params: Any) -> list[Record]:
        return await neo4j_records(self.driver, self.database, self.deadline_s, cypher, params)

    async def _query(self, cypher: str, **params: Any) -> list[dict[str, Any]]:
        records = await neo4j_records(self.driver, self.database, self.deadline_s, cypher,
                                      params, "r")
        return [r.data() for r in records]

    async def setup(self) -> None:
        for label, key in KEYS.items():
            props = ", ".join(f"n.{p}" for p in key)
            await self.driver.execute_query(
                f"CREATE CONSTRAINT learning_{label.lower()}_key IF NOT EXISTS "
                f"FOR (n:{label}) REQUIRE ({props}) IS UNIQUE", database_=self.database)
        for name, (label, key) in INDEXES.items():
            props = ", ".join(f"n.{p}" for p in key)
            await self.driver.execute_query(
                f"CREATE INDEX {name} IF NOT EXISTS FOR (n:{label}) ON ({props})",
                database_=self.database)
        await self._outbox.setup()
        await self._rank_unranked()

    async def _rank_unranked(self) -> None:
        """Ranks the graphs stored before concepts had ranks."""
        rows = await self._query("MATCH (c:Concept)-[:REQUIRES]->() WHERE c.rank IS NULL"
                                 " RETURN DISTINCT c.tenant AS tenant")
        for row in rows:
            async def work(tx: Tx, tenant: str = row["tenant"]) -> None:
                await self._lock_graph(tx, tenant)
                result = await tx.run(
                    "MATCH (c:Concept {tenant: $tenant})-[:REQUIRES]->(p:Concept {tenant: $tenant})"
                    " RETURN c.id AS c, p.id AS p", tenant=tenant)
                await self._rank_all(tx, tenant, [Edge(concept=r["c"], requires=r["p"])
                                                  async for r in result])

            await self._write(work)

    # the graph

    async def add_concept(self, concept: Concept) -> None:
        try:
            await self.driver.execute_query(
                "CREATE (c:Concept {tenant: $tenant}) SET c += $props",
                tenant=concept.tenant, props=_concept_props(concept), database_=self.database)
        except ConstraintError:
            raise Duplicate(concept.id) from None

    @staticmethod
    async def _ensure(tx: Tx, tenant: str, ids: Sequence[str]) -> None:
        placeholders = [_concept_props(Concept.placeholder(tenant, i)) for i in dict.fromkeys(ids)]
        if placeholders:
            await (await tx.run(
                "UNWIND $concepts AS x MERGE (c:Concept {tenant: $tenant, id: x.id})"
                " ON CREATE SET c += x", tenant=tenant, concepts=placeholders)).consume()

    async def ensure_concepts(self, tenant: str, ids: Sequence[str]) -> None:
        async def work(tx: Tx) -> None:
            await self._ensure(tx, tenant, ids)

        await self._write(work)

    async def get_concept(self, tenant: str, concept_id: str) -> ConceptDetail | None:
        rows = await self._query(
            "MATCH (c:Concept {tenant: $tenant, id: $id}) RETURN c {.*} AS c,"
            " COLLECT { MATCH (c)-[r:REQUIRES]->(p:Concept {tenant: $tenant})"
            "           RETURN [p.id, r.kind] ORDER BY p.id } AS out,"
            " COLLECT { MATCH (d:Concept {tenant: $tenant})-[r:REQUIRES]->(c)"
            "           RETURN [d.id, r.kind] ORDER BY d.id } AS into",
            tenant=tenant, id=concept_id)
        if not rows:
            return None
        row = rows[0]
        return ConceptDetail.model_validate(_concept(row["c"]).model_dump() | {
            "requires": [Edge(concept=concept_id, requires=p, kind=k) for p, k in row["out"]],
            "required_by": [Edge(concept=d, requires=concept_id, kind=k)
                            for d, k in row["into"]]}, context=STORED)

    async def list_concepts(self, tenant: str) -> list[Concept]:
        rows = await self._query("MATCH (c:Concept {tenant: $tenant}) RETURN c {.*} AS c"
                                 " ORDER BY c.id", tenant=tenant)
        return [_concept(r["c"]) for r in rows]

    async def page_concepts(self, tenant: str, *, after: str | None = None,
                            limit: int = 100) -> Slice[Concept]:
        (start,) = key_of(after, str) if after else ("",)
        rows = await self._query("MATCH (c:Concept {tenant: $tenant}) WHERE c.id > $start"
                                 " RETURN c {.*} AS c ORDER BY c.id LIMIT $limit",
                                 tenant=tenant, start=start, limit=limit + 1)
        return Slice.of(rows, limit, lambda r: (r["c"]["id"],)).map(lambda r: _concept(r["c"]))

    async def get_concepts(self, tenant: str, ids: Sequence[str]) -> list[Concept]:
        rows = await self._query("MATCH (c:Concept {tenant: $tenant}) WHERE c.id IN $ids"
                                 " RETURN c {.*} AS c ORDER BY c.id", tenant=tenant, ids=list(ids))
        return [_concept(r["c"]) for r in rows]

    async def _change_concept(self, tenant: str, concept_id: str, **props: str) -> None:
        records = await self._execute(
            "MATCH (c:Concept {tenant: $tenant, id: $id}) SET c += $props RETURN count(c) AS n",
            tenant=tenant, id=concept_id, props=props)
        if records[0]["n"] == 0:
            raise Missing(concept_id)

    async def describe_concept(self, tenant: str, concept_id: str, edit: ConceptEdit, *,
                               expected: int | None = None) -> Concept:
        async def work(tx: Tx) -> Concept:
            # Read under the concept's write lock, so an edit or a rename racing this goes first.
            record = await (await tx.run(
                "MATCH (c:Concept {tenant: $tenant, id: $id}) SET c._lock = true REMOVE c._lock"
                " RETURN c {.*} AS c", tenant=tenant, id=concept_id)).single()
            if record is None:
                raise Missing(concept_id)
            concept = described_concept(_concept(record["c"]), edit, expected)
            await (await tx.run(
                "MATCH (c:Concept {tenant: $tenant, id: $id}) SET c += $props",
                tenant=tenant, id=concept_id, props={
                    "name": concept.name, "description": concept.description,
                    "version": concept.version})).consume()
            return concept

        return await self._write(work)

    async def set_bkt(self, tenant: str, concept_id: str, params: BktParams) -> None:
        await self._change_concept(tenant, concept_id, bkt=params.model_dump_json())

    @staticmethod
    async def _lock_graph(tx: Tx, tenant: str) -> None:
        await (await tx.run("MERGE (g:LearningGraph {tenant: $tenant})"
                            " SET g.version = coalesce(g.version, 0) + 1", tenant=tenant)).consume()

    @staticmethod
    async def _unknown(tx: Tx, tenant: str, ids: Sequence[str]) -> list[str]:
        result = await tx.run(
            "UNWIND $ids AS id OPTIONAL MATCH (c:Concept {tenant: $tenant, id: id})"
            " WITH id, c WHERE c IS NULL RETURN collect(DISTINCT id) AS missing",
            tenant=tenant, ids=list(dict.fromkeys(ids)))
        record = await result.single(strict=True)
        return sorted(record["missing"])

    async def add_edge(self, tenant: str, edge: Edge) -> bool:
        async def work(tx: Tx) -> bool:
            await self._lock_graph(tx, tenant)
            unknown = await self._unknown(tx, tenant, [edge.concept, edge.requires])
            if unknown:
                raise UnknownConcepts(unknown)
            ends: dict[str, Any] = {"tenant": tenant, "concept": edge.concept,
                                   "requires": edge.requires}
            updated = await (await tx.run(
                "MATCH (:Concept {tenant: $tenant, id: $concept})-[r:REQUIRES]->"
                "(:Concept {tenant: $tenant, id: $requires}) SET r.kind = $kind"
                " RETURN count(r) AS n", kind=edge.kind, **ends)).single(strict=True)
            if updated["n"]:
                return False
            found = await (await tx.run(
                "MATCH (c:Concept {tenant: $tenant, id: $concept}),"
                " (p:Concept {tenant: $tenant, id: $requires})"
                " MATCH path = shortestPath((p)-[:REQUIRES*]->(c))"
                " RETURN [n IN nodes(path) | n.id] AS ids", **ends)).single()
            if found is not None:
                raise CycleFound([edge.concept, *found["ids"]])
            await (await tx.run(
                "MATCH (c:Concept {tenant: $tenant, id: $concept}),"
                " (p:Concept {tenant: $tenant, id: $requires})"
                " CREATE (c)-[:REQUIRES {kind: $kind}]->(p)", kind=edge.kind, **ends)).consume()
            await self._rerank(tx, tenant, [edge.concept])
            return True

        return await self._write(work)

    async def remove_edge(self, tenant: str, concept: str, requires: str) -> None:
        async def work(tx: Tx) -> None:
            await self._lock_graph(tx, tenant)
            found = await (await tx.run(
                "MATCH (:Concept {tenant: $tenant, id: $concept})-[r:REQUIRES]->"
                "(:Concept {tenant: $tenant, id: $requires}) DELETE r RETURN count(*) AS n",
                tenant=tenant, concept=concept, requires=requires)).single(strict=True)
            if found["n"] == 0:
                raise Missing(f"{concept} → {requires}")
            await self._rerank(tx, tenant, [concept])

        await self._write(work)

    @staticmethod
    async def _rerank(tx: Tx, tenant: str, ids: Sequence[str]) -> None:
        """Brings the ranks of `ids` and of what requires them up to date, one round per level
        of the concepts whose rank changes."""
        todo = list(ids)
        while todo:
            found = await (await tx.run(RERANK, tenant=tenant, ids=todo)).single(strict=True)
            todo = sorted(set(found["up"]))

    @staticmethod
    async def _rank_all(tx: Tx, tenant: str, edges: Sequence[Edge]) -> None:
        """Sets every rank of the tenant from all of its `edges` (at most one write per concept)."""
        rank = ranks((e.concept, e.requires) for e in edges)
        await (await tx.run(
            "MATCH (c:Concept {tenant: $tenant}) WITH c, coalesce($ranks[c.id], 0) AS rank"
            " WHERE c.rank IS NULL OR c.rank <> rank SET c.rank = rank",
            tenant=tenant, ranks=rank)).consume()

    async def list_edges(self, tenant: str) -> list[Edge]:
        rows = await self._query(
            "MATCH (c:Concept {tenant: $tenant})-[r:REQUIRES]->(p:Concept {tenant: $tenant})"
            " RETURN c.id AS c, p.id AS p, r.kind AS k ORDER BY c, p", tenant=tenant)
        return [Edge(concept=r["c"], requires=r["p"], kind=r["k"]) for r in rows]

    async def page_edges(self, tenant: str, *, after: str | None = None,
                         limit: int = 100) -> Slice[Edge]:
        concept, requires = key_of(after, str, str) if after else ("", "")
        rows = await self._query(
            "MATCH (c:Concept {tenant: $tenant})-[r:REQUIRES]->(p:Concept {tenant: $tenant})"
            " WHERE c.id >= $concept AND (c.id > $concept OR p.id > $requires)"
            " RETURN c.id AS c, p.id AS p, r.kind AS k ORDER BY c, p LIMIT $limit",
            tenant=tenant, concept=concept, requires=requires, limit=limit + 1)
        return Slice.of(rows, limit, lambda r: (r["c"], r["p"])).map(
            lambda r: Edge(concept=r["c"], requires=r["p"], kind=r["k"]))

    async def import_graph(self, tenant: str, concepts: Sequence[Concept],
                           edges: Sequence[Edge]) -> None:
        async def work(tx: Tx) -> None:
            await self._lock_graph(tx, tenant)
            await (await tx.run(
                "UNWIND $concepts AS x MERGE (c:Concept {tenant: $tenant, id: x.id})"
                " ON CREATE SET c += x", tenant=tenant,
                concepts=[_concept_props(c) for c in concepts])).consume()
            unknown = await self._unknown(tx, tenant, [i for e in edges for i in (e.concept, e.requires)])
            if unknown:
                raise UnknownConcepts(unknown)
            await (await tx.run(
                "UNWIND $edges AS e MATCH (c:Concept {tenant: $tenant, id: e.concept}),"
                " (p:Concept {tenant: $tenant, id: e.requires})"
                " MERGE (c)-[r:REQUIRES]->(p) SET r.kind = e.kind", tenant=tenant,
                edges=[e.model_dump() for e in edges])).consume()
            result = await tx.run(
                "MATCH (c:Concept {tenant: $tenant})-[r:REQUIRES]->(p:Concept {tenant: $tenant})"
                " RETURN c.id AS c, p.id AS p, r.kind AS k", tenant=tenant)
            every = [Edge(concept=r["c"], requires=r["p"], kind=r["k"]) async for r in result]
            cycle = first_cycle(every)
            if cycle is not None:
                raise CycleFound(cycle)
            await self._rank_all(tx, tenant, every)

        await self._write(work)

    # projections of content

    async def upsert_lesson(self, lesson: LessonNode,
                            concept_names: Mapping[str, str] | None = None) -> bool:
        async def work(tx: Tx) -> bool:
            stored = await (await tx.run(
                "MERGE (l:Lesson {tenant: $tenant, id: $id})"
                " ON CREATE SET l.version = -1, l.deleted = true"
                " SET l.touched = timestamp() RETURN l.version AS v, l.deleted AS deleted",
                tenant=lesson.tenant, id=lesson.id)).single(strict=True)
            if stored["v"] > lesson.version or (stored["deleted"] and stored["v"] >= lesson.version):
                return False
            await self._ensure(tx, lesson.tenant, [*lesson.teaches, *lesson.requires])
            if concept_names:
                await (await tx.run(
                    "UNWIND $names AS n MATCH (c:Concept {tenant: $tenant, id: n[0]})"
                    " WHERE c.name <> n[1] SET c.name = n[1],"
                    " c.version = coalesce(c.version, 1) + 1", tenant=lesson.tenant,
                    names=[[cid, name] for cid, name in concept_names.items()])).consume()
            props = {"course_id": lesson.course_id, "module_id": lesson.module_id,
                     "position": lesson.position, "title": lesson.title,
                     "minutes": lesson.estimated_minutes, "teaches": lesson.teaches,
                     "requires": lesson.requires, "version": lesson.version, "deleted": False}
            await (await tx.run(
                "MATCH (l:Lesson {tenant: $tenant, id: $id}) SET l += $props"
                " WITH l OPTIONAL MATCH (l)-[t:TEACHES]->() DELETE t"
                " WITH DISTINCT l UNWIND $props.teaches AS cid"
                " MATCH (c:Concept {tenant: $tenant, id: cid}) MERGE (l)-[:TEACHES]->(c)",
                tenant=lesson.tenant, id=lesson.id, props=props)).consume()
            return True

        return await self._write(work)

    async def delete_lesson(self, tenant: str, lesson_id: str, version: int) -> bool:
        async def work(tx: Tx) -> bool:
            stored = await (await tx.run(
                "MERGE (l:Lesson {tenant: $tenant, id: $id})"
                " ON CREATE SET l.version = -1, l.course_id = '', l.title = '(deleted)',"
                " l.minutes = 0, l.position = 0, l.teaches = [], l.requires = []"
                " SET l.touched = timestamp() RETURN l.version AS v",
                tenant=tenant, id=lesson_id)).single(strict=True)
            if stored["v"] > version:
                return False
            await (await tx.run(
                "MATCH (l:Lesson {tenant: $tenant, id: $id}) SET l.deleted = true,"
                " l.version = $version WITH l OPTIONAL MATCH (l)-[t:TEACHES]->() DELETE t",
                tenant=tenant, id=lesson_id, version=version)).consume()
            return True

        return await self._write(work)

    async def upsert_course(self, course: CourseNode) -> bool:
        async def work(tx: Tx) -> bool:
            stored = await (await tx.run(
                "MERGE (c:Course {tenant: $tenant, id: $id}) ON CREATE SET c.version = -1"
                " SET c.touched = timestamp() RETURN c.version AS v",
                tenant=course.tenant, id=course.id)).single(strict=True)
            if stored["v"] > course.version:
                return False
            await (await tx.run(
                "MATCH (c:Course {tenant: $tenant, id: $id}) SET c.title = $title,"
                " c.version = $version, c.lesson_ids = $lesson_ids, c.modules = $modules",
                tenant=course.tenant, id=course.id, title=course.title, version=course.version,
                lesson_ids=course.lesson_ids,
                modules=json.dumps([m.model_dump() for m in course.modules]))).consume()
            return True

        return await self._write(work)

    async def archive_course(self, tenant: str, course_id: str, archived: bool,
                             revision: int) -> bool:
        async def work(tx: Tx) -> bool:
            found = await (await tx.run(
                "MATCH (c:Course {tenant: $tenant, id: $id}) WHERE c.version >= 0"
                " AND coalesce(c.archived_revision, 0) <= $revision"
                " SET c.archived = $archived, c.archived_revision = $revision RETURN count(c) AS n",
                tenant=tenant, id=course_id, archived=archived,
                revision=revision)).single(strict=True)
            return bool(found["n"])

        return await self._write(work)

    async def get_course(self, tenant: str, course_id: str) -> CourseNode | None:
        rows = await self._query("MATCH (c:Course {tenant: $tenant, id: $id})"
                                 " WHERE c.version >= 0 RETURN c {.*} AS c",
                                 tenant=tenant, id=course_id)
        return _course(rows[0]["c"]) if rows else None

    async def get_lesson(self, tenant: str, lesson_id: str) -> LessonNode | None:
        rows = await self._query("MATCH (l:Lesson {tenant: $tenant, id: $id}) WHERE NOT l.deleted"
                                 " RETURN l {.*} AS l", tenant=tenant, id=lesson_id)
        return _lesson(rows[0]["l"]) if rows else None

    async def lessons_of_course(self, tenant: str, course_id: str) -> list[LessonNode]:
        rows = await self._query(
            "MATCH (c:Course {tenant: $tenant, id: $id}) WHERE c.version >= 0"
            " UNWIND range(0, size(c.lesson_ids) - 1) AS i"
            " MATCH (l:Lesson {tenant: $tenant, id: c.lesson_ids[i]}) WHERE NOT l.deleted"
            " RETURN l {.*} AS l ORDER BY i", tenant=tenant, id=course_id)
        return [_lesson(r["l"]) for r in rows]

    async def courses_with_lessons(self, tenant: str, course_ids: Sequence[str]
                                   ) -> dict[str, tuple[CourseNode, list[LessonNode]]]:
        rows = await self._query(
            "MATCH (c:Course {tenant: $tenant}) WHERE c.id IN $ids AND c.version >= 0"
            " RETURN c {.*} AS c, COLLECT {"
            "   UNWIND range(0, size(c.lesson_ids) - 1) AS i"
            "   MATCH (l:Lesson {tenant: $tenant, id: c.lesson_ids[i]}) WHERE NOT l.deleted"
            "   WITH l, i ORDER BY i RETURN l {.*} } AS lessons",
            tenant=tenant, ids=list(dict.fromkeys(course_ids)))
        return {r["c"]["id"]: (_course(r["c"]), [_lesson(x) for x in r["lessons"]])
                for r in rows}

    # a learner

    async def enrol(self, tenant: str, enrolment: Enrolment, events: Sequence[Envelope]) -> bool:
        async def work(tx: Tx) -> bool:
            created = await (await tx.run(
                "MERGE (e:Enrolment {tenant: $tenant, learner: $learner, goal: $goal})"
                " ON CREATE SET e.doc = $doc, e.at = $at, e.new = true"
                " WITH e, coalesce(e.new, false) AS new REMOVE e.new RETURN new",
                tenant=tenant, learner=enrolment.learner, goal=enrolment.goal,
                doc=enrolment.model_dump_json(), at=utc_iso(enrolment.enrolled_at),
            )).single(strict=True)
            if not created["new"]:
                return False
            await self._outbox.add(tx, *events)
            return True

        return await self._write(work)

    async def enrolments(self, tenant: str, learner: str) -> list[Enrolment]:
        rows = await self._query(
            "MATCH (e:Enrolment {tenant: $tenant, learner: $learner}) RETURN e.doc AS doc"
            " ORDER BY e.at, e.goal", tenant=tenant, learner=learner)
        return [Enrolment.model_validate_json(r["doc"], context=STORED) for r in rows]

    async def page_enrolments(self, tenant: str, learner: str, *, after: str | None = None,
                              limit: int = 100) -> Slice[Enrolment]:
        at, goal = key_of(after, str, str) if after else ("", "")
        rows = await self._query(
            "MATCH (e:Enrolment {tenant: $tenant, learner: $learner})"
            " WHERE e.at >= $at AND (e.at > $at OR e.goal > $goal)"
            " RETURN e.at AS at, e.goal AS goal, e.doc AS doc ORDER BY e.at, e.goal LIMIT $limit",
            tenant=tenant, learner=learner, at=at, goal=goal, limit=limit + 1)
        return Slice.of(rows, limit, lambda r: (r["at"], r["goal"])).map(
            lambda r: Enrolment.model_validate_json(r["doc"], context=STORED))

    async def unenrol(self, tenant: str, learner: str, goal: str,
                      events: Sequence[Envelope]) -> bool:
        async def work(tx: Tx) -> bool:
            removed = await (await tx.run(
                "MATCH (e:Enrolment {tenant: $tenant, learner: $learner, goal: $goal})"
                " OPTIONAL MATCH (s:PathSnapshot {tenant: $tenant, learner: $learner, goal: $goal})"
                " DETACH DELETE e, s RETURN count(DISTINCT e) AS n",
                tenant=tenant, learner=learner, goal=goal)).single(strict=True)
            if removed["n"] == 0:
                return False
            await self._outbox.add(tx, *events)
            return True

        return await self._write(work)

    async def save_progress(self, tenant: str, learner: str, progress: Progress,
                            events: Sequence[Envelope]) -> None:
        async def work(tx: Tx) -> None:
            # The lock first, then the version read under it; one stored before versions is 1.
            found = await (await tx.run(
                "MERGE (p:LessonProgress {tenant: $tenant, learner: $learner, lesson: $lesson})"
                " ON CREATE SET p.version = 0 SET p.locked = timestamp()"
                " RETURN coalesce(p.version, 1) AS v",
                tenant=tenant, learner=learner, lesson=progress.lesson_id)).single()
            if found is None or found["v"] != progress.version - 1:
                raise StaleVersion(progress.lesson_id)
            await (await tx.run(
                "MATCH (p:LessonProgress {tenant: $tenant, learner: $learner, lesson: $lesson})"
                " SET p.status = $status, p.doc = $doc, p.version = $version",
                tenant=tenant, learner=learner, lesson=progress.lesson_id,
                status=progress.status, doc=progress.model_dump_json(),
                version=progress.version)).consume()
            await self._outbox.add(tx, *events)

        await self._write(work)

    async def get_progress(self, tenant: str, learner: str,
                           lessons: Sequence[str] | None = None) -> list[Progress]:
        rows = await self._query(
            "MATCH (p:LessonProgress {tenant: $tenant, learner: $learner})"
            " WHERE $lessons IS NULL OR p.lesson IN $lessons RETURN p.doc AS doc"
            " ORDER BY p.lesson", tenant=tenant, learner=learner,
            lessons=None if lessons is None else list(lessons))
        return [Progress.model_validate_json(r["doc"], context=STORED) for r in rows]

    async def get_mastery(self, tenant: str, learner: str,
                          concepts: Sequence[str] | None = None) -> list[Mastery]:
        rows = await self._query(
            "MATCH (m:Mastery {tenant: $tenant, learner: $learner})"
            " WHERE $concepts IS NULL OR m.concept IN $concepts"
            " RETURN m.doc AS doc ORDER BY m.concept",
            tenant=tenant, learner=learner,
            concepts=None if concepts is None else list(concepts))
        return [Mastery.model_validate_json(r["doc"], context=STORED) for r in rows]

    async def page_mastery(self, tenant: str, learner: str, *, after: str | None = None,
                           limit: int = 100) -> Slice[Mastery]:
        (start,) = key_of(after, str) if after else ("",)
        rows = await self._query(
            "MATCH (m:Mastery {tenant: $tenant, learner: $learner}) WHERE m.concept > $start"
            " RETURN m.concept AS concept, m.doc AS doc ORDER BY m.concept LIMIT $limit",
            tenant=tenant, learner=learner, start=start, limit=limit + 1)
        return Slice.of(rows, limit, lambda r: (r["concept"],)).map(
            lambda r: Mastery.model_validate_json(r["doc"], context=STORED))

    async def save_mastery(self, tenant: str, learner: str, changes: Sequence[Mastery],
                           events: Sequence[Envelope]) -> None:
        async def work(tx: Tx) -> None:
            result = await tx.run(
                "UNWIND $changes AS x"
                " MERGE (m:Mastery {tenant: $tenant, learner: $learner, concept: x.concept})"
                " ON CREATE SET m.version = 0 SET m.locked = timestamp()"
                " RETURN x.concept AS concept, m.version AS v, x.version AS want",
                tenant=tenant, learner=learner,
                changes=[{"concept": m.concept, "version": m.version} for m in changes])
            async for r in result:
                if r["v"] != r["want"] - 1:
                    raise StaleVersion(r["concept"])
            await (await tx.run(
                "UNWIND $changes AS x"
                " MATCH (m:Mastery {tenant: $tenant, learner: $learner, concept: x.concept})"
                " SET m.version = x.version, m.mastered = x.mastered, m.doc = x.doc",
                tenant=tenant, learner=learner,
                changes=[{"concept": m.concept, "version": m.version, "mastered": m.mastered,
                          "doc": m.model_dump_json()} for m in changes])).consume()
            await self._outbox.add(tx, *events)

        await self._write(work)

    async def mastery_sequences(self, tenant: str, concept: str) -> list[list[int]]:
        rows = await self._query(
            "MATCH (m:Mastery {tenant: $tenant, concept: $concept}) RETURN m.doc AS doc",
            tenant=tenant, concept=concept)
        out = [[a for _, a in Mastery.model_validate_json(r["doc"], context=STORED).observations]
               for r in rows]
        return [s for s in out if s]

    async def path_subgraph(self, tenant: str, learner: str, concepts: Sequence[str],
                            course: str | None = None) -> Subgraph:
        rows = await self._query(PATH, tenant=tenant, learner=learner, concepts=list(concepts),
                                 course=course)
        if not rows:
            return Subgraph(goals=())
        row = rows[0]
        mastered = set(row["mastered"])
        progress = dict(row["progress"])
        return Subgraph(goals=tuple(sorted(set(row["goals"]))), concepts={
            cid: ConceptInfo(
                id=cid, prerequisites=tuple(sorted((p, k) for p, k in prereqs)),
                lessons=tuple(LessonInfo(id=i, title=t, course_id=co, minutes=m, position=pos,
                                         status=progress.get(i))
                              for i, t, co, m, pos in lessons),
                mastered=cid in mastered)
            for cid, prereqs, lessons in row["concepts"]})

    async def learning_path(self, tenant: str, learner: str, concepts: Sequence[str],
                            course: str | None = None) -> PathPlan:
        rows = await self._query(PLAN, tenant=tenant, learner=learner, concepts=list(concepts),
                                 course=course)
        row = rows[0]
        loose = tuple(LessonInfo(id=le["id"], title=le["title"], course_id=course or "",
                                 minutes=le["minutes"], position=le["position"],
                                 status=le["status"]) for le in row["loose"])
        if not row["goals"]:
            return PathPlan(goals=(), loose=loose)
        return PathPlan(loose=loose,
            goals=tuple(sorted(set(row["goals"]))),
            lessons=tuple(PlannedLesson(
                lesson=LessonInfo(id=le["id"], title=le["title"], course_id=le["course"],
                                  minutes=le["minutes"], position=le["position"],
                                  status=le["status"]),
                concepts=tuple(sorted(cs)), required=req, prerequisites=tuple(sorted(ps)))
                for le, cs, req, ps in row["steps"]),
            uncovered=tuple(sorted(row["uncovered"])), concepts=row["concepts"],
            mastered=row["mastered"])

    async def learners_reaching(self, tenant: str, concepts: Sequence[str]) -> list[str]:
        rows = await self._query(
            "MATCH (c:Concept {tenant: $tenant}) WHERE c.id IN $concepts"
            " MATCH (d:Concept)-[:REQUIRES*0..]->(c) WITH DISTINCT d"
            " CALL (d) {"
            "   MATCH (e:Enrolment {tenant: $tenant, goal: 'concept:' + d.id}) RETURN e.learner AS l"
            "   UNION"
            "   MATCH (x:Lesson)-[:TEACHES]->(d) WHERE NOT x.deleted"
            "   MATCH (e:Enrolment {tenant: $tenant, goal: 'course:' + x.course_id})"
            "   RETURN e.learner AS l"
            " } RETURN DISTINCT l ORDER BY l", tenant=tenant, concepts=list(concepts))
        return [r["l"] for r in rows]

    async def learners_enrolled(self, tenant: str, goal: str, *, after: str | None = None,
                                limit: int = 500) -> list[str]:
        rows = await self._query(
            "MATCH (e:Enrolment {tenant: $tenant, goal: $goal}) WHERE e.learner > $after"
            " RETURN e.learner AS l ORDER BY l LIMIT $limit", tenant=tenant, goal=goal,
            after=after or "", limit=limit)
        return [r["l"] for r in rows]

    async def goals_reaching(self, tenant: str, learner: str, concepts: Sequence[str]
                             ) -> list[str]:
        rows = await self._query(
            "MATCH (c:Concept {tenant: $tenant}) WHERE c.id IN $concepts"
            " MATCH (d:Concept)-[:REQUIRES*0..]->(c) WITH DISTINCT d"
            " CALL (d) {"
            "   MATCH (e:Enrolment {tenant: $tenant, learner: $learner, goal: 'concept:' + d.id})"
            "   RETURN e.goal AS g"
            "   UNION"
            "   MATCH (x:Lesson)-[:TEACHES]->(d) WHERE NOT x.deleted"
            "   MATCH (e:Enrolment {tenant: $tenant, learner: $learner,"
            "                       goal: 'course:' + x.course_id})"
            "   RETURN e.goal AS g"
            " } RETURN DISTINCT g ORDER BY g", tenant=tenant, learner=learner,
            concepts=list(concepts))
        return [r["g"] for r in rows]

    async def path_snapshot(self, tenant: str, learner: str, goal: str) -> list[str] | None:
        rows = await self._query(
            "MATCH (s:PathSnapshot {tenant: $tenant, learner: $learner, goal: $goal})"
            " RETURN s.lessons AS lessons", tenant=tenant, learner=learner, goal=goal)
        return list(rows[0]["lessons"]) if rows else None

    async def path_snapshots(self, tenant: str, learner: str,
                             goals: Sequence[str] | None = None) -> dict[str, list[str]]:
        if goals is not None:
            rows = await self._query(
                "UNWIND $goals AS goal"
                " MATCH (s:PathSnapshot {tenant: $tenant, learner: $learner, goal: goal})"
                " RETURN s.goal AS goal, s.lessons AS lessons", tenant=tenant, learner=learner,
                goals=list(dict.fromkeys(goals)))
            return {r["goal"]: list(r["lessons"]) for r in rows}
        rows = await self._query(
            "MATCH (s:PathSnapshot {tenant: $tenant, learner: $learner})"
            " RETURN s.goal AS goal, s.lessons AS lessons", tenant=tenant, learner=learner)
        return {r["goal"]: list(r["lessons"]) for r in rows}

    async def save_path_snapshot(self, tenant: str, learner: str, goal: str,
                                 lesson_ids: Sequence[str], events: Sequence[Envelope], *,
                                 previous: Sequence[str] | None = None) -> bool:
        async def work(tx: Tx) -> None:
            # The snapshot's lock first, then the ids read under it; a refused write rolls back
            # the node it made.
            found = await (await tx.run(
                "MATCH (:Enrolment {tenant: $tenant, learner: $learner, goal: $goal})"
                " MERGE (s:PathSnapshot {tenant: $tenant, learner: $learner, goal: $goal})"
                " ON CREATE SET s.made = true SET s.locked = timestamp()"
                " RETURN CASE WHEN s.made THEN null ELSE s.lessons END AS stored",
                tenant=tenant, learner=learner, goal=goal)).single()
            if found is None or found["stored"] != (None if previous is None else list(previous)):
                raise StaleVersion(goal)
            await (await tx.run(
                "MATCH (s:PathSnapshot {tenant: $tenant, learner: $learner, goal: $goal})"
                " SET s.lessons = $lessons REMOVE s.made", tenant=tenant, learner=learner,
                goal=goal, lessons=list(lesson_ids))).consume()
            await self._outbox.add(tx, *events)

        try:
            await self._write(work)
        except StaleVersion:
            return False
        return True

    async def save_placement(self, tenant: str, placement: Placement) -> None:
        answered = len(placement.answers)

        async def work(tx: Tx) -> None:
            # The lock first, then the count read under it; one stored before counts were kept
            # takes any write, as it did.
            found = await (await tx.run(
                "MERGE (p:Placement {tenant: $tenant, learner: $learner, id: $id})"
                " ON CREATE SET p.answered = -1 SET p.locked = timestamp()"
                " RETURN coalesce(p.answered, $answered - 1) AS n",
                tenant=tenant, learner=placement.learner, id=placement.id,
                answered=answered)).single()
            if found is None or found["n"] != answered - 1:
                raise StaleVersion(placement.id)
            await (await tx.run(
                "MATCH (p:Placement {tenant: $tenant, learner: $learner, id: $id})"
                " SET p.doc = $doc, p.answered = $answered",
                tenant=tenant, learner=placement.learner, id=placement.id,
                doc=placement.model_dump_json(), answered=answered)).consume()

        await self._write(work)

    async def get_placement(self, tenant: str, learner: str, placement_id: str) -> Placement | None:
        rows = await self._query(
            "MATCH (p:Placement {tenant: $tenant, learner: $learner, id: $id}) RETURN p.doc AS doc",
            tenant=tenant, learner=learner, id=placement_id)
        return Placement.model_validate_json(rows[0]["doc"], context=STORED) if rows else None

    async def placements(self, tenant: str, learner: str) -> list[Placement]:
        rows = await self._query(
            "MATCH (p:Placement {tenant: $tenant, learner: $learner}) RETURN p.doc AS doc"
            " ORDER BY p.id", tenant=tenant, learner=learner)
        return [Placement.model_validate_json(r["doc"], context=STORED) for r in rows]

    # review cards

    async def add_card(self, card: Card) -> bool:
        held = card.held_until

        async def work(tx: Tx) -> bool:
            # Read under the card's write lock, so an edit or a retirement racing this goes first.
            stored = await (await tx.run(
                "MATCH (k:ReviewCard {tenant: $tenant, id: $id}) SET k._lock = true"
                " REMOVE k._lock RETURN k.doc AS doc, k.retired IS NULL"
                " AND k.held_lesson IS NOT NULL AS releasable",
                tenant=card.tenant, id=card.id)).single()
            if stored is not None:
                if held is not None or not stored["releasable"]:
                    raise Duplicate(card.id)
                await (await tx.run(
                    "MATCH (k:ReviewCard {tenant: $tenant, id: $id})"
                    " SET k.doc = $doc, k.held_lesson = null, k.held_version = null",
                    tenant=card.tenant, id=card.id, doc=Card.model_validate_json(
                        stored["doc"], context=STORED).released().model_dump_json())).consume()
                return False
            created = await (await tx.run(
                "MATCH (c:Concept {tenant: $tenant, id: $concept})"
                " CREATE (k:ReviewCard {tenant: $tenant, id: $id, concept: $concept, at: $at,"
                " doc: $doc, held_lesson: $held_lesson, held_version: $held_version,"
                " lesson: $lesson})-[:DRILLS]->(c) RETURN count(k) AS n",
                tenant=card.tenant, id=card.id, concept=card.concept,
                at=utc_iso(card.created_at), doc=card.model_dump_json(), lesson=card.lesson_id,
                held_lesson=held and held.lesson_id,
                held_version=held and held.lesson_version)).single(strict=True)
            if created["n"] == 0:
                raise Missing(card.concept)
            return True

        for _ in range(2):  # a card created at the same moment is found the second time
            try:
                return await self._write(work)
            except ConstraintError:
                continue
        raise Duplicate(card.id)

    async def get_card(self, tenant: str, card_id: str, *, held: bool = False) -> Card | None:
        rows = await self._query("MATCH (k:ReviewCard {tenant: $tenant, id: $id})"
                                 " WHERE k.retired IS NULL AND ($held OR k.held_lesson IS NULL)"
                                 " RETURN k.doc AS doc", tenant=tenant, id=card_id, held=held)
        return Card.model_validate_json(rows[0]["doc"], context=STORED) if rows else None

    async def get_cards(self, tenant: str, card_ids: Sequence[str]) -> list[Card]:
        rows = await self._query("MATCH (k:ReviewCard {tenant: $tenant}) WHERE k.id IN $ids"
                                 " AND k.retired IS NULL AND k.held_lesson IS NULL"
                                 " RETURN k.doc AS doc", tenant=tenant, ids=list(card_ids))
        return [Card.model_validate_json(r["doc"], context=STORED) for r in rows]

    async def edit_card(self, tenant: str, card_id: str, edit: CardEdit, at: datetime, *,
                        expected: int | None = None) -> Card | None:
        async def work(tx: Tx) -> Card | None:
            # Read under the card's write lock, so a racing edit or retirement goes first.
            record = await (await tx.run(
                "MATCH (k:ReviewCard {tenant: $tenant, id: $id}) SET k._lock = true REMOVE k._lock"
                " WITH k WHERE k.retired IS NULL RETURN k.doc AS doc",
                tenant=tenant, id=card_id)).single()
            if record is None:
                return None
            card = edited_card(Card.model_validate_json(record["doc"], context=STORED), edit, at, expected)
            await (await tx.run("MATCH (k:ReviewCard {tenant: $tenant, id: $id}) SET k.doc = $doc",
                                tenant=tenant, id=card_id, doc=card.model_dump_json())).consume()
            return card

        return await self._write(work)

    async def retire_card(self, tenant: str, card_id: str) -> bool:
        async def work(tx: Tx) -> bool:
            found = await (await tx.run(
                "MATCH (k:ReviewCard {tenant: $tenant, id: $id}) WHERE k.retired IS NULL"
                " SET k.retired = true RETURN count(k) AS n", tenant=tenant,
                id=card_id)).single(strict=True)
            await (await tx.run(
                "MATCH (s:CardSchedule {tenant: $tenant, card: $id}) DETACH DELETE s",
                tenant=tenant, id=card_id)).consume()
            return bool(found["n"])

        return await self._write(work)

    async def retire_lesson_cards(self, tenant: str, lesson_id: str, limit: int) -> int:
        async def work(tx: Tx) -> int:
            found = await (await tx.run(
                "CALL () {"
                " MATCH (k:ReviewCard {tenant: $tenant, lesson: $lesson}) WHERE k.retired IS NULL"
                " RETURN k UNION ALL"  # and those held before cards kept their lesson
                " MATCH (k:ReviewCard {tenant: $tenant, held_lesson: $lesson})"
                " WHERE k.retired IS NULL AND k.lesson IS NULL RETURN k"
                "} WITH k LIMIT $limit SET k.retired = true RETURN collect(k.id) AS ids",
                tenant=tenant, lesson=lesson_id, limit=limit)).single(strict=True)
            await (await tx.run(
                "MATCH (s:CardSchedule {tenant: $tenant}) WHERE s.card IN $ids DETACH DELETE s",
                tenant=tenant, ids=found["ids"])).consume()
            return len(found["ids"])

        return await self._write(work)

    async def release_cards(self, tenant: str, lesson_id: str, version: int) -> list[str]:
        async def work(tx: Tx) -> list[str]:
            # Read under the cards' write locks, so an edit racing this keeps its text.
            rows = [r.data() async for r in await tx.run(
                "MATCH (k:ReviewCard {tenant: $tenant, held_lesson: $lesson})"
                " WHERE k.held_version = $version SET k._lock = true REMOVE k._lock"
                " RETURN k.id AS id, k.doc AS doc, k.retired IS NOT NULL AS retired",
                tenant=tenant, lesson=lesson_id, version=version)]
            await (await tx.run(
                "UNWIND $cards AS x MATCH (k:ReviewCard {tenant: $tenant, id: x.id})"
                " SET k.doc = x.doc, k.held_lesson = null, k.held_version = null",
                tenant=tenant, cards=[
                    {"id": r["id"],
                     "doc": Card.model_validate_json(r["doc"], context=STORED).released().model_dump_json()}
                    for r in rows])).consume()
            return [r["id"] for r in rows if not r["retired"]]

        return await self._write(work)

    async def cards_of(self, tenant: str, concepts: Sequence[str]) -> list[Card]:
        rows = await self._query(
            "MATCH (k:ReviewCard {tenant: $tenant}) WHERE k.concept IN $concepts"
            " AND k.retired IS NULL AND k.held_lesson IS NULL RETURN k.doc AS doc"
            " ORDER BY k.at, k.id", tenant=tenant, concepts=list(concepts))
        return [Card.model_validate_json(r["doc"], context=STORED) for r in rows]

    async def page_cards(self, tenant: str, concept: str, *, held: bool = False,
                         after: str | None = None, limit: int = 100) -> Slice[Card]:
        at, card = key_of(after, str, str) if after else ("", "")
        rows = await self._query(
            "MATCH (k:ReviewCard {tenant: $tenant, concept: $concept}) WHERE k.retired IS NULL"
            " AND ($held OR k.held_lesson IS NULL) AND k.at >= $at AND (k.at > $at OR k.id > $card)"
            " RETURN k.at AS at, k.id AS id, k.doc AS doc ORDER BY k.at, k.id LIMIT $limit",
            tenant=tenant, concept=concept, held=held, at=at, card=card, limit=limit + 1)
        return Slice.of(rows, limit, lambda r: (r["at"], r["id"])).map(
            lambda r: Card.model_validate_json(r["doc"], context=STORED))

    async def card_states(self, tenant: str, learner: str,
                          card_ids: Sequence[str] | None = None) -> list[CardState]:
        rows = await self._query(
            "MATCH (s:CardSchedule {tenant: $tenant, learner: $learner})"
            " WHERE ($cards IS NULL OR s.card IN $cards) AND s.removed IS NULL"
            " RETURN s.doc AS doc ORDER BY s.due, s.card",
            tenant=tenant, learner=learner, cards=None if card_ids is None else list(card_ids))
        return [CardState.model_validate_json(r["doc"], context=STORED) for r in rows]

    async def taken_out_cards(self, tenant: str, learner: str) -> list[CardState]:
        rows = await self._query(
            "MATCH (s:CardSchedule {tenant: $tenant, learner: $learner}) WHERE s.removed"
            " RETURN s.doc AS doc ORDER BY s.card", tenant=tenant, learner=learner)
        return [CardState.model_validate_json(r["doc"], context=STORED) for r in rows]

    async def keep_in_deck(self, tenant: str, learner: str, card_id: str, kept: bool) -> bool:
        records = await self._execute(
            "MATCH (s:CardSchedule {tenant: $tenant, learner: $learner, card: $card})"
            " WHERE coalesce(s.removed, false) = $kept"
            " SET s.removed = CASE WHEN $kept THEN null ELSE true END RETURN count(s) AS n",
            tenant=tenant, learner=learner, card=card_id, kept=kept)
        return bool(records[0]["n"])

    async def add_card_states(self, tenant: str, learner: str, states: Sequence[CardState]) -> None:
        # The card's write lock orders this after a retirement that is committing, whose
        # deletion of schedules would otherwise miss the one created here.
        await self._execute(
            "UNWIND $states AS x MATCH (k:ReviewCard {tenant: $tenant, id: x.card})"
            " SET k._lock = true REMOVE k._lock"
            " WITH x, k WHERE k.retired IS NULL AND k.held_lesson IS NULL"
            " MERGE (s:CardSchedule {tenant: $tenant, learner: $learner, card: x.card})"
            " ON CREATE SET s.due = x.due, s.version = x.version, s.doc = x.doc",
            tenant=tenant, learner=learner,
            states=[{"card": s.card_id, "due": utc_iso(s.due), "version": s.version,
                     "doc": s.model_dump_json()} for s in states])

    async def learners_who_studied(self, tenant: str,
                                   concepts: Sequence[str]) -> dict[str, list[str]]:
        rows = await self._query(
            "MATCH (c:Concept {tenant: $tenant}) WHERE c.id IN $concepts"
            " MATCH (l:Lesson)-[:TEACHES]->(c) WHERE NOT l.deleted"
            " MATCH (p:LessonProgress {tenant: $tenant, lesson: l.id})"
            " WHERE p.status = 'completed'"
            " RETURN c.id AS concept, collect(DISTINCT p.learner) AS learners",
            tenant=tenant, concepts=list(concepts))
        return {r["concept"]: sorted(r["learners"]) for r in rows}

    async def add_to_decks(self, tenant: str, learners: Sequence[str],
                           states: Sequence[CardState]) -> None:
        # The learners' tombstones are read once, then each card's write lock is taken (in card
        # order) as in `add_card_states`.
        await self._execute(
            "UNWIND $learners AS learner"
            " OPTIONAL MATCH (e:ErasedLearner {tenant: $tenant, id: learner})"
            " WITH collect(CASE WHEN e IS NULL THEN learner END) AS learners"
            " UNWIND $states AS x MATCH (k:ReviewCard {tenant: $tenant, id: x.card})"
            " SET k._lock = true REMOVE k._lock"
            " WITH learners, x, k WHERE k.retired IS NULL AND k.held_lesson IS NULL"
            " UNWIND learners AS learner"
            " MERGE (s:CardSchedule {tenant: $tenant, learner: learner, card: x.card})"
            " ON CREATE SET s.due = x.due, s.version = x.version, s.doc = x.doc",
            tenant=tenant, learners=list(dict.fromkeys(learners)),
            states=[{"card": s.card_id, "due": utc_iso(s.due), "version": s.version,
                     "doc": s.model_dump_json()}
                    for s in sorted(states, key=lambda s: s.card_id)])

    async def due(self, tenant: str, learner: str, at: datetime, limit: int,
                  after: tuple[datetime, str] | None = None) -> list[CardState]:
        since, card = (utc_iso(after[0]), after[1]) if after else ("", "")
        rows = await self._query(
            "MATCH (s:CardSchedule {tenant: $tenant, learner: $learner}) WHERE s.due <= $at"
            " AND (s.due > $since OR (s.due = $since AND s.card > $card))"
            " AND s.removed IS NULL RETURN s.doc AS doc ORDER BY s.due, s.card LIMIT $limit",
            tenant=tenant, learner=learner, at=utc_iso(at), since=since, card=card,
            limit=limit)
        return [CardState.model_validate_json(r["doc"], context=STORED) for r in rows]

    async def save_review(self, tenant: str, learner: str, state: CardState, log: ReviewLog,
                          events: Sequence[Envelope], zone: str | None) -> None:
        # The learner's write lock (their node made if they have none yet, undone with the
        # transaction when the schedule is gone) comes before the zone is read, so a zone stored
        # meanwhile is seen, or waits for this write, and before the schedule's, as in
        # `reschedule_cards`.
        async def work(tx: Tx) -> None:
            found = await (await tx.run(
                "OPTIONAL MATCH (e:ErasedLearner {tenant: $tenant, id: $learner})"
                " WITH e WHERE e IS NULL MERGE (l:Learner {tenant: $tenant, id: $learner})"
                " SET l._lock = true REMOVE l._lock"
                " WITH l MATCH (s:CardSchedule {tenant: $tenant, learner: $learner, card: $card})"
                " WHERE s.removed IS NULL SET s.locked = timestamp()"
                " RETURN s.version AS v, l.zone AS zone",
                tenant=tenant, learner=learner, card=state.card_id)).single()
            if found is None or found["v"] != state.version - 1 or found["zone"] != zone:
                raise StaleVersion(state.card_id)
            await (await tx.run(
                "MATCH (s:CardSchedule {tenant: $tenant, learner: $learner, card: $card})"
                " SET s.due = $due, s.version = $version, s.doc = $doc"
                " CREATE (:ReviewLog {tenant: $tenant, learner: $learner, id: $log_id, at: $at,"
                " doc: $log})",
                tenant=tenant, learner=learner, card=state.card_id, due=utc_iso(state.due),
                version=state.version, doc=state.model_dump_json(), log_id=log.id,
                at=utc_iso(log.reviewed_at), log=log.model_dump_json())).consume()
            await self._outbox.add(tx, *events)

        await self._write(work)

    async def reschedule_cards(self, tenant: str, learner: str, states: Sequence[CardState],
                               zone: str, zone_at: datetime) -> int:
        # The learner's write lock comes before their zone is read (a newer zone's move then
        # reads the schedules after this write), each schedule's (taken in card order) before
        # its version is, so a review committing meanwhile is seen.
        records = await self._execute(
            "MATCH (l:Learner {tenant: $tenant, id: $learner}) SET l._lock = true REMOVE l._lock"
            " WITH l WHERE l.zone = $zone AND l.zone_at = $zone_at"
            " UNWIND $states AS x"
            " MATCH (s:CardSchedule {tenant: $tenant, learner: $learner, card: x.card})"
            " SET s._lock = true REMOVE s._lock WITH s, x WHERE s.version = x.version"
            " SET s.due = x.due, s.doc = x.doc RETURN count(s) AS n",
            tenant=tenant, learner=learner, zone=zone, zone_at=utc_iso(zone_at),
            states=[{"card": s.card_id, "due": utc_iso(s.due), "version": s.version,
                     "doc": s.model_dump_json()}
                    for s in sorted(states, key=lambda s: s.card_id)])
        return int(records[0]["n"])

    async def review_logs(self, tenant: str, learner: str) -> list[ReviewLog]:
        rows = await self._query(
            "MATCH (r:ReviewLog {tenant: $tenant, learner: $learner}) RETURN r.doc AS doc"
            " ORDER BY r.at, r.id", tenant=tenant, learner=learner)
        return [ReviewLog.model_validate_json(r["doc"], context=STORED) for r in rows]

    async def save_scheduler_params(self, tenant: str, learner: str,
                                    parameters: Sequence[float]) -> None:
        await self._execute(
            "MERGE (l:Learner {tenant: $tenant, id: $id}) SET l.fsrs = $p",
            tenant=tenant, id=learner, p=json.dumps(list(parameters)))

    async def save_time_zone(self, tenant: str, learner: str, zone: str,
                             at: datetime) -> ZoneSaved:
        # The learner's write lock comes before the stored zone's time is read, so of two at
        # once the one told later waits and compares with the other's.
        records = await self._execute(
            "OPTIONAL MATCH (e:ErasedLearner {tenant: $tenant, id: $id}) WITH e WHERE e IS NULL"
            " MERGE (l:Learner {tenant: $tenant, id: $id}) SET l._lock = true REMOVE l._lock"
            " WITH l, l.zone = $zone AND l.zone_at = $at AS again,"
            " l.zone_at IS NULL OR l.zone_at < $at AS newer"
            " FOREACH (_ IN CASE WHEN newer THEN [1] ELSE [] END |"
            " SET l.zone = $zone, l.zone_at = $at)"
            " RETURN CASE WHEN newer THEN 'stored' WHEN again THEN 'again' END AS saved",
            tenant=tenant, id=learner, zone=zone, at=utc_iso(at))
        saved = records[0]["saved"] if records else None
        return "stored" if saved == "stored" else "again" if saved == "again" else "refused"

    async def learner_settings(self, tenant: str, learner: str) -> LearnerSettings:
        rows = await self._query(
            "MATCH (l:Learner {tenant: $tenant, id: $id}) RETURN l.fsrs AS p, l.zone AS z",
            tenant=tenant, id=learner)
        if not rows:
            return LearnerSettings()
        p, z = rows[0]["p"], rows[0]["z"]
        return LearnerSettings(parameters=None if p is None else [float(x) for x in json.loads(p)],
                               time_zone=None if z is None else str(z))

    async def erase_learner(self, tenant: str, learner: str) -> None:
        async def work(tx: Tx) -> None:  # the learner's lock before the schedules', as reviews
            await (await tx.run("MATCH (n:Learner {tenant: $tenant, id: $learner}) DETACH DELETE n",
                                tenant=tenant, learner=learner)).consume()
            for label in PER_LEARNER:
                await (await tx.run(
                    f"MATCH (n:{label} {{tenant: $tenant, learner: $learner}}) DETACH DELETE n",
                    tenant=tenant, learner=learner)).consume()
            await (await tx.run("MERGE (:ErasedLearner {tenant: $tenant, id: $learner})",
                                tenant=tenant, learner=learner)).consume()

        await self._write(work)

    async def is_erased(self, tenant: str, learner: str) -> bool:
        rows = await self._query(
            "MATCH (e:ErasedLearner {tenant: $tenant, id: $learner}) RETURN count(e) AS n",
            tenant=tenant, learner=learner)
        return bool(rows[0]["n"])

    async def drop_tenant(self, tenant: str) -> None:
        """Deletes every learning node of the tenant (tests and benchmarks clean up with it)."""
        for label in KEYS:
            while True:
                records = await self._execute(
                    f"MATCH (n:{label} {{tenant: $tenant}}) WITH n LIMIT 5000"
                    " DETACH DELETE n RETURN count(*) AS n", tenant=tenant)
                if records[0]["n"] == 0:
                    break
