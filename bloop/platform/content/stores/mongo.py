"""The MongoDB content store (database `content`). Each change and its events are one
single-document write: a publication's events ride in the course document's outbox field (kit
MongoOutbox). It needs no multi-document transaction, `$lookup` or text index, so it runs on
FerretDB v1 as well as MongoDB.

Every `_id` starts with the tenant (`demo/thinking-in-python`), so another tenant's key never
matches, and every query also filters on the `tenant` field.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pymongo import ASCENDING, AsyncMongoClient, ReturnDocument
from pymongo.errors import DuplicateKeyError

from bloop.platform.content.model import Concept, Course, CourseStatus, Lesson
from bloop.platform.content.ports import Duplicate, Missing, StaleVersion
from bloop.platform.kit.events.envelope import Envelope
from bloop.platform.kit.events.outbox.mongo import MongoOutbox
from bloop.platform.kit.events.types import EventRegistry

Doc = dict[str, Any]
# Reads leave out the outbox fields (and any other internal field, all named `_…`).
HIDE = {"_outbox": 0, "_outbox_pending": 0}


def _fields(doc: Doc) -> Doc:
    return {k: v for k, v in doc.items() if not k.startswith("_")}


def _key(tenant: str, record_id: str) -> str:
    return f"{tenant}/{record_id}"


def _doc(record: Concept | Course | Lesson) -> Doc:
    return {"_id": _key(record.tenant, record.id), **record.model_dump(mode="json")}


class MongoContentStore:
    def __init__(self, client: AsyncMongoClient[Doc], registry: EventRegistry,
                 database: str = "content") -> None:
        db = client[database]
        self.concepts = db["concepts"]
        self.courses = db["courses"]
        self.lessons = db["lessons"]
        self._outbox = MongoOutbox([self.courses], registry, name=f"{database}-outbox")

    @property
    def outbox(self) -> MongoOutbox:
        return self._outbox

    async def setup(self) -> None:
        await self.concepts.create_index([("tenant", ASCENDING), ("id", ASCENDING)],
                                         name="tenant_id")
        await self.courses.create_index(
            [("tenant", ASCENDING), ("status", ASCENDING), ("title", ASCENDING)],
            name="tenant_status_title")
        await self.lessons.create_index(
            [("tenant", ASCENDING), ("course", ASCENDING), ("position", ASCENDING)],
            name="tenant_course_position")
        await self._outbox.setup()

    # concepts

    async def add_concept(self, concept: Concept) -> None:
        try:
            await self.concepts.insert_one(_doc(concept))
        except DuplicateKeyError:
            raise Duplicate(concept.id) from None

    async def list_concepts(self, tenant: str) -> list[Concept]:
        cursor = self.concepts.find({"tenant": tenant}).sort("id", ASCENDING)
        return [Concept.model_validate(_fields(d)) async for d in cursor]

    async def get_concepts(self, tenant: str, ids: Sequence[str]) -> list[Concept]:
        keys = [_key(tenant, i) for i in ids]
        if not keys:
            return []
        cursor = self.concepts.find({"_id": {"$in": keys}, "tenant": tenant}).sort("id", ASCENDING)
        return [Concept.model_validate(_fields(d)) async for d in cursor]

    # courses

    async def add_course(self, course: Course) -> None:
        try:
            await self.courses.insert_one(_doc(course))
        except DuplicateKeyError:
            raise Duplicate(course.id) from None

    async def get_course(self, tenant: str, course_id: str) -> Course | None:
        doc = await self.courses.find_one({"_id": _key(tenant, course_id), "tenant": tenant}, HIDE)
        return None if doc is None else Course.model_validate(_fields(doc))

    async def list_courses(self, tenant: str, status: CourseStatus | None = None, *,
                           limit: int = 100) -> list[Course]:
        query: Doc = {"tenant": tenant} | ({"status": status} if status else {})
        cursor = (self.courses.find(query, HIDE)
                  .sort([("title", ASCENDING), ("id", ASCENDING)]).limit(limit))
        return [Course.model_validate(_fields(d)) async for d in cursor]

    async def publish_course(self, course: Course, expected: Course,
                             events: Sequence[Envelope]) -> None:
        key = _key(course.tenant, course.id)
        update = self._outbox.with_events({"$set": course.model_dump(mode="json")}, *events)
        result = await self.courses.update_one(
            {"_id": key, "tenant": course.tenant, "version": expected.version,
             "lesson_count": expected.lesson_count}, update)
        if result.matched_count == 0:
            exists = await self.courses.count_documents({"_id": key}, limit=1)
            raise StaleVersion(course.id) if exists else Missing(course.id)

    # lessons

    async def add_lesson(self, lesson: Lesson) -> Lesson:
        # The course's counter hands out positions; a lesson insert that fails after it leaves a
        # gap in the positions, never two lessons in one place. (No projection: FerretDB v1's
        # findAndModify does not support one.)
        course = await self.courses.find_one_and_update(
            {"_id": _key(lesson.tenant, lesson.course), "tenant": lesson.tenant},
            {"$inc": {"lesson_count": 1}}, return_document=ReturnDocument.AFTER)
        if course is None:
            raise Missing(lesson.course)
        placed = lesson.model_copy(update={"position": int(course["lesson_count"]) - 1})
        await self.lessons.insert_one(_doc(placed))
        return placed

    async def get_lesson(self, tenant: str, lesson_id: str) -> Lesson | None:
        doc = await self.lessons.find_one({"_id": _key(tenant, lesson_id), "tenant": tenant})
        return None if doc is None else Lesson.model_validate(_fields(doc))

    async def list_lessons(self, tenant: str, course_id: str) -> list[Lesson]:
        cursor = self.lessons.find({"tenant": tenant, "course": course_id}).sort(
            "position", ASCENDING)
        return [Lesson.model_validate(_fields(d)) async for d in cursor]

    async def lessons_of_courses(self, tenant: str,
                                 course_ids: Sequence[str]) -> dict[str, list[Lesson]]:
        wanted = list(dict.fromkeys(course_ids))
        found: dict[str, list[Lesson]] = {c: [] for c in wanted}
        if not wanted:
            return found
        cursor = self.lessons.find({"tenant": tenant, "course": {"$in": wanted}}).sort(
            [("course", ASCENDING), ("position", ASCENDING)])
        async for d in cursor:
            lesson = Lesson.model_validate(_fields(d))
            found[lesson.course].append(lesson)
        return found

    async def replace_lesson(self, lesson: Lesson, expected_version: int) -> None:
        key = _key(lesson.tenant, lesson.id)
        result = await self.lessons.replace_one(
            {"_id": key, "tenant": lesson.tenant, "version": expected_version}, _doc(lesson))
        if result.matched_count == 0:
            exists = await self.lessons.count_documents({"_id": key}, limit=1)
            raise StaleVersion(lesson.id) if exists else Missing(lesson.id)
