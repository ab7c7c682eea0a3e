"""Search over an in-memory tantivy index fed from an in-memory catalogue of published content:
ranking, filters, facets, tenants, pages, odd queries, and keeping the index in step (events,
updates, deletions, late and repeated events, the build of a new index)."""

from __future__ import annotations

import json
import re
import shutil
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
import tantivy

from bloop.platform.content.events import CoursePublished, LessonPublished
from bloop.platform.content.model import (
    CodeBlock,
    Course,
    Lesson,
    Level,
    MarkdownBlock,
    NewCourse,
    NewLesson,
)
from bloop.platform.content.quiz import LearnerMatching, LearnerOrdering, QuizBlock, learner_quiz
from bloop.platform.content.search.consumers import subscriptions
from bloop.platform.content.search.index import (
    ANALYZER,
    SCHEMA_VERSION,
    TantivyIndex,
    in_use,
)
from bloop.platform.content.search.index import _schema as index_schema
from bloop.platform.content.search.model import Filters, SearchResults, lesson_text, newer
from bloop.platform.content.search.service import SearchService
from bloop.platform.content.search.settings import SearchSettings
from bloop.platform.content.search.snippets import (
    SNIPPET_CHARS,
    cluster_end,
    cluster_start,
    lead,
    window,
)
from bloop.platform.kit.errors import Problem
from bloop.platform.kit.events.envelope import Envelope
from bloop.platform.kit.events.types import type_of
from bloop.platform.kit.ids import new_id
from bloop.platform.kit.pagination import cursor


@dataclass
class Catalogue:
    """Courses, draft lessons and lesson snapshots in memory, read as `PublishedContent`."""

    heads: dict[tuple[str, str], Course] = field(default_factory=dict)
    drafts: dict[tuple[str, str], Lesson] = field(default_factory=dict)
    snapshots: dict[tuple[str, str, int], Lesson] = field(default_factory=dict)
    reads: int = 0

    async def course(self, tenant: str, course_id: str) -> Course | None:
        self.reads += 1
        course = self.heads.get((tenant, course_id))
        return course if course is not None and course.publication is not None else None

    async def lesson(self, tenant: str, lesson_id: str) -> tuple[Course, Lesson] | None:
        draft = self.drafts.get((tenant, lesson_id))
        course = None if draft is None else await self.course(tenant, draft.course)
        if course is None or course.publication is None:
            return None
        for ref in course.publication.lessons:
            if ref.id == lesson_id:
                return course, self.snapshots[(tenant, ref.id, ref.version)]
        return None

    async def course_lessons(self, tenant: str, course: Course) -> list[Lesson]:
        return [self.snapshots[(tenant, r.id, r.version)]
                for r in (course.publication.lessons if course.publication else [])
                if (tenant, r.id) in self.drafts]

    async def catalogue(self) -> AsyncIterator[tuple[Course, list[Lesson]]]:
        for (tenant, _), course in sorted(self.heads.items()):
            if course.publication is not None:
                yield course, [self.snapshots[(tenant, r.id, r.version)]
                               for r in course.publication.lessons
                               if (tenant, r.id) in self.drafts]

    def create(self, tenant: str, course_id: str, title: str, *, language: str = "en",
               level: Level = "beginner", tags: tuple[str, ...] = (),
               summary: str = "") -> Course:
        course = Course.create(tenant, NewCourse(id=course_id, title=title, summary=summary,
                                                 language=language, level=level,
                                                 tags=list(tags)))
        self.heads[(tenant, course_id)] = course
        return course

    def add(self, course: Course, title: str, *texts: str, **fields: object) -> Lesson:
        lesson = Lesson.create(course.tenant, course.id, NewLesson.model_validate(
            {"title": title, "blocks": [{"type": "markdown", "markdown": t} for t in texts],
             **fields}))
        self.drafts[(course.tenant, lesson.id)] = lesson
        return lesson

    def edit(self, lesson: Lesson, *texts: str) -> Lesson:
        edited = lesson.model_copy(update={
            "version": lesson.version + 1,
            "blocks": [MarkdownBlock(markdown=t) for t in texts]})
        self.drafts[(lesson.tenant, lesson.id)] = edited
        return edited

    def publish(self, course: Course) -> Course:
        key = (course.tenant, course.id)
        lessons = [x for (t, _), x in self.drafts.items() if t == course.tenant
                   and x.course == course.id]
        published = self.heads[key].published(lessons=lessons)
        for x in lessons:
            self.snapshots[(x.tenant, x.id, x.version)] = x
        self.heads[key] = published
        return published

    def course_with(self, tenant: str, course_id: str, title: str, *lessons: tuple[str, str],
                    **head: Any) -> Course:
        """A published course with `lessons` (title, text)."""
        course = self.create(tenant, course_id, title, **head)
        for lesson_title, text in lessons:
            self.add(course, lesson_title, text)
        return self.publish(course)


@pytest.fixture
async def search() -> AsyncIterator[SearchService]:
    index = TantivyIndex()
    yield SearchService(index, Catalogue())
    await index.close()


def catalogue(service: SearchService) -> Catalogue:
    assert isinstance(service.content, Catalogue)
    return service.content


async def index_all(service: SearchService) -> None:
    """What the consumer does on each course's and lesson's event."""
    for tenant, course_id in catalogue(service).heads:
        await service.sync_course(tenant, course_id)
    for tenant, lesson_id in catalogue(service).drafts:
        await service.sync_lesson(tenant, lesson_id)


def titles(results: SearchResults) -> list[str]:
    return [h.title for h in results.hits]


async def test_a_title_match_outranks_matches_in_the_text(search: SearchService) -> None:
    catalogue(search).course_with(
        "acme", "py", "Python",
        ("Recursion", "Recursion is a function calling itself, and recursion needs a base "
                      "case. Every recursion ends."),
        ("Iteration", "Loops repeat work. Compared with loops, recursion is sometimes clearer, "
                      "and recursion can express trees; recursion everywhere."),
        ("Strings", "Text in quotes."))
    await index_all(search)

    found = await search.search("acme", "recursion")
    assert titles(found) == ["Recursion", "Iteration"]
    assert found.total == 2
    assert "score" not in found.hits[0].model_dump()  # the order is all a hit shows of it


