"""content's use cases against the embedded store on a temporary path."""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import redis.exceptions

from bloop.platform.content.model import (
    ConceptEdit,
    Course,
    CourseEdit,
    Lesson,
    LessonEdit,
    MarkdownBlock,
    NewConcept,
    NewCourse,
    NewLesson,
)
from bloop.platform.content.service import ContentService, cache_key
from bloop.platform.content.stores import embedded
from bloop.platform.content.stores.embedded import EmbeddedContentStore
from bloop.platform.kit import stores
from bloop.platform.kit.auth import SCOPES, Forbidden, Principal
from bloop.platform.kit.cache import RedisCache
from bloop.platform.kit.errors import Conflict, NotFound, Problem, StoreUnavailable
from bloop.platform.kit.events.envelope import Envelope
from bloop.platform.kit.events.types import registry
from bloop.platform.kit.settings import RedisSettings
from bloop.platform.kit.sqlite import SqliteDB
from tests.support import count_calls, require_server


@pytest.fixture
async def service(tmp_path: Path) -> AsyncIterator[ContentService]:
    db = SqliteDB(tmp_path / "content.sqlite3")
    store = EmbeddedContentStore(db, registry)
    await store.setup()
    svc = ContentService(store)
    for c in ("variables", "functions", "recursion"):
        await svc.add_concept("acme", NewConcept(id=c, name=c.title()))
    yield svc
    await db.close()


async def events(service: ContentService) -> list[dict[str, Any]]:
    pending = await service.repo.outbox.pending(100)
    assert all(p.message.topic == "content.events" for p in pending)
    return [json.loads(p.message.value) for p in pending]


async def course_with_lessons(service: ContentService, tenant: str = "acme") -> list[str]:
    await service.create_course(tenant, NewCourse(id="py", title="Python"))
    ids = []
    for title, teaches, requires in (("Functions", ["functions"], ["variables"]),
                                     ("Recursion", ["recursion"], ["functions"])):
        lesson = await service.add_lesson(tenant, "py", NewLesson(
            title=title, teaches=teaches, requires=requires,
            blocks=[MarkdownBlock(markdown=f"# {title}")]))
        ids.append(lesson.id)
    return ids


async def test_lessons_keep_the_order_they_were_added_in(service: ContentService) -> None:
    ids = await course_with_lessons(service)
    detail = await service.course_detail("acme", "py")
    assert [lesson.id for lesson in detail.lessons] == ids
    assert [lesson.position for lesson in detail.lessons] == [0, 1]
    assert detail.lesson_count == 2
    assert await events(service) == []  # drafts are not announced


async def test_lessons_refer_to_known_concepts_only(service: ContentService) -> None:
    await service.create_course("acme", NewCourse(id="py", title="Python"))
    with pytest.raises(Problem) as err:
        await service.add_lesson("acme", "py", NewLesson(title="Loops", teaches=["loops"]))
    assert err.value.status == 422
    assert err.value.extra["concepts"] == ["loops"]
    # concepts are per tenant: another tenant's `variables` does not count
    await service.create_course("beta", NewCourse(id="py", title="Python"))
    with pytest.raises(Problem):
        await service.add_lesson("beta", "py", NewLesson(title="Names", teaches=["variables"]))


async def test_a_concept_id_is_taken_once_per_tenant(service: ContentService) -> None:
    with pytest.raises(Conflict):
        await service.add_concept("acme", NewConcept(id="variables", name="Again"))
    await service.add_concept("beta", NewConcept(id="variables", name="Variables"))
    assert [c.id for c in await service.concepts("acme")] == ["functions", "recursion",
                                                              "variables"]
    assert [c.id for c in await service.concepts("beta")] == ["variables"]


async def test_lessons_need_an_existing_course(service: ContentService) -> None:
    with pytest.raises(NotFound):
        await service.add_lesson("acme", "nothing", NewLesson(title="L"))


