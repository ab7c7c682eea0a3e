"""content's HTTP API: courses, their modules, lessons, versions and authors, concepts of a
tenant, and the landing page at `/`.

Every member of a tenant reads its published content. Educators and admins write; a course is
changed, and its drafts, history and old versions are read, by its owner, its co-authors and the
tenant's admins only (model.py). Lesson edits name the version they were made against, in the
`version` field or an `If-Match` header (409 when stale), a deletion in `If-Match` or the query's
`version`; course edits, deletions, archivings, publications and rollbacks may name their
revision the same way, in `revision` (the body's or the query's) or `If-Match`.
A published lesson is served as learners see it from the cache, with an ETag (`If-None-Match`
→ 304).
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Header, Path, Query, Request, Response
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, ConfigDict, Field

from bloop.platform.content.model import (
    MAX_LESSON_IDS,
    SLUG_PATTERN,
    USER_ID_PATTERN,
    Concept,
    ConceptEdit,
    Course,
    CourseDetail,
    CourseEdit,
    CourseView,
    LearnerCourseDetail,
    LearnerLesson,
    Lesson,
    LessonAccess,
    LessonEdit,
    Module,
    NewConcept,
    NewCourse,
    NewLesson,
    Rollback,
    VersionInfo,
)
from bloop.platform.content.service import ContentService, Rendered
from bloop.platform.kit.auth import STAFF, Forbidden, Principal, credentials, require
from bloop.platform.kit.errors import Invalid, InvalidBody
from bloop.platform.kit.pagination import After, Page
from bloop.platform.kit.preconditions import entity_tags, named_version, version_named

TenantId = Annotated[str, Path(pattern=SLUG_PATTERN, description="the tenant's slug")]
CourseId = Annotated[str, Path(pattern=SLUG_PATTERN)]
ConceptId = Annotated[str, Path(pattern=SLUG_PATTERN)]
LessonId = Annotated[str, Path(min_length=1, max_length=64)]
UserPath = Annotated[str, Path(pattern=USER_ID_PATTERN)]
IfMatch = Annotated[str | None, Header(description='the lesson version, e.g. "3"')]
CourseIfMatch = Annotated[str | None, Header(description='the course revision, e.g. "6"')]
RevisionQuery = Annotated[int | None, Query(ge=0, description="the course revision, as If-Match "
                                                                "names it")]
IfNoneMatch = Annotated[str | None, Header()]
JSON = "application/json"


async def get_service(request: Request) -> ContentService:
    service: ContentService = request.app.state.content.state["service"]
    return service


Svc = Annotated[ContentService, Depends(get_service)]
Author = Annotated[Principal, Depends(require("educator", "tenant_admin",
                                              scopes=["content:write"]))]
Reader = Annotated[Principal, Depends(require(scopes=["content:read"]))]


def _view(course: Course) -> CourseView:
    return CourseView.draft(course)


def _json(rendered: Rendered, if_none_match: str | None, response: Response) -> Response:
    headers = {k: v for k, v in response.headers.items() if k != "content-length"}
    headers |= {"ETag": rendered.etag, "Cache-Control": "private, no-cache",
                "Vary": "Authorization"}
    tags = entity_tags(if_none_match)
    if rendered.etag in tags or "*" in tags:
        return Response(status_code=304, headers=headers)
    return Response(rendered.body, media_type=JSON, headers=headers)


def _course_revision(if_match: str | None, revision: int | None) -> int | None:
    """The course revision a deletion, an archiving, a publication or a rollback was made
    against, named by `If-Match` or the `revision` query parameter."""
    return named_version(if_match, revision, "course", "revision", where="query")


router = APIRouter(prefix="/v1/tenants/{tenant}", tags=["content"])


@router.post("/concepts", status_code=201)
async def add_concept(tenant: TenantId, body: NewConcept, service: Svc, _: Author) -> Concept:
    return await service.add_concept(tenant, body)


@router.get("/concepts")
async def list_concepts(tenant: TenantId, service: Svc, _: Reader, after: After = None,
                        limit: Annotated[int, Query(ge=1, le=200)] = 100) -> Page[Concept]:
    """The tenant's concepts by id, a page at a time: `next` is the cursor (`after`) of the
    following page, null on the last."""
    found = await service.concept_page(tenant, after, limit)
    return Page(items=found.items, next=found.next)


@router.patch("/concepts/{concept}")
async def edit_concept(tenant: TenantId, concept: ConceptId, body: ConceptEdit, service: Svc,
                       _: Author, response: Response,
                       if_match: Annotated[str | None, Header(
                           description='the concept version, e.g. "3"')] = None) -> Concept:
    """A new name or description for the concept; its id, which lessons name, stays. With
    `If-Match` naming the concept's version, the edit is refused (409 stale_version) when
    someone changed the concept since; without it, the last edit of a field wins."""
    edited = await service.edit_concept(tenant, concept, body,
                                        version=version_named(if_match, "concept"))
    response.headers["ETag"] = f'"{edited.version}"'
    return edited


@router.post("/courses", status_code=201)
async def create_course(tenant: TenantId, body: NewCourse, service: Svc,
                        me: Author) -> CourseView:
    """Creates a draft course; its creator owns it."""
    return _view(await service.create_course(tenant, body, by=me))


@router.get("/courses")
async def list_courses(
    tenant: TenantId, service: Svc, me: Reader,
    status: Annotated[Literal["published", "draft", "archived", "all"], Query()] = "published",
    after: After = None, limit: Annotated[int, Query(ge=1, le=200)] = 100,
) -> Page[CourseView]:
    """Published courses as published. The tenant's staff may ask for `status=draft`,
    `archived` or `all` instead, and see the drafts of the courses they author. By the title
    learners read (a published course's last published title, even to its authors), ignoring
    case, a page at a time: `next` is the cursor (`after`) of the following page, null on the
    last."""
    if status != "published" and not me.has_any(STAFF):
        raise Forbidden("drafts are visible to the tenant's educators only",
                        code="missing_role")
    wanted = None if status == "all" else status
    views = await service.course_views(tenant, wanted, me, after=after, limit=limit)
    return Page(items=views.items, next=views.next)


@router.get("/courses/{course}", response_model=CourseDetail | LearnerCourseDetail)
async def get_course(tenant: TenantId, course: CourseId, service: Svc,
                     me: Reader) -> CourseDetail | LearnerCourseDetail:
    """The course's draft to its authors, its last publication (quizzes without answers) to
    everyone else."""
    detail, draft = await service.course_for(tenant, course, me)
    return detail if draft else LearnerCourseDetail.of(detail)


@router.patch("/courses/{course}")
async def edit_course(tenant: TenantId, course: CourseId, body: CourseEdit, service: Svc,
                      me: Author, response: Response,
                      if_match: CourseIfMatch = None) -> CourseView:
    """Changes the draft's title, summary, language, level or tags. The revision it was made
    against, named by `If-Match` or `revision` (422 `version_mismatch` when they differ), must
    be current when given: 409 `stale_version` otherwise."""
    revision = named_version(if_match, body.revision, "course", "revision")
    try:
        edited = await service.edit_course(tenant, course, body.model_copy(
            update={"revision": revision}), by=me)
    except InvalidBody as exc:
        raise exc.under("body") from None
    response.headers["ETag"] = f'"{edited.revision}"'
    return _view(edited)


@router.delete("/courses/{course}", status_code=204)
async def delete_course(tenant: TenantId, course: CourseId, service: Svc, me: Author,
                        revision: RevisionQuery = None, if_match: CourseIfMatch = None) -> None:
    """Deletes a course that was never published, with its lessons (its owner or the tenant's
    admins). The revision named by `If-Match` or `revision` (422 `version_mismatch` when they
    differ) must be current when given: 409 `stale_version` otherwise. A published course
    stays: 409 `course_published`."""
    await service.delete_course(tenant, course, revision=_course_revision(if_match, revision),
                                by=me)


class LessonOrder(BaseModel):
    model_config = ConfigDict(extra="forbid")
    lessons: list[str] = Field(max_length=1000, description="every lesson id of the course, "
                                                             "in the order wanted")


@router.put("/courses/{course}/lesson-order")
async def reorder_lessons(tenant: TenantId, course: CourseId, body: LessonOrder, service: Svc,
                          me: Author) -> LessonOrder:
    """Puts the draft's lessons in this order (422 `lesson_order_mismatch` unless it names each
    of them once); learners see it from the next publication."""
    lessons = await service.reorder_lessons(tenant, course, body.lessons, by=me)
    return LessonOrder(lessons=[x.id for x in lessons])


@router.post("/courses/{course}/modules", status_code=201)
async def add_module(tenant: TenantId, course: CourseId, body: Module, service: Svc,
                     me: Author) -> CourseView:
    return _view(await service.add_module(tenant, course, body, by=me))


@router.put("/courses/{course}/co-authors/{user}")
async def add_co_author(tenant: TenantId, course: CourseId, user: UserPath, service: Svc,
                        me: Author, request: Request) -> CourseView:
    """Makes a user of the tenant a co-author (the owner or an admin may): an educator or an
    admin of the tenant (422 `unknown_user`, `not_an_educator`), looked up in identity with the
    caller's credential, which needs the `identity:read` scope (403 `identity_forbidden`)."""
    return _view(await service.set_co_author(tenant, course, user, True, by=me,
                                             credentials=credentials(request.headers)))


