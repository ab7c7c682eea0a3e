"""What both job stores keep beside each job's document: the fields their queries filter on,
as numbers (epoch seconds) so they compare in order; and how both media stores read a range of a
file."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from bloop.ai.jobs.model import Job, MediaResult, TenantAiConfig


def index_fields(job: Job) -> dict[str, Any]:
    return {
        "tenant": job.tenant, "id": job.id, "idempotency_key": job.idempotency_key,
        "status": job.status, "lesson_id": job.lesson_id, "rev": job.rev,
        "final": job.final,
        "lease_until": _free_at(job),
        "created": job.created_at.timestamp(), "updated": job.updated_at.timestamp(),
        "usd": job.cost.usd,
        "outputs_since": outputs_since(job),
    }


def outputs_since(job: Job) -> float | None:
    """When a finished job whose output files are still kept ended (what the retention sweep
    counts their age from); None for any other job."""
    if not job.final or job.outputs_removed_at is not None:
        return None
    if not isinstance(job.result, MediaResult) or not job.result.outputs:
        return None
    return (job.finished_at or job.updated_at).timestamp()


def _free_at(job: Job) -> float | None:
    """When a worker may take the job up: its lease's expiry, or the end of the wait before a
    retry; None for a job never claimed (a worker takes it when its command arrives)."""
    if job.lease is not None:
        return job.lease.expires_at.timestamp()
    return job.not_before.timestamp() if job.not_before is not None else None


def job_key(job: Job) -> tuple[float, str]:
    """Where a job stands in `list_jobs`' order (newest first, then by id)."""
    return job.created_at.timestamp(), job.id


def config_doc(config: TenantAiConfig) -> dict[str, Any]:
    """The stored form: the API key kept as it is (the provider needs it back)."""
    doc = config.model_dump(mode="json")
    doc["api_key"] = config.api_key.get_secret_value() if config.api_key else None
    return doc


async def chunks_of(read: Callable[[int], Awaitable[bytes]], start: int, end: int | None,
                    chunk: int) -> AsyncIterator[bytes]:
    """What `read(n)` gives (at most `n` bytes, none at the file's end) from a file positioned
    at `start`, up to `end` (exclusive; the file's end when None), at most `chunk` at a time."""
    left = None if end is None else max(0, end - start)
    while left is None or left > 0:
        data = await read(chunk if left is None else min(chunk, left))
        if not data:
            return
        if left is not None:
            left -= len(data)
        yield data
