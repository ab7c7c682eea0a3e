"""content's GraphQL fields: courses (with their lessons), lessons and concepts of a tenant.

Reads only, under the HTTP API's rules: any member of the tenant reads what is published, its
staff also read drafts. A course's lessons load through a DataLoader keyed by (tenant, course), so
a query over many courses reads the lessons of all of them at once.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from enum import Enum

import strawberry
from strawberry.dataloader import DataLoader

from bloop.graphql.context import Context
from bloop.graphql.fields import field
from bloop.graphql.scalars import Slug
from bloop.platform.content import model
from bloop.platform.content.service import ContentService
from bloop.platform.kit.auth import STAFF, Forbidden
from bloop.platform.kit.errors import NotFound

Info = strawberry.Info[Context, None]
LessonsKey = tuple[str, str]  # (tenant, course id)


def _service(info: Info) -> ContentService:
    return info.context.service("content", ContentService)


def _reader(info: Info, tenant: str) -> bool:
    """Authorises a content read in `tenant`; True when the caller may also see drafts."""
    return info.context.authorise(tenant, scopes=["content:read"]).has_any(STAFF)


def _lessons_loader(info: Info) -> DataLoader[LessonsKey, list[model.Lesson]]:
    service = _service(info)

    async def load(keys: list[LessonsKey]) -> list[list[model.Lesson]]:
        by_tenant: dict[str, list[str]] = defaultdict(list)
        for tenant, course_id in keys:
            by_tenant[tenant].append(course_id)
        found = {tenant: await service.lessons_of_courses(tenant, ids)
                 for tenant, ids in by_tenant.items()}
        return [found[tenant].get(course_id, []) for tenant, course_id in keys]

    return info.context.loader("content.lessons", lambda: DataLoader(load_fn=load))


@strawberry.enum
class CourseStatusFilter(Enum):
    PUBLISHED = "published"
    DRAFT = "draft"
    ALL = "all"


@strawberry.type
class MarkdownBlock:
    markdown: str

    @classmethod
    def of(cls, block: model.MarkdownBlock) -> MarkdownBlock:
        return cls(markdown=block.markdown)


@strawberry.type
class Lesson:
    id: str
    tenant: str
    course_id: str
    position: int
    title: str
    estimated_minutes: int
    blocks: list[MarkdownBlock]
    teaches: list[str]
    requires: list[str]
    version: int
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, lesson: model.Lesson) -> Lesson:
        return cls(id=lesson.id, tenant=lesson.tenant, course_id=lesson.course,
                   position=lesson.position, title=lesson.title,
                   estimated_minutes=lesson.estimated_minutes,
                   blocks=[MarkdownBlock.of(b) for b in lesson.blocks],
                   teaches=list(lesson.teaches), requires=list(lesson.requires),
                   version=lesson.version, created_at=lesson.created_at,
                   updated_at=lesson.updated_at)


@strawberry.type
class Course:
    id: str
    tenant: str
    title: str
    summary: str
    language: str
    level: str
    tags: list[str]
    status: str
    version: int
    lesson_count: int
    created_at: datetime
    updated_at: datetime
    published_at: datetime | None

    @classmethod
    def of(cls, course: model.Course) -> Course:
        return cls(id=course.id, tenant=course.tenant, title=course.title,
                   summary=course.summary, language=course.language, level=course.level,
                   tags=list(course.tags), status=course.status, version=course.version,
                   lesson_count=course.lesson_count, created_at=course.created_at,
                   updated_at=course.updated_at, published_at=course.published_at)

    @field("the course's lessons in order")
    async def lessons(self, info: Info) -> list[Lesson]:
        return [Lesson.of(x) for x in await _lessons_loader(info).load((self.tenant, self.id))]


@strawberry.type
class Concept:
    id: str
    tenant: str
    name: str
    description: str

    @classmethod
    def of(cls, concept: model.Concept) -> Concept:
        return cls(id=concept.id, tenant=concept.tenant, name=concept.name,
                   description=concept.description)


@strawberry.type
class Query:
    @field("the tenant's courses of `status`, ordered by title")
    async def courses(self, info: Info, tenant: Slug,
                      status: CourseStatusFilter = CourseStatusFilter.PUBLISHED) -> list[Course]:
        drafts = _reader(info, tenant)
        if status is not CourseStatusFilter.PUBLISHED and not drafts:
            raise Forbidden("drafts are visible to the tenant's educators only",
                            code="missing_role")
        wanted: model.CourseStatus | None = (
            None if status is CourseStatusFilter.ALL
            else "draft" if status is CourseStatusFilter.DRAFT else "published")
        return [Course.of(c) for c in await _service(info).courses(tenant, wanted)]

    @field("a course of the tenant; null when there is none")
    async def course(self, info: Info, tenant: Slug, id: Slug) -> Course | None:
        drafts = _reader(info, tenant)
        try:
            return Course.of(await _service(info).course_detail(tenant, id, drafts=drafts))
        except NotFound:
            return None

    @field("a lesson of the tenant; null when there is none")
    async def lesson(self, info: Info, tenant: Slug, id: str) -> Lesson | None:
        drafts = _reader(info, tenant)
        try:
            return Lesson.of(await _service(info).lesson(tenant, id, drafts=drafts))
        except NotFound:
            return None

    @field("the tenant's concepts, ordered by id")
    async def concepts(self, info: Info, tenant: Slug) -> list[Concept]:
        _reader(info, tenant)
        return [Concept.of(c) for c in await _service(info).concepts(tenant)]