async def test_every_word_must_match_somewhere_and_phrases_keep_order(search: SearchService) -> None:
    catalogue(search).course_with(
        "acme", "py", "Python", ("Loops", "A for loop walks over a list."),
        ("Lists", "A list holds items; loop for each."), tags=("programming",))
    await index_all(search)

    assert set(titles(await search.search("acme", "loop list"))) == {"Loops", "Lists"}
    assert titles(await search.search("acme", '"for loop"')) == ["Loops"]
    assert titles(await search.search("acme", "loop -walks")) == ["Lists"]
    assert titles(await search.search("acme", 'list -"for loop"')) == ["Lists"]
    # a tag matches like a word of the text; a course is found by its title and summary
    assert set(titles(await search.search("acme", "programming"))) == {"Python", "Loops", "Lists"}
    assert titles(await search.search("acme", "loop nowhere")) == []


async def test_filters_and_facets_over_the_matching_set(search: SearchService) -> None:
    cat = catalogue(search)
    cat.course_with("acme", "algebra", "Algebra", ("Equations", "Solve each equation for x."),
                    ("Graphs", "Plot the equation as a line."), tags=("maths", "school"))
    cat.course_with("acme", "algebre", "Algèbre", ("Équations", "Résoudre une equation."),
                    language="fr", level="advanced", tags=("maths",))
    cat.course_with("acme", "poetry", "Poetry", ("Metre", "No equations here; only verse."),
                    tags=("writing",))
    await index_all(search)

    found = await search.search("acme", "equation")
    assert set(titles(found)) == {"Equations", "Graphs", "Équations"}
    assert {(f.value, f.count) for f in found.facets.language} == {("en", 2), ("fr", 1)}
    assert {(f.value, f.count) for f in found.facets.level} == {("beginner", 2), ("advanced", 1)}
    assert {(f.value, f.count) for f in found.facets.tag} == {("maths", 3), ("school", 2)}

    only_fr = await search.search("acme", "equation", Filters(language="fr"))
    assert titles(only_fr) == ["Équations"]
    assert [(f.value, f.count) for f in only_fr.facets.language] == [("fr", 1)]
    assert titles(await search.search("acme", "equation", Filters(level="advanced"))) == [
        "Équations"]
    assert set(titles(await search.search("acme", "", Filters(tag="school")))) == {
        "Algebra", "Equations", "Graphs"}
    assert titles(await search.search("acme", "equation", Filters(tag="writing"))) == []
    everything = await search.search("acme", "", limit=50)
    assert everything.total == 7
    assert {(f.value, f.count) for f in everything.facets.tag} == {
        ("maths", 5), ("school", 3), ("writing", 2)}


async def test_a_lesson_has_its_own_language_level_and_tags_beside_its_courses(
        search: SearchService) -> None:
    cat = catalogue(search)
    course = cat.create("acme", "mixed", "Mixed", tags=("maths",))
    cat.add(course, "Deutsch", "Gleichungen lösen", language="de", level="advanced",
            tags=["german"])
    cat.publish(course)
    await index_all(search)
    [hit] = (await search.search("acme", "gleichungen")).hits
    assert (hit.language, hit.level, hit.tags) == ("de", "advanced", ["german", "maths"])


async def test_a_tag_stored_decomposed_matches_a_filter_in_any_normal_form(
        search: SearchService) -> None:
    """A tag stored before tags were kept in NFC (`cafe` + U+0301) matched no filter."""
    cat = catalogue(search)
    course = cat.course_with("acme", "coffee", "Coffee", ("Beans", "Roasting beans."))
    assert course.publication is not None
    cat.heads[("acme", "coffee")] = course.model_copy(update={
        "publication": course.publication.model_copy(update={"tags": ["cafe\u0301"]})})
    await index_all(search)

    for tag in ("café", "CAFE\u0301", " Café "):
        found = await search.search("acme", "", Filters(tag=tag))
        assert set(titles(found)) == {"Coffee", "Beans"}, ascii(tag)
        assert [(f.value, f.count) for f in found.facets.tag] == [("café", 2)]
        assert all(h.tags == ["café"] for h in found.hits)


async def test_a_tenant_never_sees_another_tenants_documents(search: SearchService) -> None:
    cat = catalogue(search)
    cat.course_with("acme", "py", "Python at Acme", ("Acme loops", "loops"), tags=("secret",))
    cat.course_with("umbrella", "py", "Python at Umbrella", ("Umbrella loops", "loops"),
                    tags=("secret",))
    await index_all(search)

    for q in ("loops", "python", "umbrella", "tenant:umbrella", "", "-acme"):
        found = await search.search("acme", q, limit=50)
        assert all("Umbrella" not in t for t in titles(found)), q
        assert all(c.count <= 2 for c in found.facets.tag), q
    assert titles(await search.search("acme", "umbrella")) == []
    assert (await search.search("nobody", "")).total == 0


async def test_drafts_are_not_searched_until_published(search: SearchService) -> None:
    cat = catalogue(search)
    course = cat.create("acme", "py", "Python")
    lesson = cat.add(course, "Draft", "unpublished words")
    await index_all(search)
    assert (await search.search("acme", "")).total == 0

    cat.publish(course)
    cat.edit(lesson, "edited draft words")
    await index_all(search)
    assert titles(await search.search("acme", "unpublished")) == ["Draft"]
    assert titles(await search.search("acme", "edited")) == []


async def test_snippets_mark_the_matching_words_in_characters(search: SearchService) -> None:
    catalogue(search).course_with(
        "acme", "fr", "Français",
        ("Boucles", "## Répétition\n\nUne **boucle** répète: *encore* et encore la boucle."),
        language="fr")
    await index_all(search)

    [hit] = (await search.search("acme", "boucle")).hits
    assert hit.kind == "lesson"
    assert [hit.snippet[a:b] for a, b in hit.highlights] == ["boucle", "boucle"]
    assert "**" not in hit.snippet
    assert "##" not in hit.snippet
    [accented] = (await search.search("acme", "repetition")).hits
    assert [accented.snippet[a:b] for a, b in accented.highlights] == ["Répétition"]


