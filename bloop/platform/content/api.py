"""content's HTTP API: courses, lessons and concepts of a tenant, and the landing page at `/`.

Every member of a tenant reads its published content; its educators and admins write, and they
alone see drafts.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import HTMLResponse

from bloop.platform.content.model import (
    SLUG_PATTERN,
    Concept,
    Course,
    CourseDetail,
    Lesson,
    LessonEdit,
    NewConcept,
    NewCourse,
    NewLesson,
)
from bloop.platform.content.service import ContentService
from bloop.platform.kit.auth import STAFF, Forbidden, Principal, require
from bloop.platform.kit.pagination import Page

TenantId = Annotated[str, Path(pattern=SLUG_PATTERN, description="the tenant's slug")]
CourseId = Annotated[str, Path(pattern=SLUG_PATTERN)]
LessonId = Annotated[str, Path(min_length=1, max_length=64)]


def get_service(request: Request) -> ContentService:
    service: ContentService = request.app.state.content.state["service"]
    return service


Svc = Annotated[ContentService, Depends(get_service)]
Author = Annotated[Principal, Depends(require("educator", "tenant_admin",
                                              scopes=["content:write"]))]
Reader = Annotated[Principal, Depends(require(scopes=["content:read"]))]


def sees_drafts(reader: Principal) -> bool:
    return reader.has_any(STAFF)

router = APIRouter(prefix="/v1/tenants/{tenant}", tags=["content"])


@router.post("/concepts", status_code=201)
async def add_concept(tenant: TenantId, body: NewConcept, service: Svc, _: Author) -> Concept:
    return await service.add_concept(tenant, body)


@router.get("/concepts")
async def list_concepts(tenant: TenantId, service: Svc, _: Reader) -> Page[Concept]:
    return Page(items=await service.concepts(tenant))


@router.post("/courses", status_code=201)
async def create_course(tenant: TenantId, body: NewCourse, service: Svc, _: Author) -> Course:
    return await service.create_course(tenant, body)


@router.get("/courses")
async def list_courses(
    tenant: TenantId, service: Svc, me: Reader,
    status: Annotated[Literal["published", "draft", "all"], Query()] = "published",
    limit: Annotated[int, Query(ge=1, le=200)] = 100,
) -> Page[Course]:
    if status != "published" and not sees_drafts(me):
        raise Forbidden("drafts are visible to the tenant's educators only",
                        code="missing_role")
    return Page(items=await service.courses(tenant, None if status == "all" else status,
                                            limit=limit))


@router.get("/courses/{course}")
async def get_course(tenant: TenantId, course: CourseId, service: Svc,
                     me: Reader) -> CourseDetail:
    return await service.course_detail(tenant, course, drafts=sees_drafts(me))


@router.post("/courses/{course}/lessons", status_code=201)
async def add_lesson(tenant: TenantId, course: CourseId, body: NewLesson,
                     service: Svc, _: Author) -> Lesson:
    return await service.add_lesson(tenant, course, body)


@router.post("/courses/{course}/publish")
async def publish_course(tenant: TenantId, course: CourseId, service: Svc, _: Author) -> Course:
    return await service.publish(tenant, course)


@router.get("/lessons/{lesson}")
async def get_lesson(tenant: TenantId, lesson: LessonId, service: Svc, me: Reader) -> Lesson:
    return await service.lesson(tenant, lesson, drafts=sees_drafts(me))


@router.patch("/lessons/{lesson}")
async def edit_lesson(tenant: TenantId, lesson: LessonId, body: LessonEdit,
                      service: Svc, _: Author) -> Lesson:
    """Edits a lesson. `version` must be the lesson's current version (409 otherwise)."""
    return await service.edit_lesson(tenant, lesson, body)


pages = APIRouter(include_in_schema=False)


@pages.get("/", response_class=HTMLResponse)
async def landing(request: Request, service: Svc) -> HTMLResponse:
    from bloop.platform.demo import data, landing

    courses = await service.published_catalogue(data.TENANT_ID)
    html = landing.render(data.TENANT_ID, courses,
                          with_users=hasattr(request.app.state, "identity"))
    return HTMLResponse(html)