@router.delete("/courses/{course}/co-authors/{user}")
async def remove_co_author(tenant: TenantId, course: CourseId, user: UserPath, service: Svc,
                           me: Author) -> CourseView:
    return _view(await service.set_co_author(tenant, course, user, False, by=me))


@router.post("/courses/{course}/lessons", status_code=201)
async def add_lesson(tenant: TenantId, course: CourseId, body: NewLesson,
                     service: Svc, me: Author) -> Lesson:
    return await service.add_lesson(tenant, course, body, by=me)


@router.post("/courses/{course}/publish")
async def publish_course(tenant: TenantId, course: CourseId, service: Svc, me: Author,
                         response: Response, revision: RevisionQuery = None,
                         if_match: CourseIfMatch = None) -> CourseView:
    """Publishes the draft as the next version; learners see it from then on. A draft with
    no change since the last publication (a concept renamed is one) makes none: 200 with the
    course as it is. A draft changed while it is published (a lesson added, edited, moved or
    deleted) gets 409 `draft_changed`, and nothing is published: publish again. The revision named by
    `If-Match` or `revision` (422 `version_mismatch` when they differ) must be current when
    given: 409 `stale_version` otherwise."""
    published = await service.publish(tenant, course, revision=_course_revision(
        if_match, revision), by=me)
    response.headers["ETag"] = f'"{published.revision}"'
    return _view(published)


