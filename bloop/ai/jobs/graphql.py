"""The AI service's GraphQL fields: a tenant's AI jobs (`aiJob`, `aiJobs`), asking for one
(`requestAiJob`) and cancelling one (`cancelAiJob`), each as its HTTP twin under
`/v1/tenants/{tenant}/ai` does it: the same roles and scopes, the same body, and the same
`JobAccess`, so a job is shown only to whoever may read its lesson as it was (see `api`). Job
streams, output files and the tenant's AI settings are HTTP only."""

from __future__ import annotations

from collections.abc import Awaitable
from datetime import datetime
from enum import Enum
from typing import Annotated, cast

import strawberry
from pydantic import BaseModel
from strawberry.scalars import JSON
from strawberry.utils.str_converters import to_camel_case

from bloop.ai.jobs.access import JobAccess, cancelled_job, requested_job
from bloop.ai.jobs.api import AUTHOR_ROLES, STAFF_ROLES, JobId, JobView, LessonFilter
from bloop.ai.jobs.lessons import HttpLessons, lesson_source
from bloop.ai.jobs.model import IdempotencyKey, Job, JobKind, JobRequest, JobStatus
from bloop.ai.jobs.service import JobService
from bloop.graphql.context import Context
from bloop.graphql.fields import Page, field, page_size, sized
from bloop.graphql.inputs import validated
from bloop.graphql.scalars import Slug
from bloop.platform.content.service import ContentService
from bloop.platform.kit.auth import Principal
from bloop.platform.kit.errors import Invalid, NotFound
from bloop.platform.kit.pagination import After, Slice

Info = strawberry.Info[Context, None]

MAX_JOB_PAGES = 10
"""Pages of jobs one request may ask `aiJobs` for (each reads up to 2,000 of the tenant's jobs),
an alias asking for a page another asked for counting nothing."""


@strawberry.enum(description="what an AI job makes")
class AiJobKind(Enum):
    SUMMARY = strawberry.enum_value("summary", description="a summary of the lesson")
    SIMPLIFY = strawberry.enum_value("simplify", description=(
        "the lesson re-explained more simply, for a reader of `params.level`"))
    QUIZ = strawberry.enum_value("quiz", description="a quiz block of `params.count` questions")
    FLASHCARDS = strawberry.enum_value("flashcards", description=(
        "`params.count` flashcards, which join learners' decks"))
    NARRATION = strawberry.enum_value("narration", description=(
        "the lesson read aloud, with captions, attached to its draft"))
    VIDEO = strawberry.enum_value("video", description=(
        "a narrated video of the lesson or of `params.prompt`, attached to the lesson's draft"))


@strawberry.enum(description="where an AI job is")
class AiJobStatus(Enum):
    QUEUED = strawberry.enum_value("queued", description="waiting for a worker")
    RUNNING = strawberry.enum_value("running", description="a worker runs it")
    SUCCEEDED = strawberry.enum_value("succeeded", description="done: its result is there")
    FAILED = strawberry.enum_value("failed", description="ended without a result (see `errors`)")
    CANCELLED = strawberry.enum_value("cancelled", description=(
        "asked to cancel (see `cancelReason`), and ended"))


@strawberry.type(description="what shapes an AI job's output; each kind reads the fields it "
                             "needs")
class AiJobParams:
    level: str = strawberry.field(description="simplify: the reader's level")
    count: int = strawberry.field(description="quiz questions or flashcards")
    voice: str | None = strawberry.field(description=(
        "narration and video: the voice; null for the provider's own"))
    instructions: str = strawberry.field(description="a note to the generator")
    prompt: str = strawberry.field(description="video: what the video is about")
    language: str | None = strawberry.field(description=(
        "video from a prompt: the language asked for; null for the lesson's"))


@strawberry.type(description="a failed try of an AI job")
class AiJobError:
    at: datetime = strawberry.field(description="when it failed")
    attempt: int = strawberry.field(description="the try it ended, 1 for the first")
    code: str = strawberry.field(description="what went wrong, as a code")
    message: str = strawberry.field(description="what went wrong")
    transient: bool = strawberry.field(description="true when the job was tried again")


