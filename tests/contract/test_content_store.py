"""The content store contract, run against the embedded (SQLite) adapter and a real
MongoDB-wire server (FerretDB v1 from infra/, or MongoDB). Each real case uses a database of its
own, dropped afterwards."""

from __future__ import annotations

import asyncio
import base64
import json
import re
import sqlite3
import uuid
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest
from pymongo.errors import BulkWriteError, DuplicateKeyError

from bloop.platform.content.events import (
    AiMediaNotAttached,
    CoursePublished,
    LessonDeleted,
    UnattachedOutput,
)
from bloop.platform.content.model import (
    AudioBlock,
    Captions,
    Concept,
    ConceptEdit,
    Course,
    CourseSnapshot,
    CourseStatus,
    Lesson,
    LessonEdit,
    LessonRef,
    MarkdownBlock,
    NewConcept,
    NewCourse,
    NewLesson,
    VideoBlock,
    now,
)
from bloop.platform.content.ports import (
    ContentRepository,
    Duplicate,
    LessonHead,
    Missing,
    ReadableBy,
    StaleVersion,
)
from bloop.platform.content.stores.embedded import EmbeddedContentStore
from bloop.platform.content.stores.mongo import MongoContentStore
from bloop.platform.kit.events.envelope import Envelope
from bloop.platform.kit.events.types import registry, type_of
from bloop.platform.kit.pagination import MAX_CURSOR, BadCursor, cursor, key_of
from bloop.platform.kit.sqlite import SqliteDB
from tests.support import paged, scratch_mongo


@pytest.fixture(params=["embedded", pytest.param("real", marks=pytest.mark.real)])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[ContentRepository]:
    if request.param == "embedded":
        db = SqliteDB(tmp_path / "content.sqlite3")
        embedded = EmbeddedContentStore(db, registry)
        await embedded.setup()
        yield embedded
        await db.close()
        return
    # Without a server the test fails under CI and is reported as not run (xfail) elsewhere.
    async with scratch_mongo("content_test") as (client, name):
        mongo = MongoContentStore(client, registry, database=name)
        await mongo.setup()
        yield mongo


def course(tenant: str = "acme", cid: str = "py", title: str = "Python") -> Course:
    return Course.create(tenant, NewCourse(id=cid, title=title, tags=["python"]))


def lesson(c: Course, title: str = "One", **fields: list[str]) -> Lesson:
    return Lesson.create(c.tenant, c.id, NewLesson(
        title=title, blocks=[MarkdownBlock(markdown=f"# {title}\n\nText.")], **fields))


def published_event(c: Course, lessons: Sequence[Lesson] = ()) -> Envelope:
    assert c.published_at is not None
    return type_of(CoursePublished).envelope(CoursePublished(
        course_id=c.id, version=c.version, title=c.title, summary=c.summary,
        language=c.language, level=c.level, tags=c.tags, lesson_ids=[x.id for x in lessons],
        published_at=c.published_at), tenant=c.tenant, subject=c.id)


async def publish(store: ContentRepository, c: Course) -> Course:
    """Publishes the stored draft of `c` (its lessons as they are now) as the next version."""
    lessons = await store.list_lessons(c.tenant, c.id)
    v = c.published(lessons=lessons)
    await store.publish_course(v, c.version, lessons, [published_event(v, lessons)])
    return v


async def test_concepts_are_per_tenant(store: ContentRepository) -> None:
    for cid in ("recursion", "functions"):
        await store.add_concept(Concept.create("acme", NewConcept(id=cid, name=cid.title())))
    with pytest.raises(Duplicate):
        await store.add_concept(Concept.create("acme", NewConcept(id="functions", name="F")))
    beta = Concept.create("beta", NewConcept(id="functions", name="Functions in Beta"))
    await store.add_concept(beta)
    assert [c.id for c in await store.list_concepts("acme")] == ["functions", "recursion"]
    assert await store.list_concepts("beta") == [beta]
    found = await store.get_concepts("acme", ["recursion", "nope", "functions"])
    assert [c.id for c in found] == ["functions", "recursion"]
    assert await store.get_concepts("beta", ["recursion"]) == []
    assert await store.get_concepts("acme", []) == []

    renamed = found[0].model_copy(update={"name": "Functions, renamed", "description": "d"})
    await store.replace_concept(renamed)
    assert await store.get_concepts("acme", ["functions"]) == [renamed]
    assert await store.list_concepts("beta") == [beta]
    with pytest.raises(Missing):
        await store.replace_concept(renamed.model_copy(update={"id": "ghost"}))
    with pytest.raises(Missing):
        await store.replace_concept(renamed.model_copy(update={"tenant": "gamma"}))


async def forget_version(store: ContentRepository, tenant: str, concept_id: str) -> None:
    """Makes the stored concept look as one written before concepts had versions."""
    if isinstance(store, EmbeddedContentStore):
        await store.db.transaction(lambda c: c.execute(
            "UPDATE concepts SET doc = json_remove(doc, '$.version') WHERE tenant = ? AND id = ?",
            (tenant, concept_id)))
    else:
        assert isinstance(store, MongoContentStore)
        await store.concepts.update_one({"tenant": tenant, "id": concept_id},
                                        {"$unset": {"version": ""}})


async def test_a_concept_is_replaced_only_at_the_version_it_was_read(
        store: ContentRepository) -> None:
    first = Concept.create("acme", NewConcept(id="loops", name="Lopos"))
    await store.add_concept(first)
    await forget_version(store, "acme", "loops")
    [old] = await store.get_concepts("acme", ["loops"])
    assert old == first
    assert old.version == 1  # a concept stored before versions is at 1
    renamed = old.edited(ConceptEdit(name="Loops"))
    await store.replace_concept(renamed, expected=1)
    assert await store.get_concepts("acme", ["loops"]) == [renamed]
    with pytest.raises(StaleVersion):
        await store.replace_concept(renamed.edited(ConceptEdit(name="Late")), expected=1)
    assert await store.get_concepts("acme", ["loops"]) == [renamed]
    with pytest.raises(Missing):
        await store.replace_concept(renamed.model_copy(update={"id": "ghost"}), expected=2)
    again = renamed.edited(ConceptEdit(description="Repeating."))
    await store.replace_concept(again, expected=2)
    assert await store.get_concepts("acme", ["loops"]) == [again]
    assert again.version == 3


async def test_of_concept_edits_at_one_version_at_once_one_stands(
        store: ContentRepository) -> None:
    """On FerretDB a replace is a read and a write: several edits made at the version they
    read were each told they won, and all but one were lost."""
    tenant = f"t{uuid.uuid4().hex[:8]}"
    first = Concept.create(tenant, NewConcept(id="loops", name="Loops"))
    await store.add_concept(first)
    for round_ in range(3):
        [read] = await store.get_concepts(tenant, ["loops"])
        edits = [read.edited(ConceptEdit(name=f"Loops {round_}.{n}")) for n in range(8)]
        won = await asyncio.gather(*(store.replace_concept(e, expected=read.version)
                                     for e in edits), return_exceptions=True)
        [winner] = [e for e, r in zip(edits, won, strict=True) if r is None]
        assert all(isinstance(r, StaleVersion) for r in won if r is not None), won
        assert await store.get_concepts(tenant, ["loops"]) == [winner]

async def test_a_course_round_trips(store: ContentRepository) -> None:
    c = course()
    await store.add_course(c)
    assert await store.get_course("acme", "py") == c
    assert await store.get_course("beta", "py") is None
    with pytest.raises(Duplicate):
        await store.add_course(course(title="Again"))
    await store.add_course(course("beta"))  # the same id in another tenant is another course


