"""The AI service's HTTP API, under `/v1/tenants/{tenant}/ai`.

Educators and tenant admins ask for jobs on a lesson (`POST /jobs`; the same request twice, or
the same `Idempotency-Key`, gives the same job: 201 the first time, 200 after; but the same
request without a key after its job failed or was cancelled makes a new job), follow them
(`GET /jobs/{id}`, or the server-sent event stream at `/jobs/{id}/events`) and cancel them.
Generated text arrives as a draft on the job (`result`): an educator reviews it and, to publish
it, adds it to the lesson through content's lesson edit API (a quiz result is a ready content
quiz block, its id its job's own). Media outputs stream from `/jobs/{id}/outputs/{name}`, and
from the signed links `video.events` carry (`/links/{job}/{name}?expires=…&signature=…`, no
credentials: see `ai.jobs.links`), which content follows from another process to copy them into
its own media; both answer range requests and `HEAD` as content's media do. A job's files are
kept `BLOOP_AI_OUTPUTS_KEEP_S` after it ends (the links' lifetime unless set), and removed with
its lesson (see `ai.jobs.retention`).
Tenant admins set the provider, key, model, prices and quotas (`/settings`).

A job shows the lesson as it was when it was asked for (its title, and a result made from its
text, a draft quiz's answers included), so it is shown (`GET /jobs`, `/jobs/{id}`, its event
stream, its outputs) only to whoever may read that lesson as it was: whoever asked for it, the
authors of the lesson's course, the tenant's admins, and anyone content shows the lesson to at
that same version (it is published as it was). Anyone else is answered as content answers them
for a draft they may not read: 404, and the job is left out of lists. A job made from a prompt
alone, with no lesson, is shown to the tenant's staff.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Path, Query, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from bloop.ai.jobs.access import JobAccess, cancelled_job, requested_job
from bloop.ai.jobs.lessons import lesson_source
from bloop.ai.jobs.links import OutputLinks
from bloop.ai.jobs.model import (
    Cost,
    IdempotencyKey,
    Job,
    JobError,
    JobKind,
    JobParams,
    JobRequest,
    JobResult,
    JobStatus,
    NotAttached,
    TenantAiConfig,
    TenantAiView,
)
from bloop.ai.jobs.outputs import JobOutputs
from bloop.ai.jobs.ports import LessonSource, StoredFile
from bloop.ai.jobs.service import JobService, job_url, shown_errors
from bloop.platform.content.model import SLUG_PATTERN
from bloop.platform.kit.auth import Principal, credentials, require
from bloop.platform.kit.draining import draining
from bloop.platform.kit.errors import Problem
from bloop.platform.kit.pagination import After, Page
from bloop.platform.kit.personal_data import PERSONAL_ANSWER
from bloop.platform.kit.problem_docs import documented_problem
from bloop.platform.kit.ranges import Unsatisfiable
from bloop.platform.kit.served_files import Asked, Conditions, ServedFile, serve_file

TenantId = Annotated[str, Path(pattern=SLUG_PATTERN, description="the tenant's slug")]
JobId = Annotated[str, Path(min_length=1, max_length=64)]
LessonFilter = Annotated[str | None, Query(max_length=64)]

AUTHOR_ROLES = ("educator", "tenant_admin")
STAFF_ROLES = ("educator", "teaching_assistant", "tenant_admin")
Author = Annotated[Principal, Depends(require(*AUTHOR_ROLES, scopes=["content:write"]))]
Staff = Annotated[Principal, Depends(require(*STAFF_ROLES, scopes=["content:read"]))]
Member = Annotated[Principal, Depends(require(scopes=["content:read"]))]
Admin = Annotated[Principal, Depends(require("tenant_admin", scopes=["content:write"]))]


async def get_service(request: Request) -> JobService:
    service: JobService = request.app.state.ai.state["service"]
    return service


def get_lessons(request: Request) -> LessonSource:
    """Content's service object when this process runs content, else its HTTP API."""
    content = getattr(request.app.state, "content", None)
    return lesson_source(content.state["service"] if content is not None else None,
                         request.app.state.ai.state.get("lessons"))


