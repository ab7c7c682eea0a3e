"""Quiz attempts over HTTP. A learner submits answers to a published lesson's quiz and reads
their own attempts; the tenant's educators, teaching assistants and admins read every attempt
at a lesson."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Header, Path, Query, Request

from bloop.platform.content.attempts.model import Attempt, AttemptSubmission
from bloop.platform.content.attempts.service import AttemptService
from bloop.platform.content.quiz import QUIZ_ID_PATTERN, LearnerQuiz
from bloop.platform.content.service import ETAG
from bloop.platform.kit.auth import Principal, a_person, require
from bloop.platform.kit.errors import Problem
from bloop.platform.kit.pagination import After, Page, Slice
from bloop.platform.kit.personal_data import PERSONAL_ANSWER
from bloop.platform.kit.preconditions import entity_tags, named_version

MAX_SUBMISSION_BYTES = 64 * 1024

TenantId = Annotated[str, Path(pattern=r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")]
LessonId = Annotated[str, Path(min_length=1, max_length=64)]
QuizId = Annotated[str, Path(pattern=QUIZ_ID_PATTERN)]
Limit = Annotated[int, Query(ge=1, le=500)]
IfMatch = Annotated[str | None, Header(description='the lesson version read, e.g. "3", or the '
                                                   "ETag `GET …/lessons/{lesson}` gave")]


async def get_service(request: Request) -> AttemptService:
    service: AttemptService = request.app.state.content.state["attempts"]
    return service


async def limit_submission(request: Request) -> None:
    if len(await request.body()) > MAX_SUBMISSION_BYTES:
        raise Problem(f"an attempt's answers may take up to {MAX_SUBMISSION_BYTES} bytes",
                      status=413, code="payload_too_large")


Svc = Annotated[AttemptService, Depends(get_service)]
Reader = Annotated[Principal, Depends(require(scopes=["content:read"]))]
LearnerScope = Annotated[Principal, Depends(require("learner", scopes=["content:read"]))]
# An attempt is the learner's own learning record (it moves their mastery), so a credential
# narrowed to reading cannot submit one.
SubmitterScope = Annotated[Principal, Depends(require("learner", scopes=["learning:write"]))]


async def learner(me: LearnerScope) -> Principal:
    return a_person(me)


async def submitter(me: SubmitterScope) -> Principal:
    return a_person(me)


# An API key is no learner: its attempts would be learning of nobody's.
Learner = Annotated[Principal, Depends(learner)]
Submitter = Annotated[Principal, Depends(submitter)]
Staff = Annotated[Principal, Depends(require("educator", "teaching_assistant", "tenant_admin",
                                             scopes=["content:read"]))]


def page(attempts: Slice[Attempt]) -> Page[Attempt]:
    return Page(items=attempts.items, next=attempts.next)


router = APIRouter(prefix="/v1/tenants/{tenant}/lessons/{lesson}", tags=["quizzes"])


@router.get("/quizzes/{quiz}")
async def get_quiz(tenant: TenantId, lesson: LessonId, quiz: QuizId, service: Svc,
                   _: Reader) -> LearnerQuiz:
    """The published quiz without its answers, to answer it."""
    return await service.quiz(tenant, lesson, quiz)


@router.post("/quizzes/{quiz}/attempts", status_code=201,
             dependencies=[Depends(limit_submission)])
async def submit_attempt(tenant: TenantId, lesson: LessonId, quiz: QuizId,
                         body: AttemptSubmission, service: Svc, me: Submitter,
                         if_match: IfMatch = None) -> Attempt:
    """Grades the answers against the published quiz and stores the attempt. 404 when the
    lesson is not published or has no such quiz; 422 naming the question when an answer does
    not fit it; 403 `not_a_person` for an API key. The lesson version read, named by
    `If-Match` (the version or the lesson's ETag) or `lesson_version` (422 `version_mismatch`
    when they differ), must be the one published when given: 409 `stale_version` otherwise,
    and nothing is stored."""
    tags = entity_tags(if_match)
    if len(tags) == 1 and ETAG.fullmatch(tags[0]):
        return await service.submit(tenant, me.user_id, lesson, quiz, dict(body.answers),
                                    lesson_version=body.lesson_version, lesson_etag=tags[0])
    version = named_version(if_match, body.lesson_version, "lesson", "lesson_version")
    return await service.submit(tenant, me.user_id, lesson, quiz, dict(body.answers),
                                lesson_version=version)


@router.get("/quizzes/{quiz}/attempts", dependencies=[PERSONAL_ANSWER])
async def my_attempts(tenant: TenantId, lesson: LessonId, quiz: QuizId, service: Svc,
                      me: Learner, after: After = None, limit: Limit = 100) -> Page[Attempt]:
    """The caller's own attempts at the quiz, newest first, a page at a time: `next` is the
    cursor (`after`) of the following page, null on the last. 404 when the tenant never had
    the lesson (a lesson or quiz deleted since still lists them); 403 `not_a_person` for an API
    key."""
    return page(await service.of_learner(tenant, me.user_id, lesson, quiz, after=after,
                                         limit=limit))


@router.get("/attempts", dependencies=[PERSONAL_ANSWER])
async def lesson_attempts(
    tenant: TenantId, lesson: LessonId, service: Svc, _: Staff,
    quiz: Annotated[str | None, Query(pattern=QUIZ_ID_PATTERN)] = None,
    learner: Annotated[str | None, Query(min_length=1, max_length=200)] = None,
    after: After = None, limit: Limit = 100,
) -> Page[Attempt]:
    """Every learner's attempts at the lesson (or one of its quizzes, or one learner's), newest
    first, a page at a time as the learner's own. 404 when the tenant never had the lesson; a
    lesson deleted since still lists its attempts."""
    return page(await service.of_lesson(tenant, lesson, quiz_id=quiz, learner=learner,
                                        after=after, limit=limit))
