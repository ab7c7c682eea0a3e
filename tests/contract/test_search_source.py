"""What search reads from the content store (`RepositoryContent` over `ContentRepository`),
against the embedded (SQLite) store and a real MongoDB-wire server: every tenant's published
courses in pages, the lesson snapshots their publication names, and deleted lessons left out."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bloop.platform.content.model import Course, Lesson, MarkdownBlock, NewCourse, NewLesson
from bloop.platform.content.ports import ContentRepository
from bloop.platform.content.search.source import RepositoryContent
from bloop.platform.content.stores.embedded import EmbeddedContentStore
from bloop.platform.content.stores.mongo import MongoContentStore
from bloop.platform.kit.events.types import registry
from bloop.platform.kit.sqlite import SqliteDB
from tests.support import scratch_mongo


@pytest.fixture(params=["embedded", pytest.param("real", marks=pytest.mark.real)])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[ContentRepository]:
    if request.param == "embedded":
        db = SqliteDB(tmp_path / "content.sqlite3")
        embedded = EmbeddedContentStore(db, registry)
        await embedded.setup()
        yield embedded
        await db.close()
        return
    async with scratch_mongo("search_source") as (client, name):
        mongo = MongoContentStore(client, registry, database=name)
        await mongo.setup()
        yield mongo


async def course_with(store: ContentRepository, tenant: str, course_id: str, *texts: str,
                      publish: bool = True) -> tuple[Course, list[Lesson]]:
    course = Course.create(tenant, NewCourse(id=course_id, title=course_id.title()))
    await store.add_course(course)
    lessons = [await store.add_lesson(Lesson.create(tenant, course_id, NewLesson(
        title=f"Lesson {i}", blocks=[MarkdownBlock(markdown=t)]))) for i, t in enumerate(texts)]
    if publish:
        course = course.published(lessons=lessons)
        await store.publish_course(course, 0, lessons, [])
    return course, lessons


async def test_every_published_course_of_every_tenant_in_pages(store: ContentRepository) -> None:
    for tenant in ("b-school", "a-school", "a"):
        for cid in ("zeta", "alpha", "mid"):
            await course_with(store, tenant, cid, "text")
    await course_with(store, "a", "draft", "text", publish=False)

    pages: list[list[tuple[str, str]]] = []
    after: tuple[str, str] | None = None
    while page := await store.list_published(after, limit=4):
        pages.append([(c.tenant, c.id) for c in page])
        after = pages[-1][-1]
    assert [len(p) for p in pages] == [4, 4, 1]
    everything = [key for p in pages for key in p]
    assert everything == sorted(everything)
    assert len(everything) == 9
    assert ("a", "draft") not in everything


async def test_the_catalogue_and_lessons_as_published(store: ContentRepository) -> None:
    source = RepositoryContent(store, page_size=2)
    _, (first, second) = await course_with(store, "acme", "py", "one", "two")
    await course_with(store, "umbrella", "py", "theirs")
    await course_with(store, "acme", "wip", "draft text", publish=False)

    catalogue = [(c.tenant, c.id, [x.id for x in lessons])
                 async for c, lessons in source.catalogue()]
    assert catalogue[0] == ("acme", "py", [first.id, second.id])
    assert [(t, c) for t, c, _ in catalogue] == [("acme", "py"), ("umbrella", "py")]

    # a draft edit is not what learners read; the published snapshot is
    edited = first.model_copy(update={"version": 2, "blocks": [MarkdownBlock(markdown="new")]})
    await store.replace_lesson(edited, expected_version=1)
    found = await source.lesson("acme", first.id)
    assert found is not None
    assert (found[0].id, found[1].version, found[1].blocks) == ("py", 1, first.blocks)
    assert await source.lesson("umbrella", first.id) is None
    assert await source.course("acme", "wip") is None
    assert (await source.course("acme", "py")) is not None

    course = await source.course("acme", "py")
    assert course is not None
    assert [(x.id, x.version) for x in await source.course_lessons("acme", course)] == [
        (first.id, 1), (second.id, 1)]
    await store.delete_lesson("acme", second.id, expected_version=1)
    assert await source.lesson("acme", second.id) is None
    assert [x.id for x in await source.course_lessons("acme", course)] == [first.id]
    [(_, lessons)] = [(c, x) async for c, x in source.catalogue() if c.tenant == "acme"]
    assert [x.id for x in lessons] == [first.id]