async def get_outputs(request: Request) -> JobOutputs:
    outputs: JobOutputs = request.app.state.ai.state["outputs"]
    return outputs


async def get_links(request: Request) -> OutputLinks:
    links: OutputLinks = request.app.state.ai.state["links"]
    return links


Svc = Annotated[JobService, Depends(get_service)]
Outputs = Annotated[JobOutputs, Depends(get_outputs)]
Links = Annotated[OutputLinks, Depends(get_links)]


class JobView(BaseModel):
    id: str
    kind: JobKind
    status: JobStatus
    progress: int
    step: str
    lesson_id: str | None
    lesson_version: int | None
    lesson_title: str | None
    params: JobParams
    requested_by: str
    attempts: int
    max_attempts: int
    errors: list[JobError]
    cost: Cost
    result: JobResult | None
    not_attached: list[NotAttached]
    cancel_requested: bool
    cancel_reason: str | None = Field(description=(
        "why it was asked to cancel: requested (by a user) or lesson_deleted (its lesson or "
        "course was deleted)"))
    outputs_removed_at: datetime | None = Field(description=(
        "when its output files were removed (`BLOOP_AI_OUTPUTS_KEEP_S` after it ended, or "
        "with its lesson): its outputs then answer 404 `output_expired`"))
    retry_at: datetime | None
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None
    url: str
    events_url: str

    @classmethod
    def of(cls, job: Job) -> JobView:
        url = job_url(job.tenant, job.id)
        return cls(id=job.id, kind=job.kind, status=job.status, progress=job.progress,
                   step=job.step, lesson_id=job.lesson.id if job.lesson else None,
                   lesson_version=job.lesson.version if job.lesson else None,
                   lesson_title=job.lesson.title if job.lesson else None, params=job.params,
                   requested_by=job.requested_by, attempts=job.attempts,
                   max_attempts=job.max_attempts, errors=shown_errors(job.errors),
                   cost=job.cost,
                   result=job.result, not_attached=job.not_attached,
                   cancel_requested=job.cancel_requested,
                   cancel_reason=job.cancel_reason,
                   outputs_removed_at=job.outputs_removed_at, retry_at=job.not_before,
                   created_at=job.created_at,
                   updated_at=job.updated_at, finished_at=job.finished_at, url=url,
                   events_url=f"{url}/events")


def job_access(request: Request, tenant: str, me: Principal) -> JobAccess:
    """The caller's access to the tenant's jobs, from what their request gives."""
    return JobAccess(get_lessons(request), tenant, me, credentials(request.headers))


router = APIRouter(prefix="/v1/tenants/{tenant}/ai", tags=["ai"])


@router.post("/jobs", status_code=201, dependencies=[PERSONAL_ANSWER],
             responses={200: {"description": "the same request was made before: its job",
                              "model": JobView}})
async def request_job(
    tenant: TenantId, body: JobRequest, request: Request, response: Response, service: Svc,
    me: Author,
    idempotency_key: Annotated[IdempotencyKey | None, Header()] = None,
) -> JobView:
    """Asks for a job on a lesson, or for a video from an educator's prompt (`params.prompt`,
    written into a script by the tenant's language model; with a lesson, drawing on it).
    Refused before any spend when the lesson is empty or too long, the prompt too long (422),
    a prompt is given and the tenant has no language model (422 `llm_required`), a narration
    or video has no `voice` and the local voice (espeak-ng) none for its language (422
    `voice_unavailable`: it would read it as English), or the
    tenant is over its budget (402) or its hourly job limit (429). A narration or a video is
    its lesson's authors' to ask for (403 `not_an_author`; 404 once the lesson is gone). A
    lesson this service heard was deleted answers 404 `lesson_gone`, and nothing is stored.

    The same request again answers 200 with its job while that job is queued, running or
    succeeded; after it failed or was cancelled, or its files were removed, the request makes
    a new job (201). An
    `Idempotency-Key` names one job for good: the same key answers 200 with it, however it
    ended (422 `idempotency_key_reused` for a different request)."""
    job, created = await requested_job(service, job_access(request, tenant, me), body,
                                       idempotency_key)
    if not created:
        response.status_code = 200
    response.headers["Location"] = job_url(tenant, job.id)
    return JobView.of(job)


