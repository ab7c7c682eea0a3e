"""The AI service's use cases on the request side: ask for a job (idempotent, within the tenant's
quota, refused before any spend), read and list jobs, cancel one, and a tenant's provider settings.
The worker side is in `worker.py`. Both take ports, never a driver."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from bloop.ai.jobs.events import JobCancelled, JobRequested
from bloop.ai.jobs.metered import Before, MeteredLlm, Spent
from bloop.ai.jobs.model import (
    MAX_PROMPT_CHARS,
    MEDIA_KINDS,
    TEXT_KINDS,
    Cost,
    Job,
    JobError,
    JobKind,
    JobRequest,
    JobStatus,
    NotAttached,
    TenantAiConfig,
    TenantAiView,
    idempotency_keys,
    now,
    same_source,
    source_key,
)
from bloop.ai.jobs.ports import JobLimit, JobStore, TooManyJobs
from bloop.ai.jobs.stores.common import job_key
from bloop.ai.providers.llm import OpenAiLlm, Pricing, ProviderRejected, redact
from bloop.ai.text.generator import LlmTextGenerator, TextGenerator
from bloop.ai.text.model import LessonText
from bloop.ai.text.offline import OfflineTextGenerator
from bloop.platform.kit.errors import Conflict, Invalid, NotFound, Problem
from bloop.platform.kit.events.envelope import Envelope
from bloop.platform.kit.events.types import type_of
from bloop.platform.kit.pagination import Slice, cursor
from bloop.platform.kit.personal_data import ERASED_USER
from bloop.platform.kit.settings import AiSettings
from bloop.platform.kit.times import json_time
from bloop.platform.kit.urls import (
    USERINFO_PROBLEM,
    AddressProblem,
    has_userinfo,
    http_url_problem,
    masked_url,
    private_address_problem,
)

# How many of a lesson's latest jobs a request reads for the job the same request made until
# 6 Dec 2026 on a version of the same text the lesson has left (no key finds it).
EARLIER_JOBS_READ = 50
JOBS_A_BATCH = 200  # jobs a list reads at a time after its first page and one more
JOBS_SCANNED = 2000  # the most jobs one request for a list reads
Mutation = Callable[[Job], tuple[Job, list[Envelope]] | None]
LESSON_DELETED = "lesson_deleted"  # the cancel reason of a job whose lesson was deleted
USERINFO_REFUSED = (f"{USERINFO_PROBLEM}; give the key as `api_key` (never shown) and the "
                    "address without them")


@dataclass(frozen=True)
class Effective:
    """A tenant's provider settings: its own where it set them, the platform's elsewhere."""

    provider: str
    base_url: str | None
    api_key: str | None
    model: str
    pricing: Pricing
    monthly_budget_usd: float | None
    max_jobs_per_hour: int
    llm_timeout_s: float
    invalid_retries: int
    refused: str | None = None  # why the tenant's own base_url may not be used

    def llm(self) -> OpenAiLlm | None:
        """The language model these settings choose (the caller closes it); None offline."""
        if self.provider == "offline":
            return None
        problem = None if self.base_url is None else http_url_problem(self.base_url)
        if problem is not None:
            raise ProviderRejected(f"the AI settings' base_url is not a web address ({problem});"
                                   " a tenant admin sets a new one at …/ai/settings")
        if self.refused is not None:
            raise ProviderRejected(f"the AI settings' base_url may not be used: {self.refused};"
                                   " a tenant admin sets a new one at …/ai/settings")
        return OpenAiLlm(model=self.model, api_key=self.api_key, base_url=self.base_url,
                         timeout_s=self.llm_timeout_s, pricing=self.pricing)

    def generator(self, spent: Spent, before: Before | None = None
                  ) -> tuple[TextGenerator, Callable[[], Awaitable[None]]]:
        """The text generator these settings choose, and how to close it; each answer of its
        language model is handed to `spent` as it arrives, and `before` awaited before each
        call."""
        llm = self.llm()
        if llm is None:
            return OfflineTextGenerator(), _nothing
        return (LlmTextGenerator(MeteredLlm(llm, spent, before),
                                 invalid_retries=self.invalid_retries), llm.close)


async def _nothing() -> None:
    return None


def effective(settings: AiSettings, config: TenantAiConfig | None) -> Effective:
    c = config or TenantAiConfig()
    key = (c.api_key.get_secret_value() if c.api_key else
           settings.openai_api_key.get_secret_value() if settings.openai_api_key else None)
    base_url = c.base_url or settings.openai_base_url
    chosen = c.provider or settings.provider
    if chosen == "auto":
        chosen = "openai" if key or base_url else "offline"
    return Effective(
        provider=chosen, base_url=base_url, api_key=key, model=c.model or settings.model,
        pricing=Pricing(
            c.price_input_per_mtok if c.price_input_per_mtok is not None
            else settings.price_input_per_mtok,
            c.price_output_per_mtok if c.price_output_per_mtok is not None
            else settings.price_output_per_mtok),
        monthly_budget_usd=(c.monthly_budget_usd if c.monthly_budget_usd is not None
                            else settings.monthly_budget_usd),
        max_jobs_per_hour=c.max_jobs_per_hour or settings.max_jobs_per_hour,
        llm_timeout_s=settings.llm_timeout_s, invalid_retries=settings.invalid_output_retries)


def shown_errors(errors: list[JobError]) -> list[JobError]:
    """A job's errors as shown (API, stream, data export): their messages without anything
    shaped like a credential, for errors a worker stored before it took those out itself."""
    return [e if (m := redact(e.message)) == e.message else e.model_copy(update={"message": m})
            for e in errors]


def budget_spent(budget_usd: float, spent_usd: float) -> str:
    return (f"the tenant's AI budget for this month ({dollars(budget_usd)}) is spent "
            f"({dollars(spent_usd)}); a tenant admin can raise it")


def dollars(usd: float) -> str:
    """Cents, and below ten cents two significant digits (a test budget of $0.001)."""
    return f"${usd:,.2f}" if usd == 0 or usd >= 0.1 else f"${usd:.2g}"


def month_start(at: datetime) -> datetime:
    return at.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def job_url(tenant: str, job_id: str) -> str:
    return f"/v1/tenants/{tenant}/ai/jobs/{job_id}"


def requested(job: Job) -> Envelope:
    return type_of(JobRequested).envelope(JobRequested(
        job_id=job.id, kind=job.kind, lesson_id=job.lesson_id, attempt=job.attempts),
        tenant=job.tenant, subject=job.id)


def cancelled(job: Job) -> Envelope:
    assert job.finished_at is not None
    return type_of(JobCancelled).envelope(JobCancelled(
        job_id=job.id, kind=job.kind, lesson_id=job.lesson_id, requested_by=job.requested_by,
        finished_at=job.finished_at, reason=job.cancel_reason), tenant=job.tenant,
        subject=job.id)


class JobService:
    def __init__(self, store: JobStore, settings: AiSettings, *,
                 media_kinds: frozenset[str] = frozenset(),
                 lacking: Mapping[str, str] | None = None,
                 narratable: Callable[[str], bool] = lambda text: bool(text.strip()),
                 voice_problem: Callable[[str], Awaitable[str | None]] | None = None,
                 language_problem: Callable[[str], Awaitable[str | None]] | None = None,
                 speech_provider: Callable[[], str] = lambda: "local",
                 on_write: Callable[[], None] = lambda: None) -> None:
        """`media_kinds` are the media kinds this deployment can render (narration, video),
        `lacking` what this machine lacks to render the others (a missing program),
        `narratable` tells whether a lesson's text has anything to narrate,
        `voice_problem` why a voice cannot speak and `language_problem` why no voice can speak
        a language (None when it can, or cannot tell yet), `speech_provider` names the
        text-to-speech provider (`local`: espeak-ng, free);
        `on_write` runs after each write that stored events (the outbox relay's `wake`)."""
        self.store = store
        self.settings = settings
        self.media_kinds = media_kinds
        self.lacking = dict(lacking or {})
        self.narratable = narratable
        self.voice_problem = voice_problem
        self.language_problem = language_problem
        self.speech_provider = speech_provider
        self._on_write = on_write

    # settings and quotas

    async def effective(self, tenant: str) -> Effective:
        config = await self.store.get_config(tenant)
        eff = effective(self.settings, config)
        own = config.base_url if config is not None else None
        if own and eff.provider != "offline" and has_userinfo(own):
            return dataclasses.replace(eff, refused=USERINFO_REFUSED)  # stored before the check
        if own and eff.provider != "offline" and http_url_problem(own) is None:
            refused = await self._private(own)
            return dataclasses.replace(eff, refused=None if refused is None else refused.why)
        return eff

    async def _private(self, base_url: str) -> AddressProblem | None:
        """Why a tenant's own `base_url` is refused: one inside the network, unless allowed,
        or one whose host does not resolve."""
        if self.settings.tenant_private_addresses:
            return None
        return await private_address_problem(base_url)

    async def config_view(self, tenant: str) -> TenantAiView:
        config = await self.store.get_config(tenant) or TenantAiConfig()
        eff = effective(self.settings, config)
        at = now()
        month = await self.store.spend(tenant, month_start(at))
        hour = await self.store.spend(tenant, at - timedelta(hours=1))
        return TenantAiView(
            provider=config.provider or self.settings.provider,
            effective_provider="offline" if eff.provider == "offline" else "openai",
            base_url=masked_url(eff.base_url) if eff.base_url else None, model=eff.model,
            has_api_key=eff.api_key is not None,
            price_input_per_mtok=eff.pricing.input_per_mtok,
            price_output_per_mtok=eff.pricing.output_per_mtok,
            monthly_budget_usd=eff.monthly_budget_usd, max_jobs_per_hour=eff.max_jobs_per_hour,
            spent_this_month_usd=round(month.usd, 6), jobs_last_hour=hour.jobs)

    async def configure(self, tenant: str, config: TenantAiConfig) -> TenantAiView:
        """Replaces the tenant's settings; an API key left out keeps the stored one (the one
        stored when this write lands: a key rotated meanwhile is not put back). A base_url
        holding a user name or password is refused (422 `credentials_in_url`: the key goes in
        `api_key`, which is never shown), and one on this machine or a private network too
        (422 `private_address`) unless the operator allows those
        (`BLOOP_AI_TENANT_PRIVATE_ADDRESSES`)."""
        if config.base_url is not None and has_userinfo(config.base_url):
            raise Problem(f"the base_url may not be used: {USERINFO_REFUSED}", status=422,
                          code="credentials_in_url", extra={"field": "base_url"})
        problem = None if config.base_url is None else await self._private(config.base_url)
        if problem is not None:
            raise Problem(f"the base_url {config.base_url!r} may not be used: {problem.why}",
                          status=422, code="host_unresolved" if problem.unresolved
                          else "private_address")
        await self.store.put_config(tenant, config,
                                    keep_api_key="api_key" not in config.model_fields_set)
        return await self.config_view(tenant)

    async def _check_quota(self, tenant: str, eff: Effective) -> None:
        at = now()
        if eff.monthly_budget_usd is not None:
            month = await self.store.spend(tenant, month_start(at))
            if month.usd >= eff.monthly_budget_usd:
                raise Problem(
                    budget_spent(eff.monthly_budget_usd, month.usd), status=402,
                    code="ai_budget_exhausted",
                    extra={"budget_usd": eff.monthly_budget_usd,
                           "spent_usd": round(month.usd, 6)})
        hour = await self.store.spend(tenant, at - timedelta(hours=1))
        if hour.jobs >= eff.max_jobs_per_hour:
            raise _over_hourly_quota(eff.max_jobs_per_hour)

    # jobs

    def _check_request(self, request: JobRequest, lesson: LessonText | None) -> None:
        if request.kind in MEDIA_KINDS and request.kind not in self.media_kinds:
            why = self.lacking.get(request.kind)
            raise Problem(f"this deployment cannot render {request.kind}"
                          + (f": {why}" if why else " yet"), status=501, code="not_available")
        prompt = request.params.prompt
        if prompt and request.kind != "video":
            raise Problem(f"a {request.kind} job takes no prompt (only a video does); use "
                          "`instructions` for a note to the generator", status=422,
                          code="prompt_not_supported")
        if request.params.language is not None and not (request.kind == "video" and prompt):
            raise Problem("only a video made from a prompt takes a `language`; other jobs work "
                          "in the lesson's language", status=422, code="language_not_supported")
        if len(prompt) > MAX_PROMPT_CHARS:
            raise Problem(f"the prompt is too long ({len(prompt)} characters, the limit is "
                          f"{MAX_PROMPT_CHARS})", status=422, code="prompt_too_long",
                          extra={"limit": MAX_PROMPT_CHARS})
        if lesson is None:
            if not prompt:
                raise Problem(f"a {request.kind} job needs a lesson (`lesson_id`); only a video "
                              "with a prompt may go without one", status=422,
                              code="lesson_required")
            if len(prompt) + len(request.params.instructions) > self.settings.max_lesson_chars:
                raise Problem("the prompt is too long for one job", status=422,
                              code="prompt_too_long",
                              extra={"limit": self.settings.max_lesson_chars})
            return
        if lesson.is_blank:
            what = "narrate" if request.kind in MEDIA_KINDS else "work from"
            raise Problem(f"the lesson {lesson.title!r} has no text to {what}", status=422,
                          code="lesson_empty")
        if request.kind in MEDIA_KINDS and not self.narratable(lesson.text):
            raise Problem(f"the lesson {lesson.title!r} has nothing to narrate: no prose, only "
                          "code, images or markup", status=422, code="nothing_to_narrate")
        size = len(lesson.text) + len(request.params.instructions) + len(prompt)
        if size > self.settings.max_lesson_chars:
            raise Problem(f"the lesson is too long for one job ({size} characters, the limit is "
                          f"{self.settings.max_lesson_chars})", status=422,
                          code="prompt_too_long", extra={"limit": self.settings.max_lesson_chars})

    async def _check_voice(self, request: JobRequest, lesson: LessonText | None) -> None:
        """Refuses a voice the provider lacks, and without one, a language its default voices
        do not speak (422 `voice_unavailable`): espeak-ng read it as English."""
        if request.kind not in MEDIA_KINDS:
            return
        voice = request.params.voice
        if voice is not None:
            if self.voice_problem is not None and \
                    (problem := await self.voice_problem(voice)) is not None:
                raise Invalid.of(problem, "body", "params", "voice")
            return
        language = request.params.language or (lesson.language if lesson is not None else "en")
        if self.language_problem is not None and \
                (problem := await self.language_problem(language)) is not None:
            raise Problem(problem, status=422, code="voice_unavailable",
                          extra={"language": language})

    def _first_cost(self, request: JobRequest, eff: Effective) -> Cost:
        """What a new job's cost names until it spends: the tenant's language model for text
        and a video from a prompt, the paid voice for another narration or video, offline for
        neither (as the job ends when it spends nothing)."""
        if request.kind in TEXT_KINDS or request.params.prompt:
            return Cost() if eff.provider == "offline" else Cost(provider=eff.provider,
                                                                  model=eff.model)
        speech = self.speech_provider()
        return Cost() if speech == "local" else Cost(provider=speech,
                                                      model=request.params.voice or speech)

    async def request(self, tenant: str, requested_by: str, request: JobRequest,
                      lesson: LessonText | None, client_key: str | None = None,
                      readable: Callable[[Job], Awaitable[bool]] | None = None
                      ) -> tuple[Job, bool]:
        """The job for this request: a new one (True), or the one an identical earlier request
        on the same lesson text made (False), whatever the lesson's version, unless that one
        failed, was cancelled, had an output content did not attach, or is a narration or
        video whose block a later job's has replaced in the lesson: then the same request
        makes a new job. An earlier job on another version of the lesson is the caller's only
        when `readable` says they may read it. The job of a caller's `client_key` is its job
        whatever became of it. Refuses a bad request, or one over the tenant's quota, before
        any spend, and one on a lesson deleted since (404 `lesson_gone`: nothing is stored).
        `lesson` is None only for a video made from a prompt alone."""
        if client_key:
            key = f"client:{requested_by}:{client_key}"  # the caller's own
            existing = await self.store.find_by_key(tenant, key)
            if existing is None:  # a key sent before keys were the caller's own
                earlier = await self.store.find_by_key(tenant, f"client:{client_key}")
                existing = earlier if earlier and earlier.requested_by == requested_by else None
        else:
            key, existing = await self._earlier(tenant, request, lesson, readable)
        if existing is not None and not _ended_without_result(existing) and \
                not await self._replaced(existing, lesson):
            return self._same(existing, request), False
        if lesson is not None:
            await self.check_not_deleted(tenant, lesson.id)
        self._check_request(request, lesson)
        eff = await self.effective(tenant)
        if request.params.prompt and eff.provider == "offline":
            raise Problem(
                "a video made from a prompt needs a language model, and this tenant has none "
                "(its AI provider is offline). The offline generator works only from a "
                "lesson's own text: ask for the video on a lesson without a prompt, or have a "
                "tenant admin set a provider and key in the AI settings", status=422,
                code="llm_required", extra={"provider": eff.provider})
        await self._check_quota(tenant, eff)
        await self._check_voice(request, lesson)  # may ask espeak-ng: after the quotas
        if existing is not None:
            await self._free_key(existing)
        job = Job.create(tenant, request, lesson, requested_by, key, self.settings.max_attempts,
                         cost=self._first_cost(request, eff))
        try:
            stored, created = await self.store.create(job, [requested(job)], limit=JobLimit(
                eff.max_jobs_per_hour, job.created_at - timedelta(hours=1)))
        except TooManyJobs:
            raise _over_hourly_quota(eff.max_jobs_per_hour) from None
        if created:
            self._on_write()
            return stored, True
        return self._same(stored, request), False

    async def check_not_deleted(self, tenant: str, lesson_id: str) -> None:
        """Refuses a job on a lesson whose deletion this service has heard of (content, or a
        cache of it, may still have shown it to the request)."""
        deleted = await self.store.deleted_at(tenant, lesson_id)
        if deleted is not None:
            raise NotFound(f"no lesson {lesson_id!r} in tenant {tenant!r}: it was deleted at "
                           f"{json_time(deleted)}", code="lesson_gone")

    async def _earlier(self, tenant: str, request: JobRequest, lesson: LessonText | None,
                       readable: Callable[[Job], Awaitable[bool]] | None
                       ) -> tuple[str, Job | None]:
        """The key a new job of this request takes, and the job an earlier identical request
        made, if any: found by its key, by a key of the jobs made until 6 Dec 2026, or among
        the lesson's latest jobs (one made then, whose lesson has had versions since)."""
        keys = idempotency_keys(tenant, request, lesson)
        existing = None
        for each in keys:
            if (existing := await self.store.find_by_key(tenant, each)) is not None:
                break
        if existing is None and lesson is not None:
            listed = await self.store.list_jobs(tenant, lesson_id=lesson.id,
                                                limit=EARLIER_JOBS_READ)
            existing = next((j for j in listed.items if j.idempotency_key.startswith("auto:")
                             and same_source(j, request, lesson)), None)
        if existing is None or lesson is None or readable is None or (
                existing.lesson is not None and existing.lesson.version == lesson.version) or \
                await readable(existing):
            return keys[0], existing
        # made from a version the caller may not read (an author's draft): theirs is their own
        key = source_key(tenant, request, lesson, lesson.version)
        return key, await self.store.find_by_key(tenant, key)

    async def _replaced(self, job: Job, lesson: LessonText | None) -> bool:
        """Whether `job`, a narration or video asked for without a client's key that succeeded,
        no longer shows in `lesson` (as the request read it) because a block a later job of
        its kind made has taken its block's place (the lesson's text went back to the one
        `job` was made from). A lesson showing no block of its kind (not attached yet, or
        removed by an author) has not replaced it."""
        if job.kind not in MEDIA_KINDS or job.status != "succeeded" or lesson is None or \
                not job.idempotency_key.startswith("auto:"):
            return False
        shown = lesson.shows_ai.get(job.kind, [])
        if not shown or job.id in shown:
            return False
        for other_id in shown:
            other = await self.store.get(job.tenant, other_id)
            if other is None or other.finished_at is None or job.finished_at is None or \
                    other.finished_at >= job.finished_at:
                return True
        return False  # made before `job`, whose output content has yet to attach

    async def _free_key(self, ended: Job) -> None:
        """Moves an ended job off its automatic key, so that a new job can take it."""

        def change(job: Job) -> tuple[Job, list[Envelope]] | None:
            if job.idempotency_key != ended.idempotency_key:
                return None
            return job.update(idempotency_key=f"ended:{job.id}"), []

        await self.mutate(ended.tenant, ended.id, change)

    @staticmethod
    def _same(job: Job, request: JobRequest) -> Job:
        if (job.kind, job.lesson.id if job.lesson else None, job.params) != (
                request.kind, request.lesson_id, request.params):
            raise Problem("this Idempotency-Key was used for a different request", status=422,
                          code="idempotency_key_reused", extra={"job_id": job.id})
        return job

    async def job(self, tenant: str, job_id: str) -> Job:
        job = await self.store.get(tenant, job_id)
        if job is None:
            raise NotFound(f"no AI job {job_id!r} in tenant {tenant!r}")
        return job

    async def jobs(self, tenant: str, *, lesson_id: str | None = None,
                   status: JobStatus | None = None, kind: JobKind | None = None,
                   after: str | None = None, limit: int = 50) -> Slice[Job]:
        return await self.store.list_jobs(tenant, lesson_id=lesson_id, status=status,
                                          kind=kind, after=after, limit=limit)

    async def readable_jobs(self, tenant: str,
                            readable: Callable[[Sequence[Job]], Awaitable[list[Job]]], *,
                            lesson_id: str | None = None, status: JobStatus | None = None,
                            kind: JobKind | None = None, after: str | None = None,
                            limit: int = 50) -> Slice[Job]:
        """`jobs`, but only those `readable` keeps of each batch read (in their order): up to
        `limit` of them from the cursor `after` on (a page is full whatever jobs it passed
        over). The first batch is a page and one more, the next ones `JOBS_A_BATCH`; past
        `JOBS_SCANNED` jobs the page ends short, even empty, going on after the last job read,
        so a caller who may read few of a long history is not answered from all of it at once."""
        found: list[Job] = []
        scanned, batch = 0, limit + 1
        while True:
            listed = await self.jobs(tenant, lesson_id=lesson_id, status=status, kind=kind,
                                     after=after, limit=min(batch, JOBS_SCANNED - scanned))
            scanned, batch = scanned + len(listed.items), max(batch, JOBS_A_BATCH)
            for job in await readable(listed.items):
                if len(found) == limit:  # one more: the page is full, and the list goes on
                    return Slice(found, cursor(*job_key(found[-1])))
                found.append(job)
            if listed.next is None or scanned >= JOBS_SCANNED:
                return Slice(found, listed.next)
            after = listed.next

    async def mutate(self, tenant: str, job_id: str, change: Mutation) -> Job:
        """Applies `change` to the job's latest state (compare-and-set on its revision, retried
        when another write came first). `change` returns None to leave the job as it is."""
        for attempt in range(50):
            job = await self.job(tenant, job_id)
            outcome = change(job)
            if outcome is None:
                return job
            updated, events = outcome
            if await self.store.replace(updated, job.rev, events):
                if events:
                    self._on_write()
                return updated
            await asyncio.sleep(min(0.002 * attempt, 0.05))
        raise Conflict(f"the AI job {job_id!r} is changing too fast; try again",
                       code="busy")

    async def cancel(self, tenant: str, job_id: str, reason: str = "requested") -> Job:
        """A job nobody runs ends at once; a running one is asked to stop, and its worker stops
        at its next step and publishes the cancellation. A cancel accepted before the job
        ended always ends it cancelled: a worker that finished meanwhile drops its result and
        removes the files it stored. `reason` is kept on the job (the first one asked)."""

        def change(job: Job) -> tuple[Job, list[Envelope]] | None:
            if job.final:
                raise Conflict(f"the AI job {job_id!r} already ended ({job.status})",
                               code="job_finished", extra={"job_status": job.status})
            return _cancelling(job, reason)

        return await self.mutate(tenant, job_id, change)

    async def cancel_unfinished(self, tenant: str, job_id: str, reason: str) -> Job:
        """`cancel`, but a job that ended already is left as it is (a redelivered event that
        asks again changes nothing)."""
        return await self.mutate(tenant, job_id,
                                 lambda job: None if job.final else _cancelling(job, reason))

    async def outputs_removed(self, tenant: str, job_id: str) -> Job:
        """Records on the job that its output files are gone (once: the first time stays)."""
        return await self.mutate(tenant, job_id, lambda job: None if (
            job.outputs_removed_at is not None) else (job.update(outputs_removed_at=now()), []))

    async def record_not_attached(self, tenant: str, job_id: str,
                                  refused: Sequence[NotAttached]) -> Job:
        """Records on the job the outputs content did not attach to its lesson, each output
        once (its latest reason), so a redelivered report changes nothing."""

        def change(job: Job) -> tuple[Job, list[Envelope]] | None:
            kept = {n.output: n for n in job.not_attached}
            if all(kept.get(n.output) == n for n in refused):
                return None
            kept |= {n.output: n for n in refused}
            return job.update(not_attached=list(kept.values())), []

        return await self.mutate(tenant, job_id, change)

    # a user's data

    async def personal_data(self, tenant: str, user_id: str) -> dict[str, object]:
        """The jobs the user asked for, as the data export shows them: what they asked and how
        it went. Not the generated drafts (they are about the lesson, not the user), nor
        anything of the tenant's provider settings."""
        return {"jobs_requested": [{
            "id": j.id, "kind": j.kind, "lesson_id": j.lesson.id if j.lesson else None,
            "lesson_version": j.lesson.version if j.lesson else None,
            "lesson_title": j.lesson.title if j.lesson else None,
            "params": j.params.model_dump(mode="json"), "status": j.status,
            "attempts": j.attempts, "errors": [e.model_dump(mode="json") for e in shown_errors(j.errors)],
            "cost": j.cost.model_dump(mode="json"), "created_at": json_time(j.created_at),
            "finished_at": json_time(j.finished_at) if j.finished_at else None,
            "url": job_url(tenant, j.id)} for j in await self.store.by_requester(tenant, user_id)]}

    async def forget_requester(self, tenant: str, user_id: str) -> int:
        """Anonymises the jobs a deleted user asked for: the requester becomes `deleted-user`
        and their note to the generator is dropped. The jobs stay, since their cost is the
        tenant's spend. How many jobs changed; running it again changes nothing."""

        def change(job: Job) -> tuple[Job, list[Envelope]] | None:
            if job.requested_by != user_id:
                return None
            params = job.params.model_copy(update={"instructions": "", "prompt": ""})
            # A key that named the user's note, or a key the client chose, no longer matches.
            key = job.idempotency_key if params == job.params and \
                job.idempotency_key.startswith("auto:") else f"erased:{job.id}"
            return job.update(requested_by=ERASED_USER, params=params, idempotency_key=key), []

        changed = 0
        for job in await self.store.by_requester(tenant, user_id):
            await self.mutate(tenant, job.id, change)
            changed += 1
        if changed:
            await self.store.after_erasure()
        return changed


def _cancelling(job: Job, reason: str) -> tuple[Job, list[Envelope]] | None:
    """The unfinished job cancelled: at once when nobody runs it, else asked to stop."""
    at = now()
    if job.lease is not None and job.lease.expires_at > at:
        return (None if job.cancel_requested else
                (job.update(at, cancel_requested=True, cancel_reason=reason), []))
    done = job.update(at, status="cancelled", cancel_requested=True,
                      cancel_reason=job.cancel_reason or reason, step="cancelled",
                      finished_at=at, lease=None)
    return done, [cancelled(done)]


def _ended_without_result(job: Job) -> bool:
    """A job asked for without a client's key that failed or was cancelled, whose outputs
    content did not all attach to the lesson (over its media quota, say), or whose output
    files were removed: asking again makes a new job."""
    ended = job.status in ("failed", "cancelled") or (job.status == "succeeded" and (
        bool(job.not_attached) or job.outputs_removed_at is not None))
    return ended and job.idempotency_key.startswith("auto:")


def _over_hourly_quota(limit: int) -> Problem:
    return Problem(f"the tenant has asked for its limit of {limit} AI jobs in the last hour; "
                   "try again later", status=429,
                   code="ai_quota_exceeded", headers={"Retry-After": "600"},
                   extra={"limit": limit})
