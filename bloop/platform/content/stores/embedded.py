"""The embedded content store: SQLite, with the outbox in the same database. Each change and
its events are written in one transaction."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from bloop.platform.content.model import Concept, Course, CourseStatus, Lesson
from bloop.platform.content.ports import Duplicate, Missing, StaleVersion
from bloop.platform.kit.events.envelope import Envelope
from bloop.platform.kit.events.outbox.sqlite import SqliteOutbox
from bloop.platform.kit.events.types import EventRegistry
from bloop.platform.kit.sqlite import SqliteDB

SCHEMA = """
CREATE TABLE IF NOT EXISTS concepts (
  tenant TEXT NOT NULL, id TEXT NOT NULL, doc TEXT NOT NULL, PRIMARY KEY (tenant, id));
CREATE TABLE IF NOT EXISTS courses (
  tenant TEXT NOT NULL, id TEXT NOT NULL, status TEXT NOT NULL, title TEXT NOT NULL,
  doc TEXT NOT NULL, PRIMARY KEY (tenant, id));
CREATE INDEX IF NOT EXISTS courses_status ON courses (tenant, status, title, id);
CREATE TABLE IF NOT EXISTS lessons (
  tenant TEXT NOT NULL, id TEXT NOT NULL, course TEXT NOT NULL, position INTEGER NOT NULL,
  version INTEGER NOT NULL, doc TEXT NOT NULL, PRIMARY KEY (tenant, id));
