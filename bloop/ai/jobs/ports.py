"""What the AI service needs from the world: a job store (jobs, the tombstones of lessons deleted
under them and tenant settings, with the outbox their events wait in), a media store for the files
jobs make, the lesson it works on, and renderers for narration and video. Every read and write
names its tenant."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from bloop.ai.jobs.model import Job, JobKind, JobStatus, TenantAiConfig
from bloop.ai.providers.tts import Tts
from bloop.ai.text.model import LessonText
from bloop.platform.kit.auth import Principal
from bloop.platform.kit.events.envelope import Envelope
from bloop.platform.kit.events.outbox import OutboxStore
from bloop.platform.kit.pagination import Slice


@dataclass(frozen=True)
class Spend:
    jobs: int
    usd: float


@dataclass(frozen=True)
class JobLimit:
    """At most `jobs` jobs created since `since` (the tenant's hourly quota)."""

    jobs: int
    since: datetime


class TooManyJobs(Exception):
    """The tenant already has `JobLimit.jobs` jobs created since `JobLimit.since`."""


class JobStore(Protocol):
    @property
    def outbox(self) -> OutboxStore: ...

    async def setup(self) -> None: ...

    async def create(self, job: Job, events: list[Envelope], *,
                     limit: JobLimit | None = None) -> tuple[Job, bool]:
        """Stores the job and its events atomically and returns it with True; when the tenant
        already has a job with its idempotency key, returns that one with False and writes
        nothing. With `limit`, raises `TooManyJobs` (and keeps nothing) when the tenant's jobs,
        counted with those stored at the same time, would pass it."""

    async def get(self, tenant: str, job_id: str) -> Job | None: ...

    async def find_by_key(self, tenant: str, idempotency_key: str) -> Job | None: ...

    async def list_jobs(self, tenant: str, *, lesson_id: str | None = None,
                        status: JobStatus | None = None, kind: JobKind | None = None,
                        after: str | None = None, limit: int = 50) -> Slice[Job]:
        """The tenant's jobs, newest first (then by id), from the cursor `after` on."""

    async def by_requester(self, tenant: str, user_id: str) -> list[Job]:
        """Every job the user asked for in the tenant, oldest first."""

    async def replace(self, job: Job, expected_rev: int, events: list[Envelope]) -> bool:
        """Stores `job` (its `rev` one past `expected_rev`) and its events atomically if the
        stored job is still at `expected_rev`; False otherwise (someone wrote first)."""

    async def after_erasure(self) -> None:
        """A person's erasure has written what it changes: what it overwrote leaves the store's
        files now (the embedded store empties its WAL; nothing to do on MongoDB)."""

    async def spend(self, tenant: str, since: datetime) -> Spend:
        """How many jobs the tenant asked for since `since`, and what they cost."""

    async def unfinished(self) -> dict[tuple[str, str], int]:
        """How many jobs of every tenant are queued or running, by kind and status (the
        pairs with none left out)."""

    async def stale(self, at: datetime, *, touched_before: datetime | None = None,
                    skip_tenants: Collection[str] = (), limit: int = 100
                    ) -> list[tuple[str, str]]:
        """(tenant, job id) of unfinished jobs a worker may take up at `at`, but for those of
        `skip_tenants`: a lease that ran out by `at`, a retry whose wait (`not_before`) ended
        (a job a stopping worker handed back waits for nothing), or a job never claimed and
        last touched before `touched_before` (`at` when not given). Those free longest first:
        since their lease's expiry, the end of their wait, or (never claimed) `at -
        touched_before` after they were last touched."""

    async def outputs_due(self, before: datetime, *, limit: int = 100) -> list[tuple[str, str]]:
        """(tenant, job id) of finished jobs whose output files are still kept and that ended
        before `before`, those that ended first first, at most `limit`."""

    async def lesson_deleted(self, tenant: str, lesson_id: str, at: datetime) -> None:
        """Remembers that the lesson was deleted (its tombstone), at `at`; the first time stays
        (running it again changes nothing)."""

    async def deleted_at(self, tenant: str, lesson_id: str) -> datetime | None:
        """When the lesson's tombstone says it was deleted; None when it has none."""

    async def forget_deleted_lessons(self, before: datetime) -> int:
        """Drops the tombstones of lessons deleted before `before`; how many it dropped."""

    async def get_config(self, tenant: str) -> TenantAiConfig | None: ...

    async def put_config(self, tenant: str, config: TenantAiConfig, *,
                         keep_api_key: bool = False) -> None:
        """Replaces the tenant's settings; with `keep_api_key`, but for the stored API key,
        which stays as it is at the write (none when none is stored)."""


@dataclass(frozen=True)
class StoredFile:
    file_id: str
    name: str
    content_type: str
    length: int

    @property
    def etag(self) -> str:
        """A strong entity tag: a file's id names one output of one job, written before its job
        succeeds (a retry's rewrite before that is never served) and never rewritten after."""
        return f'"{self.file_id}-{self.length}"'


class MediaStore(Protocol):
    async def setup(self) -> None: ...

    async def put(self, tenant: str, job_id: str, name: str, content_type: str,
                  path: Path) -> StoredFile:
        """Stores the file at `path` as the job's output `name`."""

    async def info(self, tenant: str, file_id: str) -> StoredFile | None: ...

    async def delete(self, tenant: str, file_id: str) -> None:
        """Removes the tenant's file; nothing when it has no such file."""

    def read(self, tenant: str, file_id: str, start: int = 0, end: int | None = None, *,
             chunk: int = 256 * 1024) -> AsyncIterator[bytes]:
        """The file's bytes from `start` up to `end` (exclusive; the file's end when None or
        past it), in chunks; empty when the tenant has no such file."""


@dataclass(frozen=True)
class LessonRights:
    """What content lets a caller do with a lesson: read it at `version` (None: read none of
    it), and edit it or not."""

    version: int | None
    may_edit: bool


NO_RIGHTS = LessonRights(version=None, may_edit=False)


class LessonSource(Protocol):
    async def lesson(self, tenant: str, lesson_id: str, caller: Principal,
                     credentials: Mapping[str, str]) -> LessonText:
        """The lesson as the caller (whose credential headers are `credentials`) may see it:
        its draft when they may edit its course, else as last published (404 Problem when they
        may see neither), at its current version."""

    async def rights(self, tenant: str, lesson_ids: Collection[str], caller: Principal,
                     credentials: Mapping[str, str]) -> dict[str, LessonRights]:
        """What the caller may do with each of `lesson_ids` (each one a key), asked of content
        at once: the version they read (its draft's when they may edit it, as its course's
        authors and the tenant's admins do, else the one last published), or `NO_RIGHTS` when
        content shows them none of it (no such lesson, or content refuses the caller)."""


@dataclass(frozen=True)
class RenderedFile:
    path: Path
    name: str
    kind: str
    content_type: str
    duration_s: float | None = None


Progress = Callable[[int, str], Awaitable[None]]


class MediaRenderer(Protocol):
    async def render(self, job: Job, workdir: Path, progress: Progress, *,
                     script: Any = None, meter: Callable[[Tts], Tts] | None = None
                     ) -> list[RenderedFile]:
        """Renders the job's media into `workdir`; reports progress (0-100, a step name).
        A video asked for with a prompt comes with its `script` (a `VideoScript`), written
        by the tenant's language model. The speech provider it uses goes through `meter`,
        which records what the provider is paid for on the job."""
