"""A finished job's output files as the AI service shows them, by job and name: what its
routes stream and what a service in the same process (content) reads instead of the routes."""

from __future__ import annotations

from collections.abc import AsyncIterator

from bloop.ai.jobs.model import MediaResult
from bloop.ai.jobs.ports import MediaStore, StoredFile
from bloop.ai.jobs.service import JobService
from bloop.platform.kit.errors import NotFound
from bloop.platform.kit.times import json_time


class JobOutputs:
    def __init__(self, service: JobService, media: MediaStore) -> None:
        self.service, self.media = service, media
        self.keep_s = service.settings.keep_outputs_s

    async def file(self, tenant: str, job_id: str, name: str) -> StoredFile:
        """The output's file; 404 when the job has no such output, `output_expired` when its
        files were removed."""
        found = await self.service.job(tenant, job_id)
        outputs = found.result.outputs if isinstance(found.result, MediaResult) else []
        output = next((o for o in outputs if o.name == name), None)
        if output is not None and found.outputs_removed_at is not None:
            raise NotFound(
                f"the files of the AI job {job_id!r} were removed at "
                f"{json_time(found.outputs_removed_at)}: a job's files are kept "
                f"{_span(self.keep_s)} after it ends, and removed with its lesson; the copies "
                "content attached to the lesson stay, and asking again makes a new job",
                code="output_expired", extra={"outputs_removed_at": json_time(
                    found.outputs_removed_at)})
        stored = None if output is None else await self.media.info(tenant, output.file_id)
        if output is None or stored is None:
            raise NotFound(f"the AI job {job_id!r} has no output {name!r}")
        return stored

    def read(self, tenant: str, stored: StoredFile, start: int = 0,
             end: int | None = None) -> AsyncIterator[bytes]:
        """The file's bytes from `start` up to `end` (exclusive; all of them when None)."""
        return self.media.read(tenant, stored.file_id, start, end)

    async def open(self, tenant: str, job_id: str,
                   name: str) -> tuple[StoredFile, AsyncIterator[bytes]]:
        """The output's file and its bytes; 404 when the job has no such output."""
        stored = await self.file(tenant, job_id, name)
        return stored, self.read(tenant, stored)


def _span(seconds: float) -> str:
    """`seconds` in the largest whole unit of days, hours or minutes it is."""
    for unit, size in (("day", 86_400), ("hour", 3_600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            n = int(seconds // size)
            return f"{n} {unit}{'s' if n != 1 else ''}"
    return f"{seconds:g} seconds"