async def test_courses_come_by_their_ids_in_one_read(store: ContentRepository) -> None:
    for cid in ("b", "a", "c"):
        await store.add_course(course(cid=cid, title=cid.upper()))
    await store.add_course(course("beta", cid="d"))
    found = await store.get_courses("acme", ["c", "ghost", "a", "d", "a"])
    assert found == [await store.get_course("acme", "a"), await store.get_course("acme", "c")]
    assert await store.get_courses("beta", ["a", "d"]) == [await store.get_course("beta", "d")]
    assert await store.get_courses("acme", []) == []


async def test_courses_list_by_status_then_title(store: ContentRepository) -> None:
    await store.add_course(course(cid="b", title="Beta"))
    await store.add_course(course(cid="a", title="Alpha"))
    await store.add_course(course("other", cid="c", title="Gamma"))
    await store.add_lesson(lesson(course(cid="b")))
    b = await store.get_course("acme", "b")
    assert b is not None
    await publish(store, b)
    assert [c.id for c in (await store.list_courses("acme")).items] == ["a", "b"]
    assert [c.id for c in (await store.list_courses("acme", "published")).items] == ["b"]
    assert [c.id for c in (await store.list_courses("acme", "draft")).items] == ["a"]
    assert [c.id for c in (await store.list_courses("acme", limit=1)).items] == ["a"]


async def test_concepts_come_a_slice_at_a_time(store: ContentRepository) -> None:
    """By id, each slice from its cursor on: nothing twice or left out, and a concept added
    before the cursor between two slices moves nothing after it."""
    for cid in ("c3", "c0", "c4", "c1", "c2"):
        await store.add_concept(Concept.create("acme", NewConcept(id=cid, name=cid)))
    await store.add_concept(Concept.create("beta", NewConcept(id="c1a", name="Beta's")))
    for size in (1, 2, 5):
        listed = await paged(lambda after, n: store.page_concepts("acme", after=after, limit=n),
                             size)
        assert [c.id for c in listed] == ["c0", "c1", "c2", "c3", "c4"], size
        assert listed == await store.list_concepts("acme")
    first = await store.page_concepts("acme", limit=2)
    for cid in ("c0a", "c5"):
        await store.add_concept(Concept.create("acme", NewConcept(id=cid, name=cid)))
    rest = await store.page_concepts("acme", after=first.next, limit=10)
    assert [c.id for c in [*first.items, *rest.items]] == ["c0", "c1", "c2", "c3", "c4", "c5"]
    assert rest.next is None
    assert (await store.page_concepts("gamma")).items == []
    for bad in ("not-a-cursor", cursor("c1", "x"), cursor(1)):
        with pytest.raises(BadCursor):
            await store.page_concepts("acme", after=bad)


async def test_courses_page_by_title_then_id(store: ContentRepository) -> None:
    """Each slice goes on from its cursor, with no course twice or left out, titles alike or
    not; a slice has a cursor only when more courses follow it."""
    titles = ["Zeta", "Alpha", "Mu", "Alpha", "Ärger", "alpha", "Mu", "Beta"]
    for n, title in enumerate(titles):
        await store.add_course(course(cid=f"c{n}", title=title))
    await store.add_course(course("other", cid="x", title="Alpha"))
    expected = [c.id for c in sorted((course(cid=f"c{n}", title=t) for n, t in enumerate(titles)),
                                     key=lambda c: (c.title.casefold(), c.id))]
    assert expected[:4] == ["c1", "c3", "c5", "c7"]  # "Alpha", "Alpha", "alpha", "Beta"
    for size in (1, 3, 8):
        listed = await paged(lambda after, n: store.list_courses("acme", after=after, limit=n),
                             size)
        assert [c.id for c in listed] == expected, size
    last = await store.list_courses("acme", after=None, limit=8)
    assert (len(last.items), last.next) == (8, None)
    with pytest.raises(BadCursor):
        await store.list_courses("acme", after="not-a-cursor")


async def test_courses_of_the_longest_titles_page_on_from_new_and_old_cursors(
        store: ContentRepository) -> None:
    """A cursor holds its title as UTF-8 JSON and fits an `after` whatever the title; one of
    before 6 Dec, its JSON in ASCII (`\\u` escapes), goes on from the same course."""
    titles = {"emoji": "🐍" * 200, "iota": "ΐ" * 200, "ru": "Программирование" * 12 + "Python",
              "a": "A", "z": "Z", "emoji-2": "🐍" * 200}
    for cid, title in titles.items():
        await store.add_course(course(cid=cid, title=title[:200]))
    expected = sorted(titles, key=lambda cid: (titles[cid][:200].casefold(), cid))
    listed = await paged(lambda after, n: store.list_courses("acme", after=after, limit=n), 1)
    assert [c.id for c in listed] == expected
    for n in (3, 4, 5):  # a cursor at "ΐ…", at "программирование…", at "🐍…"
        first = await store.list_courses("acme", limit=n)
        assert first.next is not None
        assert len(first.next) <= MAX_CURSOR
        ascii_json = json.dumps(key_of(first.next, str, str), separators=(",", ":")).encode()
        old = base64.urlsafe_b64encode(ascii_json).decode().rstrip("=")
        assert old != first.next
        for after in (first.next, old):
            rest = await store.list_courses("acme", after=after, limit=9)
            assert [c.id for c in rest.items] == expected[n:]


async def test_courses_list_what_a_reader_may_read_in_one_read(
        store: ContentRepository) -> None:
    """A reader who is no admin gets the courses published at least once and, an educator,
    the drafts they own or co-author and those no one owns; a page at a time, each in one
    read, however many of the tenant's courses they may not read."""
    made = {"a-own": ("ann", []), "b-co": ("bob", ["ann"]), "c-nobody": (None, []),
            "d-other": ("bob", []), "e-published": ("bob", []), "f-archived": ("bob", [])}
    for cid, (owner, co_authors) in made.items():
        c = Course.create("acme", NewCourse(id=cid, title=cid), owner=owner)
        await store.add_course(c.model_copy(update={"co_authors": co_authors}))
        await store.add_lesson(lesson(c))
        if cid in ("e-published", "f-archived"):
            published = await publish(store, c)
            if cid == "f-archived":
                await store.set_course_status(published.archived(True), published, [])
    for n in range(20):  # drafts of others, which a page must not stop at
        await store.add_course(Course.create("acme", NewCourse(id=f"x{n:02}", title=f"x{n:02}"),
                                             owner="bob"))
    await store.add_course(Course.create("beta", NewCourse(id="a-own", title="a"), owner="ann"))

    async def listed(status: CourseStatus | None, readable_by: ReadableBy | None,
                     size: int = 1) -> list[str]:
        return [c.id for c in await paged(lambda after, n: store.list_courses(
            "acme", status, after=after, limit=n, readable_by=readable_by), size)]

    ann, learner = ReadableBy(editor="ann"), ReadableBy()
    assert await listed(None, ann) == ["a-own", "b-co", "c-nobody", "e-published", "f-archived"]
    assert await listed(None, ann, size=2) == await listed(None, ann)
    assert await listed("draft", ann) == ["a-own", "b-co", "c-nobody"]
    assert await listed("archived", ann) == ["f-archived"]
    assert await listed(None, learner) == ["e-published", "f-archived"]
    assert await listed("draft", learner) == []
    assert await listed("published", learner) == ["e-published"]
    assert len(await listed(None, None, size=7)) == 26
    first = await store.list_courses("acme", "draft", limit=2, readable_by=ann)
    assert [c.id for c in first.items] == ["a-own", "b-co"]
    assert first.next is not None
    rest = await store.list_courses("acme", "draft", after=first.next, limit=2, readable_by=ann)
    assert ([c.id for c in rest.items], rest.next) == (["c-nobody"], None)