@strawberry.type(description="what an AI job spent")
class AiJobCost:
    provider: str = strawberry.field(description="the provider of its language model")
    model: str = strawberry.field(description="the language model")
    prompt_tokens: int = strawberry.field(description="tokens sent to the model")
    completion_tokens: int = strawberry.field(description="tokens the model wrote")
    characters: int = strawberry.field(description="characters a paid speech provider spoke")
    usd: float = strawberry.field(description="what it cost, in US dollars")


@strawberry.type(description="an output of a finished AI job that content did not add to the "
                             "lesson's draft")
class AiJobNotAttached:
    output: str = strawberry.field(description="the output's name")
    code: str = strawberry.field(description=(
        "content's reason: quota_exceeded, too_large, lesson_gone, lesson_changed, …"))
    detail: str = strawberry.field(description="content's reason, in words")
    at: datetime = strawberry.field(description="when it was recorded")


@strawberry.type(description=(
    "an AI job, as `GET …/ai/jobs/{job}` shows it: the lesson as it was when it was asked for, "
    "and what was made from it"))
class AiJob:
    id: strawberry.ID = strawberry.field(description="its id")
    kind: AiJobKind = strawberry.field(description="what it makes")
    status: AiJobStatus = strawberry.field(description="where it is")
    progress: int = strawberry.field(description="0 to 100")
    step: str = strawberry.field(description="what it is doing")
    lesson_id: str | None = strawberry.field(description=(
        "its lesson's id; null for a video made from a prompt alone"))
    lesson_version: int | None = strawberry.field(description="the lesson's version it read")
    lesson_title: str | None = strawberry.field(description="the lesson's title, as it read it")
    params: AiJobParams = strawberry.field(description="what shapes its output")
    requested_by: str = strawberry.field(description="the id of the user who asked for it")
    attempts: int = strawberry.field(description="the tries begun")
    max_attempts: int = strawberry.field(description="the most tries it gets")
    errors: list[AiJobError] = strawberry.field(description="each failed try")
    cost: AiJobCost = strawberry.field(description="what it spent")
    result: JSON | None = strawberry.field(description=(
        "its draft, exactly as the HTTP API's `result` (snake_case): a summary, a simpler "
        "text, a ready quiz block, flashcards, or for narration and video its output files "
        "(`outputs`, each with the `url` that streams it); null until it succeeded"))
    not_attached: list[AiJobNotAttached] = strawberry.field(description=(
        "the outputs content did not attach to the lesson's draft, with its reason"))
    cancel_requested: bool = strawberry.field(description="true once asked to cancel")
    cancel_reason: str | None = strawberry.field(description=(
        "why it was asked to cancel: requested (by a user) or lesson_deleted (its lesson or "
        "course was deleted)"))
    outputs_removed_at: datetime | None = strawberry.field(description=(
        "when its output files were removed (`BLOOP_AI_OUTPUTS_KEEP_S` after it ended, or "
        "with its lesson)"))
    retry_at: datetime | None = strawberry.field(description=(
        "when it is tried again, after a transient failure"))
    created_at: datetime = strawberry.field(description="when it was asked for")
    updated_at: datetime = strawberry.field(description="when it last changed")
    finished_at: datetime | None = strawberry.field(description="when it ended")
    url: str = strawberry.field(description="its HTTP API address")
    events_url: str = strawberry.field(description=(
        "the HTTP address of its server-sent events, which follow it to its end"))

    @classmethod
    def of(cls, job: Job) -> AiJob:
        view = JobView.of(job)
        p, c = view.params, view.cost
        return cls(
            id=strawberry.ID(view.id), kind=AiJobKind(view.kind), status=AiJobStatus(view.status),
            progress=view.progress, step=view.step, lesson_id=view.lesson_id,
            lesson_version=view.lesson_version, lesson_title=view.lesson_title,
            params=AiJobParams(level=p.level, count=p.count, voice=p.voice,
                               instructions=p.instructions, prompt=p.prompt,
                               language=p.language),
            requested_by=view.requested_by, attempts=view.attempts,
            max_attempts=view.max_attempts,
            errors=[AiJobError(at=e.at, attempt=e.attempt, code=e.code, message=e.message,
                               transient=e.transient) for e in view.errors],
            cost=AiJobCost(provider=c.provider, model=c.model, prompt_tokens=c.prompt_tokens,
                           completion_tokens=c.completion_tokens, characters=c.characters,
                           usd=c.usd),
            result=cast(JSON, view.result.model_dump(mode="json")) if view.result else None,
            not_attached=[AiJobNotAttached(output=n.output, code=n.code, detail=n.detail,
                                           at=n.at) for n in view.not_attached],
            cancel_requested=view.cancel_requested, cancel_reason=view.cancel_reason,
            outputs_removed_at=view.outputs_removed_at, retry_at=view.retry_at,
            created_at=view.created_at, updated_at=view.updated_at,
            finished_at=view.finished_at, url=view.url, events_url=view.events_url)


