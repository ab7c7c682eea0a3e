"""What becomes of the files jobs make: a deleted lesson's jobs are cancelled and their files
removed (content's `lesson.deleted`, which a course's deletion sends for each of its lessons),
and a finished job's files are removed once `BLOOP_AI_OUTPUTS_KEEP_S` old; the outputs then
answer 404 `output_expired`. On the embedded stores; the store's part runs against both
adapters in tests/contract/test_ai_job_store.py."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest

from bloop.ai.jobs import consumers
from bloop.ai.jobs.model import Job, JobRequest, MediaResult, now
from bloop.ai.jobs.outputs import JobOutputs
from bloop.ai.jobs.ports import MediaRenderer, Progress, RenderedFile
from bloop.ai.jobs.retention import OutputRetention
from bloop.ai.jobs.service import JobService
from bloop.ai.jobs.stores.embedded import EmbeddedJobStore, FileMediaStore
from bloop.ai.jobs.worker import JobRunner
from bloop.ai.text.model import LessonText
from bloop.platform.content.events import AiMediaNotAttached, LessonDeleted, UnattachedOutput
from bloop.platform.kit.errors import NotFound
from bloop.platform.kit.events.envelope import Envelope
from bloop.platform.kit.events.types import registry, type_of
from bloop.platform.kit.settings import AiSettings
from bloop.platform.kit.sqlite import SqliteDB

LESSON = LessonText(id="lesson-1", version=3, course="py", title="Names",
                    text="A name refers to a value. Two names can refer to one object.")
OTHER = LESSON.model_copy(update={"id": "lesson-2"})


class Tone:
    """Writes a small WAV file."""

    async def render(self, job: Job, workdir: Path, progress: Progress,
                     **_: object) -> list[RenderedFile]:
        path = workdir / "narration.wav"
        path.write_bytes(b"RIFF" + b"\x00" * 400)
        return [RenderedFile(path, "narration.wav", "audio", "audio/wav", 1.0)]


class Endless:
    """A render that goes on until it is stopped (a paid provider still speaking)."""

    def __init__(self) -> None:
        self.started = asyncio.Event()

    async def render(self, job: Job, workdir: Path, progress: Progress,
                     **_: object) -> list[RenderedFile]:
        await progress(10, "speaking")
        self.started.set()
        await asyncio.Event().wait()
        raise AssertionError("never reached")


@dataclass
class Rig:
    service: JobService
    media: FileMediaStore
    settings: AiSettings
    retention: OutputRetention

    def runner(self, **renderers: MediaRenderer) -> JobRunner:
        return JobRunner(self.service, self.media, self.settings, "worker-a", renderers)

    async def narration(self, lesson: LessonText = LESSON, key: str | None = None) -> Job:
        job, created = await self.service.request(
            "acme", "u1", JobRequest(kind="narration", lesson_id=lesson.id), lesson, key)
        assert created
        return job

    async def finished(self, lesson: LessonText = LESSON, key: str | None = None) -> Job:
        job = await self.narration(lesson, key)
        await self.runner(narration=Tone()).run("acme", job.id)
        done = await self.service.job("acme", job.id)
        assert done.status == "succeeded", done.errors
        return done


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    settings = AiSettings(lease_s=0.6, outputs_keep_s=3600)
    db = SqliteDB(tmp_path / "ai.sqlite3")
    store = EmbeddedJobStore(db, registry)
    await store.setup()
    media = FileMediaStore(tmp_path / "media")
    await media.setup()
    service = JobService(store, settings, media_kinds=frozenset({"narration"}))
    yield Rig(service, media, settings, OutputRetention(service, media, settings.keep_outputs_s))
    await db.close()


def file_ids(job: Job) -> list[str]:
    assert isinstance(job.result, MediaResult)
    return [o.file_id for o in job.result.outputs]


def lesson_deleted(lesson_id: str) -> Envelope:
    return type_of(LessonDeleted).envelope(LessonDeleted(
        lesson_id=lesson_id, course_id="py", lesson_version=4, deleted_at=now()),
        tenant="acme", subject=lesson_id)


async def test_a_lesson_deleted_while_its_job_runs_cancels_it_and_removes_its_files(
        rig: Rig) -> None:
    finished = await rig.finished()
    queued = await rig.narration(key="queued")
    elsewhere = await rig.finished(OTHER)
    running = await rig.narration(key="running")
    endless = Endless()
    task = asyncio.create_task(rig.runner(narration=endless).run("acme", running.id))
    await asyncio.wait_for(endless.started.wait(), 10)

    subs = {s.group: s for s in consumers.subscriptions(rig.service, rig.retention)}
    sub = subs["ai-worker.lessons"]
    assert (sub.topics, sub.types) == (("content.events",),
                                       frozenset({"bloop.content.lesson.deleted.v1"}))
    await sub.handler(lesson_deleted(LESSON.id))
    await asyncio.wait_for(task, 10)  # the watcher stopped the render
    await sub.handler(lesson_deleted(LESSON.id))  # a redelivery changes nothing

    stopped = await rig.service.job("acme", running.id)
    assert (stopped.status, stopped.cancel_reason, stopped.result) == (
        "cancelled", "lesson_deleted", None)
    dropped = await rig.service.job("acme", queued.id)
    assert (dropped.status, dropped.cancel_reason) == ("cancelled", "lesson_deleted")
    gone = await rig.service.job("acme", finished.id)
    assert gone.status == "succeeded", "a job that ended keeps its state and cost"
    assert gone.outputs_removed_at is not None
    assert [await rig.media.info("acme", f) for f in file_ids(finished)] == [None]
    kept = await rig.service.job("acme", elsewhere.id)
    assert kept.outputs_removed_at is None
    assert [await rig.media.info("acme", f) for f in file_ids(kept)] != [None]

    with pytest.raises(NotFound) as refused:
        await JobOutputs(rig.service, rig.media).file("acme", finished.id, "narration.wav")
    assert refused.value.code == "output_expired"
    assert "1 hour" in refused.value.detail


def not_attached(job: Job, code: str) -> Envelope:
    return type_of(AiMediaNotAttached).envelope(AiMediaNotAttached(
        job_id=job.id, lesson_id=LESSON.id, refused_at=now(), outputs=[UnattachedOutput(
            name="narration.wav", kind="audio", code=code, detail="not attached")]),
        tenant="acme", subject=job.id)


async def test_a_job_asked_for_as_its_lesson_is_deleted_loses_its_files_when_content_says_so(
        rig: Rig) -> None:
    subs = {s.group: s for s in consumers.subscriptions(rig.service, rig.retention)}
    # The job ended before the AI service heard of the deletion (its consumer behind).
    late = await rig.finished(key="late")
    refused = await rig.finished(key="refused")

    await subs["ai-worker.content"].handler(not_attached(refused, "too_large"))
    await subs["ai-worker.content"].handler(not_attached(late, "lesson_gone"))
    await subs["ai-worker.content"].handler(not_attached(late, "lesson_gone"))  # redelivered

    gone = await rig.service.job("acme", late.id)
    assert [n.code for n in gone.not_attached] == ["lesson_gone"]
    assert gone.outputs_removed_at is not None
    assert [await rig.media.info("acme", f) for f in file_ids(late)] == [None]
    kept = await rig.service.job("acme", refused.id)
    assert kept.outputs_removed_at is None, "its lesson is there: its files stay downloadable"
    assert [await rig.media.info("acme", f) for f in file_ids(kept)] != [None]


async def test_a_cancel_asked_first_keeps_its_reason(rig: Rig) -> None:
    running = await rig.narration()
    endless = Endless()
    task = asyncio.create_task(rig.runner(narration=endless).run("acme", running.id))
    await asyncio.wait_for(endless.started.wait(), 10)
    await rig.service.cancel("acme", running.id)
    await rig.retention.lesson_deleted("acme", LESSON.id)
    await asyncio.wait_for(task, 10)
    done = await rig.service.job("acme", running.id)
    assert (done.status, done.cancel_reason) == ("cancelled", "requested")


async def test_old_outputs_are_removed_and_younger_ones_kept(rig: Rig) -> None:
    old = await rig.finished(key="old")
    young = await rig.finished(key="young")
    text, _ = await rig.service.request("acme", "u1", JobRequest(
        kind="summary", lesson_id=LESSON.id), LESSON)
    await rig.runner().run("acme", text.id)
    assert await rig.retention.sweep() == 0, "nothing is an hour old yet"

    hours_ago = now() - timedelta(hours=2)
    await rig.service.mutate("acme", old.id, lambda j: (j.update(finished_at=hours_ago), []))
    assert await rig.retention.sweep() == 1
    assert await rig.retention.sweep() == 0, "done once"
    assert [await rig.media.info("acme", f) for f in file_ids(old)] == [None]
    assert [await rig.media.info("acme", f) for f in file_ids(young)] != [None]
    assert (await rig.service.job("acme", old.id)).outputs_removed_at is not None
    assert (await rig.service.job("acme", young.id)).outputs_removed_at is None

    # The same request again makes a new job: the old one has no files left to give.
    again, created = await rig.service.request("acme", "u1", JobRequest(
        kind="narration", lesson_id=LESSON.id), LESSON)
    assert created
    assert again.id != old.id


async def test_the_sweep_goes_in_chunks(rig: Rig) -> None:
    jobs = [await rig.finished(key=f"k{i}") for i in range(5)]
    hours_ago = now() - timedelta(hours=2)
    for job in jobs:
        await rig.service.mutate("acme", job.id, lambda j: (j.update(finished_at=hours_ago), []))
    assert [await rig.retention.sweep(limit=2) for _ in range(4)] == [2, 2, 1, 0]
    for job in jobs:
        assert (await rig.service.job("acme", job.id)).outputs_removed_at is not None

