"""The embedded learning store: SQLite, with the outbox in the same database. Each change and
its events are written in one transaction; SQLite runs one writer at a time, so a cycle check
and the edge it admits are one atomic step. Closures are recursive queries. Concepts keep their
`rank` (see `paths.py`) in the transaction that changes an edge, and a learner's path is one
query ordering by it, as the Neo4j store's does."""

from __future__ import annotations

import json
import sqlite3
from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import datetime

from bloop.platform.kit.events.envelope import Envelope
from bloop.platform.kit.events.outbox.sqlite import SqliteOutbox
from bloop.platform.kit.events.types import EventRegistry
from bloop.platform.kit.pagination import Slice, key_of
from bloop.platform.kit.read_back import STORED
from bloop.platform.kit.sqlite import SqliteDB
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
    find_cycle,
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

SCHEMA = """
CREATE TABLE IF NOT EXISTS concepts (
  tenant TEXT NOT NULL, id TEXT NOT NULL, doc TEXT NOT NULL, rank INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (tenant, id));
CREATE TABLE IF NOT EXISTS edges (
  tenant TEXT NOT NULL, concept TEXT NOT NULL, requires TEXT NOT NULL, kind TEXT NOT NULL,
  PRIMARY KEY (tenant, concept, requires));
CREATE INDEX IF NOT EXISTS edges_up ON edges (tenant, requires, concept);
CREATE TABLE IF NOT EXISTS lessons (
  tenant TEXT NOT NULL, id TEXT NOT NULL, course TEXT NOT NULL, version INTEGER NOT NULL,
  deleted INTEGER NOT NULL DEFAULT 0, doc TEXT NOT NULL, PRIMARY KEY (tenant, id));
CREATE INDEX IF NOT EXISTS lessons_course ON lessons (tenant, course);
CREATE TABLE IF NOT EXISTS teaches (
  tenant TEXT NOT NULL, lesson TEXT NOT NULL, concept TEXT NOT NULL,
  PRIMARY KEY (tenant, lesson, concept));
CREATE INDEX IF NOT EXISTS teaches_concept ON teaches (tenant, concept);
CREATE TABLE IF NOT EXISTS courses (
  tenant TEXT NOT NULL, id TEXT NOT NULL, version INTEGER NOT NULL, doc TEXT NOT NULL,
  PRIMARY KEY (tenant, id));
CREATE TABLE IF NOT EXISTS enrolments (
  tenant TEXT NOT NULL, learner TEXT NOT NULL, goal TEXT NOT NULL, at TEXT NOT NULL,
  doc TEXT NOT NULL, PRIMARY KEY (tenant, learner, goal));
CREATE INDEX IF NOT EXISTS enrolments_goal ON enrolments (tenant, goal);
CREATE INDEX IF NOT EXISTS enrolments_at ON enrolments (tenant, learner, at, goal);
CREATE TABLE IF NOT EXISTS progress (
  tenant TEXT NOT NULL, learner TEXT NOT NULL, lesson TEXT NOT NULL, doc TEXT NOT NULL,
  PRIMARY KEY (tenant, learner, lesson));
CREATE INDEX IF NOT EXISTS progress_lesson ON progress (tenant, lesson);
CREATE TABLE IF NOT EXISTS mastery (
  tenant TEXT NOT NULL, learner TEXT NOT NULL, concept TEXT NOT NULL, version INTEGER NOT NULL,
  mastered INTEGER NOT NULL, doc TEXT NOT NULL, PRIMARY KEY (tenant, learner, concept));
CREATE INDEX IF NOT EXISTS mastery_concept ON mastery (tenant, concept);
CREATE TABLE IF NOT EXISTS path_snapshots (
  tenant TEXT NOT NULL, learner TEXT NOT NULL, goal TEXT NOT NULL, lessons TEXT NOT NULL,
  PRIMARY KEY (tenant, learner, goal));
CREATE TABLE IF NOT EXISTS placements (
  tenant TEXT NOT NULL, learner TEXT NOT NULL, id TEXT NOT NULL, doc TEXT NOT NULL,
  PRIMARY KEY (tenant, learner, id));
CREATE TABLE IF NOT EXISTS cards (
  tenant TEXT NOT NULL, id TEXT NOT NULL, concept TEXT NOT NULL, at TEXT NOT NULL,
  doc TEXT NOT NULL, retired INTEGER NOT NULL DEFAULT 0, held_lesson TEXT, held_version INTEGER,
  lesson TEXT, PRIMARY KEY (tenant, id));
CREATE INDEX IF NOT EXISTS cards_concept ON cards (tenant, concept, at);
CREATE TABLE IF NOT EXISTS card_states (
  tenant TEXT NOT NULL, learner TEXT NOT NULL, card TEXT NOT NULL, due TEXT NOT NULL,
  version INTEGER NOT NULL, doc TEXT NOT NULL, removed INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (tenant, learner, card));
CREATE INDEX IF NOT EXISTS card_states_due ON card_states (tenant, learner, due);
CREATE INDEX IF NOT EXISTS card_states_card ON card_states (tenant, card);
CREATE TABLE IF NOT EXISTS review_logs (
  tenant TEXT NOT NULL, learner TEXT NOT NULL, id TEXT NOT NULL, at TEXT NOT NULL,
  doc TEXT NOT NULL, PRIMARY KEY (tenant, learner, id));
CREATE INDEX IF NOT EXISTS review_logs_at ON review_logs (tenant, learner, at);
CREATE TABLE IF NOT EXISTS learners (
  tenant TEXT NOT NULL, id TEXT NOT NULL, fsrs TEXT, zone TEXT, zone_at TEXT,
  PRIMARY KEY (tenant, id));
CREATE TABLE IF NOT EXISTS erased_learners (
  tenant TEXT NOT NULL, id TEXT NOT NULL, PRIMARY KEY (tenant, id));
"""

Conn = sqlite3.Connection

# A learner's path (parameters: goals as JSON, tenant, learner), as `stores/neo4j.py` PLAN: each
# unmastered concept of the closure with its shortest lesson not completed, or a completed one
# when it has no other (`n = 1`), the lessons ordered by the deepest rank among the concepts they
# teach, required first, shorter, by place. `teaches` is read by concept, the closure outside
# (CROSS JOIN keeps that order): left to choose, SQLite read every `teaches` row of the tenant.
PLAN = """
WITH RECURSIVE
  closure(id) AS (SELECT value FROM json_each(:goals) UNION SELECT e.requires FROM edges e
                  JOIN closure x ON e.concept = x.id WHERE e.tenant = :tenant),
  req(id) AS (SELECT value FROM json_each(:goals) UNION SELECT e.requires FROM edges e
              JOIN req x ON e.concept = x.id WHERE e.tenant = :tenant AND e.kind = 'required'),
  concept AS (
    SELECT k.id, k.rank, k.id IN (SELECT id FROM req) AS required,
      EXISTS (SELECT 1 FROM mastery m WHERE m.tenant = :tenant AND m.learner = :learner
              AND m.concept = k.id AND m.mastered = 1) AS done
    FROM concepts k JOIN closure x ON k.id = x.id WHERE k.tenant = :tenant),
  option AS (
    SELECT c.id AS concept, c.rank, c.required, l.id AS lesson,
      json_extract(l.doc, '$.title') AS title, json_extract(l.doc, '$.course_id') AS course,
      json_extract(l.doc, '$.estimated_minutes') AS minutes,
      json_extract(l.doc, '$.position') AS position, json_extract(p.doc, '$.status') AS status,
      row_number() OVER (PARTITION BY c.id ORDER BY
        coalesce(json_extract(p.doc, '$.status') = 'completed', 0),
        EXISTS (SELECT 1 FROM courses k WHERE k.tenant = :tenant AND k.id = l.course
                AND k.id IS NOT :course AND json_extract(k.doc, '$.archived')),
        json_extract(l.doc, '$.estimated_minutes'), json_extract(l.doc, '$.position'), l.id) AS n
    FROM concept c CROSS JOIN teaches t INDEXED BY teaches_concept ON t.tenant = :tenant AND t.concept = c.id
    JOIN lessons l ON l.tenant = :tenant AND l.id = t.lesson AND l.deleted = 0
    LEFT JOIN progress p ON p.tenant = :tenant AND p.learner = :learner AND p.lesson = l.id
    WHERE NOT c.done)
SELECT 'step' AS part, lesson, title, course, minutes, position, status,
  json_group_array(concept) AS concepts, max(required) AS required, max(rank) AS rank,
  (SELECT json_group_array(DISTINCT e.requires) FROM edges e WHERE e.tenant = :tenant
   AND e.kind = 'required' AND e.concept IN (SELECT o2.concept FROM option o2
   WHERE o2.n = 1 AND o2.lesson = o.lesson)) AS prerequisites
FROM option o WHERE n = 1
GROUP BY lesson
UNION ALL
SELECT 'uncovered', id, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL FROM concept c
WHERE NOT done AND NOT EXISTS (SELECT 1 FROM option o WHERE o.concept = c.id)
UNION ALL
SELECT 'count', NULL, NULL, NULL, count(*), coalesce(sum(done), 0), NULL, NULL, NULL, NULL, NULL FROM concept
ORDER BY part, rank, required DESC, minutes, position, lesson
"""


