"""Jobs and the rules they keep. No I/O here.

A job runs one `kind` of generation for one lesson, taken at one version. It is `queued` until a
worker claims it with a lease (an owner and an expiry the worker keeps renewing), `running`
while it runs, and ends `succeeded`, `failed` or `cancelled`. A worker that stops renewing loses
the lease, and another worker may claim the job again. Every failed try is kept in `errors`;
`attempts` counts the tries begun.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    ConfigDict,
    Field,
    SecretStr,
    StrictFloat,
    StrictInt,
    StringConstraints,
    ValidationInfo,
)

from bloop.ai.text.model import FlashcardSet, LessonText, QuizDraft, Simplified, Summary
from bloop.platform.content.model import Language, Level
from bloop.platform.kit.idempotency.port import KEY_PATTERN, MAX_KEY_CHARS
from bloop.platform.kit.read_back import Tolerant, read_back
from bloop.platform.kit.text import Documented, Lines, RawLine
from bloop.platform.kit.urls import WEB_ADDRESS

JobKind = Literal["summary", "simplify", "quiz", "flashcards", "narration", "video"]
TEXT_KINDS: frozenset[str] = frozenset({"summary", "simplify", "quiz", "flashcards"})
MEDIA_KINDS: frozenset[str] = frozenset({"narration", "video"})
JobStatus = Literal["queued", "running", "succeeded", "failed", "cancelled"]
FINAL: frozenset[str] = frozenset({"succeeded", "failed", "cancelled"})
Instructions = Lines[Annotated[str, StringConstraints(strip_whitespace=True, max_length=2000)]]
MAX_PROMPT_CHARS = 2000
# Beyond MAX_PROMPT_CHARS the service refuses with `prompt_too_long`; this only bounds the body.
Prompt = Lines[Annotated[str, StringConstraints(strip_whitespace=True, max_length=100_000)]]
# A voice's name as providers spell them (espeak-ng's `fr`, `en-us+f3`, OpenAI's `alloy`, Azure's
# `en-US-Ava:DragonHDLatestNeural`, an ElevenLabs id): never a path or a part of an address.
VOICE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_+:-]{0,63}$"
_VOICE = re.compile(VOICE_PATTERN)
VOICE_RULE = ("a voice is named by letters, digits, `_`, `+`, `:` and `-` (not first), "
              "at most 64 of them")


def voice_name(value: str) -> bool:
    """Whether `value` is spelled as a voice's name may be."""
    return _VOICE.fullmatch(value) is not None


def _check_voice(value: str, info: ValidationInfo) -> str:
    if not read_back(info) and not voice_name(value):
        raise ValueError(VOICE_RULE)
    return value


# Kept jobs asked for before the rule still read; the renderer checks their voice again.
VoiceName = Annotated[str, AfterValidator(_check_voice), Documented(VOICE_PATTERN, blank=False)]
IdempotencyKey = Annotated[str, StringConstraints(min_length=1, max_length=MAX_KEY_CHARS,
                                                  pattern=KEY_PATTERN)]