async def test_a_course_left_by_its_deleted_owner_is_read_by_no_other_educator(
        store: ContentRepository) -> None:
    """An owned course whose owner's account is deleted with no co-author left is stored
    `orphaned`: no other educator lists its draft, unlike the seeded course no one owns."""
    for cid, owner in (("a-left", "ann"), ("b-nobody", None)):
        await store.add_course(Course.create("acme", NewCourse(id=cid, title=cid), owner=owner))
    head = await store.get_course("acme", "a-left")
    assert head is not None
    await store.update_course(head.without_author("ann"), head.revision)
    left = await store.get_course("acme", "a-left")
    assert left is not None
    assert (left.owner, left.orphaned, left.revision) == (None, True, head.revision + 1)
    assert await store.courses_of_author("acme", "ann") == []
    listed = await store.list_courses("acme", readable_by=ReadableBy(editor="bob"))
    assert [c.id for c in listed.items] == ["b-nobody"]
    assert [c.id for c in (await store.list_courses("acme")).items] == ["a-left", "b-nobody"]


async def listed_ids(store: ContentRepository, status: CourseStatus | None = None, *,
                     hidden: str | None = None) -> list[str]:
    """The ids `list_courses` lists one at a time; none of the cursors it gave on the way holds
    `hidden`."""
    ids: list[str] = []
    after = None
    while True:
        page = await store.list_courses("acme", status, after=after, limit=1)
        ids += [c.id for c in page.items]
        if (after := page.next) is None:
            return ids
        assert hidden is None or hidden not in json.dumps(key_of(after, str, str))


async def test_courses_are_listed_by_the_title_learners_read(store: ContentRepository) -> None:
    """Before, a published course was listed by its draft's title (learners read it in the
    cursor), with "Zeta" before "alpha"."""
    for cid, title in (("algo", "Algorithms"), ("bio", "biology"), ("chem", "Chemistry")):
        await store.add_course(course(cid=cid, title=title))
    algo = await store.get_course("acme", "algo")
    assert algo is not None
    await store.add_lesson(lesson(algo))
    await publish(store, algo)
    algo = await store.get_course("acme", "algo")
    assert algo is not None
    await store.update_course(algo.changed(title="Aaa unreleased: merger"), algo.revision)
    chem = await store.get_course("acme", "chem")
    assert chem is not None
    await store.update_course(chem.changed(title="alchemy"), chem.revision)
    assert await listed_ids(store, hidden="unreleased") == ["chem", "algo", "bio"]
    assert await listed_ids(store, "published") == ["algo"]
    algo = await store.get_course("acme", "algo")
    assert algo is not None
    await publish(store, algo)
    assert await listed_ids(store) == ["algo", "chem", "bio"]

    # a head edit made against a copy read before a publication keeps the publication's place
    bio = await store.get_course("acme", "bio")
    assert bio is not None
    await store.add_lesson(lesson(bio))
    await publish(store, bio)
    await store.update_course(bio.changed(title="Aa secret"), bio.revision)
    assert await listed_ids(store, hidden="secret") == ["algo", "chem", "bio"]
    stored = await store.get_course("acme", "bio")
    assert stored is not None
    assert stored.title == "Aa secret"


async def forget_listed_titles(store: ContentRepository) -> None:
    """Makes the stored courses look as ones written before they were listed by the title
    learners read."""
    if isinstance(store, EmbeddedContentStore):
        def drop(c: sqlite3.Connection) -> None:
            c.executescript("DROP INDEX courses_listed; DROP INDEX courses_status_listed;"
                            " ALTER TABLE courses DROP COLUMN listed_title;")

        await store.db.run(drop)
    else:
        assert isinstance(store, MongoContentStore)
        await store.courses.update_many({}, {"$unset": {"_listed_title": ""}})


async def test_courses_stored_before_are_listed_by_the_title_learners_read(
        store: ContentRepository) -> None:
    for cid, title in (("algo", "Algorithms"), ("bio", "biology")):
        await store.add_course(course(cid=cid, title=title))
    algo = await store.get_course("acme", "algo")
    assert algo is not None
    await store.add_lesson(lesson(algo))
    await publish(store, algo)
    algo = await store.get_course("acme", "algo")
    assert algo is not None
    await store.update_course(algo.changed(title="Zz unreleased"), algo.revision)
    await forget_listed_titles(store)
    await store.setup()
    await store.setup()
    assert await listed_ids(store, hidden="unreleased") == ["algo", "bio"]


async def test_lessons_get_positions_in_order(store: ContentRepository) -> None:
    c = course()
    await store.add_course(c)
    placed = [await store.add_lesson(lesson(c, t)) for t in ("One", "Two", "Three")]
    assert [x.position for x in placed] == [0, 1, 2]
    assert await store.list_lessons("acme", "py") == placed
    assert await store.get_lesson("acme", placed[1].id) == placed[1]
    stored = await store.get_course("acme", "py")
    assert stored is not None
    assert stored.lesson_count == 3


async def test_lessons_need_their_course_in_their_tenant(store: ContentRepository) -> None:
    await store.add_course(course())
    with pytest.raises(Missing):
        await store.add_lesson(lesson(course(cid="nothing")))
    with pytest.raises(Missing):
        await store.add_lesson(lesson(course("beta")))  # `py` exists in acme only
    assert await store.list_lessons("beta", "py") == []


async def test_lessons_added_together_follow_the_course_s_lessons(
        store: ContentRepository) -> None:
    c = course()
    await store.add_course(c)
    first = await store.add_lesson(lesson(c, "First"))
    placed = await store.add_lessons([lesson(c, t) for t in ("One", "Two", "Three")])
    assert [(x.title, x.position) for x in placed] == [("One", 1), ("Two", 2), ("Three", 3)]
    assert await store.list_lessons("acme", "py") == [first, *placed]
    assert await store.add_lessons([]) == []
    after = await store.add_lesson(lesson(c, "After"))
    assert after.position == 4
    stored = await store.get_course("acme", "py")
    assert stored is not None
    assert stored.lesson_count == 5


async def test_lessons_added_together_are_all_stored_or_none(store: ContentRepository) -> None:
    c = course()
    await store.add_course(c)
    taken = await store.add_lesson(lesson(c, "Taken"))
    with pytest.raises(Missing):
        await store.add_lessons([lesson(course("beta")), lesson(course("beta"), "Two")])
    clash = lesson(c, "Clash").model_copy(update={"id": taken.id})
    with pytest.raises((sqlite3.IntegrityError, DuplicateKeyError, BulkWriteError)):
        await store.add_lessons([lesson(c, "Before"), clash, lesson(c, "After")])
    assert [x.title for x in await store.list_lessons("acme", "py")] == ["Taken"]
    stored = await store.get_course("acme", "py")
    assert stored is not None
    assert stored.lesson_count == 1


async def test_no_lesson_read_crosses_tenants(store: ContentRepository) -> None:
    c = course()
    await store.add_course(c)
    one = await store.add_lesson(lesson(c))
    assert await store.get_lesson("beta", one.id) is None
    assert await store.list_lessons("beta", "py") == []


