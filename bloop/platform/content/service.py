"""Content's use cases. They take a repository (ports.py) and never a driver."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from pydantic import ValidationError

from bloop.platform.content.events import CoursePublished, LessonPublished
from bloop.platform.content.model import (
    Concept,
    Course,
    CourseDetail,
    CourseStatus,
    Lesson,
    LessonEdit,
    NewConcept,
    NewCourse,
    NewLesson,
)
from bloop.platform.content.ports import ContentRepository, Duplicate, Missing, StaleVersion
from bloop.platform.kit.errors import Conflict, NotFound, Problem
from bloop.platform.kit.events.envelope import Envelope
from bloop.platform.kit.events.types import type_of


def _stale(kind: str, record_id: str, current: int | None) -> Conflict:
    return Conflict(f"the {kind} {record_id!r} changed since that version; read it again and "
                    "retry", code="stale_version", extra={"current_version": current})


class ContentService:
    def __init__(self, repo: ContentRepository,
                 on_write: Callable[[], None] = lambda: None) -> None:
        """`on_write` runs after each write that stored events (the outbox relay's `wake`)."""
        self.repo = repo
        self._on_write = on_write

    # concepts

    async def add_concept(self, tenant: str, new: NewConcept) -> Concept:
        concept = Concept.create(tenant, new)
        try:
            await self.repo.add_concept(concept)
        except Duplicate:
            raise Conflict(f"the concept {concept.id!r} already exists",
                           code="concept_exists") from None
        return concept

    async def concepts(self, tenant: str) -> list[Concept]:
        return await self.repo.list_concepts(tenant)

    async def _check_concepts(self, tenant: str, ids: Iterable[str]) -> None:
        wanted = sorted(set(ids))
        if not wanted:
            return
        known = {c.id for c in await self.repo.get_concepts(tenant, wanted)}
        unknown = [c for c in wanted if c not in known]
        if unknown:
            raise Problem(f"unknown concepts: {', '.join(unknown)}; add them first",
                          status=422, code="unknown_concepts", extra={"concepts": unknown})

    # courses

    async def create_course(self, tenant: str, new: NewCourse) -> Course:
        course = Course.create(tenant, new)
        try:
            await self.repo.add_course(course)
        except Duplicate:
            raise Conflict(f"the course {course.id!r} already exists",
                           code="course_exists") from None
        return course

    async def course(self, tenant: str, course_id: str) -> Course:
        course = await self.repo.get_course(tenant, course_id)
        if course is None:
            raise NotFound(f"no course {course_id!r} in tenant {tenant!r}")
        return course

    async def course_detail(self, tenant: str, course_id: str, *,
                            drafts: bool = True) -> CourseDetail:
        """The course and its lessons; a draft is not found when `drafts` is False."""
        course = await self.course(tenant, course_id)
        if not drafts and course.status != "published":
            raise NotFound(f"no course {course_id!r} in tenant {tenant!r}")
        lessons = await self.repo.list_lessons(tenant, course_id)
        return CourseDetail(**course.model_dump(), lessons=lessons)

    async def lessons_of_courses(self, tenant: str, course_ids: Sequence[str]) -> dict[str, list[Lesson]]:
        """Each course's lessons in order, in one read (GraphQL batches through this)."""
        return await self.repo.lessons_of_courses(tenant, course_ids)

    async def courses(self, tenant: str, status: CourseStatus | None = "published", *,
                      limit: int = 100) -> list[Course]:
        return await self.repo.list_courses(tenant, status, limit=limit)

    async def published_catalogue(self, tenant: str) -> list[CourseDetail]:
        """Every published course of the tenant with its lessons (the landing page)."""
        return [await self.course_detail(tenant, c.id)
                for c in await self.courses(tenant, "published")]

    async def publish(self, tenant: str, course_id: str) -> Course:
        """Publishes the course as it is now: its version goes up by one, and the course and
        each lesson are announced on `content.events`."""
        course = await self.course(tenant, course_id)
        lessons = await self.repo.list_lessons(tenant, course_id)
        if not lessons:
            raise Conflict(f"the course {course_id!r} has no lessons to publish",
                           code="course_empty")
        published = course.published()
        try:
            await self.repo.publish_course(published, course, _publication(published, lessons))
        except StaleVersion:
            current = await self.repo.get_course(tenant, course_id)
            raise _stale("course", course_id, current.version if current else None) from None
        except Missing:
            raise NotFound(f"no course {course_id!r} in tenant {tenant!r}") from None
        self._on_write()
        return published

    # lessons

    async def add_lesson(self, tenant: str, course_id: str, new: NewLesson) -> Lesson:
        await self.course(tenant, course_id)
        await self._check_concepts(tenant, [*new.teaches, *new.requires])
        try:
            return await self.repo.add_lesson(Lesson.create(tenant, course_id, new))
        except Missing:
            raise NotFound(f"no course {course_id!r} in tenant {tenant!r}") from None

    async def lesson(self, tenant: str, lesson_id: str, *, drafts: bool = True) -> Lesson:
        """The lesson; one of a draft course is not found when `drafts` is False."""
        lesson = await self.repo.get_lesson(tenant, lesson_id)
        if lesson is None:
            raise NotFound(f"no lesson {lesson_id!r} in tenant {tenant!r}")
        if not drafts:
            course = await self.repo.get_course(tenant, lesson.course)
            if course is None or course.status != "published":
                raise NotFound(f"no lesson {lesson_id!r} in tenant {tenant!r}")
        return lesson

    async def edit_lesson(self, tenant: str, lesson_id: str, edit: LessonEdit) -> Lesson:
        """Applies `edit` if the lesson is still at `edit.version` (409 otherwise). Published
        courses announce the change at their next publication."""
        lesson = await self.lesson(tenant, lesson_id)
        if lesson.version != edit.version:
            raise _stale("lesson", lesson_id, lesson.version)
        try:
            edited = lesson.edited(edit)
        except ValidationError as exc:
            raise Problem(str(exc.errors()[0]["msg"]), status=422,
                          code="validation_failed") from None
        await self._check_concepts(tenant, [*edited.teaches, *edited.requires])
        try:
            await self.repo.replace_lesson(edited, expected_version=edit.version)
        except StaleVersion:
            current = await self.repo.get_lesson(tenant, lesson_id)
            raise _stale("lesson", lesson_id, current.version if current else None) from None
        except Missing:
            raise NotFound(f"no lesson {lesson_id!r} in tenant {tenant!r}") from None
        return edited


def _publication(course: Course, lessons: list[Lesson]) -> list[Envelope]:
    at = course.published_at
    assert at is not None
    events = [type_of(CoursePublished).envelope(CoursePublished(
        course_id=course.id, version=course.version, title=course.title, summary=course.summary,
        language=course.language, level=course.level, tags=course.tags,
        lesson_ids=[lesson.id for lesson in lessons], published_at=at,
    ), tenant=course.tenant, subject=course.id, time=at)]
    events += [type_of(LessonPublished).envelope(LessonPublished(
        lesson_id=lesson.id, course_id=course.id, course_version=course.version,
        lesson_version=lesson.version, position=lesson.position, title=lesson.title,
        estimated_minutes=lesson.estimated_minutes, teaches=lesson.teaches,
        requires=lesson.requires, published_at=at,
    ), tenant=course.tenant, subject=lesson.id, time=at) for lesson in lessons]
    return events