async def test_a_snippet_never_marks_the_words_left_out(search: SearchService) -> None:
    """`loop -"for loop"` marked `for`, the excluded phrase's word, beside `loop`."""
    catalogue(search).course_with("acme", "py", "Python", (
        "Recursion", "A function calling itself, where a for statement would loop instead."))
    await index_all(search)
    [hit] = (await search.search("acme", 'loop -"for loop"')).hits
    assert [hit.snippet[a:b] for a, b in hit.highlights] == ["loop"]


@pytest.mark.parametrize("q", ['"', '"open', "((", ":::", "-", "***", "--", "-!!", '-" "',
                               "loops -*", "x" * 256])
async def test_queries_with_nothing_to_search_for_are_422(search: SearchService, q: str) -> None:
    with pytest.raises(Problem) as raised:
        await search.search("acme", q)
    assert (raised.value.status, raised.value.code) == (422, "bad_query")


@pytest.mark.parametrize(("q", "total"), [
    ("c++: (pointers)", 1), ('say "hello world"', 0), ('"hello world"', 1),
    ("title:x AND y OR z", 0), ("東京", 1), ("naïve CAFÉ", 1), ("a^2 ~ [1 TO 5] {x} \\ / !", 0),
    ("-loops", 2), ("pointers -東京", 0)])
async def test_odd_queries_are_plain_text(search: SearchService, q: str, total: int) -> None:
    catalogue(search).course_with("acme", "x", "Misc",
                                  ("Odd", "C pointers; hello world; 東京; naive cafe"))
    await index_all(search)
    found = await search.search("acme", q)
    assert found.total == len(found.hits) == total


async def test_pages_follow_cursors_to_the_end(search: SearchService) -> None:
    catalogue(search).course_with(
        "acme", "big", "Big course", *((f"Part {i}", "shared words " + "filler " * i)
                                       for i in range(23)))
    await index_all(search)

    seen: list[str] = []
    page = await search.search("acme", "shared", limit=10)
    while True:
        assert page.total == 23
        seen += [h.id for h in page.hits]
        if page.next is None:
            break
        page = await search.search("acme", "shared", limit=10, after=page.next)
    assert len(seen) == len(set(seen)) == 23

    first = await search.search("acme", "shared", limit=10)
    assert first.next is not None
    an_offset = cursor(10, "x")  # as cursors of searches before 7 Dec were
    for bad, q in (("nonsense!", "shared"), (first.next, "other words"), ("eyJvIjotMX0", "shared"),
                   (an_offset, "shared"), (cursor(-1, "x"), "shared")):
        with pytest.raises(Problem) as raised:
            await search.search("acme", q, limit=10, after=bad)
        assert (raised.value.status, raised.value.code) == (422, "bad_cursor")


async def every_page(search: SearchService, q: str, limit: int,
                     between: list[Any] | None = None) -> list[str]:
    """The titles of every page of `q`, awaiting the next of `between` after each page."""
    seen: list[str] = []
    page = await search.search("acme", q, limit=limit)
    while True:
        seen += titles(page)
        if page.next is None:
            return seen
        if between:
            await between.pop(0)()
        page = await search.search("acme", q, limit=limit, after=page.next)


async def test_a_page_goes_on_after_the_last_hit_where_it_ranks_now(
        search: SearchService) -> None:
    """The cursor was an offset into a fresh ranking: a hit of the first page moved down by an
    edit made the second page skip one and show it again."""
    cat = catalogue(search)
    course = cat.create("acme", "big", "Big course")
    lessons = [cat.add(course, f"Part {i}", "shared words " + "filler " * i) for i in range(8)]
    cat.publish(course)
    await index_all(search)
    ranked = [f"Part {i}" for i in range(8)]
    assert await every_page(search, "shared", 2) == ranked

    async def part_0_moves_down() -> None:
        cat.edit(lessons[0], "shared words " + "filler " * 20)
        cat.publish(course)
        await search.sync_lesson("acme", lessons[0].id)

    async def part_6_moves_up() -> None:
        cat.edit(lessons[6], "shared")
        cat.publish(course)
        await search.sync_lesson("acme", lessons[6].id)

    # a hit that moves down past the page before's last is shown again, one that moves up past
    # it is not shown; every other hit once, in order
    assert await every_page(search, "shared", 2, [part_0_moves_down, part_6_moves_up]) == [
        "Part 0", "Part 1", "Part 2", "Part 3", "Part 4", "Part 5", "Part 7", "Part 0"]

    # every hit scoring the same (no words): in order of key, however the index holds them
    everything = await every_page(search, "", 3)
    assert len(everything) == len(set(everything)) == 9

    twins = cat.create("acme", "twins", "Twins")
    for i in range(5):
        cat.add(twins, f"Twin {i}", "twin text")
    cat.publish(twins)
    await index_all(search)
    assert sorted(await every_page(search, "twin", 2)) == [f"Twin {i}" for i in range(5)]


async def test_a_search_pages_as_deep_as_its_setting(search: SearchService) -> None:
    catalogue(search).course_with(
        "acme", "big", "Big course", *((f"Part {i}", "shared words " + "filler " * i)
                                       for i in range(23)))
    await index_all(search)
    shallow = SearchService(search.index, search.content, SearchSettings(max_offset=10))
    assert len(await every_page(shallow, "shared", 4)) == 12
    assert len(await every_page(shallow, "", 4)) == 12


async def test_a_publication_replaces_the_text_and_an_older_one_never_comes_back(
        search: SearchService) -> None:
    cat = catalogue(search)
    course = cat.create("acme", "py", "Python")
    lesson = cat.add(course, "Loops", "The while statement repeats.")
    first = cat.publish(course)
    await index_all(search)
    assert titles(await search.search("acme", "while")) == ["Loops"]

    cat.edit(lesson, "Use range.")
    cat.publish(first)
    await search.sync_lesson("acme", lesson.id)
    assert titles(await search.search("acme", "while")) == []
    assert titles(await search.search("acme", "range")) == ["Loops"]

    cat.heads[("acme", "py")] = first  # a stale read, e.g. a lagging replica
    await search.sync_lesson("acme", lesson.id)
    await search.sync_course("acme", "py")
    assert titles(await search.search("acme", "range")) == ["Loops"]
    assert titles(await search.search("acme", "while")) == []