def now() -> datetime:
    """The current time, to the millisecond (what every store keeps)."""
    t = datetime.now(UTC)
    return t.replace(microsecond=t.microsecond // 1000 * 1000)


class _Model(Tolerant):
    model_config = ConfigDict(extra="forbid", frozen=True)


class JobParams(_Model):
    """What shapes a job's output; each kind reads the fields it needs."""

    level: Level = Field(default="beginner", description="simplify: the reader's level")
    count: StrictInt = Field(default=5, ge=1, le=30, description="quiz questions or flashcards")
    voice: VoiceName | None = Field(default=None, description=(
        "narration and video: the voice, when the provider has several (one the local voice, "
        f"espeak-ng, has: `espeak-ng --voices`); {VOICE_RULE}"))
    instructions: Instructions = Field(default="", description="a note to the generator")
    prompt: Prompt = Field(default="", description=(
        f"video: what the video is about, at most {MAX_PROMPT_CHARS} characters; its script "
        "is written by the tenant's language model (drawing on the lesson, when one is named)"))
    language: Language | None = Field(default=None, description=(
        "video from a prompt: the language to write and speak in (a BCP 47 tag such as `fr`); "
        "the lesson's when not given, else en. Other jobs work in the lesson's language"))


class JobRequest(_Model):
    kind: JobKind
    lesson_id: Annotated[str, StringConstraints(min_length=1, max_length=64)] | None = Field(
        default=None, description="the lesson to work on; only a video with a prompt may "
                                  "go without one")
    params: JobParams = Field(default_factory=JobParams)


class JobError(_Model):
    at: datetime
    attempt: int
    code: str
    message: str
    transient: bool


class NotAttached(_Model):
    """An output of a finished job that content did not add to the lesson's draft."""

    output: str = Field(description="the output's name")
    code: str = Field(description="content's reason: quota_exceeded, too_large, lesson_gone, "
                                  "lesson_changed, …")
    detail: str
    at: datetime


class Cost(_Model):
    provider: str = "offline"
    model: str = "offline"
    prompt_tokens: int = 0
    completion_tokens: int = 0
    characters: int = Field(default=0, description="characters a paid speech provider spoke")
    usd: float = 0.0

    @property
    def spent(self) -> bool:
        """Whether a provider was paid (its provider and model then name the one paid)."""
        return bool(self.prompt_tokens or self.completion_tokens or self.characters or self.usd)

    def plus(self, *, provider: str, model: str, prompt_tokens: int = 0,
             completion_tokens: int = 0, characters: int = 0, usd: float) -> Cost:
        """With more spend; the provider and model named are those of the language model when
        there was one (a video from a prompt names its writer, not its voice)."""
        if characters and not prompt_tokens and (self.prompt_tokens or self.completion_tokens):
            provider, model = self.provider, self.model
        return Cost(provider=provider, model=model,
                    prompt_tokens=self.prompt_tokens + prompt_tokens,
                    completion_tokens=self.completion_tokens + completion_tokens,
                    characters=self.characters + characters, usd=round(self.usd + usd, 8))


class MediaOutput(_Model):
    """A file a job made, kept in the `ai` media store and served by the ai API."""

    name: str
    kind: Literal["audio", "video", "subtitles", "image", "other"]
    content_type: str
    bytes: int = Field(ge=0)
    duration_s: float | None = None
    file_id: str
    url: str = Field(description="the ai route that streams it")


class MediaResult(_Model):
    kind: Literal["media"] = "media"
    outputs: list[MediaOutput]


JobResult = Annotated[Summary | Simplified | QuizDraft | FlashcardSet | MediaResult,
                      Field(discriminator="kind")]


class Lease(_Model):
    owner: str
    expires_at: datetime


class Job(_Model):
    id: str
    tenant: str
    kind: JobKind
    lesson: LessonText | None = Field(description="None for a video made from a prompt alone")
    params: JobParams
    requested_by: str
    idempotency_key: str
    status: JobStatus = "queued"
    progress: int = Field(default=0, ge=0, le=100)
    step: str = "queued"
    attempts: int = Field(default=0, ge=0)
    max_attempts: int = Field(default=3, ge=1)
    errors: list[JobError] = Field(default_factory=list)
    cost: Cost = Field(default_factory=Cost)
    result: JobResult | None = None
    not_attached: list[NotAttached] = Field(default_factory=list, description=(
        "the outputs content did not attach to the lesson's draft, with its reason (known "
        "shortly after the job succeeded)"))
    cancel_requested: bool = False
    cancel_reason: str | None = Field(default=None, description=(
        "why it was asked to cancel: requested (by a user), lesson_deleted (its lesson or "
        "course was deleted); none on jobs cancelled before it was kept"))
    outputs_removed_at: datetime | None = Field(default=None, description=(
        "when its output files were removed (kept for a while after it ended, and removed "
        "with its lesson)"))
    lease: Lease | None = None
    rev: int = Field(default=0, ge=0, description="bumped by each write")
    not_before: datetime | None = Field(default=None, description="a retry waits until then")
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None = None

    @property
    def final(self) -> bool:
        return self.status in FINAL

    @property
    def language(self) -> str:
        """The language the job writes and speaks: the one asked for, else its lesson's."""
        return self.params.language or (self.lesson.language if self.lesson is not None else "en")

    @property
    def quiz_id(self) -> str:
        """The id of the quiz block a quiz job makes: the job's own, so that quizzes of one
        lesson version made by several jobs can all go into the lesson."""
        return "ai-" + hashlib.sha256(self.id.encode()).hexdigest()[:12]

    @property
    def lesson_id(self) -> str:
        """The lesson's id, or "" for a job without one (as its events carry it)."""
        return self.lesson.id if self.lesson is not None else ""

    @classmethod
    def create(cls, tenant: str, request: JobRequest, lesson: LessonText | None, requested_by: str,
               idempotency_key: str, max_attempts: int, at: datetime | None = None,
               cost: Cost | None = None) -> Job:
        """A new job; `cost` names the provider it will pay, else offline."""
        at = at or now()
        return cls(id=uuid.uuid4().hex, tenant=tenant, kind=request.kind, lesson=lesson,
                   params=request.params, requested_by=requested_by,
                   idempotency_key=idempotency_key, max_attempts=max_attempts,
                   cost=cost or Cost(), created_at=at, updated_at=at)

    def leased_to(self, owner: str, at: datetime) -> bool:
        return self.lease is not None and self.lease.owner == owner and self.lease.expires_at > at

    def claimable(self, owner: str, at: datetime) -> bool:
        """True when `owner` may (re)start the job at `at`: not ended, and no live lease of
        another worker."""
        if self.final:
            return False
        if self.lease is not None and self.lease.owner != owner and self.lease.expires_at > at:
            return False
        return self.not_before is None or self.not_before <= at

    def with_lease(self, owner: str, lease_s: float, at: datetime) -> Job:
        return self.update(at, lease=Lease(owner=owner,
                                           expires_at=at + timedelta(seconds=lease_s)))

    def update(self, at: datetime | None = None, **changes: Any) -> Job:
        """This job with `changes`, one revision on."""
        return self.model_copy(update={**changes, "updated_at": at or now(), "rev": self.rev + 1})


# The parameters of the first keys. Any other enters a key only when set, so that a parameter
# added later leaves the keys of the jobs made before it as they were.
KEYED_PARAMS = frozenset({"level", "count", "voice", "instructions", "prompt"})


def idempotency_keys(tenant: str, request: JobRequest, lesson: LessonText | None) -> list[str]:
    """The same request on the same lesson text gives the same key, so the same job, whatever
    the lesson's version (attaching a job's media makes a new one): its key, then the keys a
    job of this request had until 6 Dec 2026, from the lesson's version."""
    params = request.params.model_dump(mode="json")
    unset = {name for name, field in JobParams.model_fields.items()
             if name not in KEYED_PARAMS and params[name] == field.get_default()}
    keyed = {k: v for k, v in params.items() if k not in unset}
    version = lesson.version if lesson is not None else 0
    return [source_key(tenant, request, lesson), _key(tenant, request, version, keyed),
            *([_key(tenant, request, version, params)] if unset else [])]


def source_key(tenant: str, request: JobRequest, lesson: LessonText | None,
               version: int | None = None) -> str:
    """The key of a request from what its output is made from: its kind and parameters, and
    the lesson's text, title and language (and concepts, which text jobs read); with `version`,
    the key of a request at that version alone."""
    params = request.params.model_dump(mode="json")
    body: dict[str, Any] = {"tenant": tenant, "kind": request.kind, "lesson": request.lesson_id,
                            "params": {k: v for k, v in params.items() if k in KEYED_PARAMS
                                       or v != JobParams.model_fields[k].get_default()}}
    if lesson is not None:
        body["made_from"] = lesson.made_from
        if request.kind in TEXT_KINDS:
            body["concepts"] = lesson.concepts
    if version is not None:
        body["version"] = version
    return "auto:" + hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def same_source(job: Job, request: JobRequest, lesson: LessonText | None) -> bool:
    """Whether `job` was asked for by `request` on a lesson of the same text as `lesson`."""
    if (job.kind, job.lesson_id or None, job.params) != (request.kind, request.lesson_id,
                                                        request.params):
        return False
    if job.lesson is None or lesson is None:
        return job.lesson is lesson
    return job.lesson.made_from == lesson.made_from and (
        request.kind not in TEXT_KINDS or job.lesson.concepts == lesson.concepts)


def _key(tenant: str, request: JobRequest, lesson_version: int, params: dict[str, Any]) -> str:
    """The key of the jobs made until 6 Dec 2026, which named the lesson's version."""
    body = json.dumps({"tenant": tenant, "kind": request.kind, "lesson": request.lesson_id,
                       "version": lesson_version, "params": params}, sort_keys=True)
    return "auto:" + hashlib.sha256(body.encode()).hexdigest()


class TenantAiConfig(_Model):
    """A tenant's own provider, model, prices and quotas; unset fields take the platform's."""

    provider: Literal["auto", "openai", "offline"] | None = None
    base_url: Annotated[str, StringConstraints(max_length=500), WEB_ADDRESS] | None = None
    api_key: SecretStr | None = Field(default=None, description="write only; never shown")
    model: RawLine[Annotated[str, StringConstraints(min_length=1, max_length=200)]] | None = None
    price_input_per_mtok: StrictFloat | None = Field(default=None, ge=0, le=10_000)
    price_output_per_mtok: StrictFloat | None = Field(default=None, ge=0, le=10_000)
    monthly_budget_usd: StrictFloat | None = Field(default=None, ge=0, le=1_000_000)
    max_jobs_per_hour: StrictInt | None = Field(default=None, ge=1, le=100_000)


class TenantAiView(_Model):
    """A tenant's settings as shown: the key reduced to whether there is one."""

    provider: Literal["auto", "openai", "offline"]
    effective_provider: Literal["openai", "offline"]
    base_url: str | None
    model: str
    has_api_key: bool
    price_input_per_mtok: float
    price_output_per_mtok: float
    monthly_budget_usd: float | None
    max_jobs_per_hour: int
    spent_this_month_usd: float
    jobs_last_hour: int