async def test_publishing_announces_the_course_and_each_lesson(service: ContentService) -> None:
    ids = await course_with_lessons(service)
    published = await service.publish("acme", "py")
    assert (published.status, published.version) == ("published", 1)
    course_event, *lesson_events = await events(service)
    assert course_event["type"] == "bloop.content.course.published.v1"
    assert course_event["subject"] == "py"
    assert course_event["tenant"] == "acme"
    assert course_event["data"]["version"] == 1
    assert course_event["data"]["lesson_ids"] == ids
    assert [e["type"] for e in lesson_events] == ["bloop.content.lesson.published.v1"] * 2
    assert [e["subject"] for e in lesson_events] == ids
    assert lesson_events[1]["data"]["requires"] == ["functions"]
    assert lesson_events[1]["data"]["course_version"] == 1

    await service.edit_course("acme", "py", CourseEdit(summary="Functions, then recursion"))
    again = await service.publish("acme", "py")
    assert again.version == 2
    assert len(await events(service)) == 6


async def test_a_lesson_s_publication_names_its_concepts(service: ContentService) -> None:
    """Learning kept the names it first met, or its own: a concept renamed in content kept its
    old name in paths and in the prerequisite graph."""
    await course_with_lessons(service)
    await service.edit_concept("acme", "functions", ConceptEdit(name="Functions & calls"))
    await service.publish("acme", "py")
    _, *lessons = await events(service)
    assert [e["data"]["concept_names"] for e in lessons] == [
        {"functions": "Functions & calls", "variables": "Variables"},
        {"recursion": "Recursion", "functions": "Functions & calls"}]


async def test_a_publication_with_the_cache_down_is_answered_done(
        service: ContentService, monkeypatch: pytest.MonkeyPatch) -> None:
    """The cache cannot be told at once: the publication still answers (before, 503 after it
    was stored, and the client's retry published a second version). Its event's consumer
    forgets the cached lessons once the cache is back."""
    await course_with_lessons(service)

    async def down(*keys: str) -> int:
        raise StoreUnavailable("redis", "gone for a moment")

    monkeypatch.setattr(service.cache, "delete", down)
    published = await service.publish("acme", "py")
    assert published.version == 1
    assert [e["type"] for e in await events(service)].count(
        "bloop.content.course.published.v1") == 1
    with pytest.raises(StoreUnavailable):  # the consumer's forget raises, so it is retried
        await service.forget("acme", ["x"])


@pytest.mark.parametrize("adapter", ["memory", "redis"])
async def test_a_read_racing_a_publication_puts_no_older_copy_back(
        service: ContentService, monkeypatch: pytest.MonkeyPatch, adapter: str) -> None:
    """A read that missed the cache and read the lesson as published before put its copy back
    after the publication had dropped it: the older version was served until the event's
    consumer dropped it again."""
    if adapter == "redis":
        require_server("redis")
        client = stores.redis_client(RedisSettings())
        service.cache = RedisCache(client, namespace=f"test:{uuid.uuid4().hex[:8]}")
    try:
        await race_a_read_with_a_publication(service, monkeypatch)
    finally:
        if isinstance(service.cache, RedisCache):
            await service.cache.delete_prefix("")
            await client.aclose()


