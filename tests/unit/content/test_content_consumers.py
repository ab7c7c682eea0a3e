"""content's consumers against embedded stores: a finished AI job's audio and video land in the
lesson's draft (once, however often the event comes), and content's own events drop the
cached learner's JSON."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from fastapi import FastAPI

from bloop.ai.jobs.events import JobCompleted, OutputRef
from bloop.ai.jobs.stores.embedded import FileMediaStore as AiFiles
from bloop.platform.content.consumers import (
    AI_MEDIA_GROUP,
    CACHE_GROUP,
    ai_media_subscription,
    cache_group,
    subscriptions,
)
from bloop.platform.content.events import AiMediaNotAttached, LessonUpdated
from bloop.platform.content.media.service import MediaService
from bloop.platform.content.media.settings import MediaSettings
from bloop.platform.content.media.stores.files import FileMediaStore
from bloop.platform.content.model import (
    AudioBlock,
    LessonEdit,
    MarkdownBlock,
    NewCourse,
    NewLesson,
    VideoBlock,
    made_from,
)
from bloop.platform.content.service import ContentService, cache_key
from bloop.platform.content.stores.embedded import EmbeddedContentStore
from bloop.platform.identity.events import UserDeleted
from bloop.platform.kit.errors import Problem
from bloop.platform.kit.events.bus.embedded import EmbeddedEventBus
from bloop.platform.kit.events.bus.port import Message, Subscription
from bloop.platform.kit.events.envelope import Envelope, parse_envelope
from bloop.platform.kit.events.types import EventType, registry, type_of
from bloop.platform.kit.sqlite import SqliteDB
from tests.support import embedded_app, eventually, finished_ai_video, member
from tests.unit.content import media_samples

AT = "2025-01-02T03:04:05Z"


@dataclass
class World:
    content: ContentService
    media: MediaService
    ai: AiFiles
    attach: Subscription
    tmp: Path


class AiFilesOutputs:
    """Content's port to the AI service's outputs, over the AI file store these tests fill (the
    real adapters, in process and over HTTP, are tested in tests/unit/ai/test_ai_api.py)."""

    def __init__(self, files: AiFiles) -> None:
        self.files = files

    def read(self, tenant: str, job_id: str, output: OutputRef) -> AsyncIterator[bytes]:
        return self.files.read(tenant, output.file_id)


async def nothing_published(tenant: str) -> set[str]:
    return set()


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    db = SqliteDB(tmp_path / "content.sqlite3")
    store = EmbeddedContentStore(db, registry)
    await store.setup()
    content = ContentService(store)
    media = MediaService(FileMediaStore(db, tmp_path / "media"), MediaSettings(),
                         tmp_path / "spool", nothing_published)
    await media.setup()
    ai = AiFiles(tmp_path / "ai-media")
    await ai.setup()
    yield World(content, media, ai, ai_media_subscription(content, media, AiFilesOutputs(ai)),
                tmp_path)
    await db.close()


def checked(et: EventType[Any], envelope: Envelope) -> Envelope:
    """`envelope` as a consumer receives it, after checking it against its committed schema."""
    assert envelope.type == et.type_id
    jsonschema.validate(envelope.data, json.loads(et.schema_path.read_text()))
    return parse_envelope(envelope.to_bytes())


async def output(world: World, tenant: str, job_id: str, name: str, kind: str,
                 data: bytes, content_type: str) -> OutputRef:
    path = world.tmp / name
    path.write_bytes(data)
    stored = await world.ai.put(tenant, job_id, name, content_type, path)
    return OutputRef(name=name, kind=kind, content_type=content_type,
                     url=f"/v1/tenants/{tenant}/ai/jobs/{job_id}/outputs/{name}",
                     file_id=stored.file_id, bytes=stored.length, duration_s=1.5)


def completed(tenant: str, job_id: str, lesson_id: str, outputs: list[OutputRef],
              kind: str = "video", source: str | None = None) -> Envelope:
    return checked(type_of(JobCompleted), type_of(JobCompleted).envelope(JobCompleted(
        job_id=job_id, kind=kind, lesson_id=lesson_id, lesson_version=1, course_id="py",
        requested_by="teacher-1", outputs=outputs, result_url=f"/jobs/{job_id}",
        cost_usd=0.25, finished_at=AT, made_from=source), tenant=tenant, subject=job_id))


LOOPS = made_from("Loops", "Loops repeat.", "en")  # what a job of `lesson_in`'s lesson read


async def lesson_in(world: World, tenant: str = "acme") -> str:
    await world.content.create_course(tenant, NewCourse(id="py", title="Python"))
    lesson = await world.content.add_lesson(tenant, "py", NewLesson(
        title="Loops", blocks=[MarkdownBlock(markdown="Loops repeat.")]))
    await world.content.publish(tenant, "py")
    return lesson.id


async def test_a_finished_video_job_lands_in_the_draft_once(world: World) -> None:
    lesson_id = await lesson_in(world)
    outputs = [await output(world, "acme", "job1", "lesson.mp4", "video", media_samples.mp4(256),
                            "video/mp4"),
               await output(world, "acme", "job1", "narration.wav", "audio",
                            media_samples.wav(), "audio/wav"),
               await output(world, "acme", "job1", "lesson.vtt", "subtitles",
                            b"WEBVTT\n\n00:00.000 --> 00:01.000\nHi\n", "text/vtt")]
    event = completed("acme", "job1", lesson_id, outputs)
    await world.content.repo.outbox.mark_sent(await world.content.repo.outbox.pending(100))

    assert world.attach.group == AI_MEDIA_GROUP
    assert world.attach.topics == ("video.events",)
    assert type_of(JobCompleted).type_id in world.attach.types
    await world.attach.handler(event)

    draft = await world.content.lesson("acme", lesson_id)
    assert draft.version == 2
    video, audio = draft.blocks[1:]
    assert isinstance(video, VideoBlock)
    assert isinstance(audio, AudioBlock)
    stored = {m.id: m for m in (await world.media.media("acme")).items}
    # the video's captions are kept beside it (the narration has none of its own name)
    assert video.captions is not None
    assert audio.captions is None
    assert video.captions.language == "en"  # the course's: the event names none
    assert set(stored) == {video.media, audio.media, video.captions.media}
    assert stored[video.captions.media].content_type == "text/vtt"
    assert stored[video.media].content_type == "video/mp4"
    assert stored[video.media].size == outputs[0].bytes
    assert stored[audio.media].kind == "audio"
    assert stored[audio.media].created_by == "teacher-1"
    # learners keep reading the publication until an author publishes the draft
    published = await world.content.lesson("acme", lesson_id, drafts=False)
    assert len(published.blocks) == 1

    # the edit was announced like any other
    [sent] = await world.content.repo.outbox.pending(100)
    updated = checked(type_of(LessonUpdated), parse_envelope(sent.message.value))
    assert updated.data["lesson_id"] == lesson_id
    assert updated.data["lesson_version"] == 2

    # the same event again (a redelivery) adds nothing, stores nothing more
    await world.attach.handler(event)
    again = await world.content.lesson("acme", lesson_id)
    assert again.version == 2
    assert again.blocks == draft.blocks
    assert len((await world.media.media("acme")).items) == 3
    assert await world.content.repo.outbox.count_pending() == 1


async def test_an_author_edit_made_meanwhile_is_kept(world: World) -> None:
    lesson_id = await lesson_in(world)
    out = await output(world, "acme", "job2", "voice.wav", "audio", media_samples.wav(),
                       "audio/wav")
    edited = await world.content.edit_lesson("acme", lesson_id, LessonEdit(
        version=1, title="Loops, edited"))
    await world.attach.handler(completed("acme", "job2", lesson_id, [out], kind="narration"))
    draft = await world.content.lesson("acme", lesson_id)
    assert draft.title == "Loops, edited"
    assert draft.version == edited.version + 1
    assert [b.type for b in draft.blocks] == ["markdown", "audio"]
    assert isinstance(draft.blocks[1], AudioBlock)
    assert draft.blocks[1].title == "Audio made by AI (narration)"


async def test_a_later_ai_output_replaces_the_block_an_earlier_job_of_its_kind_made(
        world: World) -> None:
    """Each narration asked for again was appended: the draft read [markdown, audio, video,
    audio], two narrations of one text. A job's block replaces the one a job of its kind made
    (one attached before blocks said so by its title), never an author's own."""
    lesson_id = await lesson_in(world)

    async def body(data: bytes) -> AsyncIterator[bytes]:
        yield data

    own, legacy = [(await world.media.upload("acme", body(media_samples.wav(seconds)),
                                             filename=f"{seconds}.wav", by="t")).info.id
                   for seconds in (0.01, 0.02)]
    await world.content.edit_lesson("acme", lesson_id, LessonEdit(version=1, blocks=[
        MarkdownBlock(markdown="Loops repeat."), AudioBlock(media=own, title="Read by me"),
        AudioBlock(media=legacy, title="Audio made by AI (narration)")]))
    for job_id, kind, name, data in (
            ("n1", "narration", "n1.wav", media_samples.wav(0.03)),
            ("v1", "video", "v1.mp4", media_samples.mp4(32)),
            ("n2", "narration", "n2.wav", media_samples.wav(0.04)),
            ("v2", "video", "v2.mp4", media_samples.mp4(48))):
        out = await output(world, "acme", job_id, name, "video" if kind == "video" else "audio",
                           data, "video/mp4" if kind == "video" else "audio/wav")
        await world.attach.handler(completed("acme", job_id, lesson_id, [out], kind=kind,
                                             source=LOOPS))
    blocks = (await world.content.lesson("acme", lesson_id)).blocks
    assert [b.type for b in blocks] == ["markdown", "audio", "audio", "video"]
    mine, narration, video = blocks[1:]
    assert isinstance(mine, AudioBlock)
    assert (mine.media, mine.made_by_ai) == (own, None)
    assert isinstance(narration, AudioBlock)
    assert isinstance(video, VideoBlock)
    assert narration.made_by_ai is not None
    assert video.made_by_ai is not None
    assert (narration.made_by_ai.job, narration.made_by_ai.kind) == ("n2", "narration")
    assert (video.made_by_ai.job, video.made_by_ai.kind) == ("v2", "video")
    assert narration.title == "Audio made by AI (narration)"