def test_a_later_publication_wins_whatever_lesson_version_it_names() -> None:
    assert newer((1, 1), None)
    assert newer((2, 1), (1, 1))
    assert newer((1, 2), (1, 1))
    assert newer((3, 1), (2, 5))
    assert not newer((1, 1), (1, 1))
    assert not newer((1, 3), (2, 1))


async def test_a_deleted_lesson_leaves_the_index(search: SearchService) -> None:
    cat = catalogue(search)
    cat.course_with("acme", "py", "Python", ("Obsolete", "Deprecated syntax."))
    await index_all(search)
    assert titles(await search.search("acme", "deprecated")) == ["Obsolete"]

    [(key, gone)] = cat.drafts.items()
    del cat.drafts[key]
    await search.sync_lesson("acme", gone.id)
    await search.sync_lesson("acme", gone.id)  # again: nothing left to remove
    assert titles(await search.search("acme", "deprecated")) == []
    assert await search.index.count("acme") == 1  # the course itself


def envelope(type_id: str, tenant: str, subject: str, data: dict[str, object],
             at: datetime | None = None) -> Envelope:
    return Envelope(id=new_id(), type=type_id, source="bloop/content",
                    time=at or datetime.now(UTC), tenant=tenant, subject=subject, data=data)


async def test_the_consumer_follows_content_events(search: SearchService) -> None:
    cat = catalogue(search)
    draft = cat.create("acme", "py", "Python", summary="Learn the language.")
    lesson = cat.add(draft, "Generators", "yield produces values lazily.")
    course = cat.publish(draft)
    [sub] = subscriptions(search)
    assert sub.group == f"content.search.{search.index.index_id}"
    assert sub.topics == ("content.events",)
    assert {"bloop.content.course.published.v1", "bloop.content.lesson.published.v1",
            "bloop.content.lesson.updated.v1", "bloop.content.lesson.deleted.v1"} <= sub.types

    at = course.published_at
    assert at is not None
    await sub.handler(type_of(CoursePublished).envelope(CoursePublished(
        course_id="py", version=1, title=course.title, summary=course.summary, language="en",
        level="beginner", tags=[], lesson_ids=[lesson.id], published_at=at),
        tenant="acme", subject="py"))
    published = type_of(LessonPublished).envelope(LessonPublished(
        lesson_id=lesson.id, course_id="py", course_version=1, lesson_version=1, position=0,
        title=lesson.title, estimated_minutes=10, teaches=[], requires=[], published_at=at),
        tenant="acme", subject=lesson.id)
    await sub.handler(published)
    await sub.handler(published)  # redelivered
    assert titles(await search.search("acme", "lazily")) == ["Generators"]
    assert titles(await search.search("acme", "language")) == ["Python"]

    cat.edit(lesson, "yield, lazily, and send.")  # a draft edit: learners do not see it yet
    await sub.handler(envelope("bloop.content.lesson.updated.v1", "acme", lesson.id, {}))
    assert titles(await search.search("acme", "send")) == []

    del cat.drafts[("acme", lesson.id)]
    await sub.handler(envelope("bloop.content.lesson.deleted.v1", "acme", lesson.id, {}))
    assert titles(await search.search("acme", "lazily")) == []