@router.post("/courses/{course}/archive")
async def archive_course(tenant: TenantId, course: CourseId, service: Svc, me: Author,
                         response: Response, revision: RevisionQuery = None,
                         if_match: CourseIfMatch = None) -> CourseView:
    """Takes a published course out of the catalogue and search and closes it to new
    enrolments (its owner or the tenant's admins); learners already enrolled keep reading it.
    It cannot be published while archived (409 `course_archived`); a course never published
    is deleted instead (409 `course_not_published`). The revision named by `If-Match` or
    `revision` (422 `version_mismatch` when they differ) must be current when given: 409
    `stale_version` otherwise."""
    archived = await service.archive(tenant, course, revision=_course_revision(
        if_match, revision), by=me)
    response.headers["ETag"] = f'"{archived.revision}"'
    return _view(archived)


@router.post("/courses/{course}/unarchive")
async def unarchive_course(tenant: TenantId, course: CourseId, service: Svc, me: Author,
                           response: Response, revision: RevisionQuery = None,
                           if_match: CourseIfMatch = None) -> CourseView:
    """Puts an archived course back in the catalogue and search, open to enrolments. The
    revision named by `If-Match` or `revision` (422 `version_mismatch` when they differ) must
    be current when given: 409 `stale_version` otherwise."""
    back = await service.archive(tenant, course, False, revision=_course_revision(
        if_match, revision), by=me)
    response.headers["ETag"] = f'"{back.revision}"'
    return _view(back)


@router.get("/courses/{course}/versions")
async def list_versions(tenant: TenantId, course: CourseId, service: Svc,
                        me: Author) -> Page[VersionInfo]:
    """The course's published versions, newest first."""
    return Page(items=await service.history(tenant, course, by=me))


@router.get("/courses/{course}/versions/{version}")
async def get_version(tenant: TenantId, course: CourseId,
                      version: Annotated[int, Path(ge=1)], service: Svc,
                      me: Author) -> CourseDetail:
    """A published version as it was published (read-only: versions never change)."""
    return await service.version(tenant, course, version, by=me)


@router.post("/courses/{course}/rollback")
async def rollback_course(tenant: TenantId, course: CourseId, body: Rollback, service: Svc,
                          me: Author, response: Response, revision: RevisionQuery = None,
                          if_match: CourseIfMatch = None) -> CourseView:
    """Makes the draft equal to published version `version` and publishes it as a new
    version; the history keeps every version. A draft holding changes not published yet
    (lessons added, edited, moved or deleted since the last publication; the course's title,
    summary, language, level, tags or modules edited), which no version keeps, is refused 409
    `unpublished_changes` (its `lessons`, and `course` naming those fields) unless the body
    says `"discard_draft": true`. The revision named by `If-Match` or `revision` (422
    `version_mismatch` when they differ) must be current when given: 409 `stale_version`
    otherwise; the `ETag` is the revision the rollback made."""
    rolled = await service.rollback(tenant, course, body.version, revision=_course_revision(
        if_match, revision), discard_draft=body.discard_draft, by=me)
    response.headers["ETag"] = f'"{rolled.revision}"'
    return _view(rolled)


