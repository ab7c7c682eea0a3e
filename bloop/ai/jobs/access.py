"""Who may see and act on AI jobs, and the checks before a job is asked for or cancelled: what
the HTTP routes and the GraphQL fields share. They are built from what a caller's request gives,
whichever API it came through: the caller, their credential headers (content is asked about a
lesson as the caller) and where this process reads lessons (`lessons.lesson_source`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from bloop.ai.jobs.model import MEDIA_KINDS, IdempotencyKey, Job, JobRequest
from bloop.ai.jobs.ports import LessonRights, LessonSource
from bloop.ai.jobs.service import JobService
from bloop.ai.text.model import LessonText
from bloop.platform.kit.auth import STAFF, Forbidden, Principal
from bloop.platform.kit.errors import NotFound, Problem


class JobAccess:
    """Who may see a job and who may act on it, for one caller of one request. Content is
    asked about the lessons of a whole list of jobs at once (`readable_of`), and what it
    answered is kept for the request."""

    def __init__(self, lessons: LessonSource, tenant: str, me: Principal,
                 credentials: Mapping[str, str]) -> None:
        self.lessons, self.tenant, self.me = lessons, tenant, me
        self.credentials = dict(credentials)
        self._rights: dict[str, LessonRights] = {}

    async def may_act(self, job: Job) -> bool:
        """Whoever asked for the job, its lesson's course's authors and the tenant's admins
        (who cancel it)."""
        return self._acts_alone(job) or await self.may_edit(job.lesson_id)

    async def may_read(self, job: Job) -> bool:
        """Those of `may_act`, and anyone content shows the job's lesson to at the job's
        version; for a job with no lesson, the tenant's staff."""
        if await self.may_act(job):
            return True
        if job.lesson is None:
            return self.me.has_any(STAFF)
        return (await self._rights_of([job.lesson.id]))[job.lesson.id].version == (
            job.lesson.version)

    async def readable(self, job: Job) -> Job:
        """The job, or 404 as for a job that does not exist when the caller may not see it."""
        if not await self.may_read(job):
            raise NotFound(f"no AI job {job.id!r} in tenant {self.tenant!r}")
        return job

    async def readable_of(self, jobs: Sequence[Job]) -> list[Job]:
        """Those of `jobs` the caller may see, in their order: content is asked once about
        all the lessons it must answer for."""
        await self._rights_of([j.lesson_id for j in jobs
                               if j.lesson_id and not self._acts_alone(j)])
        return [j for j in jobs if await self.may_read(j)]

    async def may_edit(self, lesson_id: str) -> bool:
        """Whether the caller may change the lesson (its course's authors, the tenant's
        admins), as content answers."""
        return bool(lesson_id) and (await self._rights_of([lesson_id]))[lesson_id].may_edit

    async def shown(self, lesson_id: str) -> bool:
        """Whether content shows the caller any of the lesson (none when there is none)."""
        return (await self._rights_of([lesson_id]))[lesson_id].version is not None

    def _acts_alone(self, job: Job) -> bool:
        """Whether the caller acts on the job whatever content says of its lesson."""
        return job.requested_by == self.me.user_id or self.me.has_any({"tenant_admin"})

    async def _rights_of(self, lesson_ids: Sequence[str]) -> dict[str, LessonRights]:
        asked = [x for x in dict.fromkeys(lesson_ids) if x not in self._rights]
        if asked:
            self._rights |= await self.lessons.rights(self.tenant, asked, self.me,
                                                      self.credentials)
        return self._rights


async def requested_job(service: JobService, access: JobAccess, body: JobRequest,
                      idempotency_key: IdempotencyKey | None) -> tuple[Job, bool]:
    """The job `body` asks for in the caller's name, and whether it is new (see
    `JobService.request`), after the checks of who may ask for it: the lesson read as the
    caller may read it (404, `lesson_gone` once deleted), a narration or a video its authors'
    (403 `not_an_author`), and a job found again that the caller may not see refused as a key
    used for another request (a guard: client keys are the caller's own, and a job found by
    its request is checked with `may_read`)."""
    tenant, me = access.tenant, access.me
    lesson: LessonText | None = None
    if body.lesson_id is not None:
        try:
            lesson = await access.lessons.lesson(tenant, body.lesson_id, me, access.credentials)
        except NotFound:
            await service.check_not_deleted(tenant, body.lesson_id)  # lesson_gone, when it was
            raise
        if body.kind in MEDIA_KINDS and not await access.may_edit(body.lesson_id):
            if not await access.shown(body.lesson_id):  # deleted since it was read
                await service.check_not_deleted(tenant, body.lesson_id)
                raise NotFound(f"no lesson {body.lesson_id!r} in tenant {tenant!r}")
            raise Forbidden("a narration or a video is added to the lesson's draft: only its "
                            "course's authors and the tenant's admins ask for one",
                            code="not_an_author")
    job, created = await service.request(tenant, me.user_id, body, lesson, idempotency_key,
                                         readable=access.may_read)
    if not created and not await access.may_read(job):
        # not theirs to see, nor to learn anything of
        raise Problem("this Idempotency-Key was used for a different request", status=422,
                      code="idempotency_key_reused")
    return job, created


async def cancelled_job(service: JobService, access: JobAccess, job_id: str) -> Job:
    """The job, asked to cancel, by whoever may act on it (403 `not_an_author` for anyone
    else who may see it, 404 for those who may not)."""
    found = await access.readable(await service.job(access.tenant, job_id))
    if not await access.may_act(found):
        raise Forbidden("only whoever asked for an AI job, the authors of its lesson's course "
                        "and the tenant's admins cancel it", code="not_an_author")
    return await service.cancel(access.tenant, job_id)