async def test_a_lesson_replacement_is_compare_and_set(store: ContentRepository) -> None:
    c = course()
    await store.add_course(c)
    one = await store.add_lesson(lesson(c))
    edited = one.edited(LessonEdit(version=1, title="One, edited"))
    await store.replace_lesson(edited, expected_version=1)
    assert await store.get_lesson("acme", one.id) == edited
    late = one.edited(LessonEdit(version=1, title="Late"))
    with pytest.raises(StaleVersion):
        await store.replace_lesson(late, expected_version=1)
    assert await store.get_lesson("acme", one.id) == edited
    ghost = lesson(c, "Ghost")
    with pytest.raises(Missing):
        await store.replace_lesson(ghost.model_copy(update={"version": 2}), expected_version=1)
    elsewhere = edited.model_copy(update={"tenant": "beta", "version": 3})
    with pytest.raises(Missing):
        await store.replace_lesson(elsewhere, expected_version=2)


async def test_publishing_stores_the_course_and_its_events_together(
        store: ContentRepository) -> None:
    c = course()
    await store.add_course(c)
    await store.add_lesson(lesson(c))
    read = await store.get_course("acme", "py")
    assert read is not None
    lessons = await store.list_lessons("acme", "py")
    v1 = read.published(lessons=lessons)
    await store.publish_course(v1, read.version, lessons, [published_event(v1, lessons)])
    assert await store.get_course("acme", "py") == v1
    [p] = await store.outbox.pending(10)
    assert p.message.topic == "content.events"
    assert p.message.key == b"py"
    assert json.loads(p.message.value)["data"]["version"] == 1

    # a publication made from an old read of the course is refused, stores no event, and
    # leaves no snapshot behind
    again = read.published(lessons=lessons)
    assert again.publication is not None
    with pytest.raises(StaleVersion):
        await store.publish_course(again, read.version, lessons, [published_event(again)])
    assert await store.get_snapshot("acme", "py", again.publication.snapshot) is None
    assert await store.outbox.count_pending() == 1
    await store.outbox.mark_sent([p])
    assert await store.outbox.count_pending() == 0
    assert await store.get_course("acme", "py") == v1
    ghost = course(cid="ghost")
    with pytest.raises(Missing):
        await store.publish_course(ghost.published(), 0, [], [])


async def test_a_publication_keeps_its_version_while_the_draft_moves_on(
        store: ContentRepository) -> None:
    c = course()
    await store.add_course(c)
    one = await store.add_lesson(lesson(c, "One"))
    v1 = await publish(store, c)
    assert v1.publication is not None
    assert await store.get_snapshot("acme", "py", v1.publication.snapshot) == CourseSnapshot(
        id=v1.publication.snapshot, tenant="acme", course="py", publication=v1.publication)
    assert await store.get_snapshot("beta", "py", v1.publication.snapshot) is None

    # the draft changes after the publication: learners still read version 1 of the lesson
    edited = one.edited(LessonEdit(version=1, title="One, edited"))
    await store.replace_lesson(edited, expected_version=1)
    two = await store.add_lesson(lesson(c, "Two"))
    assert await store.lesson_versions("acme", v1.publication.lessons) == [one]
    assert await store.lesson_versions("beta", v1.publication.lessons) == []

    head = await store.get_course("acme", "py")
    assert head is not None
    assert head.lesson_count == 2
    v2 = await publish(store, head)
    assert v2.publication is not None
    assert [(r.id, r.version) for r in v2.publication.lessons] == [(one.id, 2), (two.id, 1)]
    assert await store.lesson_versions("acme", v2.publication.lessons) == [edited, two]
    # both versions of the lesson stay readable, in the order asked for
    refs = [*v2.publication.lessons, *v1.publication.lessons,
            LessonRef(id="nothing", version=1)]
    assert await store.lesson_versions("acme", refs) == [edited, two, one]
    stored = await store.get_course("acme", "py")
    assert stored is not None
    assert [h.version for h in stored.history] == [1, 2]
    assert stored.lesson_count == 2  # publishing leaves the draft's counters alone


async def spoil_blocks(store: ContentRepository, tenant: str, ref: LessonRef) -> None:
    """Gives the stored lesson snapshot `ref` names a block no version can read: a read of its
    blocks fails from now on."""
    spoiled = [{"type": "from_the_future"}]
    if isinstance(store, EmbeddedContentStore):
        await store.db.transaction(lambda c: c.execute(
            "UPDATE lesson_versions SET doc = json_set(doc, '$.blocks', json(?))"
            " WHERE tenant = ? AND id = ? AND version = ?",
            (json.dumps(spoiled), tenant, ref.id, ref.version)))
        return
    assert isinstance(store, MongoContentStore)
    result = await store.lesson_snapshots.update_one(
        {"tenant": tenant, "id": ref.id, "version": ref.version}, {"$set": {"blocks": spoiled}})
    assert result.modified_count == 1


async def test_lesson_outlines_are_the_published_lessons_without_their_blocks(
        store: ContentRepository) -> None:
    """The landing page's catalogue parsed every block of every lesson it listed (170-300 ms
    of the event loop a request for 20 courses) to show titles and minutes."""
    c = course()
    await store.add_course(c)
    one = await store.add_lesson(lesson(c, "One", teaches=["loops"]))
    two = await store.add_lesson(lesson(c, "Two", requires=["loops"]))
    v1 = await publish(store, c)
    assert v1.publication is not None
    await store.replace_lesson(one.edited(LessonEdit(version=1, title="One, edited")),
                               expected_version=1)
    refs = [*reversed(v1.publication.lessons), LessonRef(id="nothing", version=1)]
    outlines = await store.lesson_outlines("acme", refs)
    assert [x.model_dump() for x in outlines] == [
        x.model_dump(exclude={"blocks", "created_at", "updated_at"}) for x in (two, one)]
    assert await store.lesson_outlines("beta", refs) == []
    assert await store.lesson_outlines("acme", []) == []

    # their blocks are left unread: blocks no reader could parse do not fail them
    await spoil_blocks(store, "acme", v1.publication.lessons[0])
    with pytest.raises(ValueError, match="from_the_future"):
        await store.lesson_versions("acme", v1.publication.lessons)
    assert [x.title for x in await store.lesson_outlines("acme", v1.publication.lessons)] == [
        "One", "Two"]


async def test_a_publication_does_not_undo_a_head_edit_made_meanwhile(
        store: ContentRepository) -> None:
    c = course()
    await store.add_course(c)
    await store.add_lesson(lesson(c))
    read = await store.get_course("acme", "py")
    assert read is not None
    await store.update_course(read.changed(title="Renamed"), read.revision)
    await publish(store, read)
    stored = await store.get_course("acme", "py")
    assert stored is not None
    assert (stored.title, stored.version) == ("Renamed", 1)
    assert stored.publication is not None
    assert stored.publication.title == "Python"


async def test_a_head_update_is_compare_and_set_on_its_revision(
        store: ContentRepository) -> None:
    c = course()
    await store.add_course(c)
    renamed = c.changed(title="Renamed", co_authors=["ada"])
    await store.update_course(renamed, expected_revision=0)
    assert await store.get_course("acme", "py") == renamed
    with pytest.raises(StaleVersion):
        await store.update_course(c.changed(title="Late"), expected_revision=0)
    with pytest.raises(Missing):
        await store.update_course(course(cid="ghost").changed(title="X"), expected_revision=0)
    assert [x.id for x in await store.courses_of_author("acme", "ada")] == ["py"]
    assert await store.courses_of_author("beta", "ada") == []


def deleted_event(x: Lesson) -> Envelope:
    return type_of(LessonDeleted).envelope(LessonDeleted(
        lesson_id=x.id, course_id=x.course, lesson_version=x.version, deleted_at=now()),
        tenant=x.tenant, subject=x.id)