# A course's live lessons that teach no concept, not completed by the learner, by place.
LOOSE = """
SELECT l.id, json_extract(l.doc, '$.title') AS title,
  json_extract(l.doc, '$.estimated_minutes') AS minutes,
  json_extract(l.doc, '$.position') AS position, json_extract(p.doc, '$.status') AS status
FROM lessons l
LEFT JOIN progress p ON p.tenant = :tenant AND p.learner = :learner AND p.lesson = l.id
WHERE l.tenant = :tenant AND l.course = :course AND l.deleted = 0
  AND NOT EXISTS (SELECT 1 FROM teaches t WHERE t.tenant = :tenant AND t.lesson = l.id)
  AND coalesce(json_extract(p.doc, '$.status'), '') <> 'completed'
ORDER BY position, l.id
"""


# A card joining a learner's deck (parameters: tenant, learner, card, due, version, doc, and
# whether an erased learner is spared): not over a schedule kept or taken out, and only while
# the card is live (neither retired nor held).
ADD_STATE = """
INSERT OR IGNORE INTO card_states (tenant, learner, card, due, version, doc)
SELECT ?1, ?2, ?3, ?4, ?5, ?6 WHERE EXISTS (SELECT 1 FROM cards
  WHERE tenant = ?1 AND id = ?3 AND retired = 0 AND held_lesson IS NULL)
  AND NOT (?7 AND EXISTS (SELECT 1 FROM erased_learners WHERE tenant = ?1 AND id = ?2))
"""


def _marks(values: Sequence[object]) -> str:
    return ",".join("?" * len(values))




def _goals(c: Conn, tenant: str, concepts: Sequence[str], course: str | None) -> list[str]:
    """The known ones of `concepts`, and every concept the live lessons of `course` teach."""
    goals = set(_known(c, tenant, concepts))
    if course is not None:
        goals |= {r[0] for r in c.execute(
            "SELECT t.concept FROM lessons l INDEXED BY lessons_course CROSS JOIN teaches t"
            " ON t.tenant = l.tenant"
            " AND t.lesson = l.id WHERE l.tenant = ? AND l.course = ? AND l.deleted = 0",
            (tenant, course))}
    return sorted(goals)


def _course(c: Conn, tenant: str, course_id: str) -> CourseNode | None:
    row = c.execute("SELECT doc FROM courses WHERE tenant = ? AND id = ?",
                    (tenant, course_id)).fetchone()
    return None if row is None else CourseNode.model_validate_json(row["doc"], context=STORED)


def _put_course(c: Conn, course: CourseNode) -> None:
    c.execute("INSERT INTO courses (tenant, id, version, doc) VALUES (?, ?, ?, ?)"
              " ON CONFLICT (tenant, id) DO UPDATE SET version = excluded.version,"
              " doc = excluded.doc",
              (course.tenant, course.id, course.version, course.model_dump_json()))


def _zone_of(c: Conn, tenant: str, learner: str) -> tuple[str | None, str | None]:
    """The learner's stored time zone and the time it is stored as of (None, None: none)."""
    row = c.execute("SELECT zone, zone_at FROM learners WHERE tenant = ? AND id = ?",
                    (tenant, learner)).fetchone()
    return (None, None) if row is None else (row[0], row[1])


def _known(c: Conn, tenant: str, ids: Sequence[str]) -> set[str]:
    found: set[str] = set()
    wanted = list(dict.fromkeys(ids))
    for start in range(0, len(wanted), 500):
        chunk = wanted[start:start + 500]
        found |= {r[0] for r in c.execute(
            f"SELECT id FROM concepts WHERE tenant = ? AND id IN ({_marks(chunk)})",  # noqa: S608
            (tenant, *chunk))}
    return found


def _ensure(c: Conn, tenant: str, ids: Sequence[str]) -> None:
    c.executemany("INSERT OR IGNORE INTO concepts (tenant, id, doc) VALUES (?, ?, ?)",
                  [(tenant, i, Concept.placeholder(tenant, i).model_dump_json()) for i in ids])