def _service(info: Info) -> JobService:
    return info.context.service("ai", JobService)


def _access(info: Info, tenant: str, me: Principal) -> JobAccess:
    """The caller's access to the tenant's jobs, as the HTTP routes build it from a request."""
    services = info.context.services
    content = (info.context.service("content", ContentService)
               if services.get("content") is not None else None)
    remote = (info.context.service("ai.lessons", HttpLessons)
              if services.get("ai.lessons") is not None else None)
    return JobAccess(lesson_source(content, remote), tenant, me, info.context.credentials)


def _reader(info: Info, tenant: str) -> JobAccess:
    """Authorises a read of the tenant's jobs as the HTTP API's `Staff` does; the caller's
    access, shared by the request's reads (what content answered is kept for it)."""
    me = info.context.authorise(tenant, *STAFF_ROLES, scopes=["content:read"])
    return info.context.loader(f"ai.access:{tenant}", lambda: _access(info, tenant, me))


def _author(info: Info, tenant: str) -> JobAccess:
    """Authorises a job's request or cancel as the HTTP API's `Author` does; the caller's
    access, asked afresh (a write before it may have changed the lesson)."""
    me = info.context.authorise(tenant, *AUTHOR_ROLES, scopes=["content:write"])
    return _access(info, tenant, me)


@strawberry.type
class Query:
    @field("an AI job, to whoever may read its lesson as it was (as `GET …/ai/jobs/{job}`, for "
           "the tenant's educators, teaching assistants and admins); null when there is none "
           "or the caller may not see it (HTTP answers 404)")
    async def ai_job(self, info: Info, tenant: Slug, id: strawberry.ID) -> AiJob | None:
        access = _reader(info, tenant)
        job_id = sized(str(id), "id", JobId)
        try:
            return AiJob.of(await access.readable(await info.context.once(
                f"ai.job:{tenant}:{job_id}", lambda: _service(info).job(tenant, job_id))))
        except NotFound:
            return None

    @field(f"the tenant's AI jobs the caller may see, newest first, `first` of them after the "
           f"cursor `after` (as `GET …/ai/jobs`): a page reads at most 2,000 of the tenant's "
           f"jobs, so it may hold fewer than `first`, even none, and still have a `next`; a "
           f"request asks for at most {MAX_JOB_PAGES} pages (`query_too_large` past it)")
    async def ai_jobs(self, info: Info, tenant: Slug,
                      lesson_id: Annotated[str | None, strawberry.argument(
                          description="only the jobs of this lesson")] = None,
                      status: Annotated[AiJobStatus | None, strawberry.argument(
                          description="only the jobs of this status")] = None,
                      kind: Annotated[AiJobKind | None, strawberry.argument(
                          description="only the jobs of this kind")] = None,
                      first: int = 50, after: str | None = None) -> Page[AiJob] | None:
        access = _reader(info, tenant)
        size, after = page_size(first), sized(after, "after", After)
        lesson_id = sized(lesson_id, "lessonId", LessonFilter)
        wanted = cast(JobStatus, status.value) if status is not None else None
        of_kind = cast(JobKind, kind.value) if kind is not None else None

        def work() -> Awaitable[Slice[Job]]:
            info.context.count("pages of AI jobs", 1, MAX_JOB_PAGES)
            return _service(info).readable_jobs(tenant, access.readable_of,
                                                lesson_id=lesson_id, status=wanted,
                                                kind=of_kind, after=after, limit=size)

        return Page.of(await info.context.once(
            f"ai.jobs:{tenant}:{lesson_id}:{wanted}:{of_kind}:{after}:{size}", work), AiJob.of)