async def race_a_read_with_a_publication(service: ContentService,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    lesson_id = (await course_with_lessons(service))[0]
    await service.publish("acme", "py")
    read_old, published = asyncio.Event(), asyncio.Event()
    real = service.repo.published_lesson

    async def racing(tenant: str, lesson: str) -> Lesson | None:
        found = await real(tenant, lesson)
        if not read_old.is_set():
            read_old.set()
            await published.wait()
        return found

    monkeypatch.setattr(service.repo, "published_lesson", racing)
    reading = asyncio.create_task(service.published_lesson("acme", lesson_id))
    await read_old.wait()  # the reader has the version 1 publication, not yet its copy
    await service.edit_lesson("acme", lesson_id, LessonEdit(version=1, title="Defs"))
    await service.publish("acme", "py")
    published.set()
    assert b'"Functions"' in (await reading).body
    assert b'"Defs"' in (await service.published_lesson("acme", lesson_id)).body
    assert b'"Defs"' in (await service.published_lesson("acme", lesson_id)).body  # its copy


async def test_copies_are_dropped_when_their_generations_cannot_be_written(
        service: ContentService, monkeypatch: pytest.MonkeyPatch) -> None:
    """A Redis full under `noeviction` refuses the generations' write but takes deletes: the
    copies stayed, and the publication was not seen until they expired."""
    lesson_id = (await course_with_lessons(service))[0]
    await service.publish("acme", "py")
    await service.published_lesson("acme", lesson_id)

    async def refused(items: dict[str, bytes], ttl_s: float | None = None) -> None:
        raise redis.exceptions.OutOfMemoryError("command not allowed when used memory")

    monkeypatch.setattr(service.cache, "set_many", refused)
    with pytest.raises(redis.exceptions.OutOfMemoryError):
        await service.forget("acme", [lesson_id])
    assert await service.cache.get(cache_key("acme", lesson_id)) is None


async def test_a_read_after_a_publication_still_fills_the_cache(service: ContentService) -> None:
    lesson_id = (await course_with_lessons(service))[0]
    await service.publish("acme", "py")
    first = await service.published_lesson("acme", lesson_id)
    assert await service.cache.get(cache_key("acme", lesson_id)) == first.pack()
    await service.forget("acme", [lesson_id])
    assert await service.cache.get(cache_key("acme", lesson_id)) is None
    assert await service.published_lesson("acme", lesson_id) == first
    assert await service.cache.get(cache_key("acme", lesson_id)) == first.pack()


async def test_a_lesson_deleted_while_the_course_is_published_is_not_published(
        service: ContentService, monkeypatch: pytest.MonkeyPatch) -> None:
    functions, recursion = await course_with_lessons(service)
    list_lessons = service.repo.list_lessons

    async def deleted_after_the_read(tenant: str, course_id: str) -> list[Lesson]:
        found = await list_lessons(tenant, course_id)
        monkeypatch.undo()
        await service.delete_lesson(tenant, recursion)
        return found

    monkeypatch.setattr(service.repo, "list_lessons", deleted_after_the_read)
    with pytest.raises(Conflict) as err:
        await service.publish("acme", "py")
    assert err.value.code == "draft_changed"
    assert [e["type"] for e in await events(service)] == ["bloop.content.lesson.deleted.v1"]
    assert (await service.course("acme", "py")).version == 0
    again = await service.publish("acme", "py")
    assert again.publication is not None
    assert [r.id for r in again.publication.lessons] == [functions]


async def test_changes_naming_no_revision_go_on_top_of_one_racing_them(
        service: ContentService, monkeypatch: pytest.MonkeyPatch) -> None:
    """Another change of the course landed between a change's read and its write: a co-author
    added, or an edit naming no revision, was refused 409 stale_version for it."""
    await service.create_course("acme", NewCourse(id="py", title="Python"))
    get_course = service.repo.get_course
    racing: list[str] = []
    elsewhere = ContentService(service.repo)  # another process's, which takes no turn here

    async def another_lands(tenant: str, course_id: str) -> Course | None:
        found = await get_course(tenant, course_id)
        if racing:
            await elsewhere.set_co_author("acme", "py", racing.pop(), True)
        return found

    monkeypatch.setattr(service.repo, "get_course", another_lands)
    racing.append("bo")
    await service.set_co_author("acme", "py", "ada", True)
    racing.append("cy")
    edited = await service.edit_course("acme", "py", CourseEdit(title="Python 3"))
    assert (edited.title, set(edited.co_authors)) == ("Python 3", {"ada", "bo", "cy"})
    racing.append("di")
    with pytest.raises(Conflict) as err:  # a revision named: the caller's to read again
        await service.edit_course("acme", "py", CourseEdit(title="Py", revision=edited.revision))
    assert err.value.code == "stale_version"
    course = await get_course("acme", "py")
    assert course is not None
    assert (course.title, set(course.co_authors)) == ("Python 3", {"ada", "bo", "cy", "di"})


async def test_an_empty_course_cannot_be_published(service: ContentService) -> None:
    await service.create_course("acme", NewCourse(id="py", title="Python"))
    with pytest.raises(Conflict) as err:
        await service.publish("acme", "py")
    assert err.value.code == "course_empty"
    assert await events(service) == []


async def test_a_draft_with_no_change_since_its_publication_makes_no_new_version(
        service: ContentService) -> None:
    """Before, publishing again (a double click, a client retrying an answer it lost) made a
    new, identical version, and announced the course and each of its lessons again."""
    functions, recursion = await course_with_lessons(service)
    first = await service.publish("acme", "py")
    again = await service.publish("acme", "py")
    assert (again.version, again.revision) == (first.version, first.revision) == (1, 0)
    assert [v.version for v in await service.history("acme", "py")] == [1]
    assert [e["type"] for e in await events(service)] == [
        "bloop.content.course.published.v1", *["bloop.content.lesson.published.v1"] * 2]

    await service.edit_lesson("acme", recursion, LessonEdit(title="Recursion, again", version=1))
    assert (await service.publish("acme", "py")).version == 2
    await service.edit_course("acme", "py", CourseEdit(tags=["python"]))
    assert (await service.publish("acme", "py")).version == 3
    await service.reorder_lessons("acme", "py", [recursion, functions])
    assert (await service.publish("acme", "py")).version == 4
    assert (await service.publish("acme", "py")).version == 4
    # a concept renamed reaches learning with a publication: so it is a change to publish
    await service.edit_concept("acme", "functions", ConceptEdit(name="Functions, named"))
    assert (await service.publish("acme", "py")).version == 5
    assert (await service.publish("acme", "py")).version == 5
    assert [v.version for v in await service.history("acme", "py")] == [5, 4, 3, 2, 1]
    published = [e for e in await events(service)
                 if e["type"] == "bloop.content.lesson.published.v1"]
    assert published[-1]["data"]["concept_names"]["functions"] == "Functions, named"
    assert [e["type"] for e in await events(service)].count(
        "bloop.content.course.published.v1") == 5


async def test_two_publications_at_once_of_one_draft_make_one_version(
        service: ContentService, monkeypatch: pytest.MonkeyPatch) -> None:
    """Both read the course before either stored its version: the second was refused 409
    `stale_version` for the first's, or (before that) both made a version of the same draft."""
    await course_with_lessons(service)
    publish_course = service.repo.publish_course
    waiting: list[Course] = []
    both_read = asyncio.Event()

    async def together(course: Course, expected_version: int, lessons: Sequence[Lesson],
                       events: Sequence[Envelope]) -> None:
        waiting.append(course)
        if len(waiting) == 2:
            both_read.set()
        await both_read.wait()
        await publish_course(course, expected_version, lessons, events)

    monkeypatch.setattr(service.repo, "publish_course", together)
    a, b = await asyncio.gather(service.publish("acme", "py", revision=0),
                                service.publish("acme", "py", revision=0))
    assert [c.version for c in waiting] == [1, 1]  # both went as far as the store
    assert a.publication == b.publication
    assert (a.version, b.version) == (1, 1)
    assert [v.version for v in await service.history("acme", "py")] == [1]
    assert [e["type"] for e in await events(service)].count(
        "bloop.content.course.published.v1") == 1


async def test_a_rollback_to_the_version_the_draft_is_makes_a_new_version(
        service: ContentService) -> None:
    """A rollback is asked for, so it is published even with no change to publish."""
    await course_with_lessons(service)
    await service.publish("acme", "py")
    rolled = await service.rollback("acme", "py", 1)
    assert rolled.version == 2
    assert rolled.publication is not None
    assert rolled.publication.rollback_of == 1
    assert [v.version for v in await service.history("acme", "py")] == [2, 1]
    assert (await service.publish("acme", "py")).version == 2


async def test_listing_shows_published_courses_by_default(service: ContentService) -> None:
    await course_with_lessons(service)
    await service.create_course("acme", NewCourse(id="draft", title="A draft"))
    assert (await service.courses("acme")).items == []
    await service.publish("acme", "py")
    assert [c.id for c in (await service.courses("acme")).items] == ["py"]
    assert [c.id for c in (await service.courses("acme", None)).items] == ["draft", "py"]
    assert [c.id for c in (await service.courses("acme", "draft")).items] == ["draft"]


async def test_an_edit_against_an_old_version_is_refused(service: ContentService) -> None:
    lesson_id, _ = await course_with_lessons(service)
    edited = await service.edit_lesson("acme", lesson_id, LessonEdit(version=1, title="Defs"))
    assert (edited.version, edited.title) == (2, "Defs")
    with pytest.raises(Conflict) as err:
        await service.edit_lesson("acme", lesson_id, LessonEdit(version=1, title="Lost"))
    assert err.value.code == "stale_version"
    assert err.value.extra["current_version"] == 2
    assert (await service.lesson("acme", lesson_id)).title == "Defs"


async def test_an_edit_keeps_the_lesson_rules(service: ContentService) -> None:
    lesson_id, _ = await course_with_lessons(service)
    with pytest.raises(Problem) as err:
        await service.edit_lesson("acme", lesson_id, LessonEdit(version=1, teaches=["variables"]))
    assert err.value.status == 422
    with pytest.raises(Problem) as err:
        await service.edit_lesson("acme", lesson_id, LessonEdit(version=1, requires=["nope"]))
    assert err.value.code == "unknown_concepts"
    assert (await service.lesson("acme", lesson_id)).version == 1


async def test_another_tenant_sees_nothing(service: ContentService) -> None:
    lesson_id, _ = await course_with_lessons(service)
    await service.publish("acme", "py")
    with pytest.raises(NotFound):
        await service.course("beta", "py")
    with pytest.raises(NotFound):
        await service.lesson("beta", lesson_id)
    with pytest.raises(NotFound):
        await service.edit_lesson("beta", lesson_id, LessonEdit(version=1, title="x"))
    with pytest.raises(NotFound):
        await service.publish("beta", "py")
    assert (await service.courses("beta", None)).items == []


async def test_published_lessons_are_read_by_key_not_by_scanning_the_tenant(
        service: ContentService) -> None:
    """Before, SQLite compared each stored lesson version with each one asked for: a learner's
    page of 20 courses of 30 lessons, among 3,000, took about a second."""
    store = service.repo
    assert isinstance(store, EmbeddedContentStore)

    async def publish(course_id: str, lessons: int) -> None:
        await service.create_course("acme", NewCourse(id=course_id, title=course_id))
        for n in range(lessons):
            await service.add_lesson("acme", course_id, NewLesson(title=f"{course_id} {n}"))
        await service.publish("acme", course_id)

    async def steps() -> int:
        """The SQLite instructions (in hundreds) reading the small course's lessons takes."""
        count = 0

        def step() -> int:
            nonlocal count
            count += 1
            return 0

        course = await service.course("acme", "small")
        assert course.publication is not None
        await store.db.run(lambda c: c.set_progress_handler(step, 100))
        try:
            found = await store.lesson_versions("acme", course.publication.lessons)
        finally:
            await store.db.run(lambda c: c.set_progress_handler(None, 100))
        assert len(found) == 5
        return count

    await publish("small", 5)
    alone = await steps()
    await publish("big", 500)
    assert await steps() <= alone + 5


async def test_the_catalogue_reads_lessons_in_two_reads_whatever_the_courses(
        service: ContentService, monkeypatch: pytest.MonkeyPatch) -> None:
    for n in range(6):
        await service.create_course("acme", NewCourse(id=f"c{n}", title=f"Course {n}"))
        for i in range(n % 3 + 1):
            await service.add_lesson("acme", f"c{n}", NewLesson(
                title=f"Lesson {n}.{i}", blocks=[MarkdownBlock(markdown="Text.")]))
        if n != 5:
            await service.publish("acme", f"c{n}")
    await service.delete_lesson("acme", (await service.course_detail("acme", "c2")).lessons[0].id)
    # a block no reader can parse: the catalogue, which shows none, never reads it
    await service.repo.db.transaction(lambda c: c.execute(  # type: ignore[attr-defined]
        "UPDATE lesson_versions SET doc = json_set(doc, '$.blocks', json('[{\"type\": \"x\"}]'))"))
    calls = count_calls(service.repo, monkeypatch)
    catalogue = (await service.published_catalogue("acme")).items
    assert [(c.id, c.lesson_count, len(c.lessons)) for c in catalogue] == [
        ("c0", 1, 1), ("c1", 2, 2), ("c2", 2, 2), ("c3", 1, 1), ("c4", 2, 2)]
    assert [x.title for x in catalogue[1].lessons] == ["Lesson 1.0", "Lesson 1.1"]
    # it parsed every block of every lesson it listed, to show their titles and minutes
    assert calls["live_lesson_ids"] + calls["lesson_outlines"] == 2
    assert calls["lessons_of_courses"] == calls["list_lessons"] == calls["lesson_versions"] == 0


async def test_a_big_course_s_lessons_are_parsed_off_the_event_loop(
        service: ContentService, monkeypatch: pytest.MonkeyPatch) -> None:
    """Its rows were read on the reader thread and parsed on the loop: 200-640 ms of it for a
    course of 1,500 lessons, each time it was read."""
    await service.create_course("acme", NewCourse(id="big", title="Big"))
    for n in range(5):
        await service.add_lesson("acme", "big", NewLesson(
            title=f"Lesson {n}", blocks=[MarkdownBlock(markdown="Text. " * 200)]))
    await service.publish("acme", "big")
    parsed_on: list[int] = []
    parse = embedded._lesson

    def recorded(doc: str) -> Lesson:
        parsed_on.append(threading.get_ident())
        return parse(doc)

    monkeypatch.setattr(embedded, "_lesson", recorded)
    small = await service.course_detail("acme", "big")
    assert set(parsed_on) == {threading.get_ident()}  # a few bytes: on the loop
    parsed_on.clear()
    monkeypatch.setattr(embedded, "PARSED_ON_LOOP", 2000)  # each lesson is 1,200 bytes or more
    assert await service.course_detail("acme", "big") == small
    assert len(parsed_on) == 5
    assert threading.get_ident() not in parsed_on
    published = await service.published_lessons_of("acme", [await service.course("acme", "big")])
    assert published["big"] == small.lessons


def reader(user_id: str, *roles: str) -> Principal:
    return Principal(user_id=user_id, tenant="acme", roles=frozenset(roles),
                     scopes=frozenset(SCOPES), token_id="t", session_id="s", expires_at=2**31)


async def test_what_readers_may_do_with_many_lessons_comes_in_two_reads(
        service: ContentService, monkeypatch: pytest.MonkeyPatch) -> None:
    """`lesson_access` answers as `draft_for` and the published `lesson` do one at a time: the
    draft's version to a course's authors, the published version to everyone else, nothing of
    a draft never published, of a deleted lesson or of no lesson."""
    owner, other = reader("owner", "educator"), reader("other", "educator")
    ids: list[str] = []
    for n in range(4):
        await service.create_course("acme", NewCourse(id=f"c{n}", title=f"Course {n}"), by=owner)
        for i in range(3):
            ids.append((await service.add_lesson("acme", f"c{n}", NewLesson(
                title=f"Lesson {n}.{i}", blocks=[MarkdownBlock(markdown="Text.")]), by=owner)).id)
        if n < 3:
            await service.publish("acme", f"c{n}", by=owner)
    await service.edit_lesson("acme", ids[0], LessonEdit(version=1, title="Moved on"), by=owner)
    await service.delete_lesson("acme", ids[4], by=owner)
    asked = [*ids, "ghost"]
    for by in (owner, other, reader("learner", "learner"), reader("admin", "tenant_admin"),
               reader("ta", "teaching_assistant")):
        expected: dict[str, tuple[int, bool]] = {}
        for lesson_id in asked:
            draft = await service.draft_for("acme", lesson_id, by)
            if draft is not None:
                expected[lesson_id] = (draft.version, True)
                continue
            try:
                shown = await service.lesson("acme", lesson_id, drafts=False)
            except NotFound:
                continue
            expected[lesson_id] = (shown.version, False)
        calls = count_calls(service.repo, monkeypatch)
        found = await service.lesson_access("acme", asked, by)
        assert sum(calls.values()) == 2, calls
        assert {x: (a.version, a.may_edit) for x, a in found.items()} == expected
        monkeypatch.undo()
    mine = await service.lesson_access("acme", asked, owner)
    theirs = await service.lesson_access("acme", asked, other)
    assert (mine[ids[0]].version, theirs[ids[0]].version) == (2, 1)
    assert (ids[4] in mine, ids[9] in mine, ids[9] in theirs) == (False, True, False)


async def test_a_deleted_owner_s_courses_open_to_no_other_educator(
        service: ContentService) -> None:
    """An owner's account deleted: their first co-author owns the course; with none left, the
    tenant's admins alone change and read its draft (not every educator, as for the seeded
    course no one ever owned). Running it again changes nothing."""
    carol, bob, dan = (reader(u, "educator") for u in ("carol", "bob", "dan"))
    admin = reader("boss", "tenant_admin")
    for cid in ("alone", "shared"):
        await service.create_course("acme", NewCourse(id=cid, title=cid), by=carol)
        await service.add_lesson("acme", cid, NewLesson(title="L"), by=carol)
    await service.set_co_author("acme", "shared", "dan", True, by=carol)
    await service.set_co_author("acme", "shared", "bob", True, by=carol)
    await service.create_course("acme", NewCourse(id="seeded", title="Seeded"))
    lesson = (await service.course_detail("acme", "alone")).lessons[0].id

    assert await service.forget_author("acme", "carol") == 2
    assert await service.forget_author("acme", "carol") == 0
    alone, shared = [await service.course("acme", c) for c in ("alone", "shared")]
    assert (alone.owner, alone.co_authors, alone.orphaned) == (None, [], True)
    assert (shared.owner, shared.co_authors, shared.orphaned) == ("dan", ["bob"], False)

    assert await service.draft_for("acme", lesson, bob) is None
    with pytest.raises(NotFound):  # never published: bob may not read it either
        await service.publish("acme", "alone", by=bob)
    assert [c.id for c in (await service.course_views("acme", None, bob)).items] == [
        "seeded", "shared"]
    assert await service.draft_for("acme", lesson, admin) is not None
    assert (await service.publish("acme", "alone", by=admin)).version == 1
    with pytest.raises(Forbidden):
        await service.set_co_author("acme", "shared", "carol2", True, by=bob)
    assert [service.may_edit(shared, r) for r in (dan, bob)] == [True, True]
    seeded = await service.course("acme", "seeded")
    assert service.may_edit(seeded, bob)
