"""How long the files jobs make are kept. A finished job's output files are removed
`BLOOP_AI_OUTPUTS_KEEP_S` after it ended (a sweep, in chunks, oldest first), and at once when its
lesson is deleted (its course's deletion deletes each of its lessons): that lesson's jobs still
queued or running are cancelled (`lesson_deleted`), as a user's cancel does them, and the files of
those that ended are removed. The job stays, with its cost, and says when its files went
(`outputs_removed_at`). Content's copies of the files it attached are its own, and stay. The
deleted lesson's tombstone is kept `DELETED_LESSON_KEEP_S` (or the outputs' keeping time when
longer); lesson ids are UUIDs content makes, never reused."""

from __future__ import annotations

import logging
from datetime import timedelta

from bloop.ai.jobs.model import MediaResult, now
from bloop.ai.jobs.ports import MediaStore
from bloop.ai.jobs.service import LESSON_DELETED, JobService

log = logging.getLogger("bloop.ai.retention")
CHUNK = 100
# How long a deleted lesson's tombstone is kept at least: it refuses new jobs on the lesson, and
# stops those stored after the deletion's cancel looked for the lesson's jobs when they start.
DELETED_LESSON_KEEP_S = 30 * 86_400.0


class OutputRetention:
    def __init__(self, service: JobService, media: MediaStore, keep_s: float) -> None:
        self.service, self.media, self.keep_s = service, media, keep_s

    async def sweep(self, *, limit: int = CHUNK) -> int:
        """Removes the files of up to `limit` jobs that ended more than `keep_s` ago, those
        that ended first first; how many jobs it cleared (a full chunk: more may be due)."""
        due = await self.service.store.outputs_due(now() - timedelta(seconds=self.keep_s),
                                                   limit=limit)
        cleared = 0
        for tenant, job_id in due:
            cleared += await self.remove_outputs(tenant, job_id)
        if cleared:
            log.info("removed the output files of AI jobs past their keeping time",
                     extra={"count": cleared})
        await self.service.store.forget_deleted_lessons(
            now() - timedelta(seconds=max(self.keep_s, DELETED_LESSON_KEEP_S)))
        return cleared

    async def remove_outputs(self, tenant: str, job_id: str) -> bool:
        """Removes the files of the finished job and records it on the job; False when there
        were none left (running it again changes nothing)."""
        job = await self.service.store.get(tenant, job_id)
        if (job is None or not job.final or job.outputs_removed_at is not None
                or not isinstance(job.result, MediaResult) or not job.result.outputs):
            return False
        for output in job.result.outputs:  # removed first: a failure here leaves them due
            await self.media.delete(tenant, output.file_id)
        await self.service.outputs_removed(tenant, job_id)
        return True

    async def lesson_deleted(self, tenant: str, lesson_id: str) -> int:
        """Remembers the lesson deleted (its tombstone), then cancels its unfinished jobs (a
        running one stops within a second, and a worker that finished meanwhile removes what it
        stored) and removes the files of those that ended. A job stored after this looked for
        the lesson's jobs finds the tombstone: it is refused, or its worker cancels it before
        any paid call. How many jobs it changed; running it again changes nothing."""
        if not lesson_id:
            return 0  # the jobs made from a prompt alone belong to no lesson
        await self.service.store.lesson_deleted(tenant, lesson_id, now())  # first: see above
        changed, after = 0, None
        while True:
            page = await self.service.store.list_jobs(tenant, lesson_id=lesson_id, after=after,
                                                      limit=CHUNK)
            for job in page.items:
                if not job.final:
                    await self.service.cancel_unfinished(tenant, job.id, LESSON_DELETED)
                    changed += 1
                elif await self.remove_outputs(tenant, job.id):
                    changed += 1
            if page.next is None:
                return changed
            after = page.next
