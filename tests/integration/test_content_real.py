"""content with every store real: courses and lessons in MongoDB (FerretDB), learners' lessons
cached in Redis and dropped by `content.events` coming back through Kafka, and a finished AI
video copied from the AI service's GridFS into the lesson's draft. Each test works in a tenant
of its own."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from bloop.platform.app import create_app
from bloop.platform.content.consumers import CACHE_GROUP
from bloop.platform.content.media.service import MediaService
from bloop.platform.content.model import Course, Lesson, VideoBlock
from bloop.platform.content.service import ContentService, cache_key
from bloop.platform.kit.cache import RedisCache
from bloop.platform.kit.events.bus.port import Message
from bloop.platform.kit.events.envelope import Envelope
from bloop.platform.kit.settings import RuntimeSettings, Settings
from tests.support import api_client, eventually, finished_ai_video, member, require_server
from tests.unit.content import media_samples

pytestmark = pytest.mark.real


@pytest.fixture
async def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FastAPI]:
    for name in ("mongo", "redis", "kafka", "neo4j"):
        require_server(name)
    monkeypatch.setenv("BLOOP_AI_RUN_JOBS", "false")  # leave the shared `ai.jobs` alone
    settings = Settings(runtime=RuntimeSettings(store="real", data_dir=tmp_path, seed_demo=False))
    application = create_app(settings, services=["identity", "content", "ai"])
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
def tenant() -> str:
    return f"c-{uuid.uuid4().hex[:10]}"


@pytest.fixture
async def client(app: FastAPI, tenant: str) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(app) as c:
        c.headers.update(await member(app, c, tenant, ["educator"]))
        yield c


async def published_lesson(client: httpx.AsyncClient, tenant: str) -> str:
    base = f"/v1/tenants/{tenant}"
    assert (await client.post(f"{base}/courses", json={"id": "py", "title": "Python"})
            ).status_code == 201
    r = await client.post(f"{base}/courses/py/lessons", json={
        "title": "Loops", "blocks": [{"type": "markdown", "markdown": "Loops repeat."}]})
    assert r.status_code == 201, r.text
    assert (await client.post(f"{base}/courses/py/publish")).status_code == 200
    return str(r.json()["id"])


async def test_a_cached_lesson_is_dropped_by_its_event_on_kafka(
        app: FastAPI, client: httpx.AsyncClient, tenant: str) -> None:
    content: ContentService = app.state.content.state["service"]
    assert isinstance(content.cache, RedisCache)
    # one group drops the cache every process shares
    assert [s.group for s in app.state.content.subscriptions
            if s.group.startswith(CACHE_GROUP)] == [CACHE_GROUP]
    lesson = await published_lesson(client, tenant)
    learner = await member(app, client, tenant, ["learner"])
    url = f"/v1/tenants/{tenant}/lessons/{lesson}"
    first = await client.get(url, headers=learner)
    assert first.status_code == 200, first.text
    etag = first.headers["etag"]
    assert (await client.get(url, headers=learner | {"If-None-Match": etag})).status_code == 304
    key = cache_key(tenant, lesson)
    assert await content.cache.get(key) is not None

    # an edit of the draft drops nothing in the writing process: its `lesson.updated`, relayed
    # to Kafka and consumed back, does
    r = await client.patch(url, json={"version": 1, "title": "Loops, again"})
    assert r.status_code == 200, r.text

    async def dropped() -> bool:
        return await content.cache.get(key) is None

    await eventually(dropped, timeout_s=30, what="the cached lesson dropped")
    assert (await client.get(url, headers=learner)).json()["title"] == "Loops"
    assert (await client.post(f"/v1/tenants/{tenant}/courses/py/publish")).status_code == 200
    now = await client.get(url, headers=learner | {"If-None-Match": etag})
    assert now.status_code == 200
    assert now.json()["title"] == "Loops, again"
    assert now.headers["etag"] != etag


async def test_a_finished_ai_video_lands_in_the_lesson_draft(
        app: FastAPI, client: httpx.AsyncClient, tenant: str, tmp_path: Path) -> None:
    content: ContentService = app.state.content.state["service"]
    lesson = await published_lesson(client, tenant)
    job = uuid.uuid4().hex
    source = tmp_path / "lesson.mp4"
    source.write_bytes(media_samples.mp4(4096))
    event = await finished_ai_video(app, tenant, job, lesson, source)
    await app.state.platform.bus.publish([Message.of(event, "video.events")])

    async def attached() -> bool:
        return len((await content.lesson(tenant, lesson)).blocks) == 2

    await eventually(attached, timeout_s=30, what="the video in the lesson's draft")
    draft = await content.lesson(tenant, lesson)
    video = draft.blocks[1]
    assert isinstance(video, VideoBlock)
    media: MediaService = app.state.content.state["media"]
    try:
        assert (await media.info(tenant, video.media)).size == source.stat().st_size
        assert draft.version == 2
        published = await content.lesson(tenant, lesson, drafts=False)
        assert len(published.blocks) == 1
    finally:
        await media.store.delete(tenant, video.media)


async def test_two_publications_at_once_of_one_draft_make_one_version_on_mongodb(
        app: FastAPI, client: httpx.AsyncClient, tenant: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The second to store its version finds the course published by the first, with nothing
    left to publish: it answers that version (before, 409 `stale_version`)."""
    content: ContentService = app.state.content.state["service"]
    lesson = await published_lesson(client, tenant)
    r = await client.patch(f"/v1/tenants/{tenant}/lessons/{lesson}",
                           json={"version": 1, "title": "Loops, again"})
    assert r.status_code == 200, r.text
    publish_course = content.repo.publish_course
    waiting: list[int] = []
    both_read = asyncio.Event()

    async def together(course: Course, expected_version: int, lessons: Sequence[Lesson],
                       events: Sequence[Envelope]) -> None:
        waiting.append(course.version)
        if len(waiting) == 2:
            both_read.set()
        await both_read.wait()
        await publish_course(course, expected_version, lessons, events)

    monkeypatch.setattr(content.repo, "publish_course", together)
    a, b = await asyncio.gather(content.publish(tenant, "py"), content.publish(tenant, "py"))
    assert waiting == [2, 2]
    assert (a.version, b.version) == (2, 2)
    assert a.publication == b.publication
    assert [v.version for v in await content.history(tenant, "py")] == [2, 1]
    stored = (await content.course(tenant, "py")).publication
    assert stored is not None
    assert [r.version for r in stored.lessons] == [2]