async def test_a_draft_course_is_deleted_with_its_lessons_and_their_events(
        store: ContentRepository) -> None:
    await store.add_course(course())
    one, two = [await store.add_lesson(lesson(course(), t)) for t in ("One", "Two")]
    await store.add_course(course(cid="keep"))
    kept = await store.add_lesson(lesson(course(cid="keep"), "Kept"))
    read = await store.get_course("acme", "py")
    assert read is not None
    await store.outbox.mark_sent(await store.outbox.pending(100))

    three = await store.add_lesson(lesson(course(), "Three"))  # added since `read`
    with pytest.raises(StaleVersion):
        await store.delete_draft_course(read, deleted_event)
    read = await store.get_course("acme", "py")
    assert read is not None
    await store.update_course(read.changed(title="Python, edited"), read.revision)
    with pytest.raises(StaleVersion):
        await store.delete_draft_course(read, deleted_event)
    read = await store.get_course("acme", "py")
    assert read is not None

    await store.delete_draft_course(read, deleted_event)
    assert await store.get_course("acme", "py") is None
    assert [await store.get_lesson("acme", x.id) for x in (one, two, three)] == [None] * 3
    assert await store.list_lessons("acme", "py") == []
    assert await store.list_lessons("acme", "keep") == [kept]
    events = [json.loads(p.message.value) for p in await store.outbox.pending(100)]
    assert sorted((e["type"], e["subject"]) for e in events) == sorted(
        ("bloop.content.lesson.deleted.v1", x.id) for x in (one, two, three))
    with pytest.raises(Missing):
        await store.delete_draft_course(read, deleted_event)
    assert await store.delete_lessons_left("acme", "py", deleted_event) == 0
    assert await store.delete_lessons_left("acme", "keep", deleted_event) == 0  # it exists
    assert await store.list_lessons("acme", "keep") == [kept]

    keep = await store.get_course("acme", "keep")
    assert keep is not None
    published = await publish(store, keep)
    with pytest.raises(StaleVersion):
        await store.delete_draft_course(published.model_copy(update={"version": 0}), deleted_event)
    assert await store.get_course("acme", "keep") is not None


async def test_lessons_are_reordered_all_at_once(store: ContentRepository) -> None:
    c = course()
    await store.add_course(c)
    one, two, three = [await store.add_lesson(lesson(c, t)) for t in ("One", "Two", "Three")]
    first = await publish(store, c)
    at = now()
    await store.reorder_lessons("acme", "py", [three.id, one.id, two.id], at)
    assert [x.title for x in await store.list_lessons("acme", "py")] == ["Three", "One", "Two"]
    assert (await store.lessons_of_courses("acme", ["py"]))["py"][0].title == "Three"
    four = await store.add_lesson(lesson(c, "Four"))
    assert [x.title for x in await store.list_lessons("acme", "py")][-1] == "Four"
    stored = await store.get_lesson("acme", three.id)
    assert stored is not None
    assert stored.version == three.version + 1
    assert stored.updated_at == at
    assert stored.model_copy(update={"position": 0, "version": three.version, "updated_at": at}) == (
        three.model_copy(update={"position": 0, "updated_at": at}))
    shown = await store.published_lesson("acme", three.id)
    assert shown is not None
    assert (shown.version, shown.position) == (three.version, three.position)
    await publish(store, first)
    shown = await store.published_lesson("acme", three.id)
    assert shown is not None
    assert (shown.version, shown.position) == (stored.version, stored.position)
    for stale in ([one.id, two.id, three.id], [one.id, two.id, three.id, four.id, "ghost"]):
        with pytest.raises(StaleVersion):
            await store.reorder_lessons("acme", "py", stale, at)
    with pytest.raises(Missing):
        await store.reorder_lessons("acme", "nope", [], at)
    assert [x.title for x in await store.list_lessons("acme", "py")] == [
        "Three", "One", "Two", "Four"]


async def test_a_deleted_lesson_is_a_tombstone_a_rollback_can_revive(
        store: ContentRepository) -> None:
    c = course()
    await store.add_course(c)
    one = await store.add_lesson(lesson(c, "One"))
    await store.add_lesson(lesson(c, "Two"))
    with pytest.raises(StaleVersion):
        await store.delete_lesson("acme", one.id, expected_version=2)
    await store.delete_lesson("acme", one.id, expected_version=1)
    assert await store.get_lesson("acme", one.id) is None
    assert await store.get_lesson("acme", one.id, deleted=True) == one
    assert [x.title for x in await store.list_lessons("acme", "py")] == ["Two"]
    assert (await store.lessons_of_courses("acme", ["py"]))["py"][0].title == "Two"
    stored = await store.get_course("acme", "py")
    assert stored is not None
    assert stored.lesson_count == 1
    with pytest.raises(Missing):
        await store.delete_lesson("acme", one.id, expected_version=1)
    with pytest.raises(Missing):
        await store.replace_lesson(one.restored(one), expected_version=1)

    await store.replace_lesson(one.restored(one), expected_version=1, revive=True)
    back = await store.get_lesson("acme", one.id)
    assert back is not None
    assert (back.version, back.title) == (2, "One")
    assert [x.title for x in await store.list_lessons("acme", "py")] == ["One", "Two"]
    stored = await store.get_course("acme", "py")
    assert stored is not None
    assert stored.lesson_count == 2


async def test_events_are_announced_on_a_lesson_deleted_or_not(store: ContentRepository) -> None:
    tenant = f"t{uuid.uuid4().hex[:8]}"
    c = course(tenant)
    await store.add_course(c)
    one = await store.add_lesson(lesson(c, "One"))
    gone = await store.add_lesson(lesson(c, "Gone"))
    await store.delete_lesson(tenant, gone.id, expected_version=1)
    await store.outbox.mark_sent(await store.outbox.pending(100))

    def refused(lesson_id: str) -> Envelope:
        return type_of(AiMediaNotAttached).envelope(AiMediaNotAttached(
            job_id="job-1", lesson_id=lesson_id, outputs=[UnattachedOutput(
                name="v.mp4", kind="video", code="quota_exceeded", detail="full")],
            refused_at=now()), tenant=tenant, subject=lesson_id)

    for lid in (one.id, gone.id):
        assert await store.announce_on_lesson(tenant, lid, [refused(lid)])
    assert not await store.announce_on_lesson(tenant, "ghost", [refused("ghost")])
    assert not await store.announce_on_lesson("other", one.id, [refused(one.id)])
    pending = await store.outbox.pending(10)
    assert sorted(p.message.key or b"" for p in pending) == sorted(
        [one.id.encode(), gone.id.encode()])
    assert await store.get_lesson(tenant, one.id) == one  # nothing else changed
    assert await store.get_lesson(tenant, gone.id) is None
    await store.outbox.mark_sent(pending)
    assert await store.outbox.count_pending() == 0


