"""The job worker: what `bloop worker ai` runs for each job id it takes from `ai.jobs`.

A worker runs up to `jobs_at_once` jobs at once, at most `tenant_jobs_at_once` of one tenant,
each an attempt in a task of its own. It claims a job with a lease (owner and expiry) and renews
it while it runs; every write it makes is a compare-and-set that also checks it still holds the
lease, so a worker that lost it (paused, cut off) writes nothing more but the spend a provider's
answer already cost, which is added to the job as soon as the answer arrives, whoever holds it
by then. The handler waits for a free slot, starts the job and returns. A job whose tenant has
its share running waits in the process, and starts when a slot frees for it. A job it does not
start (another worker holds it, its retry is not due) or does not finish (the process died) is
left to the sweeper in each worker, which takes up the unfinished jobs nobody holds, those free
longest first and fairly among tenants: a lapsed lease, a retry whose wait ended, a job never
claimed (its command lost). The consumer and the sweeper share the worker's lease owner, so the
worker keeps the jobs it runs and never starts one twice. Beside the work, a watcher renews the
lease and reads the job every second: a cancel stops the work at once. Transient provider errors
are retried after exponential back-off (or the provider's Retry-After), up to the job's
`max_attempts`: the job goes back to `queued` with its `not_before`, and the worker goes on with
other jobs meanwhile and starts it again when its wait ends (the sweeper, when this worker
cannot); the attempts and errors are kept on the job. A worker stopped cleanly stops the work
of the jobs it runs and puts them back in the queue, free at once and that attempt not counted,
for the next sweep of any worker.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import tempfile
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from bloop.ai.jobs.events import (
    Card,
    FlashcardsGenerated,
    JobCompleted,
    JobFailed,
    JobProgressed,
    JobRequested,
    OutputRef,
)
from bloop.ai.jobs.links import OutputLinks
from bloop.ai.jobs.metered import Before, MeteredLlm, MeteredTts, Spent
from bloop.ai.jobs.model import (
    TEXT_KINDS,
    Cost,
    Job,
    JobError,
    JobResult,
    MediaOutput,
    MediaResult,
    now,
)
from bloop.ai.jobs.ports import JobStore, MediaRenderer, MediaStore
from bloop.ai.jobs.service import (
    LESSON_DELETED,
    Effective,
    JobService,
    budget_spent,
    cancelled,
    effective,
    job_url,
    month_start,
)
from bloop.ai.providers.llm import ProviderError, Usage, redact
from bloop.ai.providers.tts import Tts
from bloop.ai.text.generator import TextGenerator
from bloop.ai.text.model import FlashcardSet, Generated
from bloop.platform.kit.errors import disk_unavailable, is_store_down
from bloop.platform.kit.events.envelope import Envelope
from bloop.platform.kit.events.types import type_of
from bloop.platform.kit.settings import AiSettings
from bloop.platform.kit.urls import url_password
from bloop.platform.kit.waiting import stopped

if TYPE_CHECKING:
    from bloop.ai.video.script import VideoScript

log = logging.getLogger("bloop.ai.worker")
SCRATCH_PREFIX = "bloop-ai-"
# A render touches its scratch files every few seconds; one untouched this long has no process.
SCRATCH_IDLE_S = 6 * 3600.0
# How often a running job is read for a cancel (more often when a third of the lease is less).
CANCEL_CHECK_S = 1.0
# A retry is started this long after its wait ends, so that the clocks agree it is due.
RETRY_MARGIN_S = 0.05
# How long a stopping worker gives its jobs to go back to the queue before it cancels them.
HAND_BACK_S = 10.0


class LeaseLost(Exception):
    """Another worker holds the job now; this one stops without writing."""


class CancelRequested(Exception):
    pass


class JobFailure(Exception):
    """A failure that is not the provider's: `code` says what, `transient` whether to retry."""

    def __init__(self, code: str, message: str, *, transient: bool = False) -> None:
        super().__init__(message)
        self.code = code
        self.transient = transient


def progressed(job: Job) -> Envelope:
    return type_of(JobProgressed).envelope(JobProgressed(
        job_id=job.id, kind=job.kind, lesson_id=job.lesson_id, status=job.status,
        progress=job.progress, step=job.step, attempt=job.attempts),
        tenant=job.tenant, subject=job.id)


