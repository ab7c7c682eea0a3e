"""Jobs from request to end on the embedded stores: the runner claims with a lease, reports
progress, retries transient provider errors with back-off, fails on permanent ones, records the
spend, honours cancellation, takes over from a worker whose lease expired, gives up a job whose
lease it lost, and the sweeper picks up jobs whose command never came."""

from __future__ import annotations

import asyncio
import email.utils
import errno
import hashlib
import json
import logging
import os
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlsplit

import pytest

from bloop.ai.audio import ffmpeg as ffmpeg_module
from bloop.ai.audio import speak
from bloop.ai.jobs import consumers, renderers
from bloop.ai.jobs.lessons import lesson_text
from bloop.ai.jobs.links import OutputLinks, link_path
from bloop.ai.jobs.model import (
    Cost,
    Job,
    JobParams,
    JobRequest,
    JobResult,
    Lease,
    MediaResult,
    NotAttached,
    TenantAiConfig,
    idempotency_keys,
    now,
)
from bloop.ai.jobs.ports import JobLimit, Progress, RenderedFile, StoredFile
from bloop.ai.jobs.renderers import LibraryRenderer
from bloop.ai.jobs.retention import OutputRetention
from bloop.ai.jobs.service import JobService, requested
from bloop.ai.jobs.stores.embedded import EmbeddedJobStore, FileMediaStore
from bloop.ai.jobs.worker import JobRunner
from bloop.ai.providers.llm import ProviderRejected, retry_after
from bloop.ai.providers.tts import Speech, per_sentence, wav_bytes
from bloop.ai.text.model import LessonText
from bloop.ai.video import CodeScene, KeyPointsScene, VideoScript
from bloop.platform.content.events import LessonDeleted
from bloop.platform.demo import data
from bloop.platform.identity.events import UserDeleted
from bloop.platform.kit.errors import Conflict, Problem, StoreUnavailable
from bloop.platform.kit.events.bus.port import Handler
from bloop.platform.kit.events.envelope import Envelope
from bloop.platform.kit.events.types import registry, type_of
from bloop.platform.kit.read_back import STORED
from bloop.platform.kit.settings import AiSettings
from bloop.platform.kit.sqlite import SqliteDB
from tests.support import eventually, require_tools
from tests.unit.ai.fake_openai import (
    BAD_KEY,
    ECHOED_KEY,
    MASKED_KEY,
    RATE_LIMITED,
    SERVER_ERROR,
    FakeOpenAI,
    Reply,
    completion,
)

LESSON = LessonText(id="lesson-1", version=3, course="py", title=data.LESSONS[0].title,
                    text="\n\n".join(data.LESSONS[0].blocks), concepts=["variables"])


@dataclass
class Rig:
    store: EmbeddedJobStore
    service: JobService
    media: FileMediaStore
    settings: AiSettings

    links = OutputLinks(b"l" * 32, ttl_s=600)

    def runner(self, owner: str = "worker-a", **renderers: Any) -> JobRunner:
        return JobRunner(self.service, self.media, self.settings, owner, renderers,
                         links=self.links)

    async def ask(self, kind: str = "summary", **params: Any) -> Job:
        job, created = await self.service.request(
            "acme", "u1", JobRequest(kind=kind, lesson_id=LESSON.id,
                                     params=JobParams(**params)), LESSON)
        assert created
        return job

    async def events(self, job_id: str) -> list[dict[str, Any]]:
        return [json.loads(p.message.value) for p in await self.store.outbox.pending(10_000)
                if p.message.key == job_id.encode()]

    async def types(self, job_id: str) -> list[str]:
        return [e["type"].removeprefix("bloop.ai.") for e in await self.events(job_id)]