async def test_archiving_stores_the_status_and_its_event_together(
        store: ContentRepository) -> None:
    tenant = f"t{uuid.uuid4().hex[:8]}"
    c = course(tenant)
    await store.add_course(c)
    await store.add_lesson(lesson(c))
    await publish(store, c)
    await store.outbox.mark_sent(await store.outbox.pending(100))
    v1 = await store.get_course(tenant, "py")
    assert v1 is not None
    archived = v1.archived(True)
    await store.set_course_status(archived, v1, [published_event(v1)])
    assert await store.get_course(tenant, "py") == archived
    [p] = await store.outbox.pending(10)
    assert p.message.key == b"py"
    assert [x.id for x in (await store.list_courses(tenant, "archived")).items] == ["py"]
    assert (await store.list_courses(tenant, "published")).items == []
    assert [x.id for x in await store.list_published((tenant, ""), limit=10)
            if x.tenant == tenant] == []

    # neither a status change from an old read nor a publication while archived is stored
    for stale in (v1, v1.model_copy(update={"revision": archived.revision, "version": 0})):
        with pytest.raises(StaleVersion):
            await store.set_course_status(v1.archived(False), stale, [published_event(v1)])
    again = v1.published(lessons=await store.list_lessons(tenant, "py"))
    with pytest.raises(StaleVersion):
        await store.publish_course(again, v1.version, [], [published_event(again)])
    assert await store.get_course(tenant, "py") == archived
    assert await store.outbox.count_pending() == 1

    back = archived.archived(False)
    await store.set_course_status(back, archived, [])
    assert await store.get_course(tenant, "py") == back
    assert [x.id for x in (await store.list_courses(tenant, "published")).items] == ["py"]
    with pytest.raises(Missing):
        await store.set_course_status(course(tenant, cid="ghost"), course(tenant, cid="ghost"),
                                      [])


async def test_published_courses_of_every_tenant_come_a_page_at_a_time(
        store: ContentRepository) -> None:
    tenant = f"t{uuid.uuid4().hex[:8]}"
    for t in (tenant, f"{tenant}-b"):
        for cid in ("b", "a", "draft"):
            c = course(t, cid=cid)
            await store.add_course(c)
            await store.add_lesson(lesson(c))
            if cid != "draft":
                await publish(store, c)
    seen: list[tuple[str, str]] = []
    after: tuple[str, str] | None = (tenant, "")
    while after is not None:
        page = await store.list_published(after, limit=2)
        seen += [(c.tenant, c.id) for c in page if c.tenant.startswith(tenant)]
        after = (page[-1].tenant, page[-1].id) if len(page) == 2 else None
    assert seen == [(tenant, "a"), (tenant, "b"), (f"{tenant}-b", "a"), (f"{tenant}-b", "b")]


async def test_lessons_of_many_courses_come_in_one_read(store: ContentRepository) -> None:
    a, b, empty = course(cid="a"), course(cid="b"), course(cid="empty")
    for c in (a, b, empty):
        await store.add_course(c)
    in_a = [await store.add_lesson(lesson(a, t)) for t in ("A1", "A2", "A3")]
    in_b = [await store.add_lesson(lesson(b, t)) for t in ("B1", "B2")]
    elsewhere = course("beta", cid="a")
    await store.add_course(elsewhere)
    await store.add_lesson(lesson(elsewhere, "Beta"))

    found = await store.lessons_of_courses("acme", ["b", "a", "empty", "ghost", "a"])
    assert found == {"b": in_b, "a": in_a, "empty": [], "ghost": []}
    assert [x.title for x in (await store.lessons_of_courses("beta", ["a", "b"]))["a"]] == ["Beta"]
    assert (await store.lessons_of_courses("beta", ["b"])) == {"b": []}
    assert await store.lessons_of_courses("acme", []) == {}


async def test_the_live_lessons_of_many_courses_come_in_one_read(
        store: ContentRepository) -> None:
    a, b, empty = course(cid="a"), course(cid="b"), course(cid="empty")
    for c in (a, b, empty):
        await store.add_course(c)
    in_a = [await store.add_lesson(lesson(a, t)) for t in ("A1", "A2", "A3")]
    in_b = await store.add_lesson(lesson(b, "B1"))
    await store.delete_lesson("acme", in_a[1].id, in_a[1].version)
    elsewhere = course("beta", cid="a")
    await store.add_course(elsewhere)
    in_beta = await store.add_lesson(lesson(elsewhere, "Beta"))

    found = await store.live_lesson_ids("acme", ["b", "a", "empty", "ghost", "a"])
    assert found == {"a": {in_a[0].id, in_a[2].id}, "b": {in_b.id}, "empty": set(),
                     "ghost": set()}
    assert await store.live_lesson_ids("beta", ["a", "b"]) == {"a": {in_beta.id}, "b": set()}
    assert await store.live_lesson_ids("acme", []) == {}


async def test_a_course_s_lessons_are_read_by_id_in_pages(store: ContentRepository) -> None:
    a, b = course(cid="a"), course(cid="b")
    for c in (a, b):
        await store.add_course(c)
    in_a = [await store.add_lesson(lesson(a, t)) for t in ("A1", "A2", "A3", "A4")]
    in_b = await store.add_lesson(lesson(b, "B1"))
    await store.delete_lesson("acme", in_a[1].id, in_a[1].version)
    await store.reorder_lessons("acme", "a", [in_a[3].id, in_a[0].id, in_a[2].id], now())
    elsewhere = course("beta", cid="a")
    await store.add_course(elsewhere)
    in_beta = await store.add_lesson(lesson(elsewhere, "Beta"))

    stamps = await store.lesson_stamps("acme", "a")
    order = [lesson_id for lesson_id, _ in stamps]
    assert order == [in_a[3].id, in_a[0].id, in_a[2].id]
    listed = await store.list_lessons("acme", "a")
    assert stamps == [(x.id, x.version) for x in listed]
    assert listed[0].version == in_a[3].version + 1  # moved: a version on
    assert await store.lesson_stamps("acme", "ghost") == []
    assert await store.lesson_stamps("beta", "a") == [(in_beta.id, in_beta.version)]
    found = await store.get_lessons("acme", [in_b.id, *order, in_a[1].id, in_beta.id, "ghost"])
    assert found == [in_b, *await store.list_lessons("acme", "a")]
    assert await store.get_lessons("acme", []) == []
    edited = listed[1].model_copy(update={"title": "A1 again", "version": listed[1].version + 1})
    await store.replace_lesson(edited, listed[1].version)
    assert await store.lesson_stamps("acme", "a") == [
        stamps[0], (edited.id, edited.version), stamps[2]]


async def test_where_many_lessons_stand_comes_in_one_read(store: ContentRepository) -> None:
    a, b = course(cid="a"), course(cid="b")
    for c in (a, b):
        await store.add_course(c)
    edited, gone = [await store.add_lesson(lesson(a, t)) for t in ("A1", "A2")]
    await store.replace_lesson(edited.edited(LessonEdit(version=1, title="A1, edited")),
                               expected_version=1)
    await store.delete_lesson("acme", gone.id, gone.version)
    in_b = await store.add_lesson(lesson(b, "B1"))
    elsewhere = course("beta", cid="a")
    await store.add_course(elsewhere)
    in_beta = await store.add_lesson(lesson(elsewhere, "Beta"))

    found = await store.lesson_heads("acme", [in_b.id, edited.id, gone.id, in_beta.id, "ghost",
                                              in_b.id])
    assert found == {in_b.id: LessonHead(course="b", version=1),
                     edited.id: LessonHead(course="a", version=2)}
    assert await store.lesson_heads("beta", [in_beta.id, in_b.id]) == {
        in_beta.id: LessonHead(course="a", version=1)}
    assert await store.lesson_heads("acme", []) == {}