class EmbeddedLearningStore:
    def __init__(self, db: SqliteDB, registry: EventRegistry) -> None:
        self.db = db
        self._outbox = SqliteOutbox(db, registry, name="learning_outbox")

    @property
    def outbox(self) -> SqliteOutbox:
        return self._outbox

    async def setup(self) -> None:
        def migrate(c: Conn) -> None:
            def columns(table: str) -> set[str]:
                return {r[1] for r in c.execute(f"PRAGMA table_info({table})")}

            # databases from before cards could be retired or taken out of a deck
            for table, column in (("cards", "retired"), ("card_states", "removed")):
                if column not in columns(table):
                    c.execute(f"ALTER TABLE {table} ADD COLUMN {column} INTEGER NOT NULL"
                              " DEFAULT 0")
            # databases from before cards could wait for their lesson's publication
            if "held_lesson" not in columns("cards"):
                c.execute("ALTER TABLE cards ADD COLUMN held_lesson TEXT")
                c.execute("ALTER TABLE cards ADD COLUMN held_version INTEGER")
            c.execute("CREATE INDEX IF NOT EXISTS cards_held ON cards (tenant, held_lesson)"
                      " WHERE held_lesson IS NOT NULL")
            # databases from before AI cards kept the lesson they were made from
            if "lesson" not in columns("cards"):
                c.execute("ALTER TABLE cards ADD COLUMN lesson TEXT")
            c.execute("CREATE INDEX IF NOT EXISTS cards_lesson ON cards (tenant, lesson)"
                      " WHERE lesson IS NOT NULL")
            # databases from before learning kept its learners' time zones
            if "zone" not in columns("learners"):
                c.execute("ALTER TABLE learners ADD COLUMN zone TEXT")
                c.execute("ALTER TABLE learners ADD COLUMN zone_at TEXT")
            # Walking the graph up (what requires a concept) read every edge of the tenant at
            # each step with the index of before, which the planner passed over for the key's.
            c.execute("DROP INDEX IF EXISTS edges_requires")
            if "rank" in columns("concepts"):
                return
            # A database from before concepts had ranks: every tenant's graph is ranked once.
            c.execute("ALTER TABLE concepts ADD COLUMN rank INTEGER NOT NULL DEFAULT 0")
            for (tenant,) in c.execute("SELECT DISTINCT tenant FROM edges").fetchall():
                _rank_all(c, tenant)

        await self.db.run(lambda c: c.executescript(SCHEMA))
        await self.db.transaction(migrate)
        await self._outbox.setup()

    # the graph

    async def add_concept(self, concept: Concept) -> None:
        try:
            await self.db.transaction(lambda c: c.execute(
                "INSERT INTO concepts (tenant, id, doc) VALUES (?, ?, ?)",
                (concept.tenant, concept.id, concept.model_dump_json())))
        except sqlite3.IntegrityError:
            raise Duplicate(concept.id) from None

    async def ensure_concepts(self, tenant: str, ids: Sequence[str]) -> None:
        await self.db.transaction(lambda c: _ensure(c, tenant, ids))

    async def get_concept(self, tenant: str, concept_id: str) -> ConceptDetail | None:
        def read(c: Conn) -> ConceptDetail | None:
            row = c.execute("SELECT doc FROM concepts WHERE tenant = ? AND id = ?",
                            (tenant, concept_id)).fetchone()
            if row is None:
                return None
            out = [Edge(concept=r[0], requires=r[1], kind=r[2]) for r in c.execute(
                "SELECT concept, requires, kind FROM edges WHERE tenant = ? AND concept = ?"
                " ORDER BY requires", (tenant, concept_id))]
            into = [Edge(concept=r[0], requires=r[1], kind=r[2]) for r in c.execute(
                "SELECT concept, requires, kind FROM edges WHERE tenant = ? AND requires = ?"
                " ORDER BY concept", (tenant, concept_id))]
            concept = Concept.model_validate_json(row["doc"], context=STORED)
            return ConceptDetail.model_validate(
                concept.model_dump() | {"requires": out, "required_by": into}, context=STORED)

        return await self.db.run(read)

    async def list_concepts(self, tenant: str) -> list[Concept]:
        rows = await self.db.run(lambda c: c.execute(
            "SELECT doc FROM concepts WHERE tenant = ? ORDER BY id", (tenant,)).fetchall())
        return [Concept.model_validate_json(r["doc"], context=STORED) for r in rows]

    async def page_concepts(self, tenant: str, *, after: str | None = None,
                            limit: int = 100) -> Slice[Concept]:
        (start,) = key_of(after, str) if after else ("",)
        rows = await self.db.run(lambda c: c.execute(
            "SELECT id, doc FROM concepts WHERE tenant = ? AND id > ? ORDER BY id LIMIT ?",
            (tenant, start, limit + 1)).fetchall())
        return Slice.of(rows, limit, lambda r: (r["id"],)).map(
            lambda r: Concept.model_validate_json(r["doc"], context=STORED))

    async def get_concepts(self, tenant: str, ids: Sequence[str]) -> list[Concept]:
        wanted = list(dict.fromkeys(ids))
        if not wanted:
            return []
        rows = await self.db.run(lambda c: c.execute(
            f"SELECT doc FROM concepts WHERE tenant = ? AND id IN ({_marks(wanted)})"  # noqa: S608
            " ORDER BY id", (tenant, *wanted)).fetchall())
        return [Concept.model_validate_json(r["doc"], context=STORED) for r in rows]

    async def _change_concept(self, tenant: str, concept_id: str, **fields: object) -> None:
        def write(c: Conn) -> None:
            row = c.execute("SELECT doc FROM concepts WHERE tenant = ? AND id = ?",
                            (tenant, concept_id)).fetchone()
            if row is None:
                raise Missing(concept_id)
            concept = Concept.model_validate_json(row["doc"], context=STORED).model_copy(update=fields)
            c.execute("UPDATE concepts SET doc = ? WHERE tenant = ? AND id = ?",
                      (concept.model_dump_json(), tenant, concept_id))

        await self.db.transaction(write)

    async def describe_concept(self, tenant: str, concept_id: str, edit: ConceptEdit, *,
                               expected: int | None = None) -> Concept:
        def write(c: Conn) -> Concept:
            row = c.execute("SELECT doc FROM concepts WHERE tenant = ? AND id = ?",
                            (tenant, concept_id)).fetchone()
            if row is None:
                raise Missing(concept_id)
            concept = described_concept(Concept.model_validate_json(row["doc"], context=STORED),
                                        edit, expected)
            c.execute("UPDATE concepts SET doc = ? WHERE tenant = ? AND id = ?",
                      (concept.model_dump_json(), tenant, concept_id))
            return concept

        return await self.db.transaction(write)

    async def set_bkt(self, tenant: str, concept_id: str, params: BktParams) -> None:
        await self._change_concept(tenant, concept_id, bkt=params)

    async def add_edge(self, tenant: str, edge: Edge) -> bool:
        def write(c: Conn) -> bool:
            unknown = {edge.concept, edge.requires} - _known(c, tenant, [edge.concept, edge.requires])
            if unknown:
                raise UnknownConcepts(sorted(unknown))
            existing = c.execute(
                "SELECT kind FROM edges WHERE tenant = ? AND concept = ? AND requires = ?",
                (tenant, edge.concept, edge.requires)).fetchone()
            if existing is not None:
                c.execute("UPDATE edges SET kind = ? WHERE tenant = ? AND concept = ? AND requires = ?",
                          (edge.kind, tenant, edge.concept, edge.requires))
                return False
            cycle = self._cycle_through(c, tenant, edge)
            if cycle is not None:
                raise CycleFound(cycle)
            c.execute("INSERT INTO edges (tenant, concept, requires, kind) VALUES (?, ?, ?, ?)",
                      (tenant, edge.concept, edge.requires, edge.kind))
            _rerank(c, tenant, [edge.concept])
            return True

        return await self.db.transaction(write)

    @staticmethod
    def _cycle_through(c: Conn, tenant: str, edge: Edge) -> list[str] | None:
        """Reads only the prerequisites reachable from the new edge's prerequisite."""
        rows = c.execute(
            "WITH RECURSIVE reach(id) AS (SELECT ? UNION SELECT e.requires FROM edges e"
            " JOIN reach r ON e.concept = r.id WHERE e.tenant = ?)"
            " SELECT e.concept, e.requires FROM edges e JOIN reach r ON e.concept = r.id"
            " WHERE e.tenant = ?", (edge.requires, tenant, tenant)).fetchall()
        return find_cycle([(r[0], r[1]) for r in rows], (edge.concept, edge.requires))

    async def remove_edge(self, tenant: str, concept: str, requires: str) -> None:
        def write(c: Conn) -> None:
            cur = c.execute("DELETE FROM edges WHERE tenant = ? AND concept = ? AND requires = ?",
                            (tenant, concept, requires))
            if cur.rowcount == 0:
                raise Missing(f"{concept} → {requires}")
            _rerank(c, tenant, [concept])

        await self.db.transaction(write)

    async def list_edges(self, tenant: str) -> list[Edge]:
        rows = await self.db.run(lambda c: c.execute(
            "SELECT concept, requires, kind FROM edges WHERE tenant = ? ORDER BY concept, requires",
            (tenant,)).fetchall())
        return [Edge(concept=r[0], requires=r[1], kind=r[2]) for r in rows]

    async def page_edges(self, tenant: str, *, after: str | None = None,
                         limit: int = 100) -> Slice[Edge]:
        concept, requires = key_of(after, str, str) if after else ("", "")
        rows = await self.db.run(lambda c: c.execute(
            "SELECT concept, requires, kind FROM edges WHERE tenant = ?"
            " AND (concept, requires) > (?, ?) ORDER BY concept, requires LIMIT ?",
            (tenant, concept, requires, limit + 1)).fetchall())
        return Slice.of(rows, limit, lambda r: (r[0], r[1])).map(
            lambda r: Edge(concept=r[0], requires=r[1], kind=r[2]))

    async def import_graph(self, tenant: str, concepts: Sequence[Concept],
                           edges: Sequence[Edge]) -> None:
        def write(c: Conn) -> None:
            c.executemany("INSERT OR IGNORE INTO concepts (tenant, id, doc) VALUES (?, ?, ?)",
                          [(tenant, x.id, x.model_dump_json()) for x in concepts])
            ends = [i for e in edges for i in (e.concept, e.requires)]
            unknown = set(ends) - _known(c, tenant, ends)
            if unknown:
                raise UnknownConcepts(sorted(unknown))
            c.executemany(
                "INSERT INTO edges (tenant, concept, requires, kind) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (tenant, concept, requires) DO UPDATE SET kind = excluded.kind",
                [(tenant, e.concept, e.requires, e.kind) for e in edges])
            every = [Edge(concept=r[0], requires=r[1], kind=r[2]) for r in c.execute(
                "SELECT concept, requires, kind FROM edges WHERE tenant = ?", (tenant,))]
            cycle = first_cycle(every)
            if cycle is not None:
                raise CycleFound(cycle)
            _rank_all(c, tenant)

        await self.db.transaction(write)

    # projections of content

    async def upsert_lesson(self, lesson: LessonNode,
                            concept_names: Mapping[str, str] | None = None) -> bool:
        def write(c: Conn) -> bool:
            row = c.execute("SELECT version, deleted FROM lessons WHERE tenant = ? AND id = ?",
                            (lesson.tenant, lesson.id)).fetchone()
            if row is not None and (row[0] > lesson.version
                                    or (row[1] and row[0] >= lesson.version)):
                return False
            _ensure(c, lesson.tenant, [*lesson.teaches, *lesson.requires])
            c.executemany(
                "UPDATE concepts SET doc = json_set(doc, '$.name', ?, '$.version',"
                " coalesce(json_extract(doc, '$.version'), 1) + 1) WHERE tenant = ? AND id = ?"
                " AND json_extract(doc, '$.name') IS NOT ?",
                [(name, lesson.tenant, cid, name) for cid, name in (concept_names or {}).items()])
            c.execute("INSERT INTO lessons (tenant, id, course, version, deleted, doc)"
                      " VALUES (?, ?, ?, ?, 0, ?) ON CONFLICT (tenant, id) DO UPDATE SET"
                      " course = excluded.course, version = excluded.version, deleted = 0,"
                      " doc = excluded.doc",
                      (lesson.tenant, lesson.id, lesson.course_id, lesson.version,
                       lesson.model_dump_json()))
            c.execute("DELETE FROM teaches WHERE tenant = ? AND lesson = ?",
                      (lesson.tenant, lesson.id))
            c.executemany("INSERT INTO teaches (tenant, lesson, concept) VALUES (?, ?, ?)",
                          [(lesson.tenant, lesson.id, t) for t in lesson.teaches])
            return True

        return await self.db.transaction(write)

    async def delete_lesson(self, tenant: str, lesson_id: str, version: int) -> bool:
        def write(c: Conn) -> bool:
            row = c.execute("SELECT version FROM lessons WHERE tenant = ? AND id = ?",
                            (tenant, lesson_id)).fetchone()
            if row is not None and row[0] > version:
                return False
            # A tombstone: a late `published` of an older version cannot bring it back.
            tomb = LessonNode(id=lesson_id, tenant=tenant, course_id="", title="(deleted)",
                              estimated_minutes=0, teaches=[], requires=[], version=version)
            c.execute("INSERT INTO lessons (tenant, id, course, version, deleted, doc)"
                      " VALUES (?, ?, '', ?, 1, ?) ON CONFLICT (tenant, id) DO UPDATE SET"
                      " version = excluded.version, deleted = 1",
                      (tenant, lesson_id, version, tomb.model_dump_json()))
            c.execute("DELETE FROM teaches WHERE tenant = ? AND lesson = ?", (tenant, lesson_id))
            return True

        return await self.db.transaction(write)

    async def upsert_course(self, course: CourseNode) -> bool:
        def write(c: Conn) -> bool:
            stored = _course(c, course.tenant, course.id)
            if stored is not None and stored.version > course.version:
                return False
            _put_course(c, course if stored is None else course.model_copy(update={
                "archived": stored.archived, "archived_revision": stored.archived_revision}))
            return True

        return await self.db.transaction(write)

    async def archive_course(self, tenant: str, course_id: str, archived: bool,
                             revision: int) -> bool:
        def write(c: Conn) -> bool:
            stored = _course(c, tenant, course_id)
            if stored is None or stored.archived_revision > revision:
                return False
            _put_course(c, stored.model_copy(update={
                "archived": archived, "archived_revision": revision}))
            return True

        return await self.db.transaction(write)

    async def get_course(self, tenant: str, course_id: str) -> CourseNode | None:
        return await self.db.run(lambda c: _course(c, tenant, course_id))

    async def get_lesson(self, tenant: str, lesson_id: str) -> LessonNode | None:
        row = await self.db.run(lambda c: c.execute(
            "SELECT doc FROM lessons WHERE tenant = ? AND id = ? AND deleted = 0",
            (tenant, lesson_id)).fetchone())
        return None if row is None else LessonNode.model_validate_json(row["doc"], context=STORED)

    async def lessons_of_course(self, tenant: str, course_id: str) -> list[LessonNode]:
        def read(c: Conn) -> list[LessonNode]:
            course = _course(c, tenant, course_id)
            return [] if course is None else _course_lessons(c, tenant, course.lesson_ids)

        return await self.db.run(read)

    async def courses_with_lessons(self, tenant: str, course_ids: Sequence[str]
                                   ) -> dict[str, tuple[CourseNode, list[LessonNode]]]:
        wanted = list(dict.fromkeys(course_ids))

        def read(c: Conn) -> dict[str, tuple[CourseNode, list[LessonNode]]]:
            found: dict[str, tuple[CourseNode, list[LessonNode]]] = {}
            for start in range(0, len(wanted), 500):
                chunk = wanted[start:start + 500]
                for row in c.execute(
                        f"SELECT doc FROM courses WHERE tenant = ? AND id IN ({_marks(chunk)})",  # noqa: S608
                        (tenant, *chunk)):
                    course = CourseNode.model_validate_json(row["doc"], context=STORED)
                    found[course.id] = (course, _course_lessons(c, tenant, course.lesson_ids))
            return found

        return await self.db.run(read)

    # a learner

    async def enrol(self, tenant: str, enrolment: Enrolment, events: Sequence[Envelope]) -> bool:
        def write(c: Conn) -> bool:
            cur = c.execute(
                "INSERT OR IGNORE INTO enrolments (tenant, learner, goal, at, doc) VALUES (?, ?, ?, ?, ?)",
                (tenant, enrolment.learner, enrolment.goal, utc_iso(enrolment.enrolled_at),
                 enrolment.model_dump_json()))
            if cur.rowcount == 0:
                return False
            self._outbox.add(c, *events)
            return True

        return await self.db.transaction(write)

    async def enrolments(self, tenant: str, learner: str) -> list[Enrolment]:
        rows = await self.db.run(lambda c: c.execute(
            "SELECT doc FROM enrolments WHERE tenant = ? AND learner = ? ORDER BY at, goal",
            (tenant, learner)).fetchall())
        return [Enrolment.model_validate_json(r["doc"], context=STORED) for r in rows]

    async def page_enrolments(self, tenant: str, learner: str, *, after: str | None = None,
                              limit: int = 100) -> Slice[Enrolment]:
        at, goal = key_of(after, str, str) if after else ("", "")
        rows = await self.db.run(lambda c: c.execute(
            "SELECT at, goal, doc FROM enrolments WHERE tenant = ? AND learner = ?"
            " AND (at, goal) > (?, ?) ORDER BY at, goal LIMIT ?",
            (tenant, learner, at, goal, limit + 1)).fetchall())
        return Slice.of(rows, limit, lambda r: (r["at"], r["goal"])).map(
            lambda r: Enrolment.model_validate_json(r["doc"], context=STORED))

    async def unenrol(self, tenant: str, learner: str, goal: str,
                      events: Sequence[Envelope]) -> bool:
        def write(c: Conn) -> bool:
            cur = c.execute("DELETE FROM enrolments WHERE tenant = ? AND learner = ? AND goal = ?",
                            (tenant, learner, goal))
            if cur.rowcount == 0:
                return False
            c.execute("DELETE FROM path_snapshots WHERE tenant = ? AND learner = ? AND goal = ?",
                      (tenant, learner, goal))
            self._outbox.add(c, *events)
            return True

        return await self.db.transaction(write)

    async def save_progress(self, tenant: str, learner: str, progress: Progress,
                            events: Sequence[Envelope]) -> None:
        def write(c: Conn) -> None:
            doc = progress.model_dump_json()
            if progress.version == 1:
                cur = c.execute("INSERT OR IGNORE INTO progress (tenant, learner, lesson, doc)"
                                " VALUES (?, ?, ?, ?)", (tenant, learner, progress.lesson_id, doc))
            else:  # a record stored before versions counts as 1
                cur = c.execute(
                    "UPDATE progress SET doc = ? WHERE tenant = ? AND learner = ? AND lesson = ?"
                    " AND coalesce(json_extract(doc, '$.version'), 1) = ?",
                    (doc, tenant, learner, progress.lesson_id, progress.version - 1))
            if cur.rowcount != 1:
                raise StaleVersion(progress.lesson_id)
            self._outbox.add(c, *events)

        await self.db.transaction(write)

    async def _learner_docs(self, table: str, key: str, order: str, tenant: str, learner: str,
                            ids: Sequence[str] | None, where: str = "TRUE") -> list[str]:
        """A learner's documents in `table` (a name of ours, never input) that meet `where`
        (ours too), all or those whose `key` is one of `ids`."""
        sql = f"SELECT doc FROM {table} WHERE tenant = ? AND learner = ? AND {where}"  # noqa: S608
        args: list[str] = [tenant, learner]
        if ids is not None:
            wanted = list(dict.fromkeys(ids))
            sql += f" AND {key} IN ({_marks(wanted)})"
            args += wanted
        rows = await self.db.run(lambda c: c.execute(f"{sql} ORDER BY {order}", args).fetchall())
        return [r["doc"] for r in rows]

    async def get_progress(self, tenant: str, learner: str,
                           lessons: Sequence[str] | None = None) -> list[Progress]:
        docs = await self._learner_docs("progress", "lesson", "lesson", tenant, learner, lessons)
        return [Progress.model_validate_json(d, context=STORED) for d in docs]

    async def get_mastery(self, tenant: str, learner: str,
                          concepts: Sequence[str] | None = None) -> list[Mastery]:
        docs = await self._learner_docs("mastery", "concept", "concept", tenant, learner, concepts)
        return [Mastery.model_validate_json(d, context=STORED) for d in docs]

    async def page_mastery(self, tenant: str, learner: str, *, after: str | None = None,
                           limit: int = 100) -> Slice[Mastery]:
        (start,) = key_of(after, str) if after else ("",)
        rows = await self.db.run(lambda c: c.execute(
            "SELECT concept, doc FROM mastery WHERE tenant = ? AND learner = ? AND concept > ?"
            " ORDER BY concept LIMIT ?", (tenant, learner, start, limit + 1)).fetchall())
        return Slice.of(rows, limit, lambda r: (r["concept"],)).map(
            lambda r: Mastery.model_validate_json(r["doc"], context=STORED))

    async def save_mastery(self, tenant: str, learner: str, changes: Sequence[Mastery],
                           events: Sequence[Envelope]) -> None:
        def write(c: Conn) -> None:
            for m in changes:
                if m.version == 1:
                    cur = c.execute(
                        "INSERT OR IGNORE INTO mastery (tenant, learner, concept, version, mastered, doc)"
                        " VALUES (?, ?, ?, 1, ?, ?)",
                        (tenant, learner, m.concept, int(m.mastered), m.model_dump_json()))
                else:
                    cur = c.execute(
                        "UPDATE mastery SET version = ?, mastered = ?, doc = ? WHERE tenant = ?"
                        " AND learner = ? AND concept = ? AND version = ?",
                        (m.version, int(m.mastered), m.model_dump_json(), tenant, learner,
                         m.concept, m.version - 1))
                if cur.rowcount == 0:
                    raise StaleVersion(m.concept)
            self._outbox.add(c, *events)

        await self.db.transaction(write)

    async def mastery_sequences(self, tenant: str, concept: str) -> list[list[int]]:
        rows = await self.db.run(lambda c: c.execute(
            "SELECT doc FROM mastery WHERE tenant = ? AND concept = ?", (tenant, concept)).fetchall())
        out = [[a for _, a in Mastery.model_validate_json(r["doc"], context=STORED).observations]
               for r in rows]
        return [s for s in out if s]

    async def path_subgraph(self, tenant: str, learner: str, concepts: Sequence[str],
                            course: str | None = None) -> Subgraph:
        def read(c: Conn) -> Subgraph:
            goals = _goals(c, tenant, concepts, course)
            if not goals:
                return Subgraph(goals=())
            closure = [r[0] for r in c.execute(
                "WITH RECURSIVE closure(id) AS (SELECT value FROM json_each(?)"
                " UNION SELECT e.requires FROM edges e JOIN closure x ON e.concept = x.id"
                " WHERE e.tenant = ?) SELECT id FROM closure", (json.dumps(goals), tenant))]
            ids = json.dumps(closure)
            prereqs: dict[str, list[tuple[str, str]]] = defaultdict(list)
            for r in c.execute("SELECT concept, requires, kind FROM edges WHERE tenant = ? AND"
                               " concept IN (SELECT value FROM json_each(?))", (tenant, ids)):
                prereqs[r[0]].append((r[1], r[2]))
            progress = {r[0]: Progress.model_validate_json(r[1], context=STORED).status for r in c.execute(
                "SELECT lesson, doc FROM progress WHERE tenant = ? AND learner = ?",
                (tenant, learner))}
            lessons: dict[str, list[LessonInfo]] = defaultdict(list)
            for r in c.execute(
                    "SELECT t.concept, l.doc FROM teaches t JOIN lessons l ON l.tenant = t.tenant"
                    " AND l.id = t.lesson WHERE t.tenant = ? AND l.deleted = 0 AND t.concept IN"
                    " (SELECT value FROM json_each(?))", (tenant, ids)):
                node = LessonNode.model_validate_json(r[1], context=STORED)
                lessons[r[0]].append(LessonInfo(
                    id=node.id, title=node.title, course_id=node.course_id,
                    minutes=node.estimated_minutes, position=node.position,
                    status=progress.get(node.id)))
            mastered = {r[0] for r in c.execute(
                "SELECT concept FROM mastery WHERE tenant = ? AND learner = ? AND mastered = 1"
                " AND concept IN (SELECT value FROM json_each(?))", (tenant, learner, ids))}
            return Subgraph(goals=tuple(goals), concepts={
                cid: ConceptInfo(id=cid, prerequisites=tuple(sorted(prereqs[cid])),
                                 lessons=tuple(lessons[cid]), mastered=cid in mastered)
                for cid in closure})

        return await self.db.run(read)

    async def learning_path(self, tenant: str, learner: str, concepts: Sequence[str],
                            course: str | None = None) -> PathPlan:
        def read(c: Conn) -> PathPlan:
            goals = _goals(c, tenant, concepts, course)
            loose = () if course is None else tuple(LessonInfo(
                id=r["id"], title=r["title"], course_id=course, minutes=r["minutes"],
                position=r["position"], status=r["status"]) for r in c.execute(
                    LOOSE, {"tenant": tenant, "learner": learner, "course": course}))
            if not goals:
                return PathPlan(goals=(), loose=loose)
            rows = c.execute(PLAN, {"goals": json.dumps(goals), "tenant": tenant,
                                    "learner": learner, "course": course}).fetchall()
            [count] = [r for r in rows if r["part"] == "count"]
            return PathPlan(loose=loose,
                goals=tuple(goals),
                lessons=tuple(PlannedLesson(
                    lesson=LessonInfo(id=r["lesson"], title=r["title"], course_id=r["course"],
                                      minutes=r["minutes"], position=r["position"],
                                      status=r["status"]),
                    concepts=tuple(sorted(json.loads(r["concepts"]))), required=bool(r["required"]),
                    prerequisites=tuple(sorted(json.loads(r["prerequisites"]))))
                    for r in rows if r["part"] == "step"),
                uncovered=tuple(sorted(r["lesson"] for r in rows if r["part"] == "uncovered")),
                concepts=count["minutes"], mastered=count["position"])

        return await self.db.run(read)

    async def learners_reaching(self, tenant: str, concepts: Sequence[str]) -> list[str]:
        rows = await self.db.run(lambda c: c.execute(
            "WITH RECURSIVE up(id) AS (SELECT value FROM json_each(:concepts) UNION"
            " SELECT e.concept FROM edges e JOIN up u ON e.requires = u.id WHERE e.tenant = :tenant)"
            " SELECT DISTINCT learner FROM enrolments WHERE tenant = :tenant AND ("
            " goal IN (SELECT 'concept:' || id FROM up) OR goal IN (SELECT 'course:' || l.course"
            " FROM lessons l JOIN teaches t ON t.tenant = l.tenant AND t.lesson = l.id"
            " WHERE l.tenant = :tenant AND l.deleted = 0 AND t.concept IN (SELECT id FROM up)))"
            " ORDER BY learner", {"concepts": json.dumps(list(concepts)), "tenant": tenant}
        ).fetchall())
        return [r[0] for r in rows]

    async def learners_enrolled(self, tenant: str, goal: str, *, after: str | None = None,
                                limit: int = 500) -> list[str]:
        rows = await self.db.run(lambda c: c.execute(
            "SELECT learner FROM enrolments WHERE tenant = ? AND goal = ? AND learner > ?"
            " ORDER BY learner LIMIT ?", (tenant, goal, after or "", limit)).fetchall())
        return [r[0] for r in rows]

    async def goals_reaching(self, tenant: str, learner: str, concepts: Sequence[str]
                             ) -> list[str]:
        rows = await self.db.run(lambda c: c.execute(
            "WITH RECURSIVE up(id) AS (SELECT value FROM json_each(:concepts) UNION"
            " SELECT e.concept FROM edges e JOIN up u ON e.requires = u.id WHERE e.tenant = :tenant)"
            " SELECT goal FROM enrolments WHERE tenant = :tenant AND learner = :learner AND ("
            " goal IN (SELECT 'concept:' || id FROM up) OR goal IN (SELECT 'course:' || l.course"
            " FROM lessons l JOIN teaches t ON t.tenant = l.tenant AND t.lesson = l.id"
            " WHERE l.tenant = :tenant AND l.deleted = 0 AND t.concept IN (SELECT id FROM up)))"
            " ORDER BY goal", {"concepts": json.dumps(list(concepts)), "tenant": tenant,
                               "learner": learner}).fetchall())
        return [r[0] for r in rows]

    async def path_snapshot(self, tenant: str, learner: str, goal: str) -> list[str] | None:
        row = await self.db.run(lambda c: c.execute(
            "SELECT lessons FROM path_snapshots WHERE tenant = ? AND learner = ? AND goal = ?",
            (tenant, learner, goal)).fetchone())
        return None if row is None else list(json.loads(row[0]))

    async def path_snapshots(self, tenant: str, learner: str,
                             goals: Sequence[str] | None = None) -> dict[str, list[str]]:
        rows = await self.db.run(lambda c: c.execute(
            "SELECT goal, lessons FROM path_snapshots WHERE tenant = ? AND learner = ?"
            " AND (?3 IS NULL OR goal IN (SELECT value FROM json_each(?3)))",
            (tenant, learner, None if goals is None else json.dumps(list(goals)))).fetchall())
        return {r["goal"]: list(json.loads(r["lessons"])) for r in rows}

    async def save_path_snapshot(self, tenant: str, learner: str, goal: str,
                                 lesson_ids: Sequence[str], events: Sequence[Envelope], *,
                                 previous: Sequence[str] | None = None) -> bool:
        key = (tenant, learner, goal)

        def write(c: Conn) -> bool:
            if c.execute("SELECT 1 FROM enrolments WHERE tenant = ? AND learner = ? AND goal = ?",
                         key).fetchone() is None:
                return False
            row = c.execute("SELECT lessons FROM path_snapshots WHERE tenant = ? AND learner = ?"
                            " AND goal = ?", key).fetchone()
            if (None if row is None else json.loads(row["lessons"])) != (
                    None if previous is None else list(previous)):
                return False
            c.execute("INSERT INTO path_snapshots (tenant, learner, goal, lessons) VALUES (?, ?, ?, ?)"
                      " ON CONFLICT (tenant, learner, goal) DO UPDATE SET lessons = excluded.lessons",
                      (*key, json.dumps(list(lesson_ids))))
            self._outbox.add(c, *events)
            return True

        return await self.db.transaction(write)

    async def save_placement(self, tenant: str, placement: Placement) -> None:
        answered = len(placement.answers)

        def write(c: Conn) -> None:
            key = (tenant, placement.learner, placement.id)
            if answered == 0:
                cur = c.execute("INSERT OR IGNORE INTO placements (tenant, learner, id, doc)"
                                " VALUES (?, ?, ?, ?)", (*key, placement.model_dump_json()))
            else:
                cur = c.execute(
                    "UPDATE placements SET doc = ? WHERE tenant = ? AND learner = ? AND id = ?"
                    " AND json_array_length(doc, '$.answers') = ?",
                    (placement.model_dump_json(), *key, answered - 1))
            if cur.rowcount != 1:
                raise StaleVersion(placement.id)

        await self.db.transaction(write)

    async def get_placement(self, tenant: str, learner: str, placement_id: str) -> Placement | None:
        row = await self.db.run(lambda c: c.execute(
            "SELECT doc FROM placements WHERE tenant = ? AND learner = ? AND id = ?",
            (tenant, learner, placement_id)).fetchone())
        return None if row is None else Placement.model_validate_json(row["doc"], context=STORED)

    async def placements(self, tenant: str, learner: str) -> list[Placement]:
        rows = await self.db.run(lambda c: c.execute(
            "SELECT doc FROM placements WHERE tenant = ? AND learner = ? ORDER BY id",
            (tenant, learner)).fetchall())
        return [Placement.model_validate_json(r["doc"], context=STORED) for r in rows]

    # review cards

    async def add_card(self, card: Card) -> bool:
        def write(c: Conn) -> bool:
            if not _known(c, card.tenant, [card.concept]):
                raise Missing(card.concept)
            held = card.held_until
            try:
                c.execute("INSERT INTO cards (tenant, id, concept, at, doc, held_lesson,"
                          " held_version, lesson) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                          (card.tenant, card.id, card.concept, utc_iso(card.created_at),
                           card.model_dump_json(), held and held.lesson_id,
                           held and held.lesson_version, card.lesson_id))
            except sqlite3.IntegrityError:
                row = c.execute("SELECT doc FROM cards WHERE tenant = ? AND id = ? AND retired = 0"
                                " AND held_lesson IS NOT NULL", (card.tenant, card.id)).fetchone()
                if held is not None or row is None:
                    raise Duplicate(card.id) from None
                c.execute("UPDATE cards SET doc = ?, held_lesson = NULL, held_version = NULL"
                          " WHERE tenant = ? AND id = ?",
                          (Card.model_validate_json(row["doc"], context=STORED).released()
                           .model_dump_json(), card.tenant, card.id))
                return False
            return True

        return await self.db.transaction(write)

    async def get_card(self, tenant: str, card_id: str, *, held: bool = False) -> Card | None:
        row = await self.db.run(lambda c: c.execute(
            "SELECT doc FROM cards WHERE tenant = ? AND id = ? AND retired = 0"
            " AND (? OR held_lesson IS NULL)", (tenant, card_id, held)).fetchone())
        return None if row is None else Card.model_validate_json(row["doc"], context=STORED)

    async def get_cards(self, tenant: str, card_ids: Sequence[str]) -> list[Card]:
        wanted = list(dict.fromkeys(card_ids))
        if not wanted:
            return []
        rows = await self.db.run(lambda c: c.execute(
            f"SELECT doc FROM cards WHERE tenant = ? AND id IN ({_marks(wanted)})"  # noqa: S608
            " AND retired = 0 AND held_lesson IS NULL", (tenant, *wanted)).fetchall())
        return [Card.model_validate_json(r["doc"], context=STORED) for r in rows]

    async def edit_card(self, tenant: str, card_id: str, edit: CardEdit, at: datetime, *,
                        expected: int | None = None) -> Card | None:
        def write(c: Conn) -> Card | None:
            row = c.execute("SELECT doc FROM cards WHERE tenant = ? AND id = ? AND retired = 0",
                            (tenant, card_id)).fetchone()
            if row is None:
                return None
            card = edited_card(Card.model_validate_json(row["doc"], context=STORED), edit, at, expected)
            c.execute("UPDATE cards SET doc = ? WHERE tenant = ? AND id = ?",
                      (card.model_dump_json(), tenant, card_id))
            return card

        return await self.db.transaction(write)

    async def retire_card(self, tenant: str, card_id: str) -> bool:
        def write(c: Conn) -> bool:
            cur = c.execute("UPDATE cards SET retired = 1 WHERE tenant = ? AND id = ?"
                            " AND retired = 0", (tenant, card_id))
            c.execute("DELETE FROM card_states WHERE tenant = ? AND card = ?", (tenant, card_id))
            return cur.rowcount > 0

        return await self.db.transaction(write)

    async def retire_lesson_cards(self, tenant: str, lesson_id: str, limit: int) -> int:
        def write(c: Conn) -> int:
            ids = [r[0] for r in c.execute(
                "SELECT id FROM cards WHERE tenant = ?1 AND lesson = ?2 AND retired = 0"
                " UNION ALL SELECT id FROM cards WHERE tenant = ?1 AND held_lesson = ?2"
                " AND lesson IS NULL AND retired = 0 LIMIT ?3",  # held before cards kept it
                (tenant, lesson_id, limit)).fetchall()]
            c.executemany("UPDATE cards SET retired = 1 WHERE tenant = ? AND id = ?",
                          [(tenant, i) for i in ids])
            c.executemany("DELETE FROM card_states WHERE tenant = ? AND card = ?",
                          [(tenant, i) for i in ids])
            return len(ids)

        return await self.db.transaction(write)

    async def release_cards(self, tenant: str, lesson_id: str, version: int) -> list[str]:
        def write(c: Conn) -> list[str]:
            rows = c.execute("SELECT id, doc, retired FROM cards WHERE tenant = ?"
                             " AND held_lesson = ? AND held_version = ?",
                             (tenant, lesson_id, version)).fetchall()
            c.executemany("UPDATE cards SET doc = ?, held_lesson = NULL, held_version = NULL"
                          " WHERE tenant = ? AND id = ?",
                          [(Card.model_validate_json(r["doc"], context=STORED).released().model_dump_json(),
                            tenant, r["id"]) for r in rows])
            return [r["id"] for r in rows if not r["retired"]]

        return await self.db.transaction(write)

    async def cards_of(self, tenant: str, concepts: Sequence[str]) -> list[Card]:
        wanted = list(dict.fromkeys(concepts))
        if not wanted:
            return []
        rows = await self.db.run(lambda c: c.execute(
            f"SELECT doc FROM cards WHERE tenant = ? AND concept IN ({_marks(wanted)})"  # noqa: S608
            " AND retired = 0 AND held_lesson IS NULL ORDER BY at, id",
            (tenant, *wanted)).fetchall())
        return [Card.model_validate_json(r["doc"], context=STORED) for r in rows]

    async def page_cards(self, tenant: str, concept: str, *, held: bool = False,
                         after: str | None = None, limit: int = 100) -> Slice[Card]:
        at, card = key_of(after, str, str) if after else ("", "")
        rows = await self.db.run(lambda c: c.execute(
            "SELECT at, id, doc FROM cards WHERE tenant = ? AND concept = ? AND retired = 0"
            " AND (? OR held_lesson IS NULL) AND (at, id) > (?, ?) ORDER BY at, id LIMIT ?",
            (tenant, concept, held, at, card, limit + 1)).fetchall())
        return Slice.of(rows, limit, lambda r: (r["at"], r["id"])).map(
            lambda r: Card.model_validate_json(r["doc"], context=STORED))

    async def card_states(self, tenant: str, learner: str,
                          card_ids: Sequence[str] | None = None) -> list[CardState]:
        docs = await self._learner_docs("card_states", "card", "due, card", tenant, learner,
                                        card_ids, "removed = 0")
        return [CardState.model_validate_json(d, context=STORED) for d in docs]

    async def taken_out_cards(self, tenant: str, learner: str) -> list[CardState]:
        docs = await self._learner_docs("card_states", "card", "card", tenant, learner, None,
                                        "removed = 1")
        return [CardState.model_validate_json(d, context=STORED) for d in docs]

    async def keep_in_deck(self, tenant: str, learner: str, card_id: str, kept: bool) -> bool:
        changed: int = await self.db.transaction(lambda c: c.execute(
            "UPDATE card_states SET removed = ? WHERE tenant = ? AND learner = ? AND card = ?"
            " AND removed <> ?", (int(not kept), tenant, learner, card_id, int(not kept))).rowcount)
        return changed > 0

    async def add_card_states(self, tenant: str, learner: str, states: Sequence[CardState]) -> None:
        await self.db.transaction(lambda c: c.executemany(ADD_STATE, [
            (tenant, learner, s.card_id, utc_iso(s.due), s.version, s.model_dump_json(), False)
            for s in states]))

    async def learners_who_studied(self, tenant: str,
                                   concepts: Sequence[str]) -> dict[str, list[str]]:
        rows = await self.db.run(lambda c: c.execute(
            "SELECT DISTINCT t.concept, p.learner FROM teaches t JOIN progress p"
            " ON p.tenant = t.tenant AND p.lesson = t.lesson WHERE t.tenant = ?"
            " AND t.concept IN (SELECT value FROM json_each(?))"
            " AND json_extract(p.doc, '$.status') = 'completed' ORDER BY t.concept, p.learner",
            (tenant, json.dumps(list(concepts)))).fetchall())
        out: dict[str, list[str]] = defaultdict(list)
        for concept, learner in rows:
            out[concept].append(learner)
        return dict(out)

    async def add_to_decks(self, tenant: str, learners: Sequence[str],
                           states: Sequence[CardState]) -> None:
        rows = [(s.card_id, utc_iso(s.due), s.version, s.model_dump_json()) for s in states]
        await self.db.transaction(lambda c: c.executemany(
            ADD_STATE, [(tenant, learner, *row, True) for learner in learners for row in rows]))

    async def due(self, tenant: str, learner: str, at: datetime, limit: int,
                  after: tuple[datetime, str] | None = None) -> list[CardState]:
        since, card = (utc_iso(after[0]), after[1]) if after else ("", "")
        rows = await self.db.run(lambda c: c.execute(
            "SELECT doc FROM card_states WHERE tenant = ? AND learner = ? AND due <= ?"
            " AND (due > ? OR (due = ? AND card > ?))"
            " AND removed = 0 ORDER BY due, card LIMIT ?",
            (tenant, learner, utc_iso(at), since, since, card, limit)).fetchall())
        return [CardState.model_validate_json(r["doc"], context=STORED) for r in rows]

    async def save_review(self, tenant: str, learner: str, state: CardState, log: ReviewLog,
                          events: Sequence[Envelope], zone: str | None) -> None:
        def write(c: Conn) -> None:
            if _zone_of(c, tenant, learner)[0] != zone:
                raise StaleVersion(state.card_id)
            cur = c.execute(
                "UPDATE card_states SET due = ?, version = ?, doc = ? WHERE tenant = ? AND"
                " learner = ? AND card = ? AND version = ? AND removed = 0",
                (utc_iso(state.due), state.version, state.model_dump_json(), tenant, learner,
                 state.card_id, state.version - 1))
            if cur.rowcount == 0:
                raise StaleVersion(state.card_id)
            c.execute("INSERT INTO review_logs (tenant, learner, id, at, doc) VALUES (?, ?, ?, ?, ?)",
                      (tenant, learner, log.id, utc_iso(log.reviewed_at), log.model_dump_json()))
            self._outbox.add(c, *events)

        await self.db.transaction(write)

    async def reschedule_cards(self, tenant: str, learner: str, states: Sequence[CardState],
                               zone: str, zone_at: datetime) -> int:
        def write(c: Conn) -> int:
            if _zone_of(c, tenant, learner) != (zone, utc_iso(zone_at)) or not states:
                return 0
            stored: int = c.executemany(
                "UPDATE card_states SET due = ?, doc = ? WHERE tenant = ? AND learner = ?"
                " AND card = ? AND version = ?",
                [(utc_iso(s.due), s.model_dump_json(), tenant, learner, s.card_id, s.version)
                 for s in states]).rowcount
            return stored

        return await self.db.transaction(write)

    async def review_logs(self, tenant: str, learner: str) -> list[ReviewLog]:
        rows = await self.db.run(lambda c: c.execute(
            "SELECT doc FROM review_logs WHERE tenant = ? AND learner = ? ORDER BY at, id",
            (tenant, learner)).fetchall())
        return [ReviewLog.model_validate_json(r["doc"], context=STORED) for r in rows]

    async def save_scheduler_params(self, tenant: str, learner: str,
                                    parameters: Sequence[float]) -> None:
        await self.db.transaction(lambda c: c.execute(
            "INSERT INTO learners (tenant, id, fsrs) VALUES (?, ?, ?)"
            " ON CONFLICT (tenant, id) DO UPDATE SET fsrs = excluded.fsrs",
            (tenant, learner, json.dumps(list(parameters)))))

    async def save_time_zone(self, tenant: str, learner: str, zone: str,
                             at: datetime) -> ZoneSaved:
        def write(c: Conn) -> ZoneSaved:
            cur = c.execute(
                "INSERT INTO learners (tenant, id, zone, zone_at) SELECT ?1, ?2, ?3, ?4"
                " WHERE NOT EXISTS (SELECT 1 FROM erased_learners WHERE tenant = ?1 AND id = ?2)"
                " ON CONFLICT (tenant, id) DO UPDATE SET zone = excluded.zone,"
                " zone_at = excluded.zone_at"
                " WHERE learners.zone_at IS NULL OR learners.zone_at < excluded.zone_at",
                (tenant, learner, zone, utc_iso(at)))
            if cur.rowcount > 0:
                return "stored"
            return "again" if _zone_of(c, tenant, learner) == (zone, utc_iso(at)) else "refused"

        return await self.db.transaction(write)

    async def learner_settings(self, tenant: str, learner: str) -> LearnerSettings:
        row = await self.db.run(lambda c: c.execute(
            "SELECT fsrs, zone FROM learners WHERE tenant = ? AND id = ?",
            (tenant, learner)).fetchone())
        if row is None:
            return LearnerSettings()
        return LearnerSettings(
            parameters=None if row[0] is None else [float(x) for x in json.loads(row[0])],
            time_zone=None if row[1] is None else str(row[1]))

    async def erase_learner(self, tenant: str, learner: str) -> None:
        def write(c: Conn) -> None:
            for table in ("enrolments", "progress", "mastery", "path_snapshots", "placements",
                          "card_states", "review_logs"):
                c.execute(f"DELETE FROM {table} WHERE tenant = ? AND learner = ?",  # noqa: S608
                          (tenant, learner))
            c.execute("DELETE FROM learners WHERE tenant = ? AND id = ?", (tenant, learner))
            c.execute("INSERT OR IGNORE INTO erased_learners (tenant, id) VALUES (?, ?)",
                      (tenant, learner))

        await self.db.transaction(write)
        await self.db.empty_wal()

    async def is_erased(self, tenant: str, learner: str) -> bool:
        row = await self.db.run(lambda c: c.execute(
            "SELECT 1 FROM erased_learners WHERE tenant = ? AND id = ?", (tenant, learner)
        ).fetchone())
        return row is not None