async def test_a_later_ai_output_drops_every_other_block_earlier_jobs_of_its_kind_made(
        world: World) -> None:
    """Before requests were keyed by what they are made from, two identical requests made two
    jobs and two narration blocks: the next job's block replaced the first only, the second
    stayed, and the draft read two narrations for good."""
    lesson_id = await lesson_in(world)

    async def body(data: bytes) -> AsyncIterator[bytes]:
        yield data

    own, first, second = [(await world.media.upload("acme", body(media_samples.wav(seconds)),
                                                    filename=f"{seconds}.wav", by="t")).info.id
                          for seconds in (0.01, 0.02, 0.03)]
    await world.content.edit_lesson("acme", lesson_id, LessonEdit(version=1, blocks=[
        MarkdownBlock(markdown="Loops repeat."),
        AudioBlock(media=first, title="Audio made by AI (narration)"),
        AudioBlock(media=own, title="Read by me"),
        AudioBlock(media=second, title="Audio made by AI (narration)")]))
    out = await output(world, "acme", "n3", "n3.wav", "audio", media_samples.wav(0.04),
                       "audio/wav")
    await world.attach.handler(completed("acme", "n3", lesson_id, [out], kind="narration",
                                         source=LOOPS))
    blocks = (await world.content.lesson("acme", lesson_id)).blocks
    assert [b.type for b in blocks] == ["markdown", "audio", "audio"]
    narration, mine = blocks[1:]
    assert isinstance(narration, AudioBlock)
    assert isinstance(mine, AudioBlock)
    assert narration.made_by_ai is not None
    assert narration.made_by_ai.job == "n3"
    assert (mine.media, mine.made_by_ai) == (own, None)