@pytest.fixture
async def rig(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[Rig]:
    marker = request.node.get_closest_marker("ai")
    settings = AiSettings(**({"retry_backoff_s": 0.0, "lease_s": 0.6, "max_attempts": 3}
                             | (marker.kwargs if marker else {})))
    db = SqliteDB(tmp_path / "ai.sqlite3")
    store = EmbeddedJobStore(db, registry)
    await store.setup()
    media = FileMediaStore(tmp_path / "media")
    await media.setup()
    yield Rig(store, JobService(store, settings, media_kinds=frozenset({"narration"})), media,
              settings)
    await db.close()


def llm(fake: FakeOpenAI, **more: Any) -> dict[str, Any]:
    return {"openai_base_url": fake.base_url, "llm_timeout_s": 5.0} | more


async def to_the_end(runner: JobRunner, job_id: str) -> Job:
    """Runs the job's attempts until it ends, each once its retry is due (the sweeper's part)."""
    for _ in range(20):
        await runner.run("acme", job_id)
        job = await runner.service.job("acme", job_id)
        if job.final or job.not_before is None:
            return job
        await asyncio.sleep(max((job.not_before - now()).total_seconds(), 0.0))  # the back-off
    raise AssertionError(f"job {job_id} did not end")


async def test_an_offline_flashcards_job_runs_to_the_end(rig: Rig) -> None:
    job = await rig.ask("flashcards", count=3)
    assert job.status == "queued"
    await rig.runner().run("acme", job.id)
    done = await rig.service.job("acme", job.id)
    assert (done.status, done.progress, done.attempts, done.lease) == ("succeeded", 100, 1, None)
    assert done.cost.usd == 0
    assert done.cost.provider == "offline"
    types = await rig.types(job.id)
    assert types[0] == "job.requested.v1"
    assert types[-2:] == ["job.completed.v1", "flashcards.generated.v1"]
    assert set(types[1:-2]) == {"job.progressed.v1"}
    cards = (await rig.events(job.id))[-1]["data"]
    assert (await rig.events(job.id))[-2]["data"]["made_from"] == LESSON.made_from
    assert cards["concept_ids"] == ["variables"]
    assert cards["lesson_version"] == 3
    assert 1 <= len(cards["cards"]) <= 3


async def test_media_kinds_this_deployment_cannot_render_are_refused(rig: Rig) -> None:
    service = JobService(rig.store, rig.settings, media_kinds=frozenset())
    with pytest.raises(Problem) as caught:
        await service.request("acme", "u1", JobRequest(kind="video", lesson_id=LESSON.id), LESSON)
    assert (caught.value.status, caught.value.code) == (501, "not_available")
    assert (await rig.store.list_jobs("acme")).items == []


async def test_the_same_request_is_the_same_job(rig: Rig) -> None:
    job = await rig.ask("quiz", count=4)
    again, created = await rig.service.request(
        "acme", "u2", JobRequest(kind="quiz", lesson_id=LESSON.id, params=JobParams(count=4)),
        LESSON)
    assert (again.id, created) == (job.id, False)
    newer, created = await rig.service.request(
        "acme", "u1", JobRequest(kind="quiz", lesson_id=LESSON.id, params=JobParams(count=4)),
        LESSON.model_copy(update={"version": 4, "text": LESSON.text + "\n\nMore."}))
    assert created, "a new text is a new job"
    assert newer.id != job.id


async def test_the_same_request_on_a_later_version_of_the_same_text_is_the_same_job(
        rig: Rig) -> None:
    """A key named the lesson's version, and attaching a narration to the draft makes a new
    one: asking again for the same narration made a second job (paid again), and a second
    audio block of the same text. A key is what the output is made from."""
    narration = JobRequest(kind="narration", lesson_id=LESSON.id)
    job, _ = await rig.service.request("acme", "u1", narration, LESSON)
    attached = LESSON.model_copy(update={"version": LESSON.version + 1})
    again, created = await rig.service.request("acme", "u1", narration, attached)
    assert (again.id, created) == (job.id, False)
    for changed in ({"text": "Volcanoes erupt."}, {"title": "Volcanoes"}, {"language": "fr"}):
        other = attached.model_copy(update=changed)
        assert (await rig.service.request("acme", "u1", narration, other))[1], changed
    concepts = attached.model_copy(update={"concepts": ["loops"]})
    assert not (await rig.service.request("acme", "u1", narration, concepts))[1], \
        "a narration does not read the lesson's concepts"
    cards = JobRequest(kind="flashcards", lesson_id=LESSON.id)
    await rig.service.request("acme", "u1", cards, LESSON)
    assert (await rig.service.request("acme", "u1", cards, concepts))[1], "flashcards do"


async def test_a_job_on_another_version_is_the_callers_only_when_they_may_read_it(
        rig: Rig) -> None:
    """A job made from an author's draft shows that draft: a caller who reads only the
    published lesson, of the same text, gets a job of their own rather than one they may not
    read (answered 422 by the API)."""
    asked = JobRequest(kind="summary", lesson_id=LESSON.id)
    draft, _ = await rig.service.request("acme", "author", asked, LESSON)
    published = LESSON.model_copy(update={"version": LESSON.version - 1})

    async def author_only(job: Job) -> bool:
        return job.requested_by == "reader"

    own, created = await rig.service.request("acme", "reader", asked, published,
                                             readable=author_only)
    assert created
    assert own.id != draft.id
    again, created = await rig.service.request("acme", "reader", asked, published,
                                               readable=author_only)
    assert (again.id, created) == (own.id, False)


async def test_a_job_keyed_before_a_parameter_was_added_is_still_its_requests_job(
        rig: Rig) -> None:
    """A parameter added later (`language`, 3 Dec) enters a key only when set. Until 3 Dec
    keys held the parameters of the time; until 6 Dec every one, `language` too: the same
    request after an upgrade made a second job (paid for again) instead of answering with the
    one it had."""
    def key_of(params: dict[str, Any]) -> str:  # the formula of those days, written out
        body = json.dumps({"tenant": "acme", "kind": "quiz", "lesson": LESSON.id,
                           "version": LESSON.version, "params": params}, sort_keys=True)
        return "auto:" + hashlib.sha256(body.encode()).hexdigest()

    first = {"level": "beginner", "count": 4, "voice": None, "instructions": "", "prompt": ""}
    for count, params in ((4, first), (6, first | {"count": 6, "language": None})):
        asked = JobRequest(kind="quiz", lesson_id=LESSON.id, params=JobParams(count=count))
        old, _ = await rig.store.create(Job.create("acme", asked, LESSON, "u1", key_of(params),
                                                   max_attempts=3), [])
        same, created = await rig.service.request("acme", "u2", asked, LESSON)
        assert (same.id, created) == (old.id, False)
    french, unset = (JobRequest(kind="video", params=JobParams(prompt="tides", language=language))
                     for language in ("fr", None))
    assert len(idempotency_keys("acme", french, None)) == 2, "set, it is in every key"
    assert not set(idempotency_keys("acme", french, None)) & set(
        idempotency_keys("acme", unset, None))


async def test_a_job_keyed_by_an_earlier_version_of_the_same_text_is_still_its_requests_job(
        rig: Rig) -> None:
    """Until 6 Dec a key named the lesson's version: a narration asked for then, whose audio
    was attached since (a new version), is found among the lesson's jobs."""
    asked = JobRequest(kind="narration", lesson_id=LESSON.id)
    old_key = "auto:" + hashlib.sha256(json.dumps(
        {"tenant": "acme", "kind": "narration", "lesson": LESSON.id, "version": LESSON.version,
         "params": {"level": "beginner", "count": 5, "voice": None, "instructions": "",
                    "prompt": ""}}, sort_keys=True).encode()).hexdigest()
    old, _ = await rig.store.create(Job.create("acme", asked, LESSON, "u1", old_key,
                                               max_attempts=3), [])
    later = LESSON.model_copy(update={"version": LESSON.version + 2})
    same, created = await rig.service.request("acme", "u1", asked, later)
    assert (same.id, created) == (old.id, False)
    changed = later.model_copy(update={"text": "Volcanoes erupt."})
    assert (await rig.service.request("acme", "u1", asked, changed))[1]


async def test_the_same_request_after_its_job_failed_or_was_cancelled_is_a_new_job(
        rig: Rig, fake_openai: FakeOpenAI) -> None:
    asked = JobRequest(kind="quiz", lesson_id=LESSON.id, params=JobParams(count=4))
    cancelled = await rig.ask("quiz", count=4)
    await rig.service.cancel("acme", cancelled.id)
    again = await asyncio.gather(*(rig.service.request("acme", "u2", asked, LESSON)
                                   for _ in range(3)))
    [new] = {job.id for job, _ in again}
    assert new != cancelled.id
    assert sorted(created for _, created in again) == [False, False, True]
    assert (await rig.service.job("acme", cancelled.id)).status == "cancelled"

    rig.service.settings = rig.settings = AiSettings(**rig.settings.model_dump() | llm(fake_openai))
    fake_openai.script(BAD_KEY)
    failed = await rig.ask("summary")
    await rig.runner().run("acme", failed.id)
    assert (await rig.service.job("acme", failed.id)).status == "failed"
    retried = await rig.ask("summary")  # the key is put right meanwhile
    assert retried.id != failed.id
    await rig.runner().run("acme", retried.id)
    same, created = await rig.service.request("acme", "u1", JobRequest(
        kind="summary", lesson_id=LESSON.id), LESSON)
    assert (same.id, same.status, created) == (retried.id, "succeeded", False)


async def test_the_same_request_after_content_refused_its_output_is_a_new_job(rig: Rig) -> None:
    """The job stayed the request's answer: after freeing room, asking again gave the job whose
    narration content had refused, and nothing was made again."""
    asked = JobRequest(kind="narration", lesson_id=LESSON.id)
    job, _ = await rig.service.request("acme", "u1", asked, LESSON)
    done = (await rig.service.job("acme", job.id)).update(status="succeeded")
    await rig.service.mutate("acme", job.id, lambda _: (done, []))
    same, created = await rig.service.request("acme", "u1", asked, LESSON)
    assert (same.id, created) == (job.id, False)
    await rig.service.record_not_attached("acme", job.id, [NotAttached(
        output="narration.wav", code="quota_exceeded", detail="over the quota", at=now())])
    again, created = await rig.service.request("acme", "u1", asked, LESSON)
    assert created
    assert again.id != job.id
    assert (await rig.service.job("acme", job.id)).not_attached[0].code == "quota_exceeded"


async def test_a_narration_whose_block_a_later_job_s_replaced_is_made_again(rig: Rig) -> None:
    """An author asked for a narration, changed the text and asked again (the new audio
    replaced the first), then undid the change and asked again: the answer was the first job,
    which attached nothing, so the draft kept the narration of the discarded text. A job is
    the request's answer while no later job's block has taken the place of its block."""
    asked = JobRequest(kind="narration", lesson_id=LESSON.id)

    def read(text: str, *shown: str) -> LessonText:
        """The lesson as the request reads it: its text, and the AI audio it shows."""
        return lesson_text({"id": LESSON.id, "version": 3, "title": LESSON.title, "blocks": [
            {"type": "markdown", "markdown": text},
            *({"type": "audio", "media": f"m-{job}", "title": "Audio made by AI (narration)",
               "made_by_ai": {"job": job, "kind": "narration"}} for job in shown)]})

    async def ended(job: Job, minute: int) -> Job:
        at = datetime(2026, 12, 6, 9, minute, tzinfo=UTC)
        done = job.update(status="succeeded", finished_at=at)
        return await rig.service.mutate("acme", job.id, lambda _: (done, []))

    async def succeeded(lesson: LessonText, minute: int, shown: tuple[str, ...] = ()) -> Job:
        job, created = await rig.service.request("acme", "u1", asked, read(lesson.text, *shown))
        assert created
        return await ended(job, minute)

    honey, wax = read("Bees make honey."), read("Bees make honey and wax.")
    first = await succeeded(honey, 1)
    same, created = await rig.service.request("acme", "u1", asked, read(honey.text, first.id))
    assert (same.id, created) == (first.id, False)
    second = await succeeded(wax, 2, (first.id,))
    undone, created = await rig.service.request("acme", "u1", asked,
                                                read(honey.text, second.id))
    assert created, "the first job's block was replaced: its request makes a new job"
    assert undone.id not in (first.id, second.id)
    await ended(undone, 3)
    for shown in ((second.id,), (undone.id,), ()):  # not attached yet, attached, removed
        again, created = await rig.service.request("acme", "u1", asked,
                                                   read(honey.text, *shown))
        assert (again.id, created) == (undone.id, False), shown
    assert read(honey.text, second.id).model_dump().get("shows_ai") is None, "never kept"


async def test_a_client_s_key_names_its_job_however_it_ended(rig: Rig) -> None:
    asked = JobRequest(kind="summary", lesson_id=LESSON.id)
    job, _ = await rig.service.request("acme", "u1", asked, LESSON, client_key="k-1")
    await rig.service.cancel("acme", job.id)
    again, created = await rig.service.request("acme", "u1", asked, LESSON, client_key="k-1")
    assert (again.id, again.status, created) == (job.id, "cancelled", False)


@pytest.mark.ai(max_attempts=3)
async def test_transient_errors_are_retried_and_recorded(rig: Rig, fake_openai: FakeOpenAI) -> None:
    rig.settings = AiSettings(**rig.settings.model_dump() | llm(fake_openai))
    rig.service.settings = rig.settings
    fake_openai.script(SERVER_ERROR, RATE_LIMITED)
    job = await rig.ask("summary")
    started = asyncio.get_running_loop().time()
    done = await to_the_end(rig.runner(), job.id)
    assert done.status == "succeeded", done.errors
    assert done.attempts == 3
    assert [(e.code, e.transient, e.attempt) for e in done.errors] == [
        ("provider_unavailable", True, 1), ("provider_rate_limited", True, 2)]
    assert asyncio.get_running_loop().time() - started >= 0.2, "Retry-After was honoured"
    assert done.cost.prompt_tokens == 1117, "failed calls cost nothing"
    assert len(fake_openai.requests) == 3


@pytest.mark.ai(max_attempts=3)
async def test_a_store_or_disk_down_a_while_is_retried_not_failed_for_good(
        rig: Rig, monkeypatch: pytest.MonkeyPatch) -> None:
    """Before, a store that was down or a full disk on a job's first attempt failed it for
    good (500-like `internal_error`), where a provider's outage is tried again."""
    outages: list[Exception] = [StoreUnavailable("sqlite", "disk is full"),
                                OSError(errno.ENOSPC, "No space left on device")]
    deleted_at = rig.store.deleted_at

    async def down_a_while(tenant: str, lesson_id: str) -> datetime | None:
        if outages:
            raise outages.pop(0)
        return await deleted_at(tenant, lesson_id)

    job = await rig.ask("flashcards", count=3)
    monkeypatch.setattr(rig.store, "deleted_at", down_a_while)
    done = await to_the_end(rig.runner(), job.id)
    assert (done.status, done.attempts) == ("succeeded", 3), done.errors
    assert [(e.code, e.transient, e.attempt) for e in done.errors] == [
        ("store_unavailable", True, 1), ("store_unavailable", True, 2)]
    assert "disk store is unavailable" in done.errors[1].message


@pytest.mark.ai(max_attempts=2)
async def test_a_provider_that_keeps_failing_fails_the_job(rig: Rig, fake_openai: FakeOpenAI) -> None:
    rig.service.settings = rig.settings = AiSettings(**rig.settings.model_dump() | llm(fake_openai))
    fake_openai.script(SERVER_ERROR, SERVER_ERROR, SERVER_ERROR)
    job = await rig.ask("summary")
    done = await to_the_end(rig.runner(), job.id)
    assert (done.status, done.attempts) == ("failed", 2)
    assert "gave up after 2 attempts" in done.errors[-1].message
    failed = (await rig.events(job.id))[-1]
    assert failed["type"] == "bloop.ai.job.failed.v1"
    assert failed["data"]["code"] == "provider_unavailable"


async def test_a_refused_key_fails_at_once(rig: Rig, fake_openai: FakeOpenAI) -> None:
    rig.service.settings = rig.settings = AiSettings(**rig.settings.model_dump() | llm(fake_openai))
    fake_openai.script(BAD_KEY)
    job = await rig.ask("simplify", level="intermediate")
    await rig.runner().run("acme", job.id)
    done = await rig.service.job("acme", job.id)
    assert (done.status, done.attempts, done.errors[0].code) == ("failed", 1, "provider_rejected")
    assert len(fake_openai.requests) == 1


async def test_invalid_output_fails_and_its_spend_is_recorded(rig: Rig,
                                                              fake_openai: FakeOpenAI) -> None:
    rig.service.settings = rig.settings = AiSettings(
        **rig.settings.model_dump() | llm(fake_openai, invalid_output_retries=1))
    fake_openai.script(Reply(content="not json"), Reply(content='{"cards": []}'))
    job = await rig.ask("flashcards")
    await rig.runner().run("acme", job.id)
    done = await rig.service.job("acme", job.id)
    assert (done.status, done.errors[0].code) == ("failed", "invalid_output")
    assert done.cost.prompt_tokens == 2 * 1117
    assert done.cost.usd > 0


@pytest.mark.ai(max_attempts=3)
async def test_a_broken_answer_is_retried_as_a_provider_failure_and_keeps_the_spend(
        rig: Rig, fake_openai: FakeOpenAI, caplog: pytest.LogCaptureFixture) -> None:
    rig.service.settings = rig.settings = AiSettings(**rig.settings.model_dump() | llm(fake_openai))
    fake_openai.script(Reply(content="Sure! Here is a summary of the lesson."),
                       Reply(raw=b'{"id": "chatcmpl-x", "object": "chat.compl'))
    job = await rig.ask("summary")
    with caplog.at_level(logging.WARNING, logger="bloop"):
        done = await to_the_end(rig.runner(), job.id)
    assert (done.status, done.attempts) == ("succeeded", 2), done.errors
    assert [(e.code, e.transient, e.message) for e in done.errors] == [(
        "provider_unavailable", True,
        "the provider's answer is not a chat completion (a body that is cut off or not JSON)")]
    assert done.cost.prompt_tokens == 2 * 1117, "the invalid answer before it was paid for"
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


@pytest.mark.ai(max_attempts=3)
async def test_a_refused_answer_after_an_invalid_one_keeps_both_spends(
        rig: Rig, fake_openai: FakeOpenAI) -> None:
    """The job records each answer's tokens as it arrives; a refusal's came with its error,
    which nothing recorded."""
    rig.service.settings = rig.settings = AiSettings(**rig.settings.model_dump() | llm(fake_openai))
    refusal = completion("")
    refusal["choices"][0]["message"].update(content=None, refusal="I can't help with that.")
    fake_openai.script(Reply(content="Sure! Here is a summary of the lesson."), Reply(body=refusal))
    job = await rig.ask("summary")
    await rig.runner().run("acme", job.id)
    done = await rig.service.job("acme", job.id)
    assert (done.status, done.errors[-1].code) == ("failed", "model_refused")
    assert (done.cost.prompt_tokens, done.cost.completion_tokens) == (2 * 1117, 2 * 246)


async def test_cancelling(rig: Rig, fake_openai: FakeOpenAI) -> None:
    queued = await rig.ask("summary")
    cancelled = await rig.service.cancel("acme", queued.id)
    assert cancelled.status == "cancelled"
    assert (await rig.types(queued.id))[-1] == "job.cancelled.v1"
    assert (await rig.events(queued.id))[-1]["data"]["reason"] == "requested"
    with pytest.raises(Conflict):
        await rig.service.cancel("acme", queued.id)
    await rig.runner().run("acme", queued.id)
    assert (await rig.service.job("acme", queued.id)).status == "cancelled"

    rig.service.settings = rig.settings = AiSettings(**rig.settings.model_dump() | llm(fake_openai))
    fake_openai.script(Reply(content=json.dumps({"summary": "S", "key_points": ["k"]}),
                             delay_s=1.0))
    running = await rig.ask("summary", instructions="slowly")
    task = asyncio.create_task(rig.runner().run("acme", running.id))
    await running_now(rig, running.id)
    asked = await rig.service.cancel("acme", running.id)
    assert (asked.status, asked.cancel_requested) == ("running", True)
    await task
    done = await rig.service.job("acme", running.id)
    assert (done.status, done.result) == ("cancelled", None)
    assert (await rig.types(running.id))[-1] == "job.cancelled.v1"


class StopsAfterTheAnswer(JobRunner):
    """A runner whose job is cancelled, or taken by another worker, once the model answered:
    just before the step that says the answer is valid."""

    def __init__(self, rig: Rig, stop: str) -> None:
        super().__init__(rig.service, rig.media, rig.settings, "worker-a", links=rig.links)
        self.rig, self.how = rig, stop

    async def _progress(self, job: Job, progress: int, step: str) -> None:
        if progress == 90:
            if self.how == "cancel":
                await self.rig.service.cancel(job.tenant, job.id)
            else:
                await hold(self.rig, job, "worker-b", 60)
        await super()._progress(job, progress, step)


@pytest.mark.parametrize(("stop", "status"), [("cancel", "cancelled"), ("lose", "running")])
async def test_a_text_job_s_spend_is_kept_when_it_stops_after_the_answer(
        rig: Rig, fake_openai: FakeOpenAI, stop: str, status: str) -> None:
    rig.service.settings = rig.settings = AiSettings(**rig.settings.model_dump() | llm(
        fake_openai, price_input_per_mtok=1.0, price_output_per_mtok=2.0))
    job = await rig.ask("summary")
    await StopsAfterTheAnswer(rig, stop).run("acme", job.id)
    done = await rig.service.job("acme", job.id)
    assert (done.status, done.result) == (status, None)
    assert (done.cost.prompt_tokens, done.cost.completion_tokens) == (1117, 246)
    assert done.cost.usd == pytest.approx((1117 * 1.0 + 246 * 2.0) / 1e6)
    view = await rig.service.config_view("acme")
    assert view.spent_this_month_usd == pytest.approx(done.cost.usd, abs=1e-6)


async def running_now(rig: Rig, job_id: str) -> None:
    async def running() -> bool:
        return (await rig.service.job("acme", job_id)).status == "running"

    await eventually(running, timeout_s=10, interval_s=0.02, what="the job to start")


async def hold(rig: Rig, job: Job, owner: str, seconds: float) -> Job:
    """Makes `owner` the job's runner, as if it had claimed it (a lease `seconds` long): like a
    claim, it reads the job again when a running worker changed it in between."""
    for _ in range(20):
        current = await rig.service.job(job.tenant, job.id)
        held = current.update(status="running", attempts=current.attempts + 1,
                              lease=Lease(owner=owner, expires_at=now() + timedelta(seconds=seconds)))
        if await rig.store.replace(held, current.rev, []):
            return held
    raise AssertionError(f"{owner} could not take job {job.id}")


async def test_a_job_whose_worker_died_is_taken_over(rig: Rig) -> None:
    job = await rig.ask("summary")
    await hold(rig, job, "worker-dead", 30)
    runner = rig.runner("worker-b")
    await runner.run("acme", job.id)
    assert await runner.sweep() == 0
    assert (await rig.service.job("acme", job.id)).status == "running", "a live lease is kept"

    await hold(rig, job, "worker-dead", -1)  # its lease lapsed
    assert await runner.sweep() == 1
    await runner.idle()
    done = await rig.service.job("acme", job.id)
    assert (done.status, done.attempts) == ("succeeded", 3)


async def test_a_worker_that_lost_its_lease_writes_nothing(rig: Rig,
                                                           fake_openai: FakeOpenAI) -> None:
    rig.service.settings = rig.settings = AiSettings(**rig.settings.model_dump() | llm(fake_openai))
    fake_openai.script(Reply(content=json.dumps({"summary": "S", "key_points": ["k"]}),
                             delay_s=1.5))
    job = await rig.ask("summary")
    task = asyncio.create_task(rig.runner("worker-a").run("acme", job.id))
    await running_now(rig, job.id)
    stolen = await hold(rig, job, "worker-b", 60)
    await asyncio.wait_for(task, 5)
    after = await rig.service.job("acme", job.id)
    assert (after.status, after.lease, after.result) == ("running", stolen.lease, None)


@pytest.mark.ai(lease_s=0.5)
async def test_the_sweeper_runs_jobs_whose_command_never_came(rig: Rig) -> None:
    job = await rig.ask("summary")
    runner = rig.runner()
    assert await runner.sweep() == 0, "a fresh job waits for its command"
    await asyncio.sleep(0.6)
    assert await runner.sweep() == 1
    await runner.idle()
    assert (await rig.service.job("acme", job.id)).status == "succeeded"


@pytest.mark.ai(lease_s=0.5)
async def test_a_job_the_sweeper_runs_is_not_run_again_by_its_command(
        rig: Rig, fake_openai: FakeOpenAI) -> None:
    """The sweeper and the consumer share one lease owner: the command arriving while the
    sweeper runs its job used to claim the job again and run it a second time at once."""
    rig.service.settings = rig.settings = AiSettings(**rig.settings.model_dump() | llm(fake_openai))
    fake_openai.default_delay_s = 1.5
    job = await rig.ask("summary")
    await asyncio.sleep(0.6)  # no command came: the job is the sweeper's
    runner = rig.runner()
    assert await runner.sweep() == 1
    await running_now(rig, job.id)
    await asyncio.wait_for(runner.run("acme", job.id), 10)  # the command, late
    assert not await runner.start("acme", job.id, wait=True)  # the command, by the consumer
    await asyncio.wait_for(runner.idle(), 10)
    done = await rig.service.job("acme", job.id)
    assert (done.status, done.attempts, done.cost.prompt_tokens) == ("succeeded", 1, 1117)
    assert len(fake_openai.requests) == 1
    assert await runner.sweep() == 0


class ToneRenderer:
    """A stand-in for the narration library: writes a small WAV file."""

    async def render(self, job: Job, workdir: Path, progress: Progress,
                     **_: object) -> list[RenderedFile]:
        await progress(50, "speaking")
        path = workdir / "narration.wav"
        path.write_bytes(b"RIFF" + b"\x00" * 4000)
        return [RenderedFile(path, "narration.wav", "audio", "audio/wav", 1.5)]


async def test_a_media_job_stores_its_outputs(rig: Rig) -> None:
    job = await rig.ask("narration")
    await rig.runner(narration=ToneRenderer()).run("acme", job.id)
    done = await rig.service.job("acme", job.id)
    assert done.status == "succeeded", done.errors
    assert isinstance(done.result, MediaResult)
    [out] = done.result.outputs
    assert (out.kind, out.content_type, out.bytes, out.duration_s) == ("audio", "audio/wav",
                                                                       4004, 1.5)
    assert out.url == f"/v1/tenants/acme/ai/jobs/{job.id}/outputs/narration.wav"
    got = b"".join([chunk async for chunk in rig.media.read("acme", out.file_id)])
    assert got.startswith(b"RIFF")
    assert len(got) == 4004
    assert [c async for c in rig.media.read("beta", out.file_id)] == []
    completed = [e for e in await rig.events(job.id) if e["type"] == "bloop.ai.job.completed.v1"]
    # the event's url is a signed link to the output, for consumers without credentials
    link = urlsplit(completed[0]["data"]["outputs"][0]["url"])
    assert link.path == link_path("acme", job.id, "narration.wav")
    query = parse_qs(link.query)
    rig.links.check("acme", job.id, "narration.wav", int(query["expires"][0]),
                    query["signature"][0])
    steps = [e["data"]["step"] for e in await rig.events(job.id)
             if e["type"] == "bloop.ai.job.progressed.v1"]
    assert "speaking" in steps


@dataclass(frozen=True)
class Made:
    path: Path
    content_type: str
    duration_s: float
    captions_path: Path


def library_video(script: str, out_dir: Path, *, voice: str | None,
                  on_progress: Callable[[str, float], None]) -> Any:
    """Shaped like `bloop.ai.video.render_lesson_video`: plain progress callbacks, an object
    with the video and its captions."""

    async def render() -> Made:
        for i in range(4):
            on_progress(f"render {i + 1}/4", (i + 1) / 5)
            await asyncio.sleep(0.15)
        (out_dir / "video.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 100)
        (out_dir / "video.vtt").write_text("WEBVTT\n")
        return Made(out_dir / "video.mp4", "video/mp4", 12.5, out_dir / "video.vtt")

    return render()


async def test_the_library_bridge_reports_progress_and_keeps_captions(rig: Rig) -> None:
    job = await rig.ask("narration")
    renderer = LibraryRenderer("video", function=library_video)
    await rig.runner(narration=renderer).run("acme", job.id)
    done = await rig.service.job("acme", job.id)
    assert done.status == "succeeded", done.errors
    assert isinstance(done.result, MediaResult)
    assert [(o.name, o.kind, o.content_type) for o in done.result.outputs] == [
        ("video.mp4", "video", "video/mp4"), ("video.vtt", "subtitles", "text/vtt")]
    steps = [e["data"]["step"] for e in await rig.events(job.id)
             if e["type"] == "bloop.ai.job.progressed.v1"]
    assert "render 4/4" in steps


class VoicesByLanguage:
    name = "fake"
    usd_per_character = 0.0
    spoken: Callable[[int], None] | None = None

    async def voice_for(self, language: str) -> str | None:
        return None if language == "en" else f"voice-{language}"

    async def close(self) -> None:
        return None


async def test_a_media_job_is_spoken_in_the_lessons_language_unless_a_voice_is_asked(
        rig: Rig, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(renderers, "_tts", VoicesByLanguage)
    voices: list[tuple[str | None, str]] = []

    async def narration(text: str, tts: VoicesByLanguage, out_dir: Path, *,
                        voice: str | None, language: str) -> Path:
        voices.append((voice, language))
        (out_dir / "narration.opus").write_bytes(b"OggS" + b"\x00" * 60)
        return out_dir / "narration.opus"

    renderer = LibraryRenderer("narration", function=narration)
    for n, (language, params) in enumerate((("fr", {}), ("fr", {"voice": "mine"}), ("en", {}))):
        lesson = LESSON.model_copy(update={"language": language, "version": 10 + n})
        job, _ = await rig.service.request("acme", "u1", JobRequest(
            kind="narration", lesson_id=lesson.id, params=JobParams(**params)), lesson)
        await rig.runner(narration=renderer).run("acme", job.id)
        assert (await rig.service.job("acme", job.id)).status == "succeeded"
    assert voices == [("voice-fr", "fr"), ("mine", "fr"), (None, "en")]


class HeardTts(VoicesByLanguage):
    """A TTS that keeps what it is asked to say."""

    heard: ClassVar[list[str]] = []

    async def synthesize(self, text: str, voice: str | None = None) -> Speech:
        self.heard.append(text)
        return Speech(wav_bytes(b"\x00\x00" * 160, 16_000), 16_000, 0.01, (), "fake", "v")


async def test_a_code_block_with_a_blank_line_is_one_code_scene_and_never_read_out(
        rig: Rig, monkeypatch: pytest.MonkeyPatch) -> None:
    """The demo lesson "Functions" opens with a code block holding a blank line. Its blocks were
    joined with blank lines and cut again at each one, so the fence came apart: the video read
    `def area(width, height=1):` aloud and showed the code as bullet points."""
    monkeypatch.setattr(renderers, "_tts", HeardTts)
    [functions] = [lesson for lesson in data.LESSONS if lesson.title == "Functions"]
    assert "\n\n" in functions.blocks[0].split("```")[1], "the code block has a blank line"
    lesson = lesson_text({"id": "functions", "version": 1, "course": "py",
                          "title": functions.title, "teaches": list(functions.teaches),
                          "blocks": [{"type": "markdown", "markdown": b}
                                     for b in functions.blocks]})
    scripts: list[VideoScript] = []

    def video(script: VideoScript, out_dir: Path) -> Path:
        scripts.append(script)
        (out_dir / "video.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42")
        return out_dir / "video.mp4"

    async def narration(text: str, tts: HeardTts, out_dir: Path, *, voice: str | None) -> Path:
        await speak(text, tts, voice)
        (out_dir / "narration.opus").write_bytes(b"OggS")
        return out_dir / "narration.opus"

    for n, renderer in enumerate((LibraryRenderer("video", function=video),
                                  LibraryRenderer("narration", function=narration))):
        job, _ = await rig.service.request("acme", "u1", JobRequest(
            kind="narration", lesson_id=lesson.id), lesson, client_key=f"run-{n}")
        await rig.runner(narration=renderer).run("acme", job.id)
        assert (await rig.service.job("acme", job.id)).status == "succeeded"
    [script] = scripts
    codes = [s for s in script.scenes if isinstance(s, CodeScene)]
    assert [c.code.splitlines()[0] for c in codes] == ["def area(width, height=1):",
                                                        'words = ["kiwi", "fig", "banana"]']
    assert "\n\nprint(area(3, 4))" in codes[0].code
    said = [*(s.spoken() for s in script.scenes), *HeardTts.heard]
    shown = [p for s in script.scenes if isinstance(s, KeyPointsScene) for p in s.points]
    for text in [*said, *shown]:
        assert not any(code in text for code in ("area", "python", '"""')), text
    assert "A function that ends without a return statement returns None." in HeardTts.heard[0]


class PricedTts(VoicesByLanguage):
    """A paid voice ($15 a million characters) whose third sentence fails when `fails`."""

    name = "priced"
    usd_per_character = 15e-6
    fails = False

    async def synthesize(self, text: str, voice: str | None = None) -> Speech:
        async def speak(sentence: str) -> bytes:
            if self.fails and sentence.startswith("Third"):
                raise ProviderRejected("the voice refused the request (400)")
            return wav_bytes(b"\x00\x00" * 160, 16_000)

        return await per_sentence(text, speak, provider=self.name, voice=voice or "v",
                                  concurrency=1, spoken=self.spoken)


async def priced_narration(text: str, tts: PricedTts, out_dir: Path, *,
                           voice: str | None) -> Path:
    await speak(text, tts, voice)
    (out_dir / "narration.opus").write_bytes(b"OggS")
    return out_dir / "narration.opus"


@pytest.mark.parametrize("fails", [False, True])
async def test_a_paid_voice_is_counted_in_the_jobs_cost(
        rig: Rig, monkeypatch: pytest.MonkeyPatch, fails: bool) -> None:
    """Narration through a paid voice cost `offline`, $0: the budget never saw speech."""
    monkeypatch.setattr(PricedTts, "fails", fails)
    monkeypatch.setattr(renderers, "_tts", PricedTts)
    text = "First sentence here. Second one follows. Third and last."

    lesson = lesson_text({"id": "l1", "version": 1, "course": "py", "title": "T",
                          "blocks": [{"type": "markdown", "markdown": text}]})
    job, _ = await rig.service.request("acme", "u1", JobRequest(kind="narration",
                                                                lesson_id="l1"), lesson)
    await rig.runner(narration=LibraryRenderer("narration", function=priced_narration)).run(
        "acme", job.id)
    done = await rig.service.job("acme", job.id)
    paid = len("First sentence here.") + len("Second one follows.") + (
        0 if fails else len("Third and last."))
    assert done.status == ("failed" if fails else "succeeded")
    assert (done.cost.provider, done.cost.characters) == ("priced", paid)
    assert done.cost.usd == pytest.approx(paid * 15e-6)


async def own_priced_provider(rig: Rig, fake: FakeOpenAI, budget_usd: float) -> None:
    """The tenant's own provider at $1 / $2 a million tokens: a summary costs $0.001609."""
    rig.service.settings = rig.settings = AiSettings(**rig.settings.model_dump() | {
        "tenant_private_addresses": True, "invalid_output_retries": 3})
    await rig.service.configure("acme", TenantAiConfig.model_validate({
        "base_url": fake.base_url, "api_key": "sk-acme-own", "model": "acme-model",
        "price_input_per_mtok": 1.0, "price_output_per_mtok": 2.0,
        "monthly_budget_usd": budget_usd}))


async def test_jobs_asked_for_before_the_budget_was_spent_stop_before_a_paid_call(
        rig: Rig, fake_openai: FakeOpenAI) -> None:
    """The budget was checked only when a job was asked for: three jobs asked for at once
    all paid for their calls, though the first spent it."""
    await own_priced_provider(rig, fake_openai, budget_usd=0.001)
    jobs = [await rig.ask("summary", instructions=f"take {n}") for n in range(3)]
    for job in jobs:
        await rig.runner().run("acme", job.id)
    done = [await rig.service.job("acme", job.id) for job in jobs]
    assert [d.status for d in done] == ["succeeded", "failed", "failed"]
    assert {d.errors[-1].code for d in done[1:]} == {"ai_budget_exhausted"}
    assert "budget for this month ($0.001) is spent ($0.0016)" in done[1].errors[-1].message
    assert len(fake_openai.requests) == 1
    assert [d.cost.usd for d in done[1:]] == [0, 0]


async def test_a_job_stops_before_the_call_past_its_tenant_s_budget(
        rig: Rig, fake_openai: FakeOpenAI) -> None:
    await own_priced_provider(rig, fake_openai, budget_usd=0.003)
    fake_openai.script(*[Reply(content="not json")] * 4)
    job = await rig.ask("summary")
    await rig.runner().run("acme", job.id)
    done = await rig.service.job("acme", job.id)
    assert (done.status, done.errors[-1].code) == ("failed", "ai_budget_exhausted")
    assert len(fake_openai.requests) == 2, "the second call spent the budget"
    assert done.cost.usd == pytest.approx(2 * 0.001609)


async def test_a_paid_voice_stops_once_the_budget_is_spent(
        rig: Rig, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(renderers, "_tts", PricedTts)
    await rig.service.configure("acme", TenantAiConfig.model_validate(
        {"monthly_budget_usd": 0.0001}))
    text = "First sentence here. Second one follows. Third and last."

    jobs = [(await rig.service.request("acme", "u1", JobRequest(
        kind="narration", lesson_id="l1"), lesson_text({
            "id": "l1", "version": version, "course": "py", "title": title,
            "blocks": [{"type": "markdown", "markdown": text}]})))[0]
        for version, title in ((1, "T"), (2, "T, retitled"))]
    done = []
    for job in jobs:
        await rig.runner(narration=LibraryRenderer("narration", function=priced_narration)).run(
            "acme", job.id)
        done.append(await rig.service.job("acme", job.id))
    assert [d.status for d in done] == ["succeeded", "failed"]
    assert done[1].errors[-1].code == "ai_budget_exhausted"
    assert (done[0].cost.characters, done[1].cost.characters) == (len(text) - 2, 0)


async def test_cancelling_stops_a_render_at_its_next_progress_report(rig: Rig) -> None:
    job = await rig.ask("narration")
    renderer = LibraryRenderer("video", function=library_video)
    task = asyncio.create_task(rig.runner(narration=renderer).run("acme", job.id))
    await running_now(rig, job.id)
    await rig.service.cancel("acme", job.id)
    await asyncio.wait_for(task, 5)
    done = await rig.service.job("acme", job.id)
    assert (done.status, done.result) == ("cancelled", None)
    steps = [e["data"]["step"] for e in await rig.events(job.id)
             if e["type"] == "bloop.ai.job.progressed.v1"]
    assert "render 4/4" not in steps, "the render stopped early"


async def test_a_cancel_while_outputs_are_stored_ends_the_job_cancelled(
        rig: Rig, monkeypatch: pytest.MonkeyPatch) -> None:
    job = await rig.ask("narration")
    put = rig.media.put
    stored: list[str] = []

    async def cancelled_meanwhile(tenant: str, job_id: str, name: str, content_type: str,
                                  path: Path) -> StoredFile:
        asked = await rig.service.cancel(tenant, job_id)
        assert (asked.status, asked.cancel_requested) == ("running", True)
        file = await put(tenant, job_id, name, content_type, path)
        stored.append(file.file_id)
        return file

    monkeypatch.setattr(rig.media, "put", cancelled_meanwhile)
    await rig.runner(narration=ToneRenderer()).run("acme", job.id)
    done = await rig.service.job("acme", job.id)
    assert (done.status, done.result) == ("cancelled", None)
    types = await rig.types(job.id)
    assert types[-1] == "job.cancelled.v1"
    assert "job.completed.v1" not in types
    assert stored
    assert [await rig.media.info("acme", f) for f in stored] == [None], "its file is removed"


class TwoFiles:
    """A render of two files (a narration and its captions)."""

    async def render(self, job: Job, workdir: Path, progress: Progress,
                     **_: object) -> list[RenderedFile]:
        (workdir / "narration.wav").write_bytes(b"RIFF" + b"\x00" * 400)
        (workdir / "narration.vtt").write_text("WEBVTT\n")
        return [RenderedFile(workdir / "narration.wav", "narration.wav", "audio", "audio/wav"),
                RenderedFile(workdir / "narration.vtt", "narration.vtt", "subtitles",
                             "text/vtt")]


async def test_a_cancel_that_stops_the_storing_of_outputs_removes_those_stored(
        rig: Rig, monkeypatch: pytest.MonkeyPatch) -> None:
    """The watcher stopped the work between two files: the first stayed, named by no job."""
    job = await rig.ask("narration")
    put = rig.media.put
    stored: list[str] = []
    first = asyncio.Event()

    async def stuck_after_one(tenant: str, job_id: str, name: str, content_type: str,
                              path: Path) -> StoredFile:
        if stored:
            await asyncio.Event().wait()  # stopped here by the cancel
        file = await put(tenant, job_id, name, content_type, path)
        stored.append(file.file_id)
        first.set()
        return file

    monkeypatch.setattr(rig.media, "put", stuck_after_one)
    task = asyncio.create_task(rig.runner(narration=TwoFiles()).run("acme", job.id))
    await asyncio.wait_for(first.wait(), 10)
    await rig.service.cancel("acme", job.id)
    await asyncio.wait_for(task, 10)
    done = await rig.service.job("acme", job.id)
    assert (done.status, done.result) == ("cancelled", None)
    assert [await rig.media.info("acme", f) for f in stored] == [None], "its file is removed"


def lesson_deleted(lesson_id: str = LESSON.id) -> Envelope:
    return type_of(LessonDeleted).envelope(LessonDeleted(
        lesson_id=lesson_id, course_id="py", lesson_version=4, deleted_at=now()),
        tenant="acme", subject=lesson_id)


def deletion_consumer(rig: Rig) -> Handler:
    retention = OutputRetention(rig.service, rig.media, 3600)
    return {s.group: s for s in consumers.subscriptions(rig.service, retention)}[
        "ai-worker.lessons"].handler


async def test_a_job_stored_after_its_lesson_s_deletion_was_handled_ends_before_paying(
        rig: Rig, fake_openai: FakeOpenAI, monkeypatch: pytest.MonkeyPatch) -> None:
    """The request read the lesson, content deleted it, and the deletion's consumer looked for
    the lesson's jobs before the job was stored: it found none, and the job ran and paid."""
    await own_priced_provider(rig, fake_openai, budget_usd=100.0)
    consume = deletion_consumer(rig)
    create = rig.store.create

    async def deleted_meanwhile(job: Job, events: list[Envelope], *,
                                limit: JobLimit | None = None) -> tuple[Job, bool]:
        await consume(lesson_deleted())
        return await create(job, events, limit=limit)

    monkeypatch.setattr(rig.store, "create", deleted_meanwhile)
    job = await rig.ask("summary")
    monkeypatch.setattr(rig.store, "create", create)
    assert job.status == "queued"
    await rig.runner().run("acme", job.id)
    done = await rig.service.job("acme", job.id)
    assert (done.status, done.cancel_reason, done.result) == ("cancelled", "lesson_deleted",
                                                              None)
    assert fake_openai.requests == [], "no paid call"
    assert done.cost.usd == 0
    assert (await rig.events(job.id))[-1]["data"]["reason"] == "lesson_deleted"


async def test_a_job_asked_for_after_its_lesson_s_deletion_is_refused(rig: Rig) -> None:
    """Content, or a cache of it, still showed the lesson to the request: a job was stored."""
    await deletion_consumer(rig)(lesson_deleted())
    with pytest.raises(Problem) as refused:
        await rig.ask("summary")
    assert (refused.value.status, refused.value.code) == (404, "lesson_gone")
    assert (await rig.store.list_jobs("acme")).items == []
    assert await rig.store.outbox.pending(10) == []
    other = await rig.service.request("acme", "u1", JobRequest(
        kind="summary", lesson_id="lesson-2"), LESSON.model_copy(update={"id": "lesson-2"}))
    assert other[1], "another lesson's jobs are asked for as before"


async def test_a_job_stops_before_the_paid_call_after_its_lesson_s_deletion(
        rig: Rig, monkeypatch: pytest.MonkeyPatch) -> None:
    """Checked before each paid call as the budget is: a voice's second passage is not paid."""
    monkeypatch.setattr(renderers, "_tts", PricedTts)
    job = await rig.ask("narration")

    async def narration(text: str, tts: PricedTts, out_dir: Path, *,
                        voice: str | None) -> Path:
        await speak("First passage here.", tts, voice)
        await rig.store.lesson_deleted("acme", LESSON.id, now())  # the consumer's first write
        await speak("Second passage, never paid.", tts, voice)
        raise AssertionError("not reached")

    await rig.runner(narration=LibraryRenderer("narration", function=narration)).run(
        "acme", job.id)
    done = await rig.service.job("acme", job.id)
    assert (done.status, done.cancel_reason) == ("cancelled", "lesson_deleted")
    assert done.cost.characters == len("First passage here."), "the first passage alone"


async def test_a_tenant_admin_s_base_url_inside_the_network_is_refused(
        rig: Rig, fake_openai: FakeOpenAI) -> None:
    """Any address was taken, so a tenant admin could have the worker send requests to this
    machine or the private network (its status codes and timings told what answered)."""
    own = TenantAiConfig.model_validate({"base_url": fake_openai.base_url, "api_key": "sk-x"})
    for address in (fake_openai.base_url, "http://10.1.2.3/v1", "https://169.254.169.254/v1",
                    "http://localhost:11434/v1", "http://[::1]:8000/v1"):
        with pytest.raises(Problem) as refused:
            await rig.service.configure("acme", own.model_copy(update={"base_url": address}))
        assert refused.value.code == "private_address"
    with pytest.raises(Problem) as refused:  # a name that resolves nowhere is no private address
        await rig.service.configure("acme", own.model_copy(
            update={"base_url": "https://llm.invalid/v1"}))
    assert (refused.value.status, refused.value.code) == (422, "host_unresolved")
    assert await rig.service.store.get_config("acme") is None
    await rig.service.store.put_config("acme", own)  # stored before the check
    job = await rig.ask("summary")
    await rig.runner().run("acme", job.id)
    failed = await rig.service.job("acme", job.id)
    assert failed.status == "failed"
    assert "private network" in failed.errors[-1].message
    assert fake_openai.requests == []


async def test_a_tenant_s_own_provider_key_model_and_prices(rig: Rig,
                                                           fake_openai: FakeOpenAI) -> None:
    rig.service.settings = AiSettings(**rig.settings.model_dump() | {
        "tenant_private_addresses": True})  # the fake provider runs on this machine
    await rig.service.configure("acme", TenantAiConfig.model_validate({
        "base_url": fake_openai.base_url, "api_key": "sk-acme-own", "model": "acme-model",
        "price_input_per_mtok": 1.0, "price_output_per_mtok": 2.0}))
    job = await rig.ask("summary")
    await rig.runner().run("acme", job.id)
    done = await rig.service.job("acme", job.id)
    assert done.status == "succeeded", done.errors
    [sent] = fake_openai.requests
    assert sent["model"] == "acme-model"
    assert fake_openai.headers[0]["authorization"] == "Bearer sk-acme-own"
    assert (done.cost.provider, done.cost.prompt_tokens) == ("openai", 1117)
    assert done.cost.usd == pytest.approx((1117 * 1.0 + 246 * 2.0) / 1e6)
    view = await rig.service.config_view("acme")
    assert (view.has_api_key, view.effective_provider) == (True, "openai")
    assert view.spent_this_month_usd == pytest.approx(done.cost.usd, abs=1e-6)

    other, _ = await rig.service.request("beta", "u9", JobRequest(kind="summary",
                                                                  lesson_id=LESSON.id), LESSON)
    await rig.runner().run("beta", other.id)
    theirs = await rig.service.job("beta", other.id)
    assert (theirs.status, theirs.cost.provider) == ("succeeded", "offline")
    assert len(fake_openai.requests) == 1, "another tenant does not use acme's key"


@pytest.mark.ai(max_attempts=2)
async def test_a_provider_timeout_is_retried(rig: Rig, fake_openai: FakeOpenAI) -> None:
    rig.service.settings = rig.settings = AiSettings(
        **rig.settings.model_dump() | llm(fake_openai, llm_timeout_s=0.3))
    fake_openai.script(Reply(content=json.dumps({"summary": "S", "key_points": ["k"]}),
                             delay_s=1.0))
    job = await rig.ask("summary")
    done = await to_the_end(rig.runner(), job.id)
    assert (done.status, done.attempts) == ("succeeded", 2), done.errors
    assert [(e.code, e.transient) for e in done.errors] == [("provider_timeout", True)]


@pytest.mark.ai(max_lesson_chars=200)
async def test_a_lesson_over_the_length_limit_is_refused(rig: Rig) -> None:
    long = LESSON.model_copy(update={"text": "A name refers to a value. " * 10})
    with pytest.raises(Problem) as caught:
        await rig.service.request("acme", "u1", JobRequest(kind="quiz", lesson_id=long.id), long)
    assert (caught.value.status, caught.value.code) == (422, "prompt_too_long")
    short = LESSON.model_copy(update={"text": "A name refers to a value. " * 7})
    with pytest.raises(Problem) as caught:
        await rig.service.request("acme", "u1", JobRequest(
            kind="quiz", lesson_id=short.id, params=JobParams(instructions="x" * 50)), short)
    assert caught.value.code == "prompt_too_long", "the educator's note counts too"
    assert (await rig.store.list_jobs("acme")).items == []


async def test_a_lesson_with_nothing_to_narrate_is_refused(rig: Rig) -> None:
    service = JobService(rig.store, rig.settings, media_kinds=frozenset({"narration", "video"}),
                         narratable=renderers.narratable)
    code_only = LESSON.model_copy(update={"text": "```python\nx = 1\n```\n\n![diagram](d.png)"})
    for kind in ("narration", "video"):
        with pytest.raises(Problem) as caught:
            await service.request("acme", "u1", JobRequest(kind=kind, lesson_id=LESSON.id),
                                  code_only)
        assert (caught.value.status, caught.value.code) == (422, "nothing_to_narrate")
    job, created = await service.request("acme", "u1", JobRequest(kind="narration",
                                                                  lesson_id=LESSON.id), LESSON)
    assert created
    assert job.status == "queued"


async def test_a_deleted_user_s_jobs_are_exported_then_anonymised(rig: Rig) -> None:
    plain = await rig.ask("summary")
    noted = await rig.ask("quiz", instructions="Ask about my dog Rex, as I told the class.")
    await rig.runner().run("acme", plain.id)
    theirs, _ = await rig.service.request("acme", "u2", JobRequest(
        kind="flashcards", lesson_id=LESSON.id), LESSON)
    elsewhere, _ = await rig.service.request("beta", "u1", JobRequest(
        kind="summary", lesson_id=LESSON.id), LESSON)

    exported = await rig.service.personal_data("acme", "u1")
    jobs = exported["jobs_requested"]
    assert isinstance(jobs, list)
    by_id = {j["id"]: j for j in jobs}
    assert set(by_id) == {plain.id, noted.id}
    assert by_id[plain.id]["status"] == "succeeded"
    assert by_id[noted.id]["params"]["instructions"].startswith("Ask about my dog")
    assert "result" not in by_id[plain.id]
    assert "lease" not in by_id[plain.id]
    assert by_id[plain.id]["created_at"].endswith("Z")  # the API's one form of time
    assert json.loads(json.dumps(exported)) == exported

    sub, *_ = consumers.subscriptions(rig.service, OutputRetention(rig.service, rig.media, 60))
    assert (sub.group, sub.topics) == ("ai-worker.users", ("user.events",))
    assert sub.types == frozenset({"bloop.identity.user.deleted.v1"})
    deleted = type_of(UserDeleted).envelope(
        UserDeleted(user_id="u1", deleted_by="admin", deleted_at=now()),
        tenant="acme", subject="u1")
    await sub.handler(deleted)
    await sub.handler(deleted)  # a redelivery changes nothing
    assert await rig.service.personal_data("acme", "u1") == {"jobs_requested": []}
    kept = await rig.service.job("acme", plain.id)
    assert (kept.requested_by, kept.status) == ("deleted-user", "succeeded")
    assert kept.result is not None, "the tenant keeps the material and its cost"
    assert kept.idempotency_key == plain.idempotency_key
    blanked = await rig.service.job("acme", noted.id)
    assert (blanked.requested_by, blanked.params.instructions) == ("deleted-user", "")
    assert "Rex" not in blanked.model_dump_json()
    assert (await rig.service.job("acme", theirs.id)).requested_by == "u2"
    assert (await rig.service.job("beta", elsewhere.id)).requested_by == "u1"

    again, created = await rig.service.request("acme", "u3", JobRequest(
        kind="summary", lesson_id=LESSON.id), LESSON)
    assert (again.id, created) == (plain.id, False), "an anonymised job is still reused"
    asked, created = await rig.service.request("acme", "u3", JobRequest(
        kind="quiz", lesson_id=LESSON.id,
        params=JobParams(instructions="Ask about my dog Rex, as I told the class.")), LESSON)
    assert created
    assert asked.id != noted.id


async def test_a_provider_that_echoes_the_key_leaves_it_nowhere(
        rig: Rig, fake_openai: FakeOpenAI, caplog: pytest.LogCaptureFixture) -> None:
    """An OpenAI-compatible server that echoes the key it was given: its error text was kept
    verbatim in the job's errors (shown to staff), its `failed` event and the data export. Now
    the status and the provider's error type and code stay, the key does not; and the failure
    is logged, once, at WARNING (it was logged at no level)."""
    rig.service.settings = AiSettings(**rig.settings.model_dump() | {
        "tenant_private_addresses": True})  # the fake provider runs on this machine
    key = "acme-model-server-key-7731"
    await rig.service.configure("acme", TenantAiConfig.model_validate({
        "base_url": fake_openai.base_url, "api_key": key}))
    fake_openai.script(ECHOED_KEY)
    job = await rig.ask("summary")
    with caplog.at_level(logging.INFO, logger="bloop.ai.worker"):
        await rig.runner().run("acme", job.id)
    assert fake_openai.headers[0]["authorization"] == f"Bearer {key}"
    done = await rig.service.job("acme", job.id)
    assert done.status == "failed"
    [error] = done.errors
    assert error.code == "provider_rejected"
    assert "401 auth_error/401" in error.message
    assert "Invalid proxy server token passed" in error.message
    failed = (await rig.events(job.id))[-1]
    assert failed["type"] == "bloop.ai.job.failed.v1"
    exported = await rig.service.personal_data("acme", "u1")
    logged = [r for r in caplog.records if r.name == "bloop.ai.worker"]
    for text in (done.model_dump_json(), json.dumps(failed), json.dumps(exported),
                 *(json.dumps(vars(r), default=str) for r in logged)):
        assert key not in text
        assert "7731" not in text
    [line] = [r for r in logged if r.levelno >= logging.WARNING]
    assert (line.levelname, line.getMessage()) == ("WARNING", "AI job failed")
    assert (line.job, line.kind, line.tenant, line.code) == (  # type: ignore[attr-defined]
        job.id, "summary", "acme", "provider_rejected")
    assert "auth_error" in line.error  # type: ignore[attr-defined]


@pytest.mark.ai(max_attempts=2)
async def test_each_failed_job_is_logged_once_at_warning(
        rig: Rig, fake_openai: FakeOpenAI, caplog: pytest.LogCaptureFixture) -> None:
    rig.service.settings = rig.settings = AiSettings(
        **rig.settings.model_dump() | llm(fake_openai, invalid_output_retries=0))
    fake_openai.script(Reply(content="not json"), MASKED_KEY, SERVER_ERROR, SERVER_ERROR)
    jobs = [await rig.ask(kind) for kind in ("flashcards", "quiz", "summary")]
    with caplog.at_level(logging.INFO, logger="bloop.ai.worker"):
        for job in jobs:
            await rig.runner().run("acme", job.id)
            await rig.runner().run("acme", job.id)  # ended: nothing more
    warned = [(r.job, r.kind, r.code) for r in caplog.records  # type: ignore[attr-defined]
              if r.name == "bloop.ai.worker" and r.levelno >= logging.WARNING]
    assert warned == [(jobs[0].id, "flashcards", "invalid_output"),
                      (jobs[1].id, "quiz", "provider_rejected"),
                      (jobs[2].id, "summary", "provider_unavailable")]
    refused = await rig.service.job("acme", jobs[1].id)
    assert "yZ4A" not in refused.errors[-1].message
    assert "401 invalid_request_error/invalid_api_key" in refused.errors[-1].message


async def test_a_base_url_with_a_user_name_or_password_is_refused_and_never_shown(
        rig: Rig, fake_openai: FakeOpenAI) -> None:
    """`http://user:secret@host/v1` was kept and shown back by `GET …/ai/settings` (the key
    beside it is write-only), and every provider call logged it at INFO."""
    rig.service.settings = AiSettings(**rig.settings.model_dump() | {
        "tenant_private_addresses": True})
    with_password = fake_openai.base_url.replace("http://", "http://acme:hunter22@")
    for address in (with_password, fake_openai.base_url.replace("http://", "http://token@")):
        with pytest.raises(Problem) as refused:
            await rig.service.configure("acme", TenantAiConfig.model_validate({
                "base_url": address, "api_key": "k-1234567"}))
        assert (refused.value.status, refused.value.code) == (422, "credentials_in_url")
        assert "hunter22" not in str(refused.value)
        assert "token@" not in str(refused.value)
    assert await rig.service.store.get_config("acme") is None

    await rig.service.store.put_config("acme", TenantAiConfig.model_validate({
        "base_url": with_password, "provider": "openai"}))  # stored before the check
    view = await rig.service.config_view("acme")
    assert view.base_url == fake_openai.base_url.replace("http://", "http://***@")
    job = await rig.ask("summary")
    await rig.runner().run("acme", job.id)
    failed = await rig.service.job("acme", job.id)
    assert (failed.status, failed.errors[-1].code) == ("failed", "provider_rejected")
    assert "user name or password" in failed.errors[-1].message
    assert "hunter22" not in failed.model_dump_json()
    assert fake_openai.requests == [], "nothing was sent with it"

    platform = JobService(rig.store, AiSettings(openai_base_url=with_password))
    assert (await platform.config_view("beta")).base_url == \
        fake_openai.base_url.replace("http://", "http://***@"), "the operator's, masked too"


async def test_scratch_left_by_a_stopped_render_is_swept_and_a_live_one_kept(
        rig: Rig, tmp_path: Path) -> None:
    work = tmp_path / "ai-work"
    left, live, other = work / "bloop-ai-0a1b2c3d-x1", work / "bloop-ai-4e5f6a7b-x2", work / "keep"
    for d in (left / "bloop-manim-q", live, other):
        d.mkdir(parents=True)
    (left / "bloop-manim-q" / "clip.mp4").write_bytes(b"x")
    (live / "scene-000.mp4").write_bytes(b"x")
    hours_ago = time.time() - 7 * 3600
    for p in (left / "bloop-manim-q" / "clip.mp4", left / "bloop-manim-q", left, other):
        os.utime(p, (hours_ago, hours_ago))
    runner = JobRunner(rig.service, rig.media, rig.settings, "w", workdir=work)
    assert await runner.sweep_scratch() == 1
    assert sorted(p.name for p in work.iterdir()) == ["bloop-ai-4e5f6a7b-x2", "keep"]


@pytest.mark.ai(max_attempts=3)
async def test_a_job_waiting_to_retry_leaves_the_worker_free(
        rig: Rig, fake_openai: FakeOpenAI) -> None:
    """A 429 with Retry-After: 90 kept the handler asleep for 90 s, and the jobs behind it (of
    every tenant) waited; the job now waits in the queue and the sweeper takes it up when due."""
    rig.service.settings = rig.settings = AiSettings(**rig.settings.model_dump() | llm(fake_openai))
    fake_openai.script(Reply(429, body=RATE_LIMITED.body, headers={"retry-after": "90"}))
    job = await rig.ask("summary")
    runner = rig.runner()
    await asyncio.wait_for(runner.handle(requested(job)), 10)
    await asyncio.wait_for(runner.idle(), 10)
    waiting = await rig.service.job("acme", job.id)
    assert (waiting.status, waiting.step, waiting.lease) == ("queued", "retrying in 90.0s", None)
    assert waiting.not_before is not None
    assert await runner.sweep() == 0, "not due yet"
    other, _ = await rig.service.request("beta", "u9", JobRequest(
        kind="simplify", lesson_id=LESSON.id), LESSON)
    assert await runner.start("beta", other.id)
    await asyncio.wait_for(runner.idle(), 10)
    assert (await rig.service.job("beta", other.id)).status == "succeeded"
    due = waiting.not_before + timedelta(seconds=1)
    assert (("acme", job.id) in await rig.store.stale(due))


@pytest.mark.ai(max_attempts=3)
@pytest.mark.parametrize(("header", "step"), [
    ("nan", "retrying in 1.0s"), ("-30", "retrying in 0.0s"), ("in a minute", "retrying in 1.0s"),
    ("Wed, 21 Oct 2015 07:28:00 GMT", "retrying in 0.0s")])
async def test_a_retry_after_that_is_no_wait_leaves_the_job_its_own_back_off(
        rig: Rig, fake_openai: FakeOpenAI, header: str, step: str) -> None:
    """`retry-after: nan` left the job running, with no error, until its lease ran out."""
    rig.service.settings = rig.settings = AiSettings(
        **rig.settings.model_dump() | llm(fake_openai) | {"retry_backoff_s": 1.0})
    fake_openai.script(Reply(429, body=RATE_LIMITED.body, headers={"retry-after": header}))
    job = await rig.ask("summary")
    runner = rig.runner()
    await asyncio.wait_for(runner.handle(requested(job)), 10)
    await asyncio.wait_for(runner.idle(), 10)
    waiting = await rig.service.job("acme", job.id)
    assert (waiting.status, waiting.step, waiting.lease) == ("queued", step, None)
    assert [e.code for e in waiting.errors] == ["provider_rate_limited"]


def test_a_retry_after_may_be_an_http_date() -> None:
    in_two_minutes = email.utils.format_datetime(datetime.now(UTC) + timedelta(seconds=120),
                                                 usegmt=True)
    wait = retry_after({"retry-after": in_two_minutes})
    assert wait is not None
    assert 110 < wait <= 120
    assert retry_after({"retry-after-ms": "inf", "retry-after": "7"}) == 7.0


class Gate:
    """A narration renderer that holds each job until `open` is set."""

    def __init__(self) -> None:
        self.open = asyncio.Event()
        self.started: list[str] = []

    async def render(self, job: Job, workdir: Path, progress: Progress,
                     **_: object) -> list[RenderedFile]:
        self.started.append(job.id)
        await self.open.wait()
        return await ToneRenderer().render(job, workdir, progress)


@pytest.mark.ai(jobs_at_once=3, tenant_jobs_at_once=2)
async def test_one_tenant_s_jobs_leave_slots_for_the_others(rig: Rig) -> None:
    """A process ran one job at a time from its commands: a tenant's slow jobs held up every
    other tenant's. It runs several at once now, a tenant's share at most."""
    gate = Gate()
    runner = rig.runner(narration=gate)
    slow = [(await rig.service.request("acme", "u1", JobRequest(
        kind="narration", lesson_id=LESSON.id, params=JobParams(voice=f"v{n}")), LESSON))[0]
        for n in range(3)]
    for job in slow:
        await asyncio.wait_for(runner.handle(requested(job)), 10)
    other, _ = await rig.service.request("beta", "u9", JobRequest(
        kind="summary", lesson_id=LESSON.id), LESSON)
    await asyncio.wait_for(runner.handle(requested(other)), 10)

    async def beta_done() -> bool:
        return (await rig.service.job("beta", other.id)).status == "succeeded"

    await eventually(beta_done, timeout_s=10, interval_s=0.02, what="beta's job to end")
    statuses = [(await rig.service.job("acme", j.id)).status for j in slow]
    assert statuses == ["running", "running", "queued"], "acme's third waits for its share"
    gate.open.set()
    await asyncio.wait_for(runner.idle(), 10)
    assert [(await rig.service.job("acme", j.id)).status for j in slow] == ["succeeded"] * 3


class Gates:
    """A narration renderer that holds each job until its own gate opens."""

    def __init__(self) -> None:
        self.gates: defaultdict[str, asyncio.Event] = defaultdict(asyncio.Event)
        self.started: list[str] = []

    async def render(self, job: Job, workdir: Path, progress: Progress,
                     **_: object) -> list[RenderedFile]:
        self.started.append(job.id)
        await self.gates[job.id].wait()
        return await ToneRenderer().render(job, workdir, progress)


async def narrations(rig: Rig, tenant: str, n: int, at: datetime | None = None) -> list[Job]:
    """`n` narration jobs of the tenant, stored as the service stores them, asked for `at`."""
    jobs = [Job.create(tenant, JobRequest(kind="narration", lesson_id=LESSON.id,
                                          params=JobParams(voice=f"v{i}")),
                       LESSON, "u1", f"key-{i}", max_attempts=3, at=at) for i in range(n)]
    for job in jobs:
        await rig.store.create(job, [])
    return jobs


@pytest.mark.ai(jobs_at_once=4, tenant_jobs_at_once=2)
async def test_a_job_beyond_its_tenant_s_share_starts_when_one_of_the_tenant_s_ends(
        rig: Rig) -> None:
    """It waited for a sweep, which took it up only once it was untouched for a lease's length
    (30 s), though the process had slots free all along."""
    gates = Gates()
    runner = rig.runner(narration=gates)
    jobs = await narrations(rig, "acme", 3)
    for job in jobs:
        await asyncio.wait_for(runner.handle(requested(job)), 10)

    def started(n: int) -> Callable[[], Awaitable[bool]]:
        async def check() -> bool:
            return len(gates.started) >= n

        return check

    await eventually(started(2), timeout_s=10, interval_s=0.02, what="two jobs")
    assert gates.started == [jobs[0].id, jobs[1].id]
    assert (await rig.service.job("acme", jobs[2].id)).status == "queued"
    gates.gates[jobs[0].id].set()
    await eventually(started(3), timeout_s=10, interval_s=0.02, what="the third job")
    assert gates.started[2] == jobs[2].id
    for job in jobs:
        gates.gates[job.id].set()
    await asyncio.wait_for(runner.idle(), 10)
    assert [(await rig.service.job("acme", j.id)).status for j in jobs] == ["succeeded"] * 3


@pytest.mark.ai(jobs_at_once=2, tenant_jobs_at_once=1)
async def test_a_tenant_s_jobs_waiting_for_its_share_start_in_the_order_they_came(
        rig: Rig) -> None:
    """A job asked for while every slot was busy took the first slot that freed, ahead of its
    tenant's older jobs waiting for their share (again and again while more came)."""
    gates = Gates()
    runner = rig.runner(narration=gates)
    first, older, newer = await narrations(rig, "acme", 3)
    [other] = await narrations(rig, "beta", 1)
    for job in (first, older, other):
        await asyncio.wait_for(runner.handle(requested(job)), 10)

    async def started(n: int) -> bool:
        return len(gates.started) >= n

    await eventually(lambda: started(2), timeout_s=10, interval_s=0.02, what="two jobs")
    asked = asyncio.create_task(runner.handle(requested(newer)))  # waits for a slot
    gates.gates[first.id].set()
    await eventually(lambda: started(3), timeout_s=10, interval_s=0.02, what="a third job")
    assert gates.started == [first.id, other.id, older.id]
    await asyncio.wait_for(asked, 10)
    for job in (older, newer, other):
        gates.gates[job.id].set()
    await eventually(lambda: started(4), timeout_s=10, interval_s=0.02, what="the last job")
    await asyncio.wait_for(runner.idle(), 10)
    assert gates.started[3] == newer.id


@pytest.mark.ai(jobs_at_once=4, tenant_jobs_at_once=2)
async def test_a_sweep_takes_up_a_due_retry_behind_another_tenant_s_backlog(rig: Rig) -> None:
    """The sweeper read the 100 jobs untouched longest: one tenant's backlog of over 100 jobs,
    past its share, hid the other tenants' retries until it was worked down."""
    gates = Gates()
    runner = rig.runner(narration=gates)
    backlog = await narrations(rig, "acme", 101, at=now() - timedelta(minutes=5))
    retry, _ = await rig.service.request("beta", "u9", JobRequest(
        kind="summary", lesson_id=LESSON.id), LESSON)
    due = retry.update(attempts=1, not_before=now() - timedelta(seconds=1))
    assert await rig.store.replace(due, retry.rev, [])
    assert await runner.sweep() == 3

    async def retried() -> bool:
        return (await rig.service.job("beta", retry.id)).status == "succeeded"

    await eventually(retried, timeout_s=10, interval_s=0.02, what="beta's retry")
    assert {*gates.started} <= {j.id for j in backlog}, "and acme's share of its backlog"
    await runner.stop()


@pytest.mark.ai(max_attempts=3)
async def test_a_retry_is_started_by_its_worker_when_its_wait_ends(
        rig: Rig, fake_openai: FakeOpenAI) -> None:
    """It waited for a sweep (every 10 s) however short its wait."""
    rig.service.settings = rig.settings = AiSettings(**rig.settings.model_dump() | llm(fake_openai))
    fake_openai.script(Reply(429, body=RATE_LIMITED.body, headers={"retry-after": "1"}))
    job = await rig.ask("summary")
    runner = rig.runner()
    await asyncio.wait_for(runner.handle(requested(job)), 10)

    async def done() -> bool:
        return (await rig.service.job("acme", job.id)).final

    await eventually(done, timeout_s=10, interval_s=0.05, what="the retry")
    ended = await rig.service.job("acme", job.id)
    assert (ended.status, ended.attempts, len(fake_openai.requests)) == ("succeeded", 2, 2)
    await runner.stop()


async def test_a_cancel_stops_a_provider_call_in_flight(rig: Rig, fake_openai: FakeOpenAI) -> None:
    """The job stayed running until the provider's timeout (60 s by default), then queued for
    a retry, and only then cancelled."""
    rig.service.settings = rig.settings = AiSettings(
        **rig.settings.model_dump() | llm(fake_openai, llm_timeout_s=30.0))
    fake_openai.script(Reply(content="{}", delay_s=40.0))
    job = await rig.ask("summary")
    task = asyncio.create_task(rig.runner().run("acme", job.id))
    await asked(fake_openai, 1)
    await rig.service.cancel("acme", job.id)
    await asyncio.wait_for(task, 15)
    done = await rig.service.job("acme", job.id)
    assert (done.status, done.errors, done.attempts) == ("cancelled", [], 1)
    assert "job.progressed.v1" not in (await rig.types(job.id))[-1:]


@pytest.mark.ai(invalid_output_retries=2)
async def test_a_cancel_while_the_model_answers_ends_the_job_cancelled_with_its_spend(
        rig: Rig, fake_openai: FakeOpenAI) -> None:
    """The job went on asking (three paid calls) and ended failed `invalid_output`."""
    rig.service.settings = rig.settings = AiSettings(
        **rig.settings.model_dump() | llm(fake_openai))
    fake_openai.script(Reply(content="Here is a summary."),
                       Reply(content="Here it is again.", delay_s=2.0),
                       Reply(content="And again."))
    job = await rig.ask("summary")
    task = asyncio.create_task(rig.runner().run("acme", job.id))
    await asked(fake_openai, 2)
    await rig.service.cancel("acme", job.id)
    await asyncio.wait_for(task, 15)
    done = await rig.service.job("acme", job.id)
    assert (done.status, len(fake_openai.requests)) == ("cancelled", 2)
    assert done.cost.prompt_tokens == 1117, "the answered call is paid for"


class CancelledAsItFails(JobRunner):
    """A runner whose job is cancelled just as its provider call fails."""

    async def _redacted(self, tenant: str, message: str) -> str:
        if not (await self.service.job(tenant, self.job_id)).cancel_requested:
            await self.service.cancel(tenant, self.job_id)
        return await super()._redacted(tenant, message)

    job_id = ""


@pytest.mark.parametrize(("reply", "code"), [(BAD_KEY, "provider_rejected"),
                                             (SERVER_ERROR, "provider_unavailable")])
async def test_a_job_cancelled_as_it_fails_ends_cancelled(
        rig: Rig, fake_openai: FakeOpenAI, reply: Reply, code: str) -> None:
    """It ended failed, or went back to the queue for a retry, whatever the cancel."""
    rig.service.settings = rig.settings = AiSettings(**rig.settings.model_dump() | llm(fake_openai))
    fake_openai.script(reply)
    job = await rig.ask("summary")
    runner = CancelledAsItFails(rig.service, rig.media, rig.settings, "worker-a", links=rig.links)
    runner.job_id = job.id
    await runner.run("acme", job.id)
    done = await rig.service.job("acme", job.id)
    assert (done.status, [e.code for e in done.errors]) == ("cancelled", [code])
    events = await rig.events(job.id)
    assert events[-1]["type"] == "bloop.ai.job.cancelled.v1"
    assert not [e for e in events if e["data"].get("status") == "queued"
                and e["data"].get("attempt")], "never queued for a retry"


async def asked(fake: FakeOpenAI, n: int) -> None:
    async def sent() -> bool:
        return len(fake.requests) >= n

    await eventually(sent, timeout_s=10, interval_s=0.02, what=f"{n} provider calls")


# A worker stopped cleanly (SIGTERM) puts the jobs it runs back in the queue at once, their lease
# released and the attempt not counted: it left them running until their lease lapsed, and then
# counted the attempt, so that three restarts failed a job that never failed.


@pytest.mark.ai(lease_s=30.0)
async def test_a_stopped_worker_s_job_goes_back_to_the_queue_for_the_next_worker(
        rig: Rig) -> None:
    gate = Gate()
    job = await rig.ask("narration")
    first = rig.runner("worker-a", narration=gate)
    assert await first.start("acme", job.id)
    await running_now(rig, job.id)
    await asyncio.wait_for(first.stop(), 15)

    back = await rig.service.job("acme", job.id)
    assert (back.status, back.attempts, back.lease, back.result) == ("queued", 0, None, None)
    assert (await rig.types(job.id))[-1] == "job.progressed.v1"
    second = rig.runner("worker-b", narration=ToneRenderer())
    assert await second.sweep() == 1, "free at once, not after the 30 s lease"
    await asyncio.wait_for(second.idle(), 15)
    done = await rig.service.job("acme", job.id)
    assert (done.status, done.attempts) == ("succeeded", 1)


@pytest.mark.ai(lease_s=30.0, invalid_output_retries=2)
async def test_the_spend_of_a_stopped_attempt_is_kept(rig: Rig, fake_openai: FakeOpenAI) -> None:
    rig.service.settings = rig.settings = AiSettings(**rig.settings.model_dump() | llm(fake_openai))
    fake_openai.script(Reply(content="Here is a summary."),
                       Reply(content="Here it is again.", delay_s=30.0))
    job = await rig.ask("summary")
    runner = rig.runner()
    assert await runner.start("acme", job.id)
    await asked(fake_openai, 2)
    await asyncio.wait_for(runner.stop(), 15)
    back = await rig.service.job("acme", job.id)
    assert (back.status, back.attempts, back.lease) == ("queued", 0, None)
    assert back.cost.prompt_tokens == 1117, "the answered call is paid for"


@pytest.mark.ai(lease_s=30.0)
async def test_a_cancel_asked_before_the_worker_stops_ends_the_job_cancelled(rig: Rig) -> None:
    job = await rig.ask("narration")
    runner = rig.runner(narration=Gate())
    assert await runner.start("acme", job.id)
    await running_now(rig, job.id)
    asked_to = await rig.service.cancel("acme", job.id)
    assert (asked_to.status, asked_to.cancel_requested) == ("running", True)
    await asyncio.wait_for(runner.stop(), 15)
    done = await rig.service.job("acme", job.id)
    assert (done.status, done.lease) == ("cancelled", None)
    assert (await rig.types(job.id))[-1] == "job.cancelled.v1"


class FinishesAsItStops(JobRunner):
    """A runner whose work ends just as it is asked to stop: it is finishing the job."""

    finishing: asyncio.Event
    go_on: asyncio.Event

    async def _finish_succeeded(self, job: Job, result: JobResult, cost: Cost) -> None:
        self.finishing.set()
        await self.go_on.wait()
        await super()._finish_succeeded(job, result, cost)


@pytest.mark.ai(lease_s=30.0)
async def test_a_job_whose_work_ended_is_finished_not_put_back(rig: Rig) -> None:
    job = await rig.ask("narration")
    runner = FinishesAsItStops(rig.service, rig.media, rig.settings, "worker-a",
                               {"narration": ToneRenderer()}, links=rig.links)
    runner.finishing, runner.go_on = asyncio.Event(), asyncio.Event()
    assert await runner.start("acme", job.id)
    await asyncio.wait_for(runner.finishing.wait(), 15)
    stopping = asyncio.create_task(runner.stop())  # runs before the runner goes on
    runner.go_on.set()
    await asyncio.wait_for(stopping, 15)
    done = await rig.service.job("acme", job.id)
    assert (done.status, done.attempts, done.lease) == ("succeeded", 1, None)
    assert "job.completed.v1" in await rig.types(job.id)


def test_a_voice_is_named_as_providers_name_theirs() -> None:
    for voice in ("fr", "en-us+f3", "alloy", "en-US-JennyNeural", "af_bella+af_sky",
                  "en-US-Ava:DragonHDLatestNeural", "21m00Tcm4TlvDq8ikWAM"):
        assert JobParams(voice=voice).voice == voice
    for voice in ("../../etc/passwd", "gmw/en", "en.US", "-v", "", "en us", "a" * 65):
        with pytest.raises(ValueError, match="a voice is named by"):
            JobParams(voice=voice)
    kept = JobParams.model_validate({"voice": "../x"}, context=STORED)
    assert kept.voice == "../x", "a job kept before the rule still reads"


@pytest.mark.parametrize("language", ["tlh", "zz"])
async def test_a_narration_the_local_voice_cannot_speak_fails_rather_than_speak_english(
        rig: Rig, monkeypatch: pytest.MonkeyPatch, language: str) -> None:
    """Taken where its language could not be checked (no espeak-ng there): the job read the
    Klingon lesson with the English voice and succeeded."""
    require_tools("espeak-ng", "ffmpeg")
    monkeypatch.setenv("BLOOP_TTS_PROVIDER", "local")
    klingon = LESSON.model_copy(update={"language": language})
    job, _ = await rig.service.request("acme", "u1", JobRequest(
        kind="narration", lesson_id=klingon.id), klingon)
    await rig.runner(narration=LibraryRenderer("narration")).run("acme", job.id)
    done = await rig.service.job("acme", job.id)
    assert (done.status, done.result) == ("failed", None)
    [error] = done.errors
    assert (error.code, error.transient) == ("voice_unavailable", False)
    assert f"no voice for the language {language!r}" in error.message


async def test_a_new_media_job_names_the_paid_voice(rig: Rig) -> None:
    """A queued job named no provider ("offline") whatever would be paid for it."""
    paid = JobService(rig.store, rig.settings, media_kinds=frozenset({"narration"}),
                      speech_provider=lambda: "elevenlabs")
    job, _ = await paid.request("acme", "u1", JobRequest(kind="narration", lesson_id=LESSON.id),
                                LESSON)
    assert (job.cost.provider, job.cost.model, job.cost.usd) == ("elevenlabs", "elevenlabs", 0)
    job, _ = await paid.request("acme", "u1", JobRequest(
        kind="narration", lesson_id=LESSON.id, params=JobParams(voice="Rachel")), LESSON)
    assert (job.cost.provider, job.cost.model) == ("elevenlabs", "Rachel")
    local = await rig.ask("narration", voice="en")
    assert (local.cost.provider, local.cost.model) == ("offline", "offline"), "espeak-ng is free"


def failing_tool(folder: Path, said: str) -> str:
    """A stand-in for espeak-ng or ffmpeg that says `said` on stderr and fails."""
    path = folder / "tool"
    path.write_text(f"#!/bin/sh\necho '{said}' >&2\nexit 1\n")
    path.chmod(0o755)
    return str(path)


LEAKED = "Bad voice attribute: root:x:0:0:root:/root:/bin/bash"


async def test_a_kept_job_whose_voice_is_a_path_fails_without_reading_the_file(
        rig: Rig, monkeypatch: pytest.MonkeyPatch) -> None:
    """A job asked for before voices were checked, with `../../../../../etc/passwd` for its
    voice: espeak-ng read /etc/passwd as a voice, and its complaints about each line (the
    file) were the job's error, shown to the educator."""
    require_tools("espeak-ng", "ffmpeg")
    monkeypatch.setenv("BLOOP_TTS_PROVIDER", "local")
    job = await rig.ask("narration", voice="en")
    traversal = JobParams.model_validate({"voice": "../../../../../etc/passwd"}, context=STORED)
    await rig.service.mutate("acme", job.id, lambda j: (j.update(params=traversal), []))
    await rig.runner(narration=LibraryRenderer("narration")).run("acme", job.id)
    done = await rig.service.job("acme", job.id)
    assert done.status == "failed"
    [error] = done.errors
    assert "root:" not in error.message, error.message
    assert "passwd" not in error.message, error.message
    assert error.code == "voice_unavailable"


async def test_a_media_tools_own_message_goes_to_the_log_and_never_to_the_job(
        rig: Rig, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(renderers, "_tts", HeardTts)
    monkeypatch.setattr(ffmpeg_module, "require_tool", lambda name: failing_tool(tmp_path, LEAKED))
    job = await rig.ask("narration")
    with caplog.at_level(logging.WARNING, "bloop.ai.media"):
        await rig.runner(narration=LibraryRenderer("narration")).run("acme", job.id)
    done = await rig.service.job("acme", job.id)
    assert done.status == "failed"
    [error] = done.errors
    assert error.code == "media_failed"
    assert error.message == ("ffmpeg could not encode the narration as opus (exit status 1; the "
                             "server's log has its message)")
    assert any(LEAKED in str(getattr(r, "stderr", "")) for r in caplog.records), "logged"
