"""The MongoDB content store (database `content`). Each change and its events are one
single-document write: a publication's events ride in the course document's outbox field, a
lesson edit's or deletion's in the lesson's (kit MongoOutbox). It needs no multi-document
transaction, `$lookup` or text index, so it runs on FerretDB v1 as well as MongoDB.

Documents stay small: a course head, one document per lesson draft, one per published version
of a course (`course_versions`: the head as published and its lessons' ids and versions) and one
per published version of a lesson (`lesson_versions`), shared by every course version that
published it unchanged.

Each lesson document also keeps what learners read of it (`_published`: the course version it
was written for and the lesson as that publication holds it, or null), so that a learner's read
is one `find_one`, and a deletion hides it in the same write. A publication cannot write its
course and its lessons in one write, so it marks the lessons it changes first (`_publishing`:
its version), commits the course head with its events, then writes their `_published`. A read
that finds the mark newer than `_published` (the publication is under way, or stopped midway)
or no `_published` (written before it existed) reads the course head and the lesson snapshot
instead, and writes `_published` back when the head's publication is newer. Each of these writes
only moves `_published` forward, so none undoes a newer one.

A lesson deleted while its course is being published is never published: the publication reads
the course's `_fence`, marks its lessons (a new `_publish_mark` on each), reads the live lessons
again (`StaleVersion` unless they are those it publishes, at their versions), then commits only
if `_fence` is unchanged. A deletion reads the lesson's mark, adds one to its course's `_fence`,
then deletes the lesson only if the mark is unchanged (else it starts again). So a deletion that
lands after the publication read the lessons again either finds a new mark (and starts again,
fencing the publication out) or fenced it out already; one that lands after its commit comes
after it. An edit landing after that second read shows at the next publication, as one made
after the commit would.

On FerretDB an update is a query and a separate write (not atomic), so every update of a course
or lesson document holds that document's guard (kit mongo_guard), as the outbox relay does; no
write holds two guards at once. On MongoDB the guard does nothing.

Every `_id` starts with the tenant (`demo/thinking-in-python`), so another tenant's key never
matches, and every query also filters on the `tenant` field.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from pymongo import ASCENDING, AsyncMongoClient, ReturnDocument, UpdateOne
from pymongo.errors import BulkWriteError, DuplicateKeyError

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
from bloop.platform.kit.events.outbox.mongo import MongoOutbox
from bloop.platform.kit.events.types import EventRegistry
from bloop.platform.kit.mongo_guard import DocumentBusy, MongoGuard
from bloop.platform.kit.pagination import Slice, key_of
from bloop.platform.kit.read_back import STORED
from bloop.platform.kit.times import json_time

Doc = dict[str, Any]
# Reads leave out the outbox fields (and any other internal field, all named `_…`).
PUBLISHED = "_published"
PUBLISHING = "_publishing"
MARK = "_publish_mark"  # on a lesson: a token new with each publication that marks it
FENCE = "_fence"  # on a course: counts the deletions of its lessons
LISTED = "_listed_title"  # what `list_courses` orders a course by (ports.listed_title)
HIDE = {"_outbox": 0, "_outbox_pending": 0, PUBLISHED: 0, PUBLISHING: 0, MARK: 0, FENCE: 0,
        LISTED: 0}
DELETED = "_deleted"
LIVE: Doc = {DELETED: {"$ne": True}}
DUPLICATE_KEY = 11000
DELETE_ATTEMPTS = 5  # a deletion tried again while publications keep marking its lesson


def _fields(doc: Doc) -> Doc:
    return {k: v for k, v in doc.items() if not k.startswith("_")}


def _key(tenant: str, *parts: object) -> str:
    return "/".join([tenant, *(str(p) for p in parts)])


def _doc(record: Concept | Course | Lesson) -> Doc:
    return {"_id": _key(record.tenant, record.id), **record.model_dump(mode="json")}


def _at_version(expected: int | None) -> Doc:
    """A filter for the record at version `expected` (one written before it had versions is
    at 1); none for None."""
    if expected is None:
        return {}
    if expected == 1:
        return {"$or": [{"version": 1}, {"version": {"$exists": False}}]}
    return {"version": expected}


def _set(record: Course, fields: Sequence[str]) -> Doc:
    dumped = record.model_dump(mode="json", include=set(fields))
    return {"$set": dumped}


class MongoContentStore:
    def __init__(self, client: AsyncMongoClient[Doc], registry: EventRegistry,
                 database: str = "content", guard: MongoGuard | None = None) -> None:
        db = client[database]
        self.concepts = db["concepts"]
        self.courses = db["courses"]
        self.lessons = db["lessons"]
        self.snapshots = db["course_versions"]
        self.lesson_snapshots = db["lesson_versions"]
        self.guard = guard or MongoGuard.of(db)
        self._outbox = MongoOutbox([self.courses, self.lessons], registry,
                                   name=f"{database}-outbox", guard=self.guard)

    @property
    def outbox(self) -> MongoOutbox:
        return self._outbox

    async def setup(self) -> None:
        await self.concepts.create_index([("tenant", ASCENDING), ("id", ASCENDING)],
                                         name="tenant_id")
        await self.courses.create_index(
            [("tenant", ASCENDING), ("status", ASCENDING), ("title", ASCENDING)],
            name="tenant_status_title")
        await self.courses.create_index(
            [("tenant", ASCENDING), (LISTED, ASCENDING), ("id", ASCENDING)],
            name="tenant_listed_title")
        await self.courses.create_index(
            [("tenant", ASCENDING), ("status", ASCENDING), (LISTED, ASCENDING),
             ("id", ASCENDING)], name="tenant_status_listed_title")
        await self._add_listed_titles()
        await self.courses.create_index([("tenant", ASCENDING), ("owner", ASCENDING)],
                                        name="tenant_owner")
        await self.courses.create_index([("tenant", ASCENDING), ("co_authors", ASCENDING)],
                                        name="tenant_co_authors")
        await self.lessons.create_index(
            [("tenant", ASCENDING), ("course", ASCENDING), ("position", ASCENDING)],
            name="tenant_course_position")
        await self._outbox.setup()
        await self.guard.setup()

    async def _add_listed_titles(self) -> None:
        """Writes `LISTED` into the courses stored before it. A write of the course made since
        wrote it already, and is kept."""
        async for doc in self.courses.find({LISTED: {"$exists": False}}, HIDE):
            course = Course.model_validate(_fields(doc), context=STORED)
            async with self.guard.hold(self.courses, doc["_id"]):
                await self.courses.update_one({"_id": doc["_id"], LISTED: {"$exists": False}},
                                              {"$set": {LISTED: listed_title(course)}})

    # concepts

    async def add_concept(self, concept: Concept) -> None:
        try:
            await self.concepts.insert_one(_doc(concept))
        except DuplicateKeyError:
            raise Duplicate(concept.id) from None

    async def replace_concept(self, concept: Concept, *, expected: int | None = None) -> None:
        where: Doc = {"_id": _key(concept.tenant, concept.id), "tenant": concept.tenant}
        async with self.guard.hold(self.concepts, where["_id"]):
            result = await self.concepts.replace_one(where | _at_version(expected), _doc(concept))
        if result.matched_count == 0:
            exists = await self.concepts.count_documents(where, limit=1)
            raise StaleVersion(concept.id) if exists else Missing(concept.id)

    async def list_concepts(self, tenant: str) -> list[Concept]:
        cursor = self.concepts.find({"tenant": tenant}).sort("id", ASCENDING)
        return [Concept.model_validate(_fields(d), context=STORED) async for d in cursor]

    async def page_concepts(self, tenant: str, *, after: str | None = None,
                            limit: int = 100) -> Slice[Concept]:
        (start,) = key_of(after, str) if after else ("",)
        cursor = (self.concepts.find({"tenant": tenant, "id": {"$gt": start}})
                  .sort("id", ASCENDING).limit(limit + 1))
        found = [Concept.model_validate(_fields(d), context=STORED) async for d in cursor]
        return Slice.of(found, limit, lambda c: (c.id,))

    async def get_concepts(self, tenant: str, ids: Sequence[str]) -> list[Concept]:
        keys = [_key(tenant, i) for i in ids]
        if not keys:
            return []
        cursor = self.concepts.find({"_id": {"$in": keys}, "tenant": tenant}).sort("id", ASCENDING)
        return [Concept.model_validate(_fields(d), context=STORED) async for d in cursor]

    # course heads

    async def add_course(self, course: Course) -> None:
        try:
            await self.courses.insert_one(_doc(course) | {LISTED: listed_title(course)})
        except DuplicateKeyError:
            raise Duplicate(course.id) from None

    async def get_course(self, tenant: str, course_id: str) -> Course | None:
        doc = await self.courses.find_one({"_id": _key(tenant, course_id), "tenant": tenant}, HIDE)
        return None if doc is None else Course.model_validate(_fields(doc), context=STORED)

    async def get_courses(self, tenant: str, ids: Sequence[str]) -> list[Course]:
        keys = list(dict.fromkeys(_key(tenant, i) for i in ids))
        if not keys:
            return []
        cursor = self.courses.find({"_id": {"$in": keys}, "tenant": tenant}, HIDE).sort(
            "id", ASCENDING)
        return [Course.model_validate(_fields(d), context=STORED) async for d in cursor]

    async def list_courses(self, tenant: str, status: CourseStatus | None = None, *,
                           after: str | None = None, limit: int = 100,
                           readable_by: ReadableBy | None = None) -> Slice[Course]:
        query: Doc = {"tenant": tenant} | ({"status": status} if status else {})
        alternatives: list[list[Doc]] = []
        if after:
            title, course_id = key_of(after, str, str)
            alternatives.append([{LISTED: {"$gt": title}},
                                 {LISTED: title, "id": {"$gt": course_id}}])
        if readable_by is not None:
            editor = readable_by.editor
            readable: list[Doc] = [{"publication": {"$ne": None}}]
            if editor is not None:
                readable += [{"owner": None, "orphaned": {"$ne": True}}, {"owner": editor},
                             {"co_authors": editor}]
            alternatives.append(readable)
        if alternatives:
            query["$and"] = [{"$or": a} for a in alternatives]
        cursor = (self.courses.find(query, HIDE)
                  .sort([(LISTED, ASCENDING), ("id", ASCENDING)]).limit(limit + 1))
        courses = [Course.model_validate(_fields(d), context=STORED) async for d in cursor]
        return Slice.of(courses, limit, course_key)

    async def list_published(self, after: tuple[str, str] | None = None, *,
                             limit: int = 100) -> list[Course]:
        query: Doc = {"status": "published"}
        if after is not None:
            tenant, course_id = after
            query["$or"] = [{"tenant": {"$gt": tenant}}, {"tenant": tenant, "id": {"$gt": course_id}}]
        cursor = (self.courses.find(query, HIDE)
                  .sort([("tenant", ASCENDING), ("id", ASCENDING)]).limit(limit))
        return [Course.model_validate(_fields(d), context=STORED) async for d in cursor]

    async def courses_of_author(self, tenant: str, user_id: str) -> list[Course]:
        cursor = self.courses.find(
            {"tenant": tenant, "$or": [{"owner": user_id}, {"co_authors": user_id}]}, HIDE,
        ).sort([("title", ASCENDING), ("id", ASCENDING)])
        return [Course.model_validate(_fields(d), context=STORED) async for d in cursor]

    async def _missing_or_stale(self, key: str, record_id: str) -> Exception:
        exists = await self.courses.count_documents({"_id": key}, limit=1)
        return StaleVersion(record_id) if exists else Missing(record_id)

    async def delete_draft_course(self, course: Course,
                                  deleted: Callable[[Lesson], Envelope]) -> None:
        # The course goes first, then its lessons one by one, each with its event (no lesson
        # can be added to a course that is gone). When the process stops in between,
        # `delete_lessons_left` deletes the lessons left.
        key = _key(course.tenant, course.id)
        async with self.guard.hold(self.courses, key):
            result = await self.courses.delete_one(
                {"_id": key, "tenant": course.tenant, "revision": course.revision,
                 "next_position": course.next_position, "version": 0})
        if result.deleted_count == 0:
            raise await self._missing_or_stale(key, course.id)
        await self._delete_lessons(course.tenant, course.id, deleted)

    async def delete_lessons_left(self, tenant: str, course_id: str,
                                  deleted: Callable[[Lesson], Envelope]) -> int:
        if await self.courses.count_documents({"_id": _key(tenant, course_id)}, limit=1):
            return 0
        return await self._delete_lessons(tenant, course_id, deleted)

    async def _delete_lessons(self, tenant: str, course_id: str,
                              deleted: Callable[[Lesson], Envelope]) -> int:
        count = 0
        while lessons := await self.list_lessons(tenant, course_id):
            for lesson in lessons:  # one edited meanwhile is read again on the next round
                lesson_key = _key(lesson.tenant, lesson.id)
                async with self.guard.hold(self.lessons, lesson_key):
                    result = await self.lessons.update_one(
                        {"_id": lesson_key, "version": lesson.version} | LIVE,
                        self._outbox.with_events({"$set": {DELETED: True}}, deleted(lesson)))
                count += result.modified_count
        return count

    async def reorder_lessons(self, tenant: str, course_id: str, order: Sequence[str],
                              at: datetime) -> None:
        # The course's counter hands out a fresh run of places, then each lesson takes its own:
        # a process stopped midway leaves some lessons moved, never two in one place. A lesson
        # already in a later run (a reorder that began after this one) keeps it, so of two
        # reorders at once the later one stands whole, never a mix of the two.
        live = [x.id for x in await self.list_lessons(tenant, course_id)]
        if sorted(live) != sorted(order):
            if await self.get_course(tenant, course_id) is None:
                raise Missing(course_id)
            raise StaleVersion(course_id)
        key = _key(tenant, course_id)
        async with self.guard.hold(self.courses, key):
            course = await self.courses.find_one_and_update(
                {"_id": key, "tenant": tenant}, {"$inc": {"next_position": len(order)}},
                return_document=ReturnDocument.AFTER)
        if course is None:
            raise Missing(course_id)
        first = int(course["next_position"]) - len(order)
        when = json_time(at)
        for n, lesson_id in enumerate(order):
            lesson_key = _key(tenant, lesson_id)
            async with self.guard.hold(self.lessons, lesson_key):
                await self.lessons.update_one({"_id": lesson_key, "position": {"$lt": first}}, {
                    "$set": {"position": first + n, "updated_at": when}, "$inc": {"version": 1}})

    async def set_course_status(self, course: Course, expected: Course,
                                events: Sequence[Envelope]) -> None:
        key = _key(course.tenant, course.id)
        update = self._outbox.with_events(_set(course, STATUS_FIELDS), *events)
        async with self.guard.hold(self.courses, key):
            result = await self.courses.update_one(
                {"_id": key, "tenant": course.tenant, "revision": expected.revision,
                 "version": expected.version}, update)
        if result.matched_count == 0:
            raise await self._missing_or_stale(key, course.id)

    async def update_course(self, course: Course, expected_revision: int) -> None:
        # The draft's title is what the course is listed by only while it was never published
        # (version 0); once it is, the publication writes `LISTED`, and a head edit leaves it.
        key = _key(course.tenant, course.id)
        where: Doc = {"_id": key, "tenant": course.tenant, "revision": expected_revision}
        update = _set(course, HEAD_FIELDS)
        draft_listed = {"$set": update["$set"] | {LISTED: listed_title(course)}}
        attempts = [(where | {"version": 0}, draft_listed)] if course.version == 0 else []
        for query, change in [*attempts, (where, update)]:
            async with self.guard.hold(self.courses, key):
                result = await self.courses.update_one(query, change)
            if result.matched_count:
                return
        raise await self._missing_or_stale(key, course.id)

    # lessons

    async def add_lesson(self, lesson: Lesson) -> Lesson:
        # The course's counter hands out positions; a lesson insert that fails after it leaves a
        # gap in the positions, never two lessons in one place. (No projection: FerretDB v1's
        # findAndModify does not support one.)
        course_key = _key(lesson.tenant, lesson.course)
        async with self.guard.hold(self.courses, course_key):
            course = await self.courses.find_one_and_update(
                {"_id": course_key, "tenant": lesson.tenant},
                {"$inc": {"lesson_count": 1, "next_position": 1}},
                return_document=ReturnDocument.AFTER)
        if course is None:
            raise Missing(lesson.course)
        placed = lesson.model_copy(update={"position": int(course["next_position"]) - 1})
        try:
            await self.lessons.insert_one(_doc(placed))
        except BaseException:  # the count taken back, so course lists do not count it
            await asyncio.shield(self._uncount(course_key))
            raise
        return placed

    async def add_lessons(self, lessons: Sequence[Lesson]) -> list[Lesson]:
        # One counter update hands out the run of positions, then one ordered `insert` command
        # holds every lesson: a server that receives it applies it whole even when the process
        # that sent it dies, so a killed import leaves all its lessons or none. Not atomic when
        # the server itself fails part-way through the command (FerretDB v1 has no
        # multi-document transactions): the lessons written then stay, the rest are missing.
        # A failure this process sees takes back what was written, and the count.
        if not lessons:
            return []
        first = lessons[0]
        course_key = _key(first.tenant, first.course)
        async with self.guard.hold(self.courses, course_key):
            course = await self.courses.find_one_and_update(
                {"_id": course_key, "tenant": first.tenant},
                {"$inc": {"lesson_count": len(lessons), "next_position": len(lessons)}},
                return_document=ReturnDocument.AFTER)
        if course is None:
            raise Missing(first.course)
        start = int(course["next_position"]) - len(lessons)
        placed = [x.model_copy(update={"position": start + n}) for n, x in enumerate(lessons)]
        try:
            await self.lessons.insert_many([_doc(x) for x in placed], ordered=True)
        except BaseException:
            await asyncio.shield(self._take_back(placed, course_key))
            raise
        return placed

    async def _take_back(self, lessons: Sequence[Lesson], course_key: str) -> None:
        # Only documents of this run of positions: a lesson whose id clashed keeps its own.
        first = lessons[0]
        await self.lessons.delete_many({
            "_id": {"$in": [_key(x.tenant, x.id) for x in lessons]}, "tenant": first.tenant,
            "course": first.course,
            "position": {"$gte": first.position, "$lte": lessons[-1].position}})
        await self._uncount(course_key, len(lessons))

    async def _uncount(self, course_key: str, n: int = 1) -> None:
        async with self.guard.hold(self.courses, course_key):
            await self.courses.update_one({"_id": course_key, "lesson_count": {"$gte": n}},
                                          {"$inc": {"lesson_count": -n}})

    async def get_lesson(self, tenant: str, lesson_id: str, *,
                         deleted: bool = False) -> Lesson | None:
        which: Doc = {DELETED: True} if deleted else LIVE
        doc = await self.lessons.find_one(
            {"_id": _key(tenant, lesson_id), "tenant": tenant} | which, HIDE)
        return None if doc is None else Lesson.model_validate(_fields(doc), context=STORED)

    async def list_lessons(self, tenant: str, course_id: str) -> list[Lesson]:
        cursor = self.lessons.find({"tenant": tenant, "course": course_id} | LIVE, HIDE).sort(
            "position", ASCENDING)
        return [Lesson.model_validate(_fields(d), context=STORED) async for d in cursor]

    async def lesson_stamps(self, tenant: str, course_id: str) -> list[tuple[str, int]]:
        cursor = self.lessons.find({"tenant": tenant, "course": course_id} | LIVE,
                                   {"_id": 0, "id": 1, "version": 1}).sort("position", ASCENDING)
        return [(str(d["id"]), int(d["version"])) async for d in cursor]

    async def get_lessons(self, tenant: str, lesson_ids: Sequence[str]) -> list[Lesson]:
        keys = list(dict.fromkeys(_key(tenant, i) for i in lesson_ids))
        if not keys:
            return []
        found = {d["id"]: d async for d in self.lessons.find(
            {"_id": {"$in": keys}, "tenant": tenant} | LIVE, HIDE)}
        return [Lesson.model_validate(_fields(found[i]), context=STORED) for i in lesson_ids
                if i in found]

    async def published_lesson(self, tenant: str, lesson_id: str) -> Lesson | None:
        # By `_id` alone, the tenant and the tombstone checked here: FerretDB v1 answers a
        # filter on any other field several times slower, even beside `_id`.
        doc = await self.lessons.find_one({"_id": _key(tenant, lesson_id)},
                                          {"tenant": 1, "course": 1, DELETED: 1, PUBLISHED: 1,
                                           PUBLISHING: 1})
        if doc is None or doc.get("tenant") != tenant or doc.get(DELETED) is True:
            return None
        current = doc.get(PUBLISHED)
        if current is not None and doc.get(PUBLISHING, 0) <= current["version"]:
            found = current["lesson"]
            return None if found is None else Lesson.model_validate(found, context=STORED)
        return await self._published_from_course(tenant, lesson_id, str(doc["course"]),
                                                 None if current is None else current["version"])

    async def _published_from_course(self, tenant: str, lesson_id: str, course_id: str,
                                     recorded: int | None) -> Lesson | None:
        """The lesson as the course head's publication names it (two more reads); written back
        as the lesson's `_published` when newer than the one it has (`recorded`)."""
        course = await self.get_course(tenant, course_id)
        if course is None:
            return None
        p = course.publication
        ref = None if p is None else next((r for r in p.lessons if r.id == lesson_id), None)
        found = [] if ref is None else await self.lesson_versions(tenant, [ref])
        lesson = found[0] if found else None
        if recorded is None or recorded < course.version:
            await self._record(tenant, {lesson_id: lesson}, course.version)
        return lesson

    async def _record(self, tenant: str, lessons: dict[str, Lesson | None], version: int) -> None:
        """Writes each lesson's `_published` as course version `version` shows it (None: not
        in it), unless it holds that version or a newer one already. A lesson another writer
        keeps busy is left as it is: its reads find the course head's publication newer."""
        await self._update_lessons([(
            {"_id": _key(tenant, lesson_id), "tenant": tenant,
             "$or": [{PUBLISHED: {"$exists": False}}, {f"{PUBLISHED}.version": {"$lt": version}}]},
            {"$set": {PUBLISHED: {"version": version, "lesson": None if x is None
                                  else x.model_dump(mode="json")}}})
            for lesson_id, x in lessons.items()], skip_busy=True)

    async def _update_lessons(self, updates: Sequence[tuple[Doc, Doc]], *,
                              skip_busy: bool = False) -> None:
        """Updates of several lessons (query by `_id`, update): one bulk write, or one write per
        lesson under its guard where the guard is on."""
        if not updates:
            return
        if not await self.guard.active():
            await self.lessons.bulk_write([UpdateOne(q, u) for q, u in updates], ordered=False)
            return
        for query, update in updates:
            try:
                async with self.guard.hold(self.lessons, query["_id"]):
                    await self.lessons.update_one(query, update)
            except DocumentBusy:
                if not skip_busy:
                    raise

    async def lessons_of_courses(self, tenant: str,
                                 course_ids: Sequence[str]) -> dict[str, list[Lesson]]:
        wanted = list(dict.fromkeys(course_ids))
        found: dict[str, list[Lesson]] = {c: [] for c in wanted}
        if not wanted:
            return found
        cursor = self.lessons.find({"tenant": tenant, "course": {"$in": wanted}} | LIVE,
                                   HIDE).sort([("course", ASCENDING), ("position", ASCENDING)])
        async for d in cursor:
            lesson = Lesson.model_validate(_fields(d), context=STORED)
            found[lesson.course].append(lesson)
        return found

    async def live_lesson_ids(self, tenant: str,
                              course_ids: Sequence[str]) -> dict[str, set[str]]:
        wanted = list(dict.fromkeys(course_ids))
        found: dict[str, set[str]] = {c: set() for c in wanted}
        if not wanted:
            return found
        cursor = self.lessons.find({"tenant": tenant, "course": {"$in": wanted}} | LIVE,
                                   {"_id": 0, "id": 1, "course": 1})
        async for d in cursor:
            found[d["course"]].add(d["id"])
        return found

    async def lesson_heads(self, tenant: str,
                           lesson_ids: Sequence[str]) -> dict[str, LessonHead]:
        keys = list(dict.fromkeys(_key(tenant, i) for i in lesson_ids))
        if not keys:
            return {}
        cursor = self.lessons.find({"_id": {"$in": keys}, "tenant": tenant} | LIVE,
                                   {"_id": 0, "id": 1, "course": 1, "version": 1})
        return {d["id"]: LessonHead(course=d["course"], version=d.get("version", 1))
                async for d in cursor}

    async def replace_lesson(self, lesson: Lesson, expected_version: int,
                             events: Sequence[Envelope] = (), *, revive: bool = False) -> None:
        key = _key(lesson.tenant, lesson.id)
        query: Doc = {"_id": key, "tenant": lesson.tenant, "version": expected_version}
        update: Doc = {"$set": lesson.model_dump(mode="json") | {DELETED: False}}
        if events:
            update = self._outbox.with_events(update, *events)
        async with self.guard.hold(self.lessons, key):
            before = await self.lessons.find_one_and_update(
                query if revive else query | LIVE, update, return_document=ReturnDocument.BEFORE)
        if before is None:
            exists = await self.lessons.count_documents({"_id": key} | ({} if revive else LIVE),
                                                        limit=1)
            raise StaleVersion(lesson.id) if exists else Missing(lesson.id)
        if before.get(DELETED):
            course_key = _key(lesson.tenant, lesson.course)
            async with self.guard.hold(self.courses, course_key):
                await self.courses.update_one({"_id": course_key}, {"$inc": {"lesson_count": 1}})

    async def delete_lesson(self, tenant: str, lesson_id: str, expected_version: int,
                            events: Sequence[Envelope] = ()) -> None:
        key = _key(tenant, lesson_id)
        update: Doc = {"$set": {DELETED: True}}
        if events:
            update = self._outbox.with_events(update, *events)
        for _ in range(DELETE_ATTEMPTS):
            found = await self.lessons.find_one({"_id": key, "tenant": tenant} | LIVE,
                                                {"version": 1, "course": 1, MARK: 1})
            if found is None:
                raise Missing(lesson_id)
            if found.get("version", 1) != expected_version:
                raise StaleVersion(lesson_id)
            course_key = _key(tenant, found["course"])
            async with self.guard.hold(self.courses, course_key):  # fences publications out
                await self.courses.update_one({"_id": course_key}, {"$inc": {FENCE: 1}})
            async with self.guard.hold(self.lessons, key):
                before = await self.lessons.find_one_and_update(
                    {"_id": key, "tenant": tenant, "version": expected_version,
                     MARK: found.get(MARK)} | LIVE, update, return_document=ReturnDocument.BEFORE)
            if before is not None:
                # A second write: the count may be one off if the process stops between them.
                await self._uncount(course_key)
                return
        raise DocumentBusy(key)  # publications of its course kept marking it

    async def announce_on_lesson(self, tenant: str, lesson_id: str,
                                 events: Sequence[Envelope]) -> bool:
        key = _key(tenant, lesson_id)
        if not events:
            return bool(await self.lessons.count_documents({"_id": key, "tenant": tenant},
                                                           limit=1))
        async with self.guard.hold(self.lessons, key):
            result = await self.lessons.update_one({"_id": key, "tenant": tenant},
                                                   self._outbox.with_events({}, *events))
        return result.matched_count > 0

    # publications

    async def publish_course(self, course: Course, expected_version: int,
                             lessons: Sequence[Lesson], events: Sequence[Envelope]) -> None:
        p = course.publication
        assert p is not None, "a publication to store"
        key = _key(course.tenant, course.id)
        stored = await self.courses.find_one({"_id": key, "tenant": course.tenant},
                                             {"publication": 1, FENCE: 1})
        if stored is None:
            raise Missing(course.id)
        before = (stored.get("publication") or {}).get("lessons") or []
        # what learners read of each lesson of this publication and of the one it replaces
        shown: dict[str, Lesson | None] = {r["id"]: None for r in before}
        shown |= {x.id: x for x in lessons}
        await self._store_lesson_versions(lessons)
        mark = uuid.uuid4().hex
        await self._update_lessons([(
            {"_id": _key(course.tenant, i), "tenant": course.tenant},
            {"$max": {PUBLISHING: p.version}, "$set": {MARK: mark}}) for i in shown])
        live = self.lessons.find({"tenant": course.tenant, "course": course.id} | LIVE,
                                 {"_id": 0, "id": 1, "version": 1})
        if {(d["id"], d.get("version", 1)) async for d in live} != {
                (x.id, x.version) for x in lessons}:
            raise StaleVersion(course.id)  # the draft changed since `lessons` were read
        snapshot = CourseSnapshot(id=p.snapshot, tenant=course.tenant, course=course.id,
                                  publication=p)
        snapshot_key = _key(course.tenant, course.id, p.snapshot)
        await self.snapshots.insert_one({"_id": snapshot_key, **snapshot.model_dump(mode="json")})
        # The commit: until this write, no head names the snapshot just stored.
        published = _set(course, PUBLICATION_FIELDS)
        published["$set"][LISTED] = listed_title(course)
        update = self._outbox.with_events(published, *events)
        async with self.guard.hold(self.courses, key):
            result = await self.courses.update_one(
                {"_id": key, "tenant": course.tenant, "version": expected_version,
                 "status": {"$ne": "archived"}, FENCE: stored.get(FENCE)}, update)
        if result.matched_count == 0:
            await self.snapshots.delete_one({"_id": snapshot_key})
            raise await self._missing_or_stale(key, course.id)
        await self._record(course.tenant, shown, p.version)

    async def _store_lesson_versions(self, lessons: Sequence[Lesson]) -> None:
        """Lesson snapshots are immutable: one already stored is the same, and is kept."""
        if not lessons:
            return
        keys = [_key(x.tenant, x.id, x.version) for x in lessons]
        stored = {d["_id"] async for d in self.lesson_snapshots.find({"_id": {"$in": keys}},
                                                                     {"_id": 1})}
        new = [{"_id": k, **x.model_dump(mode="json")} for k, x in zip(keys, lessons, strict=True)
               if k not in stored]
        if not new:
            return
        try:
            await self.lesson_snapshots.insert_many(new, ordered=False)
        except BulkWriteError as exc:
            if any(e.get("code") != DUPLICATE_KEY for e in exc.details.get("writeErrors", [])):
                raise

    async def get_snapshot(self, tenant: str, course_id: str,
                           snapshot_id: str) -> CourseSnapshot | None:
        doc = await self.snapshots.find_one({"_id": _key(tenant, course_id, snapshot_id),
                                             "tenant": tenant})
        return None if doc is None else CourseSnapshot.model_validate(_fields(doc), context=STORED)

    async def lesson_versions(self, tenant: str, refs: Sequence[LessonRef]) -> list[Lesson]:
        return [Lesson.model_validate(d, context=STORED)
                for d in await self._snapshots(tenant, refs)]

    async def lesson_outlines(self, tenant: str,
                              refs: Sequence[LessonRef]) -> list[LessonOutline]:
        return [LessonOutline.model_validate(d, context=STORED)
                for d in await self._snapshots(tenant, refs, {"blocks": 0})]

    async def _snapshots(self, tenant: str, refs: Sequence[LessonRef],
                         projection: Doc | None = None) -> list[Doc]:
        """The lesson snapshots `refs` name (their fields `projection` keeps), in their order;
        those not stored are left out."""
        if not refs:
            return []
        keys = [_key(tenant, r.id, r.version) for r in refs]
        found = {d["_id"]: d async for d in self.lesson_snapshots.find(
            {"_id": {"$in": keys}, "tenant": tenant}, projection)}
        return [_fields(found[k]) for k in keys if k in found]
