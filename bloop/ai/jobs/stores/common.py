"""What both job stores keep beside each job's document: the fields their queries filter on,
as numbers (epoch seconds) so they compare in order."""

from __future__ import annotations

from typing import Any

from bloop.ai.jobs.model import Job, TenantAiConfig


def index_fields(job: Job) -> dict[str, Any]:
    return {
        "tenant": job.tenant, "id": job.id, "idempotency_key": job.idempotency_key,
        "status": job.status, "lesson_id": job.lesson_id, "rev": job.rev,
        "final": job.final,
        "lease_until": _free_at(job),
        "created": job.created_at.timestamp(), "updated": job.updated_at.timestamp(),
        "usd": job.cost.usd,
    }


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