@router.get("/lessons/{lesson}", response_model=Lesson | LearnerLesson)
async def get_lesson(tenant: TenantId, lesson: LessonId, service: Svc, me: Reader,
                     response: Response, if_none_match: IfNoneMatch = None) -> Response:
    """The lesson's draft to its course's authors; to everyone else the lesson as last
    published, quizzes without their answers. Links to its media that a page can put in
    `<img>` (which expire, so they are not part of it) come from `…/media-links`."""
    if me.has_any(STAFF):
        draft = await service.draft_for(tenant, lesson, me)
        if draft is not None:
            body = draft.model_dump_json().encode()
            return _json(Rendered(body, f'"{draft.version}"'), if_none_match, response)
    return _json(await service.published_lesson(tenant, lesson), if_none_match, response)


@router.get("/lesson-access")
async def lesson_access(
    tenant: TenantId, service: Svc, me: Reader,
    ids: Annotated[str, Query(min_length=1, max_length=MAX_LESSON_IDS * 65, description=(
        f"lesson ids, separated by commas (at most {MAX_LESSON_IDS})"))],
) -> Page[LessonAccess]:
    """For each of the lessons `ids` names that the caller may read, as `GET /lessons/{id}`
    shows it to them: the version they read (the draft's to its course's authors, else the
    version last published) and whether they may edit it. Lessons they may not read, and ids
    of no lesson, are left out; the others come in the order asked."""
    wanted = list(dict.fromkeys(ids.split(",")))
    if len(wanted) > MAX_LESSON_IDS:
        raise Invalid.of(f"at most {MAX_LESSON_IDS} lessons at once", "query", "ids")
    if any(not 0 < len(x) <= 64 for x in wanted):
        raise Invalid.of("a lesson id has 1 to 64 characters", "query", "ids")
    found = await service.lesson_access(tenant, wanted, me)
    return Page(items=[found[x] for x in wanted if x in found])


@router.patch("/lessons/{lesson}")
async def edit_lesson(tenant: TenantId, lesson: LessonId, body: LessonEdit, service: Svc,
                      me: Author, response: Response, if_match: IfMatch = None) -> Lesson:
    """Edits a lesson's draft, against the version named by `If-Match` or `version` (409 with
    the current version when it is stale; 428 `version_required` to its authors when neither
    names one)."""
    # The service asks for a version once the caller may edit the lesson (428 told others
    # it exists).
    version = named_version(if_match, body.version, "lesson")
    try:
        edited = await service.edit_lesson(tenant, lesson, body.model_copy(
            update={"version": version}), by=me)
    except InvalidBody as exc:
        raise exc.under("body") from None
    response.headers["ETag"] = f'"{edited.version}"'
    return edited


@router.delete("/lessons/{lesson}", status_code=204)
async def delete_lesson(
    tenant: TenantId, lesson: LessonId, service: Svc, me: Author, if_match: IfMatch = None,
    version: Annotated[int | None, Query(ge=1, description="the lesson version, as If-Match "
                                                           "names it")] = None,
) -> None:
    """Deletes a lesson from its course's draft and from what learners see. The version named
    by `If-Match` or `version` (422 `version_mismatch` when they differ) must be current when
    given: 409 `stale_version` otherwise."""
    named = named_version(if_match, version, "lesson", where="query")
    await service.delete_lesson(tenant, lesson, version=named, by=me)


pages = APIRouter(include_in_schema=False)


@pages.get("/", response_class=HTMLResponse)
async def landing(request: Request, service: Svc, after: After = None) -> HTMLResponse:
    from bloop.platform.demo import data, landing

    catalogue = await service.published_catalogue(data.TENANT_ID, after=after,
                                                  limit=landing.COURSES_A_PAGE)
    sign_ins = getattr(request.app.state, "demo_sign_ins", None)
    html = landing.render(data.TENANT_ID, catalogue.items,
                          with_users=hasattr(request.app.state, "identity"),
                          accounts=await sign_ins.offered() if sign_ins else (),
                          origin=str(request.base_url).rstrip("/"),
                          paged=(after is not None, catalogue.next))
    return HTMLResponse(html)