def completed(job: Job, links: OutputLinks) -> list[Envelope]:
    """The events of a finished job; each output's `url` is a signed link to it (for a
    consumer without a user's credentials, such as content attaching the media)."""
    assert job.finished_at is not None
    outputs = job.result.outputs if isinstance(job.result, MediaResult) else []
    lesson = job.lesson
    # A video made from a prompt alone names no lesson: "" and version 0 (content attaches
    # nothing then, as it finds no such lesson).
    events = [type_of(JobCompleted).envelope(JobCompleted(
        job_id=job.id, kind=job.kind, lesson_id=job.lesson_id,
        lesson_version=lesson.version if lesson else 0, course_id=lesson.course if lesson else "",
        requested_by=job.requested_by,
        outputs=[OutputRef(name=o.name, kind=o.kind, content_type=o.content_type,
                           url=links.signed(job.tenant, job.id, o.name), file_id=o.file_id,
                           bytes=o.bytes, duration_s=o.duration_s)
                 for o in outputs],
        result_url=job_url(job.tenant, job.id), cost_usd=job.cost.usd,
        finished_at=job.finished_at, language=job.language,
        made_from=lesson.made_from if lesson else None), tenant=job.tenant, subject=job.id)]
    if isinstance(job.result, FlashcardSet) and lesson is not None:
        cards = job.result.cards
        events.append(type_of(FlashcardsGenerated).envelope(FlashcardsGenerated(
            job_id=job.id, lesson_id=lesson.id, lesson_version=lesson.version,
            course_id=lesson.course,
            concept_ids=sorted({c.concept_id for c in cards if c.concept_id}),
            source=job.result.source,
            cards=[Card(front=c.front, back=c.back, concept_id=c.concept_id) for c in cards]),
            tenant=job.tenant, subject=job.id))
    return events


def failed(job: Job, code: str, message: str) -> Envelope:
    assert job.finished_at is not None
    return type_of(JobFailed).envelope(JobFailed(
        job_id=job.id, kind=job.kind, lesson_id=job.lesson_id, requested_by=job.requested_by,
        code=code, message=message, attempts=job.attempts, finished_at=job.finished_at),
        tenant=job.tenant, subject=job.id)


def _remove_idle(workdir: Path, before: float) -> int:
    removed = 0
    for scratch in workdir.glob(f"{SCRATCH_PREFIX}*"):
        if not scratch.is_dir() or scratch.is_symlink():
            continue
        newest = max((p.lstat().st_mtime for p in scratch.rglob("*")),
                     default=scratch.lstat().st_mtime)
        if max(newest, scratch.lstat().st_mtime) < before:
            shutil.rmtree(scratch, ignore_errors=True)
            removed += 1
    return removed