async def test_learners_read_the_current_publication_of_a_lesson(
        store: ContentRepository) -> None:
    c = course()
    await store.add_course(c)
    one = await store.add_lesson(lesson(c, "One"))
    assert await store.published_lesson("acme", one.id) is None  # never published
    v1 = await publish(store, c)
    assert await store.published_lesson("acme", one.id) == one
    assert await store.published_lesson("beta", one.id) is None
    assert await store.published_lesson("acme", "nothing") is None

    # a draft edit and a new lesson show at the next publication only
    edited = one.edited(LessonEdit(version=1, title="One, edited"))
    await store.replace_lesson(edited, expected_version=1)
    two = await store.add_lesson(lesson(c, "Two"))
    assert await store.published_lesson("acme", one.id) == one
    assert await store.published_lesson("acme", two.id) is None
    await publish(store, v1)
    assert await store.published_lesson("acme", one.id) == edited
    assert await store.published_lesson("acme", two.id) == two

    # a deletion hides the lesson at once; a publication without it, then its revival, keep
    # it hidden until it is published again
    await store.delete_lesson("acme", two.id, expected_version=1)
    assert await store.published_lesson("acme", two.id) is None
    head = await store.get_course("acme", "py")
    assert head is not None
    v3 = await publish(store, head)
    assert v3.version == 3
    await store.replace_lesson(two.restored(two), expected_version=1, revive=True)
    assert await store.published_lesson("acme", two.id) is None
    assert await store.published_lesson("acme", one.id) == edited
    revived = await store.get_lesson("acme", two.id)
    assert revived is not None
    await publish(store, v3)
    assert await store.published_lesson("acme", two.id) == revived


async def test_a_stale_publication_changes_nothing_learners_read(
        store: ContentRepository) -> None:
    c = course()
    await store.add_course(c)
    one = await store.add_lesson(lesson(c, "One"))
    read = await store.get_course("acme", "py")
    assert read is not None
    v1 = await publish(store, read)
    edited = one.edited(LessonEdit(version=1, title="Late"))
    await store.replace_lesson(edited, expected_version=1)
    late = read.published(lessons=[edited])
    with pytest.raises(StaleVersion):
        await store.publish_course(late, read.version, [edited], [published_event(late)])
    assert await store.published_lesson("acme", one.id) == one
    assert v1.version == 1


async def test_a_lesson_deleted_after_the_lessons_were_read_is_not_published(
        store: ContentRepository) -> None:
    c = course()
    await store.add_course(c)
    one, two = [await store.add_lesson(lesson(c, t)) for t in ("One", "Two")]
    read = await store.list_lessons("acme", "py")
    await store.delete_lesson("acme", two.id, expected_version=1, events=[deleted_event(two)])
    v1 = c.published(lessons=read)
    assert v1.publication is not None
    with pytest.raises(StaleVersion):
        await store.publish_course(v1, 0, read, [published_event(v1, read)])
    stored = await store.get_course("acme", "py")
    assert stored is not None
    assert stored.version == 0
    assert await store.get_snapshot("acme", "py", v1.publication.snapshot) is None
    assert [p.message.key for p in await store.outbox.pending(10)] == [two.id.encode()]
    assert await store.published_lesson("acme", one.id) is None
    again = await publish(store, c)  # from the draft as it is now
    assert again.publication is not None
    assert [r.id for r in again.publication.lessons] == [one.id]


async def test_a_publication_of_lessons_edited_or_added_since_they_were_read_is_refused(
        store: ContentRepository) -> None:
    c = course()
    await store.add_course(c)
    one = await store.add_lesson(lesson(c, "One"))
    read = await store.list_lessons("acme", "py")
    await store.replace_lesson(one.edited(LessonEdit(version=1, title="Edited")), 1)
    stale = c.published(lessons=read)
    with pytest.raises(StaleVersion):
        await store.publish_course(stale, 0, read, [published_event(stale, read)])
    read = await store.list_lessons("acme", "py")
    await store.add_lesson(lesson(c, "Two"))
    stale = c.published(lessons=read)
    with pytest.raises(StaleVersion):
        await store.publish_course(stale, 0, read, [published_event(stale, read)])
    assert await store.outbox.count_pending() == 0
    v1 = await publish(store, c)
    assert v1.publication is not None
    assert [r.id for r in v1.publication.lessons] == [x.id for x in
                                                      await store.list_lessons("acme", "py")]
    assert v1.publication.lessons[0].version == 2


@pytest.fixture
async def mongo_store() -> AsyncIterator[MongoContentStore]:
    async with scratch_mongo("content_test") as (client, name):
        mongo = MongoContentStore(client, registry, database=name)
        await mongo.setup()
        yield mongo


@pytest.mark.real
async def test_a_publication_stopped_after_its_commit_still_shows(
        mongo_store: MongoContentStore, monkeypatch: pytest.MonkeyPatch) -> None:
    """MongoDB: the lessons' records are written after the course head; a read finding them
    behind the head reads the head and the snapshot, and writes the record back."""
    store = mongo_store
    c = course()
    await store.add_course(c)
    one = await store.add_lesson(lesson(c, "One"))
    v1 = await publish(store, c)
    edited = one.edited(LessonEdit(version=1, title="One, edited"))
    await store.replace_lesson(edited, expected_version=1)

    async def stopped(*_: object) -> None:
        raise RuntimeError("the process stopped")

    with monkeypatch.context() as m:
        m.setattr(store, "_record", stopped)
        with pytest.raises(RuntimeError):
            await publish(store, v1)
    head = await store.get_course("acme", "py")
    assert head is not None
    assert head.version == 2
    key = f"acme/{one.id}"
    before = await store.lessons.find_one({"_id": key})
    assert before is not None
    assert (before["_publishing"], before["_published"]["version"]) == (2, 1)
    assert await store.published_lesson("acme", one.id) == edited
    after = await store.lessons.find_one({"_id": key})
    assert after is not None
    assert after["_published"]["version"] == 2  # written back: the next read is one find_one

    # a lesson stored before the records existed is read the long way, then recorded
    await store.lessons.update_one({"_id": key}, {"$unset": {"_published": "", "_publishing": ""}})
    assert await store.published_lesson("acme", one.id) == edited
    again = await store.lessons.find_one({"_id": key})
    assert again is not None
    assert again["_published"]["lesson"]["title"] == "One, edited"
    assert await store.get_lesson("acme", one.id) == edited  # drafts never show the record


@pytest.mark.real
async def test_a_deletion_landing_just_before_a_publication_commits_has_it_refused(
        mongo_store: MongoContentStore, monkeypatch: pytest.MonkeyPatch) -> None:
    """MongoDB: the deletion lands after the publication read the live lessons again (while it
    stores its snapshot); it fences the course, so the commit is refused."""
    store = mongo_store
    c = course()
    await store.add_course(c)
    one, two = [await store.add_lesson(lesson(c, t)) for t in ("One", "Two")]
    read = await store.list_lessons("acme", "py")
    insert = store.snapshots.insert_one

    async def deleted_meanwhile(doc: dict[str, object]) -> object:
        await store.delete_lesson("acme", two.id, expected_version=1, events=[deleted_event(two)])
        return await insert(doc)

    v1 = c.published(lessons=read)
    assert v1.publication is not None
    with monkeypatch.context() as m:
        m.setattr(store.snapshots, "insert_one", deleted_meanwhile)
        with pytest.raises(StaleVersion):
            await store.publish_course(v1, 0, read, [published_event(v1, read)])
    stored = await store.get_course("acme", "py")
    assert stored is not None
    assert stored.version == 0
    assert await store.get_snapshot("acme", "py", v1.publication.snapshot) is None
    assert [p.message.key for p in await store.outbox.pending(10)] == [two.id.encode()]
    assert await store.get_lesson("acme", two.id) is None
    assert [r.id for r in (await publish(store, c)).publication.lessons] == [one.id]  # type: ignore[union-attr]