@router.get("/jobs", dependencies=[PERSONAL_ANSWER])
async def list_jobs(
    tenant: TenantId, request: Request, service: Svc, me: Staff,
    lesson_id: LessonFilter = None,
    status: Annotated[JobStatus | None, Query()] = None,
    kind: Annotated[JobKind | None, Query(description="only the jobs of this kind")] = None,
    after: After = None, limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> Page[JobView]:
    """The tenant's jobs the caller may see (see the module's notes: a job on a lesson's
    draft is its authors', its requester's and the admins'), newest first, a page at a time:
    `next` is the cursor (`after`) of the following page, null on the last. A request reads at
    most 2,000 of the tenant's jobs, so a page may hold fewer than `limit`, even none, and
    still have a `next`."""
    jobs = await service.readable_jobs(tenant, job_access(request, tenant, me).readable_of,
                                       lesson_id=lesson_id, status=status, kind=kind,
                                       after=after, limit=limit)
    return Page(items=[JobView.of(j) for j in jobs.items], next=jobs.next)


@router.get("/jobs/{job}", dependencies=[PERSONAL_ANSWER])
async def get_job(tenant: TenantId, job: JobId, request: Request, service: Svc,
                  me: Staff) -> JobView:
    """The job, to whoever may read its lesson as it was (404 for anyone else)."""
    return JobView.of(await job_access(request, tenant, me).readable(
        await service.job(tenant, job)))


@router.post("/jobs/{job}/cancel", dependencies=[PERSONAL_ANSWER])
async def cancel_job(tenant: TenantId, job: JobId, request: Request, service: Svc,
                     me: Author) -> JobView:
    """Ends a queued job at once; a running job stops at its next step (409 once it ended).
    A cancel answered 200 always ends the job `cancelled`, even one whose work was done and
    whose outputs were being stored: its result is dropped, its files removed, and no success
    is published (content attaches nothing).
    Whoever asked for it, its lesson's course's authors and the tenant's admins may (403
    `not_an_author` for anyone else who may see the job, 404 for those who may not)."""
    return JobView.of(await cancelled_job(service, job_access(request, tenant, me), job))


def _sse(event: str, data: str, event_id: str | None = None) -> str:
    head = f"id: {event_id}\n" if event_id else ""
    return f"{head}event: {event}\ndata: {data}\n\n"


STREAM_LIFETIME_S = 600.0
STREAMS_PER_CALLER = 10


@router.get("/jobs/{job}/events", response_class=StreamingResponse,
            responses={200: {"content": {"text/event-stream": {}}}})
async def job_events(tenant: TenantId, job: JobId, request: Request, service: Svc,
                     me: Staff) -> StreamingResponse:
    """Server-sent events: `progress` whenever the job moves, then one `end` with its final
    state, after which the stream closes. Comments keep an idle connection open. A stream ends
    after 10 minutes without its `end`, and as soon as its process starts to shut down (an
    EventSource reconnects by itself), and a caller
    keeps at most 10 open in a process (429 beyond). 404 for a caller who may not see the job,
    as for `GET /jobs/{job}`."""
    first = await job_access(request, tenant, me).readable(await service.job(tenant, job))
    streams: Counter[tuple[str, str]] = request.app.state.ai.state.setdefault(
        "open_streams", Counter())
    caller = (me.tenant, me.user_id)
    if streams[caller] >= STREAMS_PER_CALLER:
        raise Problem(f"{STREAMS_PER_CALLER} job streams are open for this caller already; "
                      "close one first", status=429, code="too_many_streams",
                      headers={"Retry-After": "5"})

    async def stream() -> AsyncIterator[str]:
        streams[caller] += 1  # counted once running: a stream never started never ends
        try:
            async for part in _job_stream(first, request, service):
                yield part
        finally:
            streams[caller] -= 1
            if streams[caller] <= 0:
                del streams[caller]

    return StreamingResponse(stream(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


async def _job_stream(first: Job, request: Request, service: JobService) -> AsyncIterator[str]:
    shutdown = draining(request.app)
    current, seen, delay = first, None, 0.1
    quiet = opened = time.monotonic()
    yield "retry: 2000\n\n"
    while True:
        state = (current.status, current.progress, current.step, current.attempts,
                 len(current.not_attached))
        if state != seen:
            seen, delay, quiet = state, 0.1, time.monotonic()
            body = JobView.of(current).model_dump_json()
            yield _sse("end" if current.final else "progress", body, str(current.rev))
        if current.final or time.monotonic() - opened > STREAM_LIFETIME_S:
            return
        if time.monotonic() - quiet > 15:
            quiet = time.monotonic()
            yield ": waiting\n\n"
        if await shutdown.wait(delay):
            return
        delay = min(delay * 1.5, 2.0)
        if await request.is_disconnected():
            return
        current = await service.job(current.tenant, current.id)


OutputName = Annotated[str, Path(min_length=1, max_length=200)]
OUTPUT_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"content": {"audio/*": {}, "video/*": {}, "text/vtt": {}}},
    206: {"description": "the requested byte range"},
    304: {"description": "the caller's copy is current"},
    416: documented_problem("the range lies outside the file (`Content-Range` gives its size)",
                            416, "range_not_satisfiable", str(Unsatisfiable(800)),
                            instance="/v1/tenants/demo/ai/jobs/j1/outputs/video.mp4")}


@router.head("/jobs/{job}/outputs/{name}", response_class=StreamingResponse,
             responses=OUTPUT_RESPONSES, operation_id="ai_job_output_head")
@router.get("/jobs/{job}/outputs/{name}", response_class=StreamingResponse,
            responses=OUTPUT_RESPONSES)
async def job_output(tenant: TenantId, job: JobId, name: OutputName, request: Request,
                     service: Svc, outputs: Outputs, me: Member, asked: Asked) -> Response:
    """A file a narration or video job made, to those who may see the job (404 for anyone
    else: a narration of a draft, its captions the draft's text, is its authors' until they
    publish it; learners play the copy content attaches to the lesson). `Range: bytes=a-b`,
    `bytes=a-` and `bytes=-n` get 206 with `Content-Range` (416 past the file's end), so a
    player can seek; `If-None-Match` with its `ETag` gets 304. Once the job's files were
    removed (`BLOOP_AI_OUTPUTS_KEEP_S` after it ended, or with its lesson), 404
    `output_expired`."""
    await job_access(request, tenant, me).readable(await service.job(tenant, job))
    return _serve(tenant, await outputs.file(tenant, job, name), outputs, request, asked)


@router.head("/links/{job}/{name}", response_class=StreamingResponse,
             responses=OUTPUT_RESPONSES, operation_id="ai_linked_output_head")
@router.get("/links/{job}/{name}", response_class=StreamingResponse, responses=OUTPUT_RESPONSES)
async def linked_output(tenant: TenantId, job: JobId, name: OutputName, request: Request,
                        outputs: Outputs, links: Links, expires: Annotated[int, Query(ge=0)],
                        signature: Annotated[str, Query(pattern=r"^[0-9a-f]{64}$")],
                        asked: Asked) -> Response:
    """A job's output through the signed link `video.events` carry, as `/jobs/{job}/outputs/
    {name}` serves it (no credentials: the signature is one; 403 when it does not match or has
    expired)."""
    links.check(tenant, job, name, expires, signature)
    return _serve(tenant, await outputs.file(tenant, job, name), outputs, request, asked)


def _serve(tenant: str, stored: StoredFile, outputs: JobOutputs, request: Request,
           asked: Conditions) -> Response:
    file = ServedFile(stored.etag, stored.content_type, stored.length,
                      f'inline; filename="{stored.name}"')
    return serve_file(file, request, asked,
                      lambda part: outputs.read(tenant, stored, part.start, part.end))


@router.get("/settings")
async def get_settings(tenant: TenantId, service: Svc, _: Admin) -> TenantAiView:
    return await service.config_view(tenant)


@router.put("/settings")
async def put_settings(tenant: TenantId, body: TenantAiConfig, service: Svc,
                       _: Admin) -> TenantAiView:
    """Sets the tenant's provider, base URL, key (write only: left out, the stored one stays),
    model, prices and quotas; fields left unset follow the platform's settings."""
    return await service.configure(tenant, body)


