"""The embedded content store: SQLite, with the outbox in the same database. Each change and
its events are written in one transaction.

`published_lessons` names, for each lesson of a course's current publication, the lesson version
it holds; a publication replaces its course's rows in its own transaction. A learner's read of a
lesson is one query: that row, the lesson snapshot it names, and the draft's row (a deleted
lesson is not shown)."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, TypeVar

from bloop.platform.content.model import (
    Concept,
    Course,
    CourseSnapshot,
    CourseStatus,
    Lesson,
    LessonOutline,
    LessonRef,
)
from bloop.platform.content.ports import (
    HEAD_FIELDS,
    PUBLICATION_FIELDS,
    STATUS_FIELDS,
    Duplicate,
    LessonHead,
    Missing,
    ReadableBy,
    StaleVersion,
    course_key,
    listed_title,
)
from bloop.platform.kit.events.envelope import Envelope
from bloop.platform.kit.events.outbox.sqlite import SqliteOutbox
from bloop.platform.kit.events.types import EventRegistry
from bloop.platform.kit.pagination import Slice, key_of
from bloop.platform.kit.read_back import STORED
from bloop.platform.kit.sqlite import SqliteDB, at_once
from bloop.platform.kit.threads import each_in_thread

SCHEMA = """
CREATE TABLE IF NOT EXISTS concepts (
  tenant TEXT NOT NULL, id TEXT NOT NULL, doc TEXT NOT NULL, PRIMARY KEY (tenant, id));
CREATE TABLE IF NOT EXISTS courses (
  tenant TEXT NOT NULL, id TEXT NOT NULL, status TEXT NOT NULL, title TEXT NOT NULL,
  doc TEXT NOT NULL, listed_title TEXT NOT NULL, PRIMARY KEY (tenant, id));
CREATE TABLE IF NOT EXISTS lessons (
  tenant TEXT NOT NULL, id TEXT NOT NULL, course TEXT NOT NULL, position INTEGER NOT NULL,
  version INTEGER NOT NULL, doc TEXT NOT NULL, PRIMARY KEY (tenant, id));
CREATE INDEX IF NOT EXISTS lessons_course ON lessons (tenant, course, position);
CREATE TABLE IF NOT EXISTS course_snapshots (
  tenant TEXT NOT NULL, course TEXT NOT NULL, id TEXT NOT NULL, doc TEXT NOT NULL,
  PRIMARY KEY (tenant, course, id));
CREATE TABLE IF NOT EXISTS lesson_versions (
  tenant TEXT NOT NULL, id TEXT NOT NULL, version INTEGER NOT NULL, doc TEXT NOT NULL,
  PRIMARY KEY (tenant, id, version));
"""
PUBLISHED_LESSONS = """
CREATE TABLE published_lessons (
  tenant TEXT NOT NULL, id TEXT NOT NULL, course TEXT NOT NULL, version INTEGER NOT NULL,
  PRIMARY KEY (tenant, id));
CREATE INDEX published_lessons_course ON published_lessons (tenant, course);
INSERT OR REPLACE INTO published_lessons (tenant, id, course, version)
  SELECT c.tenant, json_extract(r.value, '$.id'), c.id, json_extract(r.value, '$.version')
  FROM courses c, json_each(c.doc, '$.publication.lessons') r;