@pytest.mark.real
async def test_a_deletion_overtaken_by_a_whole_publication_comes_after_it(
        mongo_store: MongoContentStore, monkeypatch: pytest.MonkeyPatch) -> None:
    """MongoDB: a publication marks, checks and commits between the deletion's read of the
    lesson and its write: the deletion finds the lesson marked anew, starts again, and is
    stored after the publication that holds the lesson."""
    store = mongo_store
    c = course()
    await store.add_course(c)
    one, two = [await store.add_lesson(lesson(c, t)) for t in ("One", "Two")]
    find_one = store.lessons.find_one
    published: list[Course] = []

    async def then_publication(query: dict[str, object], fields: dict[str, object]) -> object:
        found = await find_one(query, fields)
        if "_publish_mark" in fields and not published:  # the deletion's read of the lesson
            published.append(await publish(store, c))
        return found

    with monkeypatch.context() as m:
        m.setattr(store.lessons, "find_one", then_publication)
        await store.delete_lesson("acme", two.id, expected_version=1, events=[deleted_event(two)])
    [v1] = published
    assert v1.publication is not None
    assert [r.id for r in v1.publication.lessons] == [one.id, two.id]
    assert await store.get_lesson("acme", two.id) is None
    assert await store.published_lesson("acme", two.id) is None
    doc = await store.courses.find_one({"_id": "acme/py"})
    assert doc is not None
    assert doc["_fence"] == 2  # fenced, found the lesson marked anew, fenced again


@pytest.mark.real
async def test_the_lessons_a_stopped_course_deletion_left_are_deleted_later(
        mongo_store: MongoContentStore) -> None:
    """MongoDB deletes the course, then its lessons one by one: a process stopped in between
    leaves lessons whose course is gone, until `delete_lessons_left` (a retried deletion, or
    the course made again under its id) deletes them with their events."""
    store = mongo_store
    await store.add_course(course())
    one, two = [await store.add_lesson(lesson(course(), t)) for t in ("One", "Two")]
    await store.outbox.mark_sent(await store.outbox.pending(100))
    await store.courses.delete_one({"_id": "acme/py"})  # the process stopped here
    assert await store.delete_lessons_left("acme", "py", deleted_event) == 2
    assert await store.list_lessons("acme", "py") == []
    assert [await store.get_lesson("acme", x.id) for x in (one, two)] == [None, None]
    events = [json.loads(p.message.value) for p in await store.outbox.pending(100)]
    assert sorted(e["subject"] for e in events) == sorted([one.id, two.id])
    await store.add_course(course())
    assert await store.list_lessons("acme", "py") == []


@pytest.mark.real
async def test_two_reorders_at_once_leave_one_of_them_whole(
        mongo_store: MongoContentStore) -> None:
    """MongoDB moves the lessons one by one: of two reorders at once, the later stands whole
    (before, their moves mixed into an order neither asked for)."""
    store = mongo_store
    await store.add_course(course())
    ids = [(await store.add_lesson(lesson(course(), f"L{n}"))).id for n in range(6)]
    forward, backward = ids, ids[::-1]
    for _ in range(10):
        await asyncio.gather(store.reorder_lessons("acme", "py", forward, now()),
                             store.reorder_lessons("acme", "py", backward, now()))
        assert [x.id for x in await store.list_lessons("acme", "py")] in (forward, backward)


@pytest.mark.real
async def test_a_lesson_insert_that_fails_is_not_counted(mongo_store: MongoContentStore) -> None:
    """MongoDB counts the course's lessons before it inserts one: a failed insert takes the
    count back (before, course lists showed one lesson more than there was)."""
    store = mongo_store
    await store.add_course(course())
    first = await store.add_lesson(lesson(course(), "One"))
    with pytest.raises(DuplicateKeyError):
        await store.add_lesson(first)  # its id is taken
    stored = await store.get_course("acme", "py")
    assert stored is not None
    assert stored.lesson_count == 1


async def newer_fields(store: ContentRepository, table: str, tenant: str, record_id: str,
                       *paths: str) -> None:
    """Adds `from_next` to a stored record at its top and at each of `paths` (dotted, such as
    `blocks.0`), as a newer version would add fields this one does not know."""
    fields = ["from_next", *(f"{path}.from_next" for path in paths)]
    if isinstance(store, EmbeddedContentStore):
        sets = ", ".join("'$." + re.sub(r"\.(\d+)", r"[\1]", f) + "', 1" for f in fields)
        await store.db.transaction(lambda c: c.execute(
            f"UPDATE {table} SET doc = json_set(doc, {sets}) WHERE tenant = ? AND id = ?",
            (tenant, record_id)))
        return
    assert isinstance(store, MongoContentStore)
    result = await store.concepts.database[table].update_one(
        {"tenant": tenant, "id": record_id}, {"$set": dict.fromkeys(fields, 1)})
    assert result.modified_count == 1


async def test_records_a_newer_version_wrote_read_without_the_fields_it_added(
        store: ContentRepository) -> None:
    """During a rolling update, or after a rollback, this version reads what a newer one
    wrote (`Concept.version` once): the fields it does not know are left aside, in the
    record and in its parts."""
    concept = Concept.create("acme", NewConcept(id="loops", name="Loops"))
    await store.add_concept(concept)
    c = course()
    await store.add_course(c)
    one = lesson(c)
    await store.add_lessons([one])
    drafted = await store.get_course("acme", "py")
    assert drafted is not None
    c = await publish(store, drafted)
    [one] = await store.list_lessons("acme", "py")
    await newer_fields(store, "concepts", "acme", "loops")
    await newer_fields(store, "lessons", "acme", one.id, "blocks.0")
    await newer_fields(store, "courses", "acme", "py", "publication", "publication.lessons.0")
    assert await store.get_concepts("acme", ["loops"]) == [concept]
    assert await store.list_concepts("acme") == [concept]
    assert await store.get_lesson("acme", one.id) == one
    assert await store.list_lessons("acme", "py") == [one]
    assert await store.get_course("acme", "py") == c


async def written_before_captions(store: ContentRepository, tenant: str, lesson_id: str,
                                  block: int) -> None:
    """Takes `captions` out of a stored block, as a version before captions wrote it."""
    if isinstance(store, EmbeddedContentStore):
        await store.db.transaction(lambda c: c.execute(
            f"UPDATE lessons SET doc = json_remove(doc, '$.blocks[{block}].captions') "
            "WHERE tenant = ? AND id = ?", (tenant, lesson_id)))
        return
    assert isinstance(store, MongoContentStore)
    result = await store.concepts.database["lessons"].update_one(
        {"tenant": tenant, "id": lesson_id}, {"$unset": {f"blocks.{block}.captions": ""}})
    assert result.modified_count == 1


async def test_the_captions_of_media_blocks_round_trip(store: ContentRepository) -> None:
    """A video's captions are kept with its block; a block stored before captions existed
    reads back as it was, with none."""
    c = course()
    await store.add_course(c)
    video = VideoBlock(media="a" * 32, title="Loops",
                       captions=Captions(media="b" * 32, language="pt-BR"))
    older = AudioBlock(media="c" * 32, caption="The narration")
    one = Lesson.create("acme", "py", NewLesson(title="One", blocks=[video, older]))
    await store.add_lessons([one])
    await written_before_captions(store, "acme", one.id, 1)
    read = await store.get_lesson("acme", one.id)
    assert read == one
    assert read is not None
    assert read.blocks[0] == video
    assert read.blocks[1] == older
    assert isinstance(read.blocks[1], AudioBlock)
    assert read.blocks[1].captions is None
