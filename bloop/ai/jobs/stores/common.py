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
        "lease_until": job.lease.expires_at.timestamp() if job.lease else None,
        "created": job.created_at.timestamp(), "updated": job.updated_at.timestamp(),
        "usd": job.cost.usd,
    }


def job_key(job: Job) -> tuple[float, str]:
    """Where a job stands in `list_jobs`' order (newest first, then by id)."""
    return job.created_at.timestamp(), job.id


def config_doc(config: TenantAiConfig) -> dict[str, Any]:
    """The stored form: the API key kept as it is (the provider needs it back)."""
    doc = config.model_dump(mode="json")
    doc["api_key"] = config.api_key.get_secret_value() if config.api_key else None
    return doc