async def test_media_of_a_lesson_changed_since_its_job_read_it_are_not_attached(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """A video of the old text was attached to the changed draft, silently: a lesson about
    volcanoes showing a video about photosynthesis, and nothing on the job said so."""
    lesson_id = await lesson_in(world)
    await world.content.edit_lesson("acme", lesson_id, LessonEdit(
        version=1, blocks=[MarkdownBlock(markdown="Volcanoes erupt.")]))
    await not_attached(world)
    video = await output(world, "acme", "j1", "v.mp4", "video", media_samples.mp4(), "video/mp4")
    await world.attach.handler(completed("acme", "j1", lesson_id, [video], source=LOOPS))
    assert await not_attached(world) == [("j1", lesson_id, [("v.mp4", "lesson_changed")])]
    draft = await world.content.lesson("acme", lesson_id)
    assert (draft.version, [b.type for b in draft.blocks]) == (2, ["markdown"])
    assert (await world.media.media("acme")).items == []

    # changed while its media were being stored: they are removed again
    volcanoes = made_from("Loops", "Volcanoes erupt.", "en")
    attach = world.content.attach_media

    async def edited_first(tenant: str, lesson: str, blocks: Any, source: Any = None) -> Any:
        await world.content.edit_lesson(tenant, lesson, LessonEdit(version=2, title="Lava"))
        return await attach(tenant, lesson, blocks, source)

    monkeypatch.setattr(world.content, "attach_media", edited_first)
    await world.attach.handler(completed("acme", "j2", lesson_id, [video], source=volcanoes))
    assert await not_attached(world) == [("j2", lesson_id, [("v.mp4", "lesson_changed")])]
    assert (await world.media.media("acme")).items == []
    monkeypatch.undo()

    # of the text as it is, and from an older worker that does not say: attached
    lava = made_from("Lava", "Volcanoes erupt.", "en")
    await world.attach.handler(completed("acme", "j3", lesson_id, [video], source=lava))
    other = await output(world, "acme", "j4", "w.mp4", "video", media_samples.mp4(9),
                         "video/mp4")
    await world.attach.handler(completed("acme", "j4", lesson_id, [other], kind="narration"))
    assert await not_attached(world) == []
    assert [b.type for b in (await world.content.lesson("acme", lesson_id)).blocks] == [
        "markdown", "video", "video"]


async def not_attached(world: World) -> list[tuple[str, str, list[tuple[str, str]]]]:
    """The `ai_media.not_attached` events content announced since the last call: each one's
    job, lesson, and (output, code) pairs."""
    outbox = world.content.repo.outbox
    pending = await outbox.pending(100)
    await outbox.mark_sent(pending)
    et = type_of(AiMediaNotAttached)
    envelopes = [parse_envelope(p.message.value) for p in pending]
    found = [checked(et, e) for e in envelopes if e.type == et.type_id]
    return [(e.data["job_id"], e.data["lesson_id"],
             [(o["name"], o["code"]) for o in e.data["outputs"]]) for e in found]


async def test_what_cannot_be_attached_is_skipped_and_announced(world: World) -> None:
    """An output content could not keep was only logged: its job said it succeeded, and
    nobody learned why the lesson's draft did not get it."""
    lesson_id = await lesson_in(world)
    await not_attached(world)
    # bytes that are no audio, a file the AI store does not have, a lesson that is gone, and
    # another tenant's lesson: nothing is attached, and nothing fails (retrying would not help)
    fake = await output(world, "acme", "job3", "fake.wav", "audio", b"not audio at all",
                        "audio/wav")
    lost = OutputRef(name="lost.mp4", kind="video", content_type="video/mp4", url="/x",
                     file_id="f" * 32, bytes=10, duration_s=None)
    await world.attach.handler(completed("acme", "job3", lesson_id, [fake, lost]))
    assert await not_attached(world) == [("job3", lesson_id, [
        ("fake.wav", "type_mismatch"), ("lost.mp4", "empty_file")])]
    await world.attach.handler(completed("acme", "job3", "no-such-lesson", [fake]))
    elsewhere = await output(world, "beta", "job4", "v.mp4", "video", media_samples.mp4(),
                             "video/mp4")
    await world.attach.handler(completed("beta", "job4", lesson_id, [elsewhere]))
    await world.attach.handler(completed("acme", "job4", "", [elsewhere]))  # from a prompt
    assert await not_attached(world) == []
    draft = await world.content.lesson("acme", lesson_id)
    assert (draft.version, len(draft.blocks)) == (1, 1)
    assert (await world.media.media("acme")).items == []
    assert (await world.media.media("beta")).items == []

    # a deleted lesson: said so, on its own events
    await world.content.delete_lesson("acme", lesson_id)
    await not_attached(world)
    video = await output(world, "acme", "job6", "v.mp4", "video", media_samples.mp4(),
                         "video/mp4")
    await world.attach.handler(completed("acme", "job6", lesson_id, [video]))
    assert await not_attached(world) == [("job6", lesson_id, [("v.mp4", "lesson_gone")])]
    assert (await world.media.media("acme")).items == []


async def test_an_output_over_the_tenant_s_quota_is_announced(world: World) -> None:
    """The video fits the tenant's media quota, its narration no longer does."""
    lesson_id = await lesson_in(world)
    await not_attached(world)
    video = await output(world, "acme", "job7", "lesson.mp4", "video", media_samples.mp4(),
                         "video/mp4")
    voice = await output(world, "acme", "job7", "voice.wav", "audio", media_samples.wav(),
                         "audio/wav")
    small = MediaService(world.media.store, MediaSettings(tenant_quota_bytes=video.bytes),
                         world.tmp / "spool-small", nothing_published)
    await small.setup()
    attach = ai_media_subscription(world.content, small, AiFilesOutputs(world.ai))
    await attach.handler(completed("acme", "job7", lesson_id, [video, voice]))
    assert await not_attached(world) == [("job7", lesson_id, [("voice.wav", "quota_exceeded")])]
    assert [b.type for b in (await world.content.lesson("acme", lesson_id)).blocks] == [
        "markdown", "video"]


async def test_media_a_lesson_refuses_are_not_kept(world: World,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """The lesson refuses the blocks (full, or gone meanwhile): the media stored for them are
    removed, not left to fill the tenant's quota with files nothing shows."""
    lesson_id = await lesson_in(world)
    out = await output(world, "acme", "job5", "voice.wav", "audio", media_samples.wav(),
                       "audio/wav")

    async def full(*args: object, **kwargs: object) -> None:
        raise Problem("the lesson has 200 blocks already", status=422, code="too_many_blocks")

    monkeypatch.setattr(world.content, "attach_media", full)
    await not_attached(world)
    await world.attach.handler(completed("acme", "job5", lesson_id, [out], kind="narration"))
    assert (await world.media.media("acme")).items == []
    assert await not_attached(world) == [("job5", lesson_id, [("voice.wav", "too_many_blocks")])]


async def test_a_lesson_deleted_while_its_media_are_stored_is_announced(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """Deleted between the consumer's check and the attaching: the media were removed, but
    the job said nothing was left out."""
    lesson_id = await lesson_in(world)
    out = await output(world, "acme", "job8", "voice.wav", "audio", media_samples.wav(),
                       "audio/wav")
    attach = world.content.attach_media

    async def deleted_first(tenant: str, lesson: str, blocks: Any, source: Any = None) -> Any:
        await world.content.delete_lesson(tenant, lesson)
        return await attach(tenant, lesson, blocks, source)

    monkeypatch.setattr(world.content, "attach_media", deleted_first)
    await not_attached(world)
    await world.attach.handler(completed("acme", "job8", lesson_id, [out], kind="narration"))
    assert (await world.media.media("acme")).items == []
    assert await not_attached(world) == [("job8", lesson_id, [("voice.wav", "lesson_gone")])]


async def test_content_events_drop_the_cached_lesson(world: World) -> None:
    lesson_id = await lesson_in(world)
    rendered = await world.content.published_lesson("acme", lesson_id)
    assert await world.content.cache.get(cache_key("acme", lesson_id)) == rendered.pack()
    [cache, _] = subscriptions(world.content, world.media)
    assert cache.group == CACHE_GROUP
    event = type_of(LessonUpdated).envelope(LessonUpdated(
        lesson_id=lesson_id, course_id="py", lesson_version=2, title="x", estimated_minutes=5,
        teaches=[], requires=[], updated_at=AT), tenant="acme", subject=lesson_id)
    await cache.handler(checked(type_of(LessonUpdated), event))
    assert await world.content.cache.get(cache_key("acme", lesson_id)) is None


async def test_a_shared_cache_is_dropped_by_one_group_an_in_process_one_by_each_processs(
        world: World) -> None:
    assert cache_group(True, "ix1") == CACHE_GROUP
    assert cache_group(True, None) == CACHE_GROUP
    assert cache_group(False, "ix1") == f"{CACHE_GROUP}.ix1"
    assert cache_group(False, None) is None  # a one-off command: it serves no reader
    assert [s.group for s in subscriptions(world.content, world.media, None)] == [
        "content.authors"]


async def attached_ai_video(app: FastAPI, tmp_path: Path, job_id: str, *,
                            captions: bytes | None = None,
                            language: str | None = None) -> tuple[str, VideoBlock]:
    """A new lesson of a new course `py` of tenant acme, and the video block a finished AI
    video job (with `captions`, when given) put in its draft."""
    content: ContentService = app.state.content.state["service"]
    lesson_id = (await content.add_lesson("acme", (await content.create_course(
        "acme", NewCourse(id="py", title="Python"))).id, NewLesson(title="Loops"))).id
    source, vtt = tmp_path / f"{job_id}.mp4", tmp_path / f"{job_id}.vtt"
    source.write_bytes(media_samples.mp4(64))
    if captions is not None:
        vtt.write_bytes(captions)
    event = await finished_ai_video(app, "acme", job_id, lesson_id, source,
                                    vtt if captions is not None else None, language=language)
    bus = app.state.platform.bus
    assert isinstance(bus, EmbeddedEventBus)
    await bus.publish([Message.of(event, "video.events")])

    async def attached() -> bool:
        return len((await content.lesson("acme", lesson_id)).blocks) == 1

    await eventually(attached, timeout_s=15, what="the video in the lesson's draft")
    [video] = (await content.lesson("acme", lesson_id)).blocks
    assert isinstance(video, VideoBlock)
    return lesson_id, video


async def test_the_running_app_attaches_what_its_ai_service_made(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async with embedded_app(tmp_path, monkeypatch, ["identity", "content", "ai"]) as (app, _):
        # content reads the output through the AI service's surface in this process, not its
        # store
        _, video = await attached_ai_video(app, tmp_path, "job9")
        media: MediaService = app.state.content.state["media"]
        assert (await media.info("acme", video.media)).size == len(media_samples.mp4(64))


async def test_the_ai_job_says_what_content_did_not_attach(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A video over the tenant's media quota: the job said `succeeded` with no error, the
    lesson's draft got nothing, and only a log line knew why."""
    monkeypatch.setenv("BLOOP_MEDIA_TENANT_QUOTA_BYTES", "50")
    async with embedded_app(tmp_path, monkeypatch, ["identity", "content", "ai"]) as (
            app, client):
        client.headers.update(await member(app, client, "acme", ["educator"]))
        content: ContentService = app.state.content.state["service"]
        lesson_id = (await content.add_lesson("acme", (await content.create_course(
            "acme", NewCourse(id="py", title="Python"))).id, NewLesson(title="Loops"))).id
        source = tmp_path / "made.mp4"
        source.write_bytes(media_samples.mp4(64))
        event = await finished_ai_video(app, "acme", "job9", lesson_id, source)
        bus = app.state.platform.bus
        assert isinstance(bus, EmbeddedEventBus)
        await bus.publish([Message.of(event, "video.events")])
        url = "/v1/tenants/acme/ai/jobs/job9"

        async def reported() -> bool:
            r = await client.get(url)
            assert r.status_code == 200, r.text
            return bool(r.json()["not_attached"])

        await eventually(reported, timeout_s=15, what="the job to say what was not attached")
        job = (await client.get(url)).json()
        assert job["status"] == "succeeded"
        [refused] = job["not_attached"]
        assert (refused["output"], refused["code"]) == ("lesson.mp4", "quota_exceeded")
        assert "quota" in refused["detail"]
        assert (await content.lesson("acme", lesson_id)).blocks == []
        async with client.stream("GET", f"{url}/events") as r:
            ends = [json.loads(line[6:]) async for line in r.aiter_lines()
                    if line.startswith("data: ")]
        assert [e["not_attached"] for e in ends] == [job["not_attached"]]

        # the same report again (a redelivery) changes nothing
        ai = app.state.ai.state["service"]
        before = await ai.job("acme", "job9")
        await ai.record_not_attached("acme", "job9", before.not_attached)
        assert (await ai.job("acme", "job9")).rev == before.rev


async def test_a_deleted_person_is_no_uploader_any_more(world: World) -> None:
    """Media kept the deleted person's id as its uploader (and it decided who may delete it)."""

    async def body(data: bytes) -> AsyncIterator[bytes]:
        yield data

    mine = await world.media.upload("acme", body(media_samples.png()), filename="a.png", by="u1")
    await world.media.upload("acme", body(media_samples.gif()), filename="b.gif", by="u2")
    assert [m.id for m in await world.media.uploaded_by("acme", "u1")] == [mine.info.id]
    [_, authors] = subscriptions(world.content, world.media)
    gone = type_of(UserDeleted).envelope(UserDeleted(user_id="u1", deleted_by="u1",
                                                     deleted_at=datetime.now(UTC)),
                                         tenant="acme", subject="u1")
    for _ in range(2):  # delivered twice: nothing more changes
        await authors.handler(gone)
        assert await world.media.uploaded_by("acme", "u1") == []
    assert (await world.media.info("acme", mine.info.id)).created_by is None
    assert [m.created_by for m in (await world.media.media("acme")).items].count("u2") == 1


VTT = (b"WEBVTT\n\n1\n00:00:00.000 --> 00:00:01.250\nLoops repeat.\n\n"
       b"2\n00:00:01.250 --> 00:00:02.000\nUntil they stop.\n")
CAPTIONS_LINKS = """query($l: String!) { lesson(tenant: "acme", id: $l) { blocks {
  ... on VideoBlock { media madeByAi { job kind } captions { media language link { url } } }
} } }"""


async def test_the_captions_of_an_ai_video_reach_learners(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The job's WebVTT file was left out: the block named the MP4 alone, whose mov_text track
    a browser's `<video>` does not show, so deaf learners had no captions."""
    async with embedded_app(tmp_path, monkeypatch, ["identity", "content", "ai"]) as (
            app, client):
        educator = await member(app, client, "acme", ["educator"])
        them = await member(app, client, "acme", ["learner"])
        lesson_id, video = await attached_ai_video(app, tmp_path, "job10", captions=VTT,
                                                   language="fr")
        assert video.captions is not None
        assert video.captions.language == "fr"
        r = await client.post("/v1/tenants/acme/courses/py/publish", headers=educator)
        assert r.status_code == 200, r.text

        r = await client.get(f"/v1/tenants/acme/lessons/{lesson_id}", headers=them)
        assert r.json()["blocks"][0]["captions"] == {"media": video.captions.media,
                                                     "language": "fr"}
        r = await client.get(f"/v1/tenants/acme/lessons/{lesson_id}/media-links", headers=them)
        assert r.status_code == 200, r.text
        links = r.json()["links"]
        assert sorted(links) == sorted([video.media, video.captions.media])
        r = await client.post("/graphql", headers=them, json={
            "query": CAPTIONS_LINKS, "variables": {"l": lesson_id}})
        assert "errors" not in r.json(), r.text
        [block] = r.json()["data"]["lesson"]["blocks"]
        assert (block["captions"]["media"], block["captions"]["language"]) == (
            video.captions.media, "fr")
        assert block["madeByAi"] == {"job": "job10", "kind": "video"}  # told from an author's
        for url in (links[video.captions.media]["url"], block["captions"]["link"]["url"]):
            r = await client.get(url)  # no credentials: the link is one
            assert r.status_code == 200, r.text
            assert r.headers["content-type"].startswith("text/vtt")
            assert r.content.startswith(b"WEBVTT")
            assert r.content == VTT  # the job's cues, at the job's timings
