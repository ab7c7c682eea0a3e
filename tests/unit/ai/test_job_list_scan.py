"""A list of the AI jobs a caller may read reads at most `JOBS_SCANNED` of the tenant's jobs a
request: past them the page ends short, with a `next` going on after the last job read, so
paging still reaches every job the caller may read, once each, in order."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest

from bloop.ai.jobs.model import Job, JobRequest
from bloop.ai.jobs.ports import JobStore
from bloop.ai.jobs.service import JOBS_SCANNED, JobService
from bloop.ai.jobs.stores.common import job_key
from bloop.platform.kit.pagination import Slice, key_of
from bloop.platform.kit.settings import AiSettings

JOBS = 2 * JOBS_SCANNED + 500
START = datetime(2026, 12, 6, tzinfo=UTC)


class CountingJobs:
    """`list_jobs` of a store, newest first, from memory, counting the jobs each call gives
    (a cursor is always the key of one of them)."""

    def __init__(self, jobs: Sequence[Job]) -> None:
        self.jobs = sorted(jobs, key=job_key, reverse=True)
        self.place = {job_key(j): n for n, j in enumerate(self.jobs)}
        self.read = 0

    async def list_jobs(self, tenant: str, *, after: str | None = None, limit: int = 100,
                        **_: Any) -> Slice[Job]:
        start = self.place[cast(tuple[float, str], key_of(after, float, str))] + 1 if after else 0
        listed = Slice.of(self.jobs[start:start + limit + 1], limit, job_key)
        self.read += len(listed.items)
        return listed


def job(n: int, by: str) -> Job:
    asked = JobRequest(kind="summary", lesson_id="lesson-1")
    return Job.create("acme", asked, None, by, f"key-{n}", 3,
                      at=START + timedelta(milliseconds=n // 3))  # three jobs a time: ties


async def page_through(store: CountingJobs, by: str, limit: int) -> tuple[list[str], list[int]]:
    """The ids of every job `by` requested, as pages of `limit` list them, and the jobs each
    request read."""
    service = JobService(cast(JobStore, store), AiSettings())

    async def readable(jobs: Sequence[Job]) -> list[Job]:
        return [j for j in jobs if j.requested_by == by]

    ids: list[str] = []
    reads: list[int] = []
    after = None
    while True:
        store.read = 0
        page = await service.readable_jobs("acme", readable, after=after, limit=limit)
        reads.append(store.read)
        assert len(page.items) <= limit
        ids += [j.id for j in page.items]
        if (after := page.next) is None:
            return ids, reads


@pytest.mark.parametrize("limit", [1, 7, 200])
async def test_a_request_reads_at_most_so_many_jobs_and_paging_still_reaches_each(
        limit: int) -> None:
    """Before, a caller who may read none of the tenant's jobs had one request read all of
    them, a page and one more at a time."""
    jobs = [job(n, "reader" if n % 97 == 0 else "author") for n in range(JOBS)]
    store = CountingJobs(jobs)
    for by in ("reader", "nobody", "author"):
        ids, reads = await page_through(store, by, limit)
        assert ids == [j.id for j in store.jobs if j.requested_by == by], by
        assert max(reads) <= JOBS_SCANNED, (by, reads)
    assert (await page_through(store, "nobody", limit))[1] == [JOBS_SCANNED, JOBS_SCANNED, 500]


async def test_a_page_the_caller_may_read_all_of_reads_one_job_more() -> None:
    store = CountingJobs([job(n, "author") for n in range(50)])
    ids, reads = await page_through(store, "author", 10)
    assert ids == [j.id for j in store.jobs]
    assert reads[0] == 11
