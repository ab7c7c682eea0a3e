"""Published content, read from content's own repository (search is part of content): a
course's current publication and the lesson snapshots it names, less the lessons deleted since
(a deletion takes a lesson away from learners at once). An archived course, and its lessons,
are not found."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import AsyncIterator

from bloop.platform.content.model import Course, Lesson, LessonRef
from bloop.platform.content.ports import ContentRepository


class RepositoryContent:
    def __init__(self, repo: ContentRepository, page_size: int = 200) -> None:
        self.repo = repo
        self.page_size = page_size

    async def course(self, tenant: str, course_id: str) -> Course | None:
        course = await self.repo.get_course(tenant, course_id)
        listed = course is not None and course.publication is not None and (
            course.status != "archived")
        return course if listed else None

    async def lesson(self, tenant: str, lesson_id: str) -> tuple[Course, Lesson] | None:
        draft = await self.repo.get_lesson(tenant, lesson_id)
        if draft is None:
            return None
        course = await self.course(tenant, draft.course)
        if course is None or course.publication is None:
            return None
        refs = [r for r in course.publication.lessons if r.id == lesson_id]
        snapshots = await self.repo.lesson_versions(tenant, refs) if refs else []
        return (course, snapshots[0]) if snapshots else None

    async def course_lessons(self, tenant: str, course: Course) -> list[Lesson]:
        if course.publication is None:
            return []
        alive = (await self.repo.live_lesson_ids(tenant, [course.id]))[course.id]
        refs = [r for r in course.publication.lessons if r.id in alive]
        snapshots = {x.id: x for x in await self.repo.lesson_versions(tenant, refs)}
        return [snapshots[r.id] for r in refs if r.id in snapshots]

    async def catalogue(self) -> AsyncIterator[tuple[Course, list[Lesson]]]:
        after: tuple[str, str] | None = None
        while page := await self.repo.list_published(after, limit=self.page_size):
            by_tenant: dict[str, list[Course]] = defaultdict(list)
            for course in page:
                by_tenant[course.tenant].append(course)
            for tenant, courses in by_tenant.items():
                alive = {x for found in (await self.repo.live_lesson_ids(
                    tenant, [c.id for c in courses])).values() for x in found}
                refs: list[LessonRef] = [r for c in courses if c.publication is not None
                                         for r in c.publication.lessons if r.id in alive]
                snapshots = {(x.id, x.version): x
                             for x in await self.repo.lesson_versions(tenant, refs)}
                for course in courses:
                    if course.publication is None:
                        continue  # published before numbered snapshots existed
                    yield course, [snapshots[(r.id, r.version)]
                                   for r in course.publication.lessons
                                   if (r.id, r.version) in snapshots]
            after = (page[-1].tenant, page[-1].id)