"""
# `list_courses`' order (ports.listed_title), with and without a status
COURSE_ORDER = """
DROP INDEX IF EXISTS courses_status;
CREATE INDEX IF NOT EXISTS courses_listed ON courses (tenant, listed_title, id);
CREATE INDEX IF NOT EXISTS courses_status_listed ON courses (tenant, status, listed_title, id);
"""
LIVE = "deleted = 0"
# Lessons are parsed on the event loop up to this many bytes of JSON a read (a few ms); a read of
# more is parsed on a thread, this many bytes at a time, so a big course never holds the loop.
PARSED_ON_LOOP = 256 * 1024
T = TypeVar("T")


def _migrate(c: sqlite3.Connection) -> None:
    c.executescript(SCHEMA)
    columns = {r["name"] for r in c.execute("PRAGMA table_info(lessons)").fetchall()}
    if "deleted" not in columns:
        c.execute("ALTER TABLE lessons ADD COLUMN deleted INTEGER NOT NULL DEFAULT 0")
    if c.execute("SELECT 1 FROM sqlite_master WHERE type = 'table'"
                 " AND name = 'published_lessons'").fetchone() is None:
        c.executescript(PUBLISHED_LESSONS)  # filled from the publications stored before it
    at_once(c, _add_listed_title)
    c.executescript(COURSE_ORDER)


def _add_listed_title(c: sqlite3.Connection) -> None:
    """The column `list_courses` orders by, filled for the courses stored before it."""
    columns = {r["name"] for r in c.execute("PRAGMA table_info(courses)").fetchall()}
    if "listed_title" in columns:
        return
    c.execute("ALTER TABLE courses ADD COLUMN listed_title TEXT NOT NULL DEFAULT ''")
    rows = c.execute("SELECT doc FROM courses").fetchall()
    c.executemany("UPDATE courses SET listed_title = ? WHERE tenant = ? AND id = ?", [
        (listed_title(x), x.tenant, x.id)
        for x in (Course.model_validate_json(r["doc"], context=STORED) for r in rows)])


def _course(c: sqlite3.Connection, tenant: str, course_id: str) -> Course | None:
    row = c.execute("SELECT doc FROM courses WHERE tenant = ? AND id = ?",
                    (tenant, course_id)).fetchone()
    return None if row is None else Course.model_validate_json(row["doc"], context=STORED)


def _placed(lessons: Sequence[Lesson], at: int) -> list[tuple[Lesson, str]]:
    """`lessons` at positions `at`, `at + 1`, …, each with the JSON it is stored as."""
    return [_place(x, at + n) for n, x in enumerate(lessons)]


def _place(lesson: Lesson, position: int) -> tuple[Lesson, str]:
    placed = lesson.model_copy(update={"position": position})
    return placed, placed.model_dump_json()


def _put_course(c: sqlite3.Connection, course: Course) -> None:
    c.execute("UPDATE courses SET status = ?, title = ?, listed_title = ?, doc = ?"
              " WHERE tenant = ? AND id = ?",
              (course.status, course.title, listed_title(course), course.model_dump_json(),
               course.tenant, course.id))


def _merged(stored: Course, new: Course, fields: Sequence[str]) -> Course:
    return stored.model_copy(update={f: getattr(new, f) for f in fields})


def _marks(values: Sequence[Any]) -> str:
    return ",".join("?" * len(values))


def _lesson(doc: str) -> Lesson:
    return Lesson.model_validate_json(doc, context=STORED)


async def _parsed(docs: Sequence[str], parse: Callable[[str], T]) -> list[T]:
    """Each of `docs` parsed, in order: on the loop when they are few bytes, else on a thread in
    pieces of about `PARSED_ON_LOOP` bytes."""
    if sum(len(d) for d in docs) <= PARSED_ON_LOOP:
        return _each(parse, docs)
    out: list[T] = []
    start = size = 0
    for n, doc in enumerate(docs, 1):
        size += len(doc)
        if size >= PARSED_ON_LOOP or n == len(docs):
            out += await asyncio.to_thread(_each, parse, docs[start:n])
            start, size = n, 0
    return out


def _each(parse: Callable[[str], T], docs: Sequence[str]) -> list[T]:
    return [parse(d) for d in docs]


class EmbeddedContentStore:
    def __init__(self, db: SqliteDB, registry: EventRegistry) -> None:
        self.db = db
        self._outbox = SqliteOutbox(db, registry, name="content_outbox")

    @property
    def outbox(self) -> SqliteOutbox:
        return self._outbox

    async def setup(self) -> None:
        await self.db.run(_migrate)
        await self._outbox.setup()

    # concepts

    async def add_concept(self, concept: Concept) -> None:
        try:
            await self.db.transaction(lambda c: c.execute(
                "INSERT INTO concepts (tenant, id, doc) VALUES (?, ?, ?)",
                (concept.tenant, concept.id, concept.model_dump_json())))
        except sqlite3.IntegrityError:
            raise Duplicate(concept.id) from None

    async def replace_concept(self, concept: Concept, *, expected: int | None = None) -> None:
        def write(c: sqlite3.Connection) -> None:
            row = c.execute("SELECT doc FROM concepts WHERE tenant = ? AND id = ?",
                            (concept.tenant, concept.id)).fetchone()
            if row is None:
                raise Missing(concept.id)
            if expected is not None and json.loads(row["doc"]).get("version", 1) != expected:
                raise StaleVersion(concept.id)
            c.execute("UPDATE concepts SET doc = ? WHERE tenant = ? AND id = ?",
                      (concept.model_dump_json(), concept.tenant, concept.id))

        await self.db.transaction(write)

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
        wanted = list(ids)
        if not wanted:
            return []
        rows = await self.db.run(lambda c: c.execute(
            f"SELECT doc FROM concepts WHERE tenant = ? AND id IN ({_marks(wanted)})"  # noqa: S608
            " ORDER BY id", (tenant, *wanted)).fetchall())
        return [Concept.model_validate_json(r["doc"], context=STORED) for r in rows]

    # course heads

    async def add_course(self, course: Course) -> None:
        try:
            await self.db.transaction(lambda c: c.execute(
                "INSERT INTO courses (tenant, id, status, title, listed_title, doc)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (course.tenant, course.id, course.status, course.title, listed_title(course),
                 course.model_dump_json())))
        except sqlite3.IntegrityError:
            raise Duplicate(course.id) from None

    async def get_course(self, tenant: str, course_id: str) -> Course | None:
        return await self.db.run(lambda c: _course(c, tenant, course_id))

    async def get_courses(self, tenant: str, ids: Sequence[str]) -> list[Course]:
        wanted = list(dict.fromkeys(ids))
        if not wanted:
            return []
        rows = await self.db.run(lambda c: c.execute(
            f"SELECT doc FROM courses WHERE tenant = ? AND id IN ({_marks(wanted)})"  # noqa: S608
            " ORDER BY id", (tenant, *wanted)).fetchall())
        return [Course.model_validate_json(r["doc"], context=STORED) for r in rows]

    async def list_courses(self, tenant: str, status: CourseStatus | None = None, *,
                           after: str | None = None, limit: int = 100,
                           readable_by: ReadableBy | None = None) -> Slice[Course]:
        title, course_id = key_of(after, str, str) if after else ("", "")
        where = "tenant = ? AND (listed_title, id) > (?, ?)" + (
            " AND status = ?" if status else "")
        args: tuple[object, ...] = (tenant, title, course_id, *((status,) if status else ()))
        if readable_by is not None:
            where += " AND (json_extract(doc, '$.publication') IS NOT NULL"
            if readable_by.editor is not None:
                where += (" OR (json_extract(doc, '$.owner') IS NULL"
                          " AND NOT coalesce(json_extract(doc, '$.orphaned'), 0))"
                          " OR json_extract(doc, '$.owner') = ? OR EXISTS (SELECT 1 FROM"
                          " json_each(doc, '$.co_authors') WHERE value = ?)")
                args += (readable_by.editor, readable_by.editor)
            where += ")"
        args += (limit + 1,)
        rows = await self.db.run(lambda c: c.execute(
            f"SELECT doc FROM courses WHERE {where} ORDER BY listed_title, id LIMIT ?",  # noqa: S608
            args).fetchall())
        courses = [Course.model_validate_json(r["doc"], context=STORED) for r in rows]
        return Slice.of(courses, limit, course_key)

    async def list_published(self, after: tuple[str, str] | None = None, *,
                             limit: int = 100) -> list[Course]:
        tenant, course_id = after or ("", "")
        rows = await self.db.run(lambda c: c.execute(
            "SELECT doc FROM courses WHERE status = 'published' AND (tenant, id) > (?, ?)"
            " ORDER BY tenant, id LIMIT ?", (tenant, course_id, limit)).fetchall())
        return [Course.model_validate_json(r["doc"], context=STORED) for r in rows]

    async def courses_of_author(self, tenant: str, user_id: str) -> list[Course]:
        rows = await self.db.run(lambda c: c.execute(
            "SELECT doc FROM courses WHERE tenant = ? AND (json_extract(doc, '$.owner') = ? OR"
            " EXISTS (SELECT 1 FROM json_each(doc, '$.co_authors') WHERE value = ?))"
            " ORDER BY title, id", (tenant, user_id, user_id)).fetchall())
        return [Course.model_validate_json(r["doc"], context=STORED) for r in rows]

    async def delete_draft_course(self, course: Course,
                                  deleted: Callable[[Lesson], Envelope]) -> None:
        def write(c: sqlite3.Connection) -> None:
            stored = _course(c, course.tenant, course.id)
            if stored is None:
                raise Missing(course.id)
            if (stored.revision, stored.next_position, stored.version) != (
                    course.revision, course.next_position, 0):
                raise StaleVersion(course.id)
            rows = c.execute(f"SELECT doc FROM lessons WHERE tenant = ? AND course = ? AND {LIVE}",  # noqa: S608
                             (course.tenant, course.id)).fetchall()
            lessons = [Lesson.model_validate_json(r["doc"], context=STORED) for r in rows]
            c.execute(f"UPDATE lessons SET deleted = 1 WHERE tenant = ? AND course = ? AND {LIVE}",  # noqa: S608
                      (course.tenant, course.id))
            c.execute("DELETE FROM courses WHERE tenant = ? AND id = ?", (course.tenant, course.id))
            self._outbox.add(c, *(deleted(x) for x in lessons))

        await self.db.transaction(write)

    async def delete_lessons_left(self, tenant: str, course_id: str,
                                  deleted: Callable[[Lesson], Envelope]) -> int:
        return 0  # a course and its lessons go in one transaction: none is ever left

    async def reorder_lessons(self, tenant: str, course_id: str, order: Sequence[str],
                              at: datetime) -> None:
        def write(c: sqlite3.Connection) -> None:
            course = _course(c, tenant, course_id)
            if course is None:
                raise Missing(course_id)
            live = {r["id"]: Lesson.model_validate_json(r["doc"], context=STORED)
                    for r in c.execute(
                        f"SELECT id, doc FROM lessons WHERE tenant = ? AND course = ?"  # noqa: S608
                        f" AND {LIVE}", (tenant, course_id))}
            if sorted(live) != sorted(order):
                raise StaleVersion(course_id)
            first = course.next_position
            moved = [live[x].model_copy(update={
                "position": first + n, "version": live[x].version + 1, "updated_at": at})
                for n, x in enumerate(order)]
            c.executemany("UPDATE lessons SET position = ?, version = ?, doc = ?"
                          " WHERE tenant = ? AND id = ?",
                          [(x.position, x.version, x.model_dump_json(), tenant, x.id)
                           for x in moved])
            _put_course(c, course.model_copy(update={"next_position": first + len(order)}))

        await self.db.transaction(write)

    async def set_course_status(self, course: Course, expected: Course,
                                events: Sequence[Envelope]) -> None:
        def write(c: sqlite3.Connection) -> None:
            stored = _course(c, course.tenant, course.id)
            if stored is None:
                raise Missing(course.id)
            if (stored.revision, stored.version) != (expected.revision, expected.version):
                raise StaleVersion(course.id)
            _put_course(c, _merged(stored, course, STATUS_FIELDS))
            self._outbox.add(c, *events)

        await self.db.transaction(write)

    async def update_course(self, course: Course, expected_revision: int) -> None:
        def write(c: sqlite3.Connection) -> None:
            stored = _course(c, course.tenant, course.id)
            if stored is None:
                raise Missing(course.id)
            if stored.revision != expected_revision:
                raise StaleVersion(course.id)
            _put_course(c, _merged(stored, course, HEAD_FIELDS))

        await self.db.transaction(write)

    # lessons

    async def add_lesson(self, lesson: Lesson) -> Lesson:
        def write(c: sqlite3.Connection) -> Lesson:
            course = _course(c, lesson.tenant, lesson.course)
            if course is None:
                raise Missing(lesson.course)
            placed = lesson.model_copy(update={"position": course.next_position})
            _put_course(c, course.model_copy(update={
                "lesson_count": course.lesson_count + 1,
                "next_position": course.next_position + 1}))
            c.execute("INSERT INTO lessons (tenant, id, course, position, version, doc)"
                      " VALUES (?, ?, ?, ?, ?, ?)",
                      (placed.tenant, placed.id, placed.course, placed.position, placed.version,
                       placed.model_dump_json()))
            return placed

        return await self.db.transaction(write)

    async def add_lessons(self, lessons: Sequence[Lesson]) -> list[Lesson]:
        if not lessons:
            return []
        first = lessons[0]
        # Written out as JSON off the loop, where the course's lessons end now; again in the
        # transaction, should another lesson have been added meanwhile.
        read = await self.get_course(first.tenant, first.course)
        at = 0 if read is None else read.next_position
        made = await each_in_thread(lambda n: _place(lessons[n], at + n), range(len(lessons)))

        def write(c: sqlite3.Connection) -> list[Lesson]:
            course = _course(c, first.tenant, first.course)
            if course is None:
                raise Missing(first.course)
            placed = made if course.next_position == at else _placed(lessons,
                                                                    course.next_position)
            _put_course(c, course.model_copy(update={
                "lesson_count": course.lesson_count + len(placed),
                "next_position": course.next_position + len(placed)}))
            c.executemany("INSERT INTO lessons (tenant, id, course, position, version, doc)"
                          " VALUES (?, ?, ?, ?, ?, ?)",
                          [(x.tenant, x.id, x.course, x.position, x.version, doc)
                           for x, doc in placed])
            return [x for x, _ in placed]

        return await self.db.transaction(write)

    async def get_lesson(self, tenant: str, lesson_id: str, *,
                         deleted: bool = False) -> Lesson | None:
        which = "deleted = 1" if deleted else LIVE
        row = await self.db.run(lambda c: c.execute(
            f"SELECT doc FROM lessons WHERE tenant = ? AND id = ? AND {which}",  # noqa: S608
            (tenant, lesson_id)).fetchone())
        return None if row is None else (await _parsed([row["doc"]], _lesson))[0]

    async def list_lessons(self, tenant: str, course_id: str) -> list[Lesson]:
        rows = await self.db.run(lambda c: c.execute(
            f"SELECT doc FROM lessons WHERE tenant = ? AND course = ? AND {LIVE}"  # noqa: S608
            " ORDER BY position", (tenant, course_id)).fetchall())
        return await _parsed([r["doc"] for r in rows], _lesson)

    async def lesson_stamps(self, tenant: str, course_id: str) -> list[tuple[str, int]]:
        rows = await self.db.run(lambda c: c.execute(
            f"SELECT id, version FROM lessons WHERE tenant = ? AND course = ? AND {LIVE}"  # noqa: S608
            " ORDER BY position", (tenant, course_id)).fetchall())
        return [(r["id"], int(r["version"])) for r in rows]

    async def get_lessons(self, tenant: str, lesson_ids: Sequence[str]) -> list[Lesson]:
        wanted = list(dict.fromkeys(lesson_ids))
        if not wanted:
            return []
        rows = await self.db.run(lambda c: c.execute(
            f"SELECT id, doc FROM lessons WHERE tenant = ? AND id IN ({_marks(wanted)})"  # noqa: S608
            f" AND {LIVE}", (tenant, *wanted)).fetchall())
        found = {r["id"]: r["doc"] for r in rows}
        return await _parsed([found[i] for i in lesson_ids if i in found], _lesson)

    async def published_lesson(self, tenant: str, lesson_id: str) -> Lesson | None:
        row = await self.db.run(lambda c: c.execute(
            "SELECT v.doc FROM published_lessons p"
            " JOIN lessons l ON l.tenant = p.tenant AND l.id = p.id AND l.deleted = 0"
            " JOIN lesson_versions v ON v.tenant = p.tenant AND v.id = p.id"
            " AND v.version = p.version WHERE p.tenant = ? AND p.id = ?",
            (tenant, lesson_id)).fetchone())
        return None if row is None else (await _parsed([row["doc"]], _lesson))[0]

    async def lessons_of_courses(self, tenant: str,
                                 course_ids: Sequence[str]) -> dict[str, list[Lesson]]:
        wanted = list(dict.fromkeys(course_ids))
        found: dict[str, list[Lesson]] = {c: [] for c in wanted}
        if not wanted:
            return found
        rows = await self.db.run(lambda c: c.execute(
            f"SELECT doc FROM lessons WHERE tenant = ? AND course IN ({_marks(wanted)})"  # noqa: S608
            f" AND {LIVE} ORDER BY course, position", (tenant, *wanted)).fetchall())
        for lesson in await _parsed([r["doc"] for r in rows], _lesson):
            found[lesson.course].append(lesson)
        return found

    async def live_lesson_ids(self, tenant: str,
                              course_ids: Sequence[str]) -> dict[str, set[str]]:
        wanted = list(dict.fromkeys(course_ids))
        found: dict[str, set[str]] = {c: set() for c in wanted}
        if not wanted:
            return found
        rows = await self.db.run(lambda c: c.execute(
            f"SELECT id, course FROM lessons WHERE tenant = ? AND course IN ({_marks(wanted)})"  # noqa: S608
            f" AND {LIVE}", (tenant, *wanted)).fetchall())
        for r in rows:
            found[r["course"]].add(r["id"])
        return found

    async def lesson_heads(self, tenant: str,
                           lesson_ids: Sequence[str]) -> dict[str, LessonHead]:
        wanted = list(dict.fromkeys(lesson_ids))
        if not wanted:
            return {}
        rows = await self.db.run(lambda c: c.execute(
            f"SELECT id, course, version FROM lessons WHERE tenant = ?"  # noqa: S608
            f" AND id IN ({_marks(wanted)}) AND {LIVE}", (tenant, *wanted)).fetchall())
        return {r["id"]: LessonHead(course=r["course"], version=r["version"]) for r in rows}

    async def replace_lesson(self, lesson: Lesson, expected_version: int,
                             events: Sequence[Envelope] = (), *, revive: bool = False) -> None:
        def write(c: sqlite3.Connection) -> None:
            row = c.execute("SELECT version, deleted FROM lessons WHERE tenant = ? AND id = ?",
                            (lesson.tenant, lesson.id)).fetchone()
            if row is None or (row["deleted"] and not revive):
                raise Missing(lesson.id)
            if row["version"] != expected_version:
                raise StaleVersion(lesson.id)
            c.execute("UPDATE lessons SET version = ?, position = ?, deleted = 0, doc = ?"
                      " WHERE tenant = ? AND id = ?",
                      (lesson.version, lesson.position, lesson.model_dump_json(), lesson.tenant,
                       lesson.id))
            if row["deleted"]:
                c.execute("UPDATE courses SET doc = json_set(doc, '$.lesson_count',"
                          " json_extract(doc, '$.lesson_count') + 1) WHERE tenant = ? AND id = ?",
                          (lesson.tenant, lesson.course))
            self._outbox.add(c, *events)

        await self.db.transaction(write)

    async def delete_lesson(self, tenant: str, lesson_id: str, expected_version: int,
                            events: Sequence[Envelope] = ()) -> None:
        def write(c: sqlite3.Connection) -> None:
            row = c.execute(f"SELECT version, course FROM lessons WHERE tenant = ? AND id = ?"  # noqa: S608
                            f" AND {LIVE}", (tenant, lesson_id)).fetchone()
            if row is None:
                raise Missing(lesson_id)
            if row["version"] != expected_version:
                raise StaleVersion(lesson_id)
            c.execute("UPDATE lessons SET deleted = 1 WHERE tenant = ? AND id = ?",
                      (tenant, lesson_id))
            c.execute("UPDATE courses SET doc = json_set(doc, '$.lesson_count',"
                      " max(0, json_extract(doc, '$.lesson_count') - 1))"
                      " WHERE tenant = ? AND id = ?", (tenant, row["course"]))
            self._outbox.add(c, *events)

        await self.db.transaction(write)

    async def announce_on_lesson(self, tenant: str, lesson_id: str,
                                 events: Sequence[Envelope]) -> bool:
        def write(c: sqlite3.Connection) -> bool:
            if c.execute("SELECT 1 FROM lessons WHERE tenant = ? AND id = ?",
                         (tenant, lesson_id)).fetchone() is None:
                return False
            self._outbox.add(c, *events)
            return True

        return await self.db.transaction(write)

    # publications

    async def publish_course(self, course: Course, expected_version: int,
                             lessons: Sequence[Lesson], events: Sequence[Envelope]) -> None:
        p = course.publication
        assert p is not None, "a publication to store"
        snapshot = CourseSnapshot(id=p.snapshot, tenant=course.tenant, course=course.id,
                                  publication=p)

        def write(c: sqlite3.Connection) -> None:
            stored = _course(c, course.tenant, course.id)
            if stored is None:
                raise Missing(course.id)
            if stored.version != expected_version or stored.status == "archived":
                raise StaleVersion(course.id)
            live = c.execute(f"SELECT id, version FROM lessons WHERE tenant = ? AND course = ?"  # noqa: S608
                             f" AND {LIVE}", (course.tenant, course.id)).fetchall()
            if {(r["id"], r["version"]) for r in live} != {(x.id, x.version) for x in lessons}:
                raise StaleVersion(course.id)  # the draft changed since `lessons` were read
            c.executemany("INSERT OR IGNORE INTO lesson_versions (tenant, id, version, doc)"
                          " VALUES (?, ?, ?, ?)",
                          [(x.tenant, x.id, x.version, x.model_dump_json()) for x in lessons])
            c.execute("INSERT INTO course_snapshots (tenant, course, id, doc) VALUES (?, ?, ?, ?)",
                      (course.tenant, course.id, p.snapshot, snapshot.model_dump_json()))
            c.execute("DELETE FROM published_lessons WHERE tenant = ? AND course = ?",
                      (course.tenant, course.id))
            c.executemany("INSERT OR REPLACE INTO published_lessons (tenant, id, course, version)"
                          " VALUES (?, ?, ?, ?)",
                          [(course.tenant, r.id, course.id, r.version) for r in p.lessons])
            _put_course(c, _merged(stored, course, PUBLICATION_FIELDS))
            self._outbox.add(c, *events)

        await self.db.transaction(write)

    async def get_snapshot(self, tenant: str, course_id: str,
                           snapshot_id: str) -> CourseSnapshot | None:
        row = await self.db.run(lambda c: c.execute(
            "SELECT doc FROM course_snapshots WHERE tenant = ? AND course = ? AND id = ?",
            (tenant, course_id, snapshot_id)).fetchone())
        return None if row is None else CourseSnapshot.model_validate_json(row["doc"], context=STORED)

    async def lesson_versions(self, tenant: str, refs: Sequence[LessonRef]) -> list[Lesson]:
        return await _parsed(await self._snapshots(tenant, refs, "v.doc"), _lesson)

    async def lesson_outlines(self, tenant: str,
                              refs: Sequence[LessonRef]) -> list[LessonOutline]:
        docs = await self._snapshots(tenant, refs, "json_remove(v.doc, '$.blocks')")
        return await _parsed(docs, lambda d: LessonOutline.model_validate_json(d, context=STORED))

    async def _snapshots(self, tenant: str, refs: Sequence[LessonRef], doc: str) -> list[str]:
        """The `doc` (an expression of the snapshot `v.doc`) of each lesson snapshot `refs`
        names, in their order; those not stored are left out."""
        if not refs:
            return []
        keys = json.dumps([[r.id, r.version] for r in refs])
        # CROSS JOIN keeps this order: one primary-key search for each ref. Left to the
        # planner, SQLite scans the tenant's versions and, for each, every ref.
        rows = await self.db.run(lambda c: c.execute(
            f"SELECT v.id, v.version, {doc} AS doc FROM json_each(?) k"  # noqa: S608
            " CROSS JOIN lesson_versions v ON v.tenant = ? AND v.id = json_extract(k.value, '$[0]')"
            " AND v.version = json_extract(k.value, '$[1]')", (keys, tenant)).fetchall())
        found = {(r["id"], r["version"]): r["doc"] for r in rows}
        return [found[(r.id, r.version)] for r in refs if (r.id, r.version) in found]