def _rerank(c: Conn, tenant: str, ids: Sequence[str]) -> None:
    """Brings the ranks of `ids` and of what requires them up to date, one round per level of
    the concepts whose rank changes."""
    todo = list(dict.fromkeys(ids))
    while todo:
        changed = [r[0] for r in c.execute(
            "UPDATE concepts AS k SET rank = coalesce((SELECT 1 + max(p.rank) FROM edges e"
            " JOIN concepts p ON p.tenant = e.tenant AND p.id = e.requires WHERE e.tenant = k.tenant"
            " AND e.concept = k.id), 0) WHERE k.tenant = ? AND k.id IN (SELECT value FROM"
            " json_each(?)) AND k.rank <> coalesce((SELECT 1 + max(p.rank) FROM edges e"
            " JOIN concepts p ON p.tenant = e.tenant AND p.id = e.requires WHERE e.tenant = k.tenant"
            " AND e.concept = k.id), 0) RETURNING id", (tenant, json.dumps(todo))).fetchall()]
        todo = [r[0] for r in c.execute(
            "SELECT DISTINCT concept FROM edges WHERE tenant = ? AND requires IN"
            " (SELECT value FROM json_each(?)) ORDER BY concept", (tenant, json.dumps(changed)))]


def _rank_all(c: Conn, tenant: str) -> None:
    rank = ranks(c.execute("SELECT concept, requires FROM edges WHERE tenant = ?",
                           (tenant,)).fetchall())
    c.executemany("UPDATE concepts SET rank = ? WHERE tenant = ? AND id = ? AND rank <> ?",
                  [(r, tenant, i, r) for i, r in rank.items()])


def _course_lessons(c: Conn, tenant: str, order: Sequence[str]) -> list[LessonNode]:
    if not order:
        return []
    rows = c.execute(
        f"SELECT doc FROM lessons WHERE tenant = ? AND deleted = 0 AND id IN ({_marks(order)})",  # noqa: S608
        (tenant, *order)).fetchall()
    found = {n.id: n for n in (LessonNode.model_validate_json(r["doc"], context=STORED) for r in rows)}
    return [found[i] for i in order if i in found]