CREATE INDEX IF NOT EXISTS lessons_course ON lessons (tenant, course, position);
"""


def _course(c: sqlite3.Connection, tenant: str, course_id: str) -> Course | None:
    row = c.execute("SELECT doc FROM courses WHERE tenant = ? AND id = ?",
                    (tenant, course_id)).fetchone()
    return None if row is None else Course.model_validate_json(row["doc"])


class EmbeddedContentStore:
    def __init__(self, db: SqliteDB, registry: EventRegistry) -> None:
        self.db = db
        self._outbox = SqliteOutbox(db, registry, name="content_outbox")

    @property
    def outbox(self) -> SqliteOutbox:
        return self._outbox

    async def setup(self) -> None:
        await self.db.run(lambda c: c.executescript(SCHEMA))
        await self._outbox.setup()

    # concepts

    async def add_concept(self, concept: Concept) -> None:
        try:
            await self.db.transaction(lambda c: c.execute(
                "INSERT INTO concepts (tenant, id, doc) VALUES (?, ?, ?)",
                (concept.tenant, concept.id, concept.model_dump_json())))
        except sqlite3.IntegrityError:
            raise Duplicate(concept.id) from None

    async def list_concepts(self, tenant: str) -> list[Concept]:
        rows = await self.db.run(lambda c: c.execute(
            "SELECT doc FROM concepts WHERE tenant = ? ORDER BY id", (tenant,)).fetchall())
        return [Concept.model_validate_json(r["doc"]) for r in rows]

    async def get_concepts(self, tenant: str, ids: Sequence[str]) -> list[Concept]:
        wanted = list(ids)
        if not wanted:
            return []
        marks = ",".join("?" * len(wanted))
        rows = await self.db.run(lambda c: c.execute(
            f"SELECT doc FROM concepts WHERE tenant = ? AND id IN ({marks}) ORDER BY id",  # noqa: S608
            (tenant, *wanted)).fetchall())
        return [Concept.model_validate_json(r["doc"]) for r in rows]

    # courses

    async def add_course(self, course: Course) -> None:
        try:
            await self.db.transaction(lambda c: c.execute(
                "INSERT INTO courses (tenant, id, status, title, doc) VALUES (?, ?, ?, ?, ?)",
                (course.tenant, course.id, course.status, course.title,
                 course.model_dump_json())))
        except sqlite3.IntegrityError:
            raise Duplicate(course.id) from None

    async def get_course(self, tenant: str, course_id: str) -> Course | None:
        return await self.db.run(lambda c: _course(c, tenant, course_id))

    async def list_courses(self, tenant: str, status: CourseStatus | None = None, *,
                           limit: int = 100) -> list[Course]:
        def read(c: sqlite3.Connection) -> list[sqlite3.Row]:
            if status is None:
                return c.execute("SELECT doc FROM courses WHERE tenant = ? ORDER BY title, id"
                                 " LIMIT ?", (tenant, limit)).fetchall()
            return c.execute("SELECT doc FROM courses WHERE tenant = ? AND status = ?"
                             " ORDER BY title, id LIMIT ?", (tenant, status, limit)).fetchall()

        return [Course.model_validate_json(r["doc"]) for r in await self.db.run(read)]

    async def publish_course(self, course: Course, expected: Course,
                             events: Sequence[Envelope]) -> None:
        def write(c: sqlite3.Connection) -> None:
            stored = _course(c, course.tenant, course.id)
            if stored is None:
                raise Missing(course.id)
            if (stored.version, stored.lesson_count) != (expected.version, expected.lesson_count):
                raise StaleVersion(course.id)
            c.execute("UPDATE courses SET status = ?, title = ?, doc = ? WHERE tenant = ? AND id = ?",
                      (course.status, course.title, course.model_dump_json(), course.tenant,
                       course.id))
            self._outbox.add(c, *events)

        await self.db.transaction(write)

    # lessons

    async def add_lesson(self, lesson: Lesson) -> Lesson:
        def write(c: sqlite3.Connection) -> Lesson:
            course = _course(c, lesson.tenant, lesson.course)
            if course is None:
                raise Missing(lesson.course)
            placed = lesson.model_copy(update={"position": course.lesson_count})
            grown = course.model_copy(update={"lesson_count": course.lesson_count + 1})
            c.execute("UPDATE courses SET doc = ? WHERE tenant = ? AND id = ?",
                      (grown.model_dump_json(), course.tenant, course.id))
            c.execute("INSERT INTO lessons (tenant, id, course, position, version, doc)"
                      " VALUES (?, ?, ?, ?, ?, ?)",
                      (placed.tenant, placed.id, placed.course, placed.position, placed.version,
                       placed.model_dump_json()))
            return placed

        return await self.db.transaction(write)

    async def get_lesson(self, tenant: str, lesson_id: str) -> Lesson | None:
        row = await self.db.run(lambda c: c.execute(
            "SELECT doc FROM lessons WHERE tenant = ? AND id = ?", (tenant, lesson_id)).fetchone())
        return None if row is None else Lesson.model_validate_json(row["doc"])

    async def list_lessons(self, tenant: str, course_id: str) -> list[Lesson]:
        rows = await self.db.run(lambda c: c.execute(
            "SELECT doc FROM lessons WHERE tenant = ? AND course = ? ORDER BY position",
            (tenant, course_id)).fetchall())
        return [Lesson.model_validate_json(r["doc"]) for r in rows]

    async def lessons_of_courses(self, tenant: str,
                                 course_ids: Sequence[str]) -> dict[str, list[Lesson]]:
        wanted = list(dict.fromkeys(course_ids))
        found: dict[str, list[Lesson]] = {c: [] for c in wanted}
        if not wanted:
            return found
        marks = ",".join("?" * len(wanted))
        rows = await self.db.run(lambda c: c.execute(
            f"SELECT doc FROM lessons WHERE tenant = ? AND course IN ({marks})"  # noqa: S608
            " ORDER BY course, position", (tenant, *wanted)).fetchall())
        for r in rows:
            lesson = Lesson.model_validate_json(r["doc"])
            found[lesson.course].append(lesson)
        return found

    async def replace_lesson(self, lesson: Lesson, expected_version: int) -> None:
        def write(c: sqlite3.Connection) -> None:
            cur = c.execute(
                "UPDATE lessons SET version = ?, doc = ? WHERE tenant = ? AND id = ? AND version = ?",
                (lesson.version, lesson.model_dump_json(), lesson.tenant, lesson.id,
                 expected_version))
            if cur.rowcount == 0:
                exists = c.execute("SELECT 1 FROM lessons WHERE tenant = ? AND id = ?",
                                   (lesson.tenant, lesson.id)).fetchone()
                raise StaleVersion(lesson.id) if exists else Missing(lesson.id)

        await self.db.transaction(write)