class JobRunner:
    def __init__(self, service: JobService, media: MediaStore, settings: AiSettings, owner: str,
                 renderers: dict[str, MediaRenderer] | None = None,
                 workdir: Path | None = None, links: OutputLinks | None = None) -> None:
        self.service = service
        self.links = links or OutputLinks(None, settings.link_ttl_s)
        self.store: JobStore = service.store
        self.media = media
        self.settings = settings
        self.owner = owner
        self.renderers = renderers or {}
        self.workdir = workdir
        self._sweeping: asyncio.Task[None] | None = None
        # The consumer and the sweeper share `owner`, so a lease cannot tell their runs apart.
        self._running: set[tuple[str, str]] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._slots = asyncio.Semaphore(settings.jobs_at_once)
        # Jobs refused for their tenant's share, in order, started as slots free: a tenant's
        # ids (a dict as an ordered set), the tenants in turn. They stay queued in the store.
        self._waiting: dict[str, dict[str, None]] = {}
        self._retries: set[asyncio.TimerHandle] = set()
        self._stopping = False
        self._halt = asyncio.Event()  # set by `stop`: the jobs running here go back

    # the consumer and the sweeper

    async def handle(self, envelope: Envelope) -> None:
        """The `ai.jobs` handler: waits for a free slot, starts the job and returns."""
        data = type_of(JobRequested).parse(envelope)
        await self.start(envelope.tenant, data.job_id, wait=True)

    async def start(self, tenant: str, job_id: str, *, wait: bool = False) -> bool:
        """Runs the job's next attempt in a task of its own when a slot is free (with `wait`,
        once one is), fewer than `tenant_jobs_at_once` of the tenant's jobs run here, and this
        runner does not run it already; False when it did not. A job refused for its tenant's
        share waits here for a slot its tenant may use; others are the sweeper's. The tenant's
        jobs waiting here start in the order they came, before this one."""
        if self._stopping or (not wait and self._slots.locked()):
            return False
        await self._slots.acquire()
        key = (tenant, job_id)
        if key in self._running or self._stopping or self._at_share(tenant):
            if key not in self._running and not self._stopping:
                self._waiting[tenant] = self._waiting.get(tenant, {}) | {job_id: None}
            self._slots.release()
            await self._start_waiting()  # the slot, had this one waited for it
            return False
        waiting = self._waiting.get(tenant, {})
        first = next((j for j in waiting if (tenant, j) not in self._running), job_id)
        if first != job_id:  # the tenant's older jobs waiting here go first; this one waits
            waiting[job_id] = None
            job_id, key = first, (tenant, first)
        if job_id in waiting:
            del waiting[job_id]
            if not waiting:
                del self._waiting[tenant]
        self._running.add(key)
        task = asyncio.create_task(self._run_in_slot(tenant, job_id), name=f"ai:run:{job_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return True

    def _retry_after(self, tenant: str, job_id: str, delay_s: float) -> None:
        """Starts the job in `delay_s` (when a slot is free then; else the sweeper does)."""
        async def retry() -> None:
            await self.start(tenant, job_id)

        def due() -> None:
            self._retries.discard(handle)
            task = asyncio.create_task(retry(), name=f"ai:retry:{job_id}")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

        if not self._stopping:
            handle = asyncio.get_running_loop().call_later(delay_s, due)
            self._retries.add(handle)

    def _at_share(self, tenant: str) -> bool:
        return sum(t == tenant for t, _ in self._running) >= self.settings.tenant_jobs_at_once

    async def _start_waiting(self) -> None:
        """Starts the jobs waiting for their tenant's share while slots are free, a job of
        each tenant in turn."""
        while not self._stopping and not self._slots.locked():
            tenant = next((t for t in self._waiting if not self._at_share(t)), None)
            if tenant is None:
                return
            waiting = self._waiting.pop(tenant)
            job_id = next(iter(waiting))
            del waiting[job_id]
            if waiting:
                self._waiting[tenant] = waiting  # behind the other tenants now
            await self.start(tenant, job_id)

    async def _run_in_slot(self, tenant: str, job_id: str) -> None:
        try:
            wait = await self._run(tenant, job_id)
            if wait is not None:
                self._retry_after(tenant, job_id, wait + RETRY_MARGIN_S)
        except Exception as exc:  # the store is down: the sweeper takes the job up again
            log.warning("could not run the job", extra={"tenant": tenant, "job": job_id,
                                                        "error": repr(exc)})
        finally:
            self._running.discard((tenant, job_id))
            self._slots.release()
            await self._start_waiting()

    async def idle(self) -> None:
        """Waits until the jobs this runner started have ended their attempts."""
        while self._tasks:
            await asyncio.wait(set(self._tasks))

    def start_sweeper(self) -> None:
        if self._sweeping is None or self._sweeping.done():
            self._sweeping = asyncio.create_task(self._sweep_forever(), name="ai:sweeper")

    async def sweep_scratch(self, idle_s: float = SCRATCH_IDLE_S) -> int:
        """Removes the scratch directories of renders that ended without cleaning up (a process
        stopped mid-render; its job is taken up again elsewhere): those where nothing changed
        for `idle_s`. Returns how many it removed."""
        if self.workdir is None:
            return 0
        removed = await asyncio.to_thread(_remove_idle, self.workdir, time.time() - idle_s)
        if removed:
            log.info("removed scratch directories of renders that ended unfinished",
                     extra={"count": removed})
        return removed

    async def stop(self) -> None:
        """Stops the sweeper and the jobs running here. A job whose work has not ended goes back
        to the queue with its lease released and this attempt not counted (a cancel asked
        meanwhile ends it cancelled; a job whose work ended is finished), and the next sweep of
        any worker takes it up; the jobs waiting here are still queued in the store. A job not
        handed back within `HAND_BACK_S` is stopped where it is, and its lease lapses."""
        self._stopping = True
        self._halt.set()
        for retry in self._retries:
            retry.cancel()
        self._retries.clear()
        if self._sweeping is not None:
            await stopped(self._sweeping)
            self._sweeping = None
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=HAND_BACK_S)
        for task in list(self._tasks):
            await stopped(task)
        self._waiting.clear()

    async def _sweep_forever(self) -> None:
        try:
            await self.sweep_scratch()
        except OSError as exc:
            log.warning("could not sweep the render scratch directories",
                        extra={"error": repr(exc)})
        while True:
            await asyncio.sleep(self.settings.sweep_interval_s)
            try:
                await self.sweep()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("sweep failed", extra={"error": repr(exc)})

    async def sweep(self) -> int:
        """Starts the unfinished jobs nobody holds, as slots allow, those free longest first:
        a lapsed lease, a retry whose wait ended, a job never claimed and untouched for a
        lease's length (its command lost). It reads on, leaving out the tenants with their
        share running here, until the slots are full or no job is left, so that one tenant's
        backlog does not hide the others' jobs. Returns how many it started."""
        at = now()
        taken = 0
        seen: set[tuple[str, str]] = set()
        while not self._slots.locked():
            busy = {t for t, _ in self._running if self._at_share(t)}
            found = [key for key in await self.store.stale(
                at, touched_before=at - timedelta(seconds=self.settings.lease_s),
                skip_tenants=busy) if key not in seen]
            if not found:
                break
            for tenant, job_id in found:
                seen.add((tenant, job_id))
                if self._slots.locked():
                    break
                if await self.start(tenant, job_id):
                    log.info("took up a job nobody held", extra={"tenant": tenant,
                                                                 "job": job_id})
                    taken += 1
        return taken

    # running one job

    async def _claim(self, tenant: str, job_id: str) -> Job | None:
        """The job, claimed, when no other worker holds it and its retry is due; else None."""
        while True:
            job = await self.store.get(tenant, job_id)
            if job is None:
                log.warning("no such job", extra={"tenant": tenant, "job": job_id})
                return None
            at = now()
            if not job.claimable(self.owner, at):
                return None
            claimed = job.with_lease(self.owner, self.settings.lease_s, at).update(
                at, status="running", attempts=job.attempts + 1, not_before=None,
                step="started", progress=max(job.progress, 1))
            if await self.store.replace(claimed, job.rev, [progressed(claimed)]):
                self.service._on_write()
                return claimed

    async def run(self, tenant: str, job_id: str) -> None:
        """Runs the job's next attempt here and now, outside the slots (a retry it leaves is
        the sweeper's); does nothing when this runner runs it already."""
        if (tenant, job_id) in self._running:
            log.info("job already running here", extra={"tenant": tenant, "job": job_id})
            return
        self._running.add((tenant, job_id))
        try:
            await self._run(tenant, job_id)
        finally:
            self._running.discard((tenant, job_id))
            await self._start_waiting()

    async def _run(self, tenant: str, job_id: str) -> float | None:
        job = await self._claim(tenant, job_id)
        return None if job is None else await self._attempt(job)

    async def _attempt(self, job: Job) -> float | None:
        """One try: the job ends, or waits for a retry (`not_before`: returns how long), or is
        another's."""
        if job.cancel_requested:
            await self._finish_cancelled(job)
            return None
        if job.attempts > job.max_attempts:
            await self._finish_failed(job, "too_many_attempts", f"the job was started "
                                      f"{job.attempts - 1} times without finishing")
            return None
        if self._stopping:
            await self._hand_back(job)
            return None
        stored: list[str] = []  # the files this attempt stored, removed unless it succeeds
        watcher = asyncio.create_task(self._watch(job), name=f"ai:watch:{job.id}")
        work = asyncio.create_task(self._execute(job, stored), name=f"ai:job:{job.id}")
        halt = asyncio.create_task(self._halt.wait(), name=f"ai:halt:{job.id}")
        try:
            done, _ = await asyncio.wait({watcher, work, halt},
                                         return_when=asyncio.FIRST_COMPLETED)
            if watcher in done and not work.done():
                await stopped(work)
                watcher.result()  # raises why it ended: LeaseLost or CancelRequested
                raise LeaseLost
            if not work.done():  # the runner stops
                await stopped(watcher)
                await stopped(work)
                if work.cancelled() or work.exception() is not None:
                    await self._drop(job, stored)
                    await self._hand_back(job)
                    return None
            result, cost = await work  # it ended meanwhile: the job is finished
        except LeaseLost:
            log.warning("lost the lease; another worker has the job", extra={"job": job.id})
            return None
        except CancelRequested:
            await self._drop(job, stored)
            await self._finish_cancelled(job)
            return None
        except ProviderError as exc:
            await self._drop(job, stored)
            return await self._provider_failed(job, exc.code, str(exc), exc.transient,
                                               exc.retry_after_s)
        except JobFailure as exc:
            await self._drop(job, stored)
            return await self._provider_failed(job, exc.code, str(exc), exc.transient, None)
        except Exception as exc:
            await self._drop(job, stored)
            if is_store_down(exc):  # a store or the disk down a while: tried again later
                down = disk_unavailable(exc) or exc
                return await self._provider_failed(job, "store_unavailable",
                                                   f"{type(down).__name__}: {down}", True, None)
            await self._finish_failed(job, "internal_error", f"{type(exc).__name__}: {exc}",
                                      error=exc)
            return None
        finally:
            await stopped(work)
            await stopped(watcher)
            await stopped(halt)
        await self._finish_succeeded(job, result, cost)
        return None

    async def _watch(self, job: Job) -> None:
        """Beside the work: renews the lease every third of its length and reads the job in
        between; ends raising LeaseLost once the lease is lost, CancelRequested once someone
        asked to cancel."""
        loop = asyncio.get_running_loop()
        renew_s = self.settings.lease_s / 3
        renewed = loop.time()
        while True:
            await asyncio.sleep(min(renew_s, CANCEL_CHECK_S))
            try:
                if loop.time() - renewed >= renew_s * 0.9:
                    await self._mine(job, lambda j: j.with_lease(
                        self.owner, self.settings.lease_s, now()), events=False, checkpoint=True)
                    renewed = loop.time()
                    continue
                current = await self.store.get(job.tenant, job.id)
            except (LeaseLost, CancelRequested, asyncio.CancelledError):
                raise
            except Exception as exc:
                log.warning("could not renew or read the job", extra={"job": job.id,
                                                                      "error": repr(exc)})
                continue
            if (current is None or current.final or current.lease is None
                    or current.lease.owner != self.owner):
                raise LeaseLost
            if current.cancel_requested:
                raise CancelRequested

    async def _mine(self, job: Job, change: Callable[[Job], Job], *,
                    events: bool = True, checkpoint: bool = False) -> Job:
        """Applies `change` if this worker still holds the job (LeaseLost otherwise); at a
        checkpoint, stops with CancelRequested when someone asked to cancel."""

        def apply(current: Job) -> tuple[Job, list[Envelope]] | None:
            if current.final or current.lease is None or current.lease.owner != self.owner:
                raise LeaseLost
            if checkpoint and current.cancel_requested:
                raise CancelRequested
            updated = change(current)
            return updated, [progressed(updated)] if events else []

        return await self.service.mutate(job.tenant, job.id, apply)

    async def _progress(self, job: Job, progress: int, step: str) -> None:
        await self._mine(job, lambda j: j.update(progress=max(j.progress, min(progress, 99)),
                                                 step=step), checkpoint=True)

    async def _execute(self, job: Job, stored: list[str]) -> tuple[JobResult, Cost]:
        await self._unless_lesson_deleted(job)
        if job.kind in TEXT_KINDS:
            return await self._text(job)
        return await self._render(job, stored)

    async def _unless_lesson_deleted(self, job: Job) -> None:
        """Stops a job whose lesson was deleted (stored after the deletion's cancel looked for
        the lesson's jobs) before its work and before each paid call: cancelled as that
        cancel does it (`lesson_deleted`), raising CancelRequested."""
        if job.lesson_id and await self.store.deleted_at(job.tenant, job.lesson_id) is not None:
            await self.service.cancel_unfinished(job.tenant, job.id, LESSON_DELETED)
            raise CancelRequested

    async def _drop(self, job: Job, stored: list[str]) -> None:
        """Removes the files an attempt stored before it stopped without its result (a cancel
        or a failure while storing); before the job's end, while this worker holds it, so
        that no other attempt has stored them again."""
        for file_id in stored:
            try:
                await self.media.delete(job.tenant, file_id)
            except Exception as exc:  # the job still ends; the file is left behind
                log.warning("could not remove a file of a job that did not succeed", extra={
                    "tenant": job.tenant, "job": job.id, "file": file_id, "error": repr(exc)})

    async def _text(self, job: Job) -> tuple[JobResult, Cost]:
        eff: Effective = await self.service.effective(job.tenant)
        generator, close = eff.generator(self._meter(job, eff), self._before_paid(job, eff))
        await self._progress(job, 10, f"generating with {eff.provider}")
        try:
            generated = await self._generate(generator, job)
        finally:
            await close()
        await self._progress(job, 90, "validated")
        value: JobResult = generated.value  # type: ignore[assignment]
        return value, job.cost.model_copy(update={"provider": eff.provider,
                                                  "model": generated.model})

    @staticmethod
    async def _generate(generator: TextGenerator, job: Job) -> Generated[object]:
        p = job.params
        lesson = job.lesson
        if lesson is None:
            raise JobFailure("lesson_required", f"a {job.kind} job needs a lesson")
        match job.kind:
            case "summary":
                return await generator.summary(lesson, instructions=p.instructions)  # type: ignore[return-value]
            case "simplify":
                return await generator.simpler(lesson, p.level, instructions=p.instructions)  # type: ignore[return-value]
            case "quiz":
                return await generator.quiz(lesson, p.count, quiz_id=job.quiz_id,  # type: ignore[return-value]
                                            instructions=p.instructions)
            case _:
                return await generator.flashcards(lesson, p.count, instructions=p.instructions)  # type: ignore[return-value]

    def _meter(self, job: Job, eff: Effective) -> Spent:
        async def spent(usage: Usage, model: str) -> None:
            await self._record_cost(job, eff, usage, eff.pricing.cost(usage), model)

        return spent

    def _before_paid(self, job: Job, eff: Effective) -> Before:
        """Stops the job before a paid call once its lesson was deleted, or once the tenant's
        month has spent its budget (which the job's own calls so far count towards): a budget
        checked only when the job was asked for, jobs queued or running at once could spend
        many times over."""
        budget = eff.monthly_budget_usd

        async def check() -> None:
            await self._unless_lesson_deleted(job)
            if budget is None:
                return
            month = await self.store.spend(job.tenant, month_start(now()))
            if month.usd >= budget:
                raise JobFailure("ai_budget_exhausted", "stopped before a paid call: "
                                 + budget_spent(budget, month.usd))

        return check

    def _speech_meter(self, job: Job, eff: Effective) -> Callable[[Tts], Tts]:
        async def spent(characters: int, usd: float, provider: str, voice: str) -> None:
            await self.service.mutate(job.tenant, job.id, lambda j: (j.update(
                cost=j.cost.plus(provider=provider, model=voice or provider,
                                 characters=characters, usd=usd)), []))

        return lambda tts: MeteredTts(tts, spent, self._before_paid(job, eff))

    async def _record_cost(self, job: Job, eff: Effective, usage: Usage, usd: float,
                           model: str | None = None) -> None:
        """Adds a provider's spend to the job (so to the tenant's), even when this worker lost
        the job or it ended meanwhile: the spend was made either way."""
        await self.service.mutate(job.tenant, job.id, lambda j: (j.update(cost=j.cost.plus(
            provider=eff.provider, model=model or eff.model, prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens, usd=usd)), []))

    async def _prompted_script(self, job: Job) -> tuple[VideoScript, Cost]:
        """The script of a video asked for with a prompt, written by the tenant's language
        model, and the job's cost naming that model; the spend is recorded on the job at once,
        so a later failure keeps it."""
        from bloop.ai.video.prompted import script_from_prompt  # only where video renders

        eff = await self.service.effective(job.tenant)
        llm = eff.llm()
        if llm is None:
            raise JobFailure("llm_required", "a video made from a prompt needs a language "
                             "model, and the tenant's AI provider is now offline")
        await self._progress(job, 2, f"writing the script with {eff.provider}")
        try:
            made = await script_from_prompt(
                MeteredLlm(llm, self._meter(job, eff), self._before_paid(job, eff)),
                job.params.prompt,
                source_text=job.lesson.text if job.lesson else "", language=job.language,
                max_attempts=eff.invalid_retries + 1)
        finally:
            await llm.close()
        await self._progress(job, 5, f"script written: {len(made.script.scenes)} scenes")
        return made.script, job.cost.model_copy(update={"provider": eff.provider,
                                                        "model": made.model})

    async def _render(self, job: Job, stored: list[str]) -> tuple[JobResult, Cost]:
        renderer = self.renderers.get(job.kind)
        if renderer is None:
            raise JobFailure("not_available", f"this worker cannot render {job.kind}")
        base = self.workdir
        if base is not None:
            base.mkdir(parents=True, exist_ok=True)
        cost = job.cost  # the script's spend, if any, is on the job already
        with tempfile.TemporaryDirectory(prefix=f"{SCRATCH_PREFIX}{job.id[:8]}-",
                                         dir=base) as tmp:
            async def progress(pct: int, step: str) -> None:
                await self._progress(job, 5 + pct * 80 // 100, step)

            meter = self._speech_meter(job, await self.service.effective(job.tenant))
            if job.kind == "video" and job.params.prompt:
                script, cost = await self._prompted_script(job)
                files = await renderer.render(job, Path(tmp), progress, script=script,
                                              meter=meter)
            else:
                files = await renderer.render(job, Path(tmp), progress, meter=meter)
            await self._progress(job, 88, "storing outputs")
            outputs = []
            for f in files:
                kept = await self.media.put(job.tenant, job.id, f.name, f.content_type, f.path)
                stored.append(kept.file_id)
                outputs.append(MediaOutput(
                    name=f.name, kind=f.kind if f.kind in ("audio", "video", "subtitles",
                                                           "image") else "other",
                    content_type=f.content_type, bytes=kept.length, duration_s=f.duration_s,
                    file_id=kept.file_id,
                    url=f"{job_url(job.tenant, job.id)}/outputs/{f.name}"))
        if not outputs:
            raise JobFailure("no_output", f"the {job.kind} renderer made no file")
        return MediaResult(outputs=outputs), cost

    # endings

    async def _finish_succeeded(self, job: Job, result: JobResult, cost: Cost) -> None:
        """Ends the job with its result; a cancel asked meanwhile ends it cancelled instead,
        with what it made removed."""

        def change(current: Job) -> tuple[Job, list[Envelope]] | None:
            if current.final or current.lease is None or current.lease.owner != self.owner:
                raise LeaseLost
            at = now()
            named = current.cost if current.cost.spent else cost  # as recorded
            spent = current.cost.plus(
                provider=named.provider, model=named.model,
                prompt_tokens=cost.prompt_tokens - job.cost.prompt_tokens,
                completion_tokens=cost.completion_tokens - job.cost.completion_tokens,
                usd=cost.usd - job.cost.usd)
            if current.cancel_requested:
                halted = current.update(at, status="cancelled", step="cancelled", cost=spent,
                                        finished_at=at, lease=None)
                return halted, [cancelled(halted)]
            done = current.update(at, status="succeeded", progress=100, step="done",
                                  result=result, cost=spent, finished_at=at, lease=None)
            return done, [progressed(done), *completed(done, self.links)]

        try:
            ended = await self.service.mutate(job.tenant, job.id, change)
        except LeaseLost:
            return
        if ended.status == "cancelled" and isinstance(result, MediaResult):
            for output in result.outputs:
                await self.media.delete(job.tenant, output.file_id)

    async def _finish_cancelled(self, job: Job) -> None:
        def change(current: Job) -> tuple[Job, list[Envelope]] | None:
            if current.final:
                return None
            at = now()
            done = current.update(at, status="cancelled", step="cancelled", finished_at=at,
                                  lease=None)
            return done, [cancelled(done)]

        await self.service.mutate(job.tenant, job.id, change)

    async def _hand_back(self, job: Job) -> None:
        """Puts the job back in the queue, free at once and this attempt not counted (its spend
        is kept); a cancel asked meanwhile ends it cancelled. A job another worker holds, or
        that ended, is left as it is."""

        def change(current: Job) -> tuple[Job, list[Envelope]] | None:
            if current.final or current.lease is None or current.lease.owner != self.owner:
                return None
            at = now()
            if current.cancel_requested:
                halted = current.update(at, status="cancelled", step="cancelled",
                                        finished_at=at, lease=None)
                return halted, [cancelled(halted)]
            queued = current.update(at, status="queued", step="queued", lease=None,
                                    attempts=max(current.attempts - 1, 0), not_before=at)
            return queued, [progressed(queued)]

        try:
            back = await self.service.mutate(job.tenant, job.id, change)
        except Exception as exc:  # the store is down: the lease lapses instead
            log.warning("could not put the job back in the queue", extra={
                "tenant": job.tenant, "job": job.id, "error": repr(exc)})
            return
        if back.status == "queued":
            log.info("the worker stops; the job is back in the queue",
                     extra={"tenant": job.tenant, "job": job.id})

    async def _redacted(self, tenant: str, message: str) -> str:
        """`message` as a job keeps it (its errors, its `failed` event, the data export, the
        log): without the tenant's key or the password of its base_url, nor anything shaped
        like a key or a bearer token, at most 2000 characters. The adapters take credentials
        out of what providers say; this catches what they did not know was one."""
        try:
            eff = effective(self.service.settings, await self.store.get_config(tenant))
            secrets = (eff.api_key, url_password(eff.base_url) if eff.base_url else None)
        except Exception as exc:  # the store is down: the patterns still apply
            log.warning("could not read the tenant's AI settings to redact an error",
                        extra={"tenant": tenant, "error": type(exc).__name__})
            secrets = (None, None)
        return redact(message, secrets)[:2000]

    async def _finish_failed(self, job: Job, code: str, message: str,
                             error: BaseException | None = None) -> None:
        """Ends the job failed (cancelled when a cancel was asked meanwhile, the error kept),
        and logs it in one line: a warning with its tenant, kind, code and redacted message, or
        for a fault of ours (`error`) an error with its traceback."""
        message = await self._redacted(job.tenant, message)
        ended = False

        def change(current: Job) -> tuple[Job, list[Envelope]] | None:
            nonlocal ended
            ended = False
            if current.final:
                return None
            at = now()
            errors = [*current.errors, JobError(at=at, attempt=current.attempts, code=code,
                                                message=message, transient=False)]
            if current.cancel_requested:
                halted = current.update(at, status="cancelled", step="cancelled",
                                        errors=errors, finished_at=at, lease=None)
                return halted, [cancelled(halted)]
            done = current.update(at, status="failed", step="failed", errors=errors,
                                  finished_at=at, lease=None)
            ended = True
            return done, [failed(done, code, message)]

        done = await self.service.mutate(job.tenant, job.id, change)
        if ended or error is not None:  # once: a job that had ended already is not logged
            log.log(logging.ERROR if error is not None else logging.WARNING, "AI job failed",
                    exc_info=error, extra={
                        "tenant": job.tenant, "job": job.id, "kind": job.kind, "code": code,
                        "attempts": done.attempts, "error": message[:500]})

    async def _provider_failed(self, job: Job, code: str, message: str, transient: bool,
                               retry_after_s: float | None) -> float | None:
        """Ends the job failed, or for a transient failure with attempts left puts it back in
        the queue until its back-off ends and returns how long that is (the worker then starts
        it again, or the sweeper takes it up); a job asked to cancel ends cancelled."""
        message = await self._redacted(job.tenant, message)
        if not transient or job.attempts >= job.max_attempts:
            if transient:
                message = f"{message} (gave up after {job.attempts} attempts)"
            await self._finish_failed(job, code, message)
            return None
        wait = retry_after_s if retry_after_s is not None else (
            self.settings.retry_backoff_s * 2 ** (job.attempts - 1))
        wait = min(wait, 300.0)

        def change(current: Job) -> tuple[Job, list[Envelope]] | None:
            if current.final or current.lease is None or current.lease.owner != self.owner:
                raise LeaseLost
            at = now()
            errors = [*current.errors, JobError(at=at, attempt=current.attempts, code=code,
                                                message=message, transient=True)]
            if current.cancel_requested:
                halted = current.update(at, status="cancelled", step="cancelled",
                                        errors=errors, finished_at=at, lease=None)
                return halted, [cancelled(halted)]
            retrying = current.update(at, status="queued", step=f"retrying in {wait:.1f}s",
                                      errors=errors, lease=None,
                                      not_before=at + timedelta(seconds=wait))
            return retrying, [progressed(retrying)]

        try:
            ended = await self.service.mutate(job.tenant, job.id, change)
        except LeaseLost:
            return None
        if ended.final:
            return None
        log.info("transient failure; retrying", extra={"job": job.id, "code": code,
                                                       "wait_s": wait})
        return wait