async def test_a_course_is_indexed_and_unlisted_with_its_lessons_in_one_write(
        search: SearchService, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each lesson of a publication was written (and committed) on its own event: a course of
    300 lessons took half a minute to become searchable, and as long to leave search."""
    cat = catalogue(search)
    course = cat.course_with("acme", "big", "Big course",
                             *((f"Lesson {n}", f"word{n} shared text") for n in range(30)))
    writes: list[int] = []
    deletes: list[int] = []
    write, delete = search.index.write, search.index.delete

    async def counted_write(docs: Any) -> None:
        if docs:
            writes.append(len(docs))
        await write(docs)

    async def counted_delete(keys: Any) -> None:
        if keys:
            deletes.append(len(keys))
        await delete(keys)

    monkeypatch.setattr(search.index, "write", counted_write)
    monkeypatch.setattr(search.index, "delete", counted_delete)
    [sub] = subscriptions(search)
    at = course.published_at
    assert at is not None
    lesson_ids = [r.id for r in course.publication.lessons] if course.publication else []
    await sub.handler(envelope("bloop.content.course.published.v1", "acme", "big",
                               {"lesson_ids": lesson_ids}))
    assert writes == [31]
    assert (await search.search("acme", "shared")).total == 30
    for lesson_id in lesson_ids:  # each lesson's own event finds it indexed already
        await sub.handler(envelope("bloop.content.lesson.published.v1", "acme", lesson_id, {}))
    assert writes == [31]

    archived = cat.heads[("acme", "big")].model_copy(update={"publication": None})
    cat.heads[("acme", "big")] = archived  # no longer listed, as an archived course
    await sub.handler(envelope("bloop.content.course.archived.v1", "acme", "big",
                               {"lesson_ids": lesson_ids}))
    assert deletes == [1, 30]
    assert (await search.search("acme", "shared")).total == 0


async def test_a_new_index_is_built_from_the_store_once(search: SearchService) -> None:
    cat = catalogue(search)
    for tenant in ("acme", "umbrella"):
        cat.course_with(tenant, "py", f"Python at {tenant}", ("One", "first lesson"),
                        ("Two", "second lesson"))
    cat.create("acme", "draft", "Not yet")
    assert search.index.built_at is None
    assert await search.build() == 6
    built = search.index.built_at
    assert built is not None
    assert (await search.search("umbrella", "lesson")).total == 2
    assert await search.build() == 0
    assert await search.build(force=True) == 0  # same versions: nothing to write

    # an event from well before the build is skipped without a read
    [sub] = subscriptions(search)
    reads = cat.reads
    old = built - timedelta(seconds=search.settings.clock_skew_s + 1)
    await sub.handler(envelope("bloop.content.course.published.v1", "acme", "py", {}, at=old))
    assert cat.reads == reads
    await sub.handler(envelope("bloop.content.course.published.v1", "acme", "py", {}))
    assert cat.reads == reads + 1


async def test_an_index_directory_is_kept_across_restarts(tmp_path: Path) -> None:
    cat = Catalogue()
    cat.course_with("acme", "py", "Python", ("Decorators", "functions wrapping functions"))
    first = SearchService(TantivyIndex(tmp_path / "search"), cat)
    await first.build()
    index_id, built = first.index.index_id, first.index.built_at
    await first.index.close()

    again = SearchService(TantivyIndex(tmp_path / "search"), cat)
    try:
        assert (again.index.index_id, again.index.built_at) == (index_id, built)
        assert titles(await again.search("acme", "wrapping")) == ["Decorators"]
        assert await again.build() == 0
    finally:
        await again.index.close()
    other = TantivyIndex(tmp_path / "other")
    assert other.index_id != index_id
    await other.close()

    (tmp_path / "stranger").mkdir()
    (tmp_path / "stranger" / "notes.txt").write_text("mine")
    with pytest.raises(RuntimeError, match="no search index"):
        TantivyIndex(tmp_path / "stranger")


async def test_an_index_that_lost_its_documents_is_built_again(tmp_path: Path) -> None:
    cat = Catalogue()
    cat.course_with("acme", "py", "Python", ("Closures", "functions keeping their scope"))
    first = SearchService(TantivyIndex(tmp_path / "search"), cat)
    assert await first.build() == 2
    await first.index.close()
    shutil.rmtree(tmp_path / "search" / "tenants")  # tantivy's files go; our meta stays

    again = SearchService(TantivyIndex(tmp_path / "search"), cat)
    try:
        assert again.index.built_at is not None
        assert titles(await again.search("acme", "scope")) == []
        assert await again.build() == 2
        assert titles(await again.search("acme", "scope")) == ["Closures"]
        assert await again.build() == 0
    finally:
        await again.index.close()


def test_lesson_text_reads_blocks_and_never_gives_answers_away() -> None:
    lesson = Lesson.model_validate({
        "id": uuid.uuid4().hex, "tenant": "acme", "course": "py", "title": "Quiz",
        "estimated_minutes": 5, "teaches": [], "requires": [],
        "created_at": datetime.now(UTC), "updated_at": datetime.now(UTC),
        "blocks": [
            {"type": "markdown", "markdown": "See [the docs](https://x.test/a) `now`"},
            {"type": "markdown", "markdown": "Nested:\n\n```python title=total.py\n"
                                             "def total(items):\n    return 0\n```\n"
                                             "  ~~~~ haskell\nsum []\n  ~~~~"},
            {"type": "image", "media": "m1", "caption": "A diagram", "alt": "arrows"},
            {"type": "quiz", "id": "q", "title": "Check", "questions": [
                {"type": "short_text", "id": "s", "prompt": "Capital of France?",
                 "accepted": ["Paris"]}]}]})
    text = lesson_text(lesson)
    assert text.startswith("See the docs now Nested: def total(items): return 0 sum [] A diagram")
    assert "python" not in text, "a code fence's info string is no text"
    assert "haskell" not in text
    assert "A diagram" in text
    assert "arrows" in text
    assert "Capital of France?" in text
    coded = lesson.model_copy(update={"blocks": [
        CodeBlock(language="python", source="for fruit in basket:\n    eat(fruit)")]})
    assert lesson_text(coded) == "for fruit in basket: eat(fruit)", "code is text a learner reads"
    assert "Paris" not in text
    assert "https" not in text


# A sentence with a full-width comma, as written in Chinese.
CHINESE = "本课程是中文课程介绍\N{FULLWIDTH COMMA}欢迎大家来学习。"

QUIZ = {"type": "quiz", "id": "brew", "title": "Check yourself", "questions": [
    {"type": "ordering", "id": "order", "prompt": "Put the brewing steps in order",
     "items": [{"id": i, "text": i} for i in ("grind", "boil", "steep", "pour")]},
    {"type": "matching", "id": "capitals", "prompt": "Match each capital",
     "pairs": [{"left": {"id": f"l{i}", "text": country}, "right": {"id": f"r{i}", "text": city}}
               for i, (country, city) in enumerate(
                   [("France", "Paris"), ("Spain", "Madrid"), ("Italy", "Rome")])]},
    {"type": "single_choice", "id": "pick", "prompt": "Which one is a tea?",
     "feedback": {"correct": "Indeed sencha", "incorrect": "Remember sencha"},
     "options": [{"id": "a", "text": "Espresso", "feedback": "Espresso is coffee"},
                 {"id": "b", "text": "Sencha", "correct": True, "feedback": "Sencha it is"}]},
    {"type": "numeric", "id": "temp", "prompt": "Water temperature?", "answer": 85,
     "tolerance": 5, "unit": "celsius"},
    {"type": "short_text", "id": "name", "prompt": "The tea's country?",
     "accepted": ["Japan"]}]}


def quiz_lesson(course: Course, cat: Catalogue) -> Lesson:
    lesson = Lesson.create(course.tenant, course.id, NewLesson.model_validate({
        "title": "Brewing", "blocks": [{"type": "markdown", "markdown": "How to brew."}, QUIZ]}))
    cat.drafts[(course.tenant, lesson.id)] = lesson
    return lesson


async def test_a_quiz_is_indexed_as_learners_see_it(search: SearchService) -> None:
    """The authored quiz was indexed: its ordering items in their correct order, its matching
    pairs side by side, so a snippet gave the answers away."""
    cat = catalogue(search)
    course = cat.create("acme", "tea", "Tea")
    lesson = quiz_lesson(course, cat)
    cat.publish(course)
    await index_all(search)

    text = lesson_text(lesson)
    seen = learner_quiz(QuizBlock.model_validate(QUIZ))
    ordering, matching = seen.questions[0], seen.questions[1]
    assert isinstance(ordering, LearnerOrdering)
    assert isinstance(matching, LearnerMatching)
    shown_order = " ".join(c.text for c in ordering.items)
    assert shown_order != "grind boil steep pour"
    assert shown_order in text
    assert "grind boil steep pour" not in text
    columns = " ".join(c.text for c in [*matching.left, *matching.right])
    assert columns in text  # the left sides, then the right ones as shuffled
    assert "France Paris" not in text
    assert "Espresso Sencha" in text  # the options, as listed to learners
    for answer in ("Indeed", "Remember", "coffee", "it is", "85", "Japan", "True", "true"):
        assert answer not in text, answer

    [hit] = (await search.search("acme", "brewing steps")).hits
    assert "grind boil steep pour" not in hit.snippet
    assert shown_order in hit.snippet
    for q in ('"grind boil steep pour"', '"France Paris"', '"Spain Madrid"', "japan", "indeed",
              "coffee"):
        assert (await search.search("acme", q)).total == 0, q
    assert titles(await search.search("acme", "sencha")) == ["Brewing"]


async def test_long_words_and_unspaced_scripts_are_found(search: SearchService) -> None:
    """Words of 40 bytes or more were dropped (a 21-letter Russian word, a German compound),
    and a run of Chinese or Japanese was one word: `中文` did not find `中文课程介绍`, and a
    sentence of 14 characters or more was no word at all."""
    german = "Grundstücksverkehrsgenehmigungszuständigkeitsübertragungsverordnung"
    catalogue(search).course_with(
        "acme", "langs", "Languages",
        ("Chinese", CHINESE),
        ("Japanese", "東京タワーに行きました。"),
        ("Thai", "ภาษาไทยเป็นภาษาราชการ"),
        ("Russian", "Москва: достопримечательности."),
        ("German", f"Die {german} gilt."),
        ("Mixed", "Python教程 and naïve café"),
        ("Hindi", "पाइथन में फ़ंक्शन एक नाम वाला कोड है।"),
        ("Persian", "من می\N{ZERO WIDTH NON-JOINER}خواهم یاد بگیرم"))
    await index_all(search)

    async def found(q: str) -> list[str]:
        return titles(await search.search("acme", q))

    assert await found("中文") == ["Chinese"]
    assert await found("中文课程介绍") == ["Chinese"]
    assert await found("本课程是中文课程介绍\N{FULLWIDTH COMMA}欢迎大家来学习") == ["Chinese"]
    assert await found("文中") == [], "the characters make a phrase, in their order"
    assert await found('"课程 介绍"') == ["Chinese"]
    assert await found("タワー") == ["Japanese"]
    assert await found("東京 行きました") == ["Japanese"]
    assert await found("ภาษาไทย") == ["Thai"]
    assert await found("ДОСТОПРИМЕЧАТЕЛЬНОСТИ") == ["Russian"]
    assert await found(german.lower()) == ["German"]
    assert await found("教程") == ["Mixed"]
    assert await found("python") == ["Mixed"]
    assert await found("cafe NAIVE") == ["Mixed"]
    assert await found("-中文 教程") == ["Mixed"]
    assert await found("cafe\N{COMBINING ACUTE ACCENT}") == ["Mixed"]
    # a Hindi word was three: virama and nukta are marks, not letters
    assert await found("फ़ंक्शन") == await found("पाइथन") == ["Hindi"]
    assert await found("ंक") == await found("शन") == []
    assert await found("می خواهم") == await found("می\N{ZERO WIDTH NON-JOINER}خواهم") == ["Persian"]

    [hit] = (await search.search("acme", "中文")).hits
    assert [hit.snippet[a:b] for a, b in hit.highlights] == ["中文"]


async def test_a_language_filter_ignores_case(search: SearchService) -> None:
    """`language=EN` found nothing while the facets said `en`."""
    cat = catalogue(search)
    cat.course_with("acme", "en", "English", ("One", "shared words"))
    cat.course_with("acme", "br", "Brazilian", ("Dois", "shared words"), language="pt-br")
    cat.course_with("acme", "pt", "Portuguese", ("Tres", "shared words"), language="pt-BR")
    await index_all(search)

    found = await search.search("acme", "shared")
    assert {(f.value, f.count) for f in found.facets.language} == {("en", 1), ("pt-BR", 2)}
    for asked in ("EN", "en", " En "):
        assert titles(await search.search("acme", "shared", Filters(language=asked))) == ["One"]
    for asked in ("pt-br", "PT-BR", "pt-BR"):
        assert sorted(titles(await search.search("acme", "", Filters(language=asked)))) == [
            "Brazilian", "Dois", "Portuguese", "Tres"]


async def test_what_other_tenants_publish_never_moves_a_tenants_ranking(
        search: SearchService) -> None:
    """One index held every tenant, so BM25 counted words over all of them: another tenant
    publishing a word reordered a tenant's results (and changed their scores)."""
    cat = catalogue(search)
    cat.course_with("acme", "x", "Course", ("One", "alpha alpha alpha beta"),
                    ("Two", "alpha beta beta beta"), ("Three", "alpha gamma"))
    await index_all(search)
    before = titles(await search.search("acme", "alpha beta"))
    assert before == ["Two", "One"]  # beta is the rarer word at acme, so Two's three count most

    cat.course_with("umbrella", "y", "Other", *((f"B{i}", "beta " + "delta " * i)
                                                 for i in range(30)))
    await index_all(search)
    assert titles(await search.search("acme", "alpha beta")) == before
    assert (await search.search("umbrella", "beta")).total == 30


async def test_each_tenant_has_its_own_index_and_few_stay_open(tmp_path: Path) -> None:
    cat = Catalogue()
    tenants = [f"school-{i}" for i in range(5)]
    for tenant in tenants:
        cat.course_with(tenant, "py", f"Python at {tenant}", ("Loops", f"loops of {tenant}"))
    index = TantivyIndex(tmp_path / "search", open_indexes=2)
    service = SearchService(index, cat)
    try:
        assert await service.build() == 10
        assert sorted(p.name for p in (tmp_path / "search" / "tenants").iterdir()) == tenants
        for _ in range(2):
            for tenant in tenants:
                found = await service.search(tenant, "loops")
                assert [h.snippet for h in found.hits] == [f"loops of {tenant}"]
                assert len(index._open) <= 2
        # a write to a tenant whose index was closed meanwhile is read by the next search
        cat.course_with("school-0", "go", "Go", ("Goroutines", "channels"))
        await service.sync_course("school-0", "go")
        await service.search("school-4", "loops")
        assert titles(await service.search("school-0", "go")) == ["Go"]
        assert await service.index.count() == 12  # the course came with its lesson
        assert await service.index.count("school-0") == 4
        assert await service.index.count("nobody") == 0
        assert (await service.search("nobody", "loops")).total == 0
    finally:
        await index.close()


async def test_an_index_of_an_older_version_is_built_again(tmp_path: Path) -> None:
    """The first layout: one tantivy index for every tenant, words as tantivy's simple tokenizer
    made them, quizzes as authored."""
    directory = tmp_path / "search"
    directory.mkdir()
    old = tantivy.Index(index_schema(), path=str(directory))
    old.register_tokenizer(ANALYZER, tantivy.TextAnalyzerBuilder(tantivy.Tokenizer.simple())
                           .filter(tantivy.Filter.remove_long(40))
                           .filter(tantivy.Filter.lowercase()).build())
    writer = old.writer(heap_size=15_000_000, num_threads=1)
    writer.add_document(tantivy.Document(key="acme/lesson/ghost", kind="lesson", id="ghost",
                                         course_id="py", tenant="acme", title="Ghost",
                                         body="grind boil steep pour", language="en",
                                         level="beginner", course_version=9, lesson_version=9))
    writer.commit()
    writer.wait_merging_threads()
    del old
    (directory / "bloop-search.json").write_text(json.dumps(
        {"schema": 1, "index_id": "old", "built_at": datetime.now(UTC).isoformat()}))
    cat = Catalogue()
    cat.course_with("acme", "zh", "中文课程", ("介绍", CHINESE))

    service = SearchService(TantivyIndex(directory), cat)
    try:
        assert service.index.index_id != "old"  # a new consumer group: every event again
        assert service.index.built_at is None
        assert not (directory / "meta.json").exists()
        assert await service.build() == 2
        assert titles(await service.search("acme", "grind")) == []
        assert titles(await service.search("acme", "中文 介绍")) == ["介绍"]
    finally:
        await service.index.close()
    assert json.loads((directory / "bloop-search.json").read_text())["schema"] == SCHEMA_VERSION


async def test_one_process_holds_an_index_directory(tmp_path: Path) -> None:
    assert not in_use(tmp_path / "search")
    held = TantivyIndex(tmp_path / "search")
    try:
        assert in_use(tmp_path / "search")
        with pytest.raises(RuntimeError, match="another process holds"):
            TantivyIndex(tmp_path / "search")
    finally:
        await held.close()
    assert not in_use(tmp_path / "search")
    await TantivyIndex(tmp_path / "search").close()


async def test_an_older_index_a_running_process_holds_is_left_alone(tmp_path: Path) -> None:
    directory = tmp_path / "search"
    directory.mkdir()
    old = tantivy.Index(index_schema(), path=str(directory))
    (directory / "bloop-search.json").write_text(json.dumps(
        {"schema": 1, "index_id": "old", "built_at": None}))
    writer = old.writer(heap_size=15_000_000, num_threads=1)  # held, as by its own process
    try:
        assert in_use(directory)
        with pytest.raises(RuntimeError, match="another process holds"):
            TantivyIndex(directory)
        assert (directory / "meta.json").exists()
    finally:
        writer.wait_merging_threads()
    assert not in_use(directory)
    await TantivyIndex(directory).close()
    assert not (directory / "meta.json").exists()


async def test_letters_readers_take_for_one_are_one_word(search: SearchService) -> None:
    """`ежик` did not find `Ёжик` (Russian writers mostly leave out the dots of ё), nor `بكم` find `بِكُمْ`
    (Arabic's short vowels, superscript alef and tatweel are mostly not typed); snippets and
    titles still show the text as written, marked on its own characters."""
    arabic = "أهلاً بِكُمْ في الدَّرْسِ الأوّل: هٰذا كِتَـــاب جديد."
    catalogue(search).course_with(
        "acme", "langs", "Languages",
        ("Ёжик", "Ёжик в тумане ищет ёлку, а еж спит."),  # noqa: RUF001
        ("الدرس", arabic),
        ("Hindi", "पाइथन में फ़ंक्शन एक नाम वाला कोड है।"))
    await index_all(search)

    async def found(q: str) -> list[str]:
        return titles(await search.search("acme", q))

    for q in ("ежик", "ЁЖИК", "елку", "ёж", '"ежик в тумане"'):
        assert await found(q) == ["Ёжик"], q
    for q in ("بكم", "بِكُمْ", "الدرس", "هذا", "كتاب", "كِتَاب", "أهلا"):
        assert await found(q) == ["الدرس"], q
    assert await found("ेक") == [], "Indic marks are kept"

    async def marked(q: str) -> tuple[str, list[str]]:
        [hit] = (await search.search("acme", q)).hits
        return hit.snippet, [hit.snippet[a:b] for a, b in hit.highlights]

    # a passage from the first to the last word (tantivy's), as written
    assert await marked("ежик елку") == (
        "Ёжик в тумане ищет ёлку, а еж спит", ["Ёжик", "ёлку"])  # noqa: RUF001
    assert await marked("بكم كتاب") == (arabic[:-1], ["بِكُمْ", "كِتَـــاب"])
    assert await marked("هذا") == (arabic[:-1], ["هٰذا"])
    assert (await marked('"الدرس الأول"'))[1] == ["الدَّرْسِ الأوّل"]


async def test_a_snippet_shows_where_a_phrase_of_characters_is(search: SearchService) -> None:
    """`東京の天気` found its lesson, but the snippet was the part of the text with the most
    `の`, each marked: tantivy marks a phrase's characters wherever they are."""
    japanese = ("私の友達の母の家の庭の花の色の名前の話の本の表紙の絵です。" * 8
                + "今日の東京の天気は晴れです。明日は雨です。" + "私の友達の母の家です。" * 20)
    english = ("Use a loop for lists. For each item the loop runs; for sets and for maps "
               "the loop runs too. " * 3 + "A for loop walks over a list.")
    catalogue(search).course_with(
        "acme", "langs", "Languages", ("天気", japanese), ("Loops", english))
    await index_all(search)

    async def marked(q: str) -> tuple[str, list[str]]:
        [hit] = (await search.search("acme", q)).hits
        assert hit.highlights == sorted(hit.highlights)
        assert all(b <= c for (_, b), (c, _) in pairwise(hit.highlights))
        return hit.snippet, [hit.snippet[a:b] for a, b in hit.highlights]

    snippet, marks = await marked("東京の天気")
    assert "今日の東京の天気は晴れです" in snippet
    assert len(snippet.encode()) <= SNIPPET_CHARS  # as long as tantivy's passages
    assert marks == ["東京の天気"]
    assert (await marked("東京の天気 晴れ"))[1] == ["東京の天気", "晴れ"]
    assert (await marked('天気 "東京 の"'))[1] == ["東京の天気"]
    snippet, marks = await marked('"for loop" list')
    assert "A for loop walks over a list." in snippet
    assert marks[-2:] == ["for loop", "list"]


async def test_a_snippet_never_cuts_a_character_a_reader_sees_as_one(
        search: SearchService) -> None:
    """A snippet began or ended inside an emoji (`\\u200d👦…`, `…👩\\u200d`), and a lead
    inside a Hindi letter (its vowel sign cut off); the window moved a code point at a time."""
    family = "👩\u200d👩\u200d👧\u200d👦"
    hindi = "क" + "कि" * 150
    catalogue(search).course_with(
        "acme", "langs", "Languages",
        ("日本語", "あ" * 150 + family * 30 + "日本語の勉強" + family * 60),
        ("ไทย", "กิ" * 100 + "ภาษาไทย" + "กิ" * 100),
        ("Family", family * 100), ("Hindi", hindi), ("Flags", "x" + "🇯🇵" * 150))
    await index_all(search)

    async def snippet(q: str) -> str:
        [hit] = (await search.search("acme", q)).hits
        return hit.snippet

    for q in ("日本語", "勉強"):
        assert re.fullmatch(f"(あ|{family})*日本語の勉強({family})*", await snippet(q)), q
    assert re.fullmatch("(กิ)+ภาษาไทย(กิ)+", await snippet("ภาษา"))
    assert re.fullmatch(f"({family})+ …", await snippet("family"))
    assert re.fullmatch("क(कि)+ …", await snippet("hindi"))
    assert re.fullmatch("x(🇯🇵)+ …", await snippet("flags"))


async def test_a_snippet_cuts_what_runs_too_long_to_be_one_character(
        search: SearchService) -> None:
    """A letter with 20,000 accents, or 8,000 emoji joined, was one character to the snippet,
    which held all of it."""
    accents, joined = "e" + "\u0301" * 20000 + " tail", "👩\u200d" * 8000
    catalogue(search).course_with("acme", "odd", "Odd", ("Accents", accents),
                                  ("Joined", joined))
    await index_all(search)
    for q, starts in (("accents", "\u00e9\u0301"), ("joined", "👩\u200d")):  # the lead
        [hit] = (await search.search("acme", q)).hits
        assert hit.snippet.startswith(starts), q
        assert len(hit.snippet) <= SNIPPET_CHARS + 16, (q, len(hit.snippet))
    [hit] = (await search.search("acme", "tail")).hits
    assert hit.snippet.endswith("tail")
    assert len(hit.snippet) <= SNIPPET_CHARS
    assert [hit.snippet[a:b] for a, b in hit.highlights] == ["tail"]
    assert lead(joined).endswith("👩 …")


def test_a_lead_or_window_never_grows_past_its_size_with_one_long_character() -> None:
    text = "a" + "\u0301" * 5000
    assert lead(text) == text[:SNIPPET_CHARS] + " …"
    lo, hi = window(text, 2500, 2501)
    assert lo <= 2500 < 2501 <= hi
    assert hi - lo <= SNIPPET_CHARS
    short = "a" + "\u0301" * (SNIPPET_CHARS + 5)  # one character, whole, and no more after it
    assert lead(short) == short


@pytest.mark.parametrize("seen", [
    "👍🏽", "❤️", "🏴\U000e0067\U000e0062\U000e0073\U000e0063\U000e0074\U000e007f", "🇯🇵",
    "👩\u200d💻", "बि", "بِّ", "e\u0301\u0302", "กิ่"])
def test_a_character_a_reader_sees_as_one_is_never_cut(seen: str) -> None:
    text = f"a{seen}b"
    assert [cluster_start(text, i) for i in range(len(text) + 1)] == [
        0, 1, *[1] * (len(seen) - 1), len(text) - 1, len(text)]
    assert [cluster_end(text, i) for i in range(len(text) + 1)] == [
        0, 1, *[len(text) - 1] * (len(seen) - 1), len(text) - 1, len(text)]


async def test_a_phrase_found_in_the_title_only_marks_nothing_in_the_text(
        search: SearchService) -> None:
    """`カタカナ`, in the title only, marked `タ` inside `コンピューター` in the text: tantivy
    marks a phrase's characters wherever they are."""
    catalogue(search).course_with("acme", "ja", "Japanese",
                                  ("カタカナ", "コンピューターの話です。" * 30))
    await index_all(search)

    async def marked(q: str) -> tuple[str, list[str]]:
        [hit] = (await search.search("acme", q)).hits
        return hit.snippet, [hit.snippet[a:b] for a, b in hit.highlights]

    snippet, marks = await marked("カタカナ")
    assert snippet.startswith("コンピューターの話です。")
    assert marks == []
    assert set((await marked("カタカナ 話"))[1]) == {"話"}