@strawberry.input(description="what shapes a job's output (as the HTTP body's `params`); each "
                             "kind reads the fields it needs")
class AiJobParamsInput:
    level: str | None = strawberry.field(default=strawberry.UNSET, description=(
        "simplify: the reader's level, `beginner` (when left out), `intermediate` or "
        "`advanced`"))
    count: int | None = strawberry.field(default=strawberry.UNSET, description=(
        "quiz questions or flashcards, 1 to 30; 5 when left out"))
    voice: str | None = strawberry.field(default=strawberry.UNSET, description=(
        "narration and video: the voice, when the provider has several"))
    instructions: str | None = strawberry.field(default=strawberry.UNSET, description=(
        "a note to the generator, at most 2,000 characters"))
    prompt: str | None = strawberry.field(default=strawberry.UNSET, description=(
        "video: what the video is about; its script is written by the tenant's language model"))
    language: str | None = strawberry.field(default=strawberry.UNSET, description=(
        "video from a prompt: the language to write and speak in (a BCP 47 tag such as `fr`)"))


@strawberry.input(description="an AI job to ask for, as `POST …/ai/jobs` takes it")
class AiJobInput:
    kind: AiJobKind = strawberry.field(description="what it makes")
    lesson_id: str | None = strawberry.field(default=strawberry.UNSET, description=(
        "the lesson to work on; only a video with a prompt may go without one"))
    params: AiJobParamsInput | None = strawberry.field(default=strawberry.UNSET,
                                                       description="what shapes its output")


@strawberry.type(description="what `requestAiJob` did")
class AiJobRequested:
    job: AiJob = strawberry.field(description="the job")
    created: bool = strawberry.field(description=(
        "false when an earlier request made it (where HTTP answers 200, not 201)"))


class _Key(BaseModel):
    idempotency_key: IdempotencyKey | None = None


def _in_job(refused: Invalid) -> Invalid:
    """A refusal of the HTTP body's fields (such as a voice the renderer lacks), its `loc`
    naming the `job` argument's fields instead."""
    errors = refused.extra["errors"]
    return Invalid([{**e, "loc": ["job", *(to_camel_case(p) for p in e["loc"][1:])]
                     if e["loc"][:1] == ["body"] else e["loc"]} for e in errors])


@strawberry.type
class Mutation:
    @field("asks for an AI job on a lesson, or for a video from a prompt (as `POST …/ai/jobs`, "
           "for the tenant's educators and admins): the same refusals (`lesson_empty`, "
           "`prompt_too_long`, `llm_required`, `voice_unavailable`, `ai_budget_exhausted`, "
           "`ai_quota_exceeded`, "
           "`not_an_author` for a narration or a video of a lesson the caller does not author, "
           "`lesson_gone`, …); the same request again gives the job it made while that job is "
           "queued, running or succeeded (`created` false)")
    async def request_ai_job(
            self, info: Info, tenant: Slug, job: AiJobInput,
            idempotency_key: Annotated[str | None, strawberry.argument(description=(
                "the HTTP API's `Idempotency-Key` header: it names one job for good, the same "
                "key giving that job however it ended (`idempotency_key_reused` for a "
                "different request)"))] = None) -> AiJobRequested | None:
        access = _author(info, tenant)
        body = validated(JobRequest, job, "job")
        key = validated(_Key, {"idempotency_key": idempotency_key}).idempotency_key
        try:
            found, created = await requested_job(_service(info), access, body, key)
        except Invalid as refused:
            raise _in_job(refused) from None
        return AiJobRequested(job=AiJob.of(found), created=created)

    @field("cancels an AI job (as `POST …/ai/jobs/{job}/cancel`): whoever asked for it, its "
           "lesson's course's authors and the tenant's admins may (`not_an_author` for anyone "
           "else who may see it, `not_found` for those who may not); `job_finished` once it "
           "ended. The job, asked to cancel")
    async def cancel_ai_job(self, info: Info, tenant: Slug, id: strawberry.ID) -> AiJob | None:
        access = _author(info, tenant)
        return AiJob.of(await cancelled_job(_service(info), access,
                                            sized(str(id), "id", JobId)))
