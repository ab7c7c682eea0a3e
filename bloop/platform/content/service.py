"""Content's use cases. They take a repository (ports.py) and a cache, never a driver.

Writes name who makes them (`by`, the caller's principal); `by=None` is a trusted caller inside
the process (the demo seed, an import already authorised), and skips the authors' check.

Published lessons are read cache-aside: the learner's JSON of each and its ETag are kept in the
cache until an event of its course or lesson invalidates them (consumers.py), or `cache_ttl_s`
passes. A read that fills the cache puts its copy back only if the lesson's generation in the
cache is still the one it saw before reading the store: a write changes it before dropping the
copy, so a read racing the write cannot put the older version back after the drop.
"""

from __future__ import annotations

import hashlib
import logging
import re
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, TypeVar

from pydantic import ValidationError

from bloop.platform.content.events import (
    AiMediaNotAttached,
    CourseArchived,
    CoursePublished,
    CourseUnarchived,
    LessonDeleted,
    LessonPublished,
    LessonUpdated,
    PublishedModule,
    UnattachedOutput,
)
from bloop.platform.content.members import Members
from bloop.platform.content.model import (
    MAX_CO_AUTHORS,
    MAX_MODULES,
    AudioBlock,
    BlockType,
    Concept,
    ConceptEdit,
    Course,
    CourseDetail,
    CourseEdit,
    CourseOutline,
    CourseStatus,
    CourseView,
    FileBlock,
    ImageBlock,
    LearnerLesson,
    Lesson,
    LessonAccess,
    LessonEdit,
    LessonRef,
    Module,
    NewConcept,
    NewCourse,
    NewLesson,
    Publication,
    VersionInfo,
    VideoBlock,
    made_by,
    made_from,
    now,
)
from bloop.platform.content.ports import (
    ContentRepository,
    Duplicate,
    Missing,
    ReadableBy,
    StaleVersion,
)
from bloop.platform.kit.auth import STAFF, Forbidden, Principal
from bloop.platform.kit.cache import Cache, MemoryCache
from bloop.platform.kit.errors import Conflict, InvalidBody, NotFound, Problem, is_store_down
from bloop.platform.kit.events.envelope import Envelope
from bloop.platform.kit.events.types import type_of
from bloop.platform.kit.pagination import Slice, every
from bloop.platform.kit.threads import each_in_thread
from bloop.platform.kit.turns import Turns, back_off

ADMINS = frozenset({"tenant_admin", "platform_admin"})
COURSE_EDITORS = ADMINS | {"educator"}  # the roles a co-author may edit with
CACHE_PREFIX = "content:v1:lesson:"
GENERATION_PREFIX = "content:v1:lesson-generation:"
EDIT_ATTEMPTS = 10
"""Tries of a write re-applied on top of racing ones before it gives up (409 busy). Writers of
one record take turns in a process, so these are spent on writers in other processes."""

T = TypeVar("T")


def _stale(kind: str, record_id: str, current: int | None, field: str = "version") -> Conflict:
    return Conflict(f"the {kind} {record_id!r} changed since that {field}; read it again and "
                    "retry", code="stale_version", extra={f"current_{field}": current})


class CourseChanged(Conflict):
    """A course's draft changed while it was read a page at a time."""

    code = "course_changed"


def _changed(course: Course) -> CourseChanged:
    return CourseChanged(f"the course {course.id!r} changed while it was read; read it again")


def _invalid(exc: ValidationError) -> InvalidBody:
    return InvalidBody(exc.errors())


def etag_of(body: bytes) -> str:
    return '"' + hashlib.blake2b(body, digest_size=12).hexdigest() + '"'


ETAG = re.compile(r'"[0-9a-f]{24}"')
"""What `etag_of` gives, a published lesson's ETag (a draft's is its version, like "3")."""


@dataclass(frozen=True, slots=True)
class Rendered:
    """A response body and its ETag."""

    body: bytes
    etag: str

    def pack(self) -> bytes:
        return self.etag.encode() + b"\n" + self.body

    @classmethod
    def unpack(cls, raw: bytes) -> Rendered:
        etag, _, body = raw.partition(b"\n")
        return cls(body=body, etag=etag.decode())

    @classmethod
    def of(cls, body: bytes) -> Rendered:
        return cls(body=body, etag=etag_of(body))


def learner_json(lesson: Lesson) -> Rendered:
    """The learner's JSON of a published lesson, and its ETag."""
    return Rendered.of(LearnerLesson.of(lesson).model_dump_json().encode())


log = logging.getLogger("bloop.content")


def cache_key(tenant: str, lesson_id: str) -> str:
    return f"{CACHE_PREFIX}{tenant}:{lesson_id}"


def generation_key(tenant: str, lesson_id: str) -> str:
    """The cache entry each drop of the lesson's copy changes first (`ContentService.forget`)."""
    return f"{GENERATION_PREFIX}{tenant}:{lesson_id}"


class MediaFiles(Protocol):
    async def content_type(self, tenant: str, media_id: str) -> str | None:
        """The type of the tenant's media `media_id`; None when the tenant has none."""


# The types of media (their content type's first part) each media block shows; a `file` block
# any. An audio block takes video too: WebM, and MP4 not branded M4A, are sniffed as video
# whether or not they hold a picture (a browser's recording of a voice is WebM).
BLOCK_MEDIA: dict[str, tuple[str, ...]] = {
    "image": ("image",), "audio": ("audio", "video"), "video": ("video",)}


def _shown(blocks: Iterable[BlockType]) -> set[tuple[str, str]]:
    """The media ids the media blocks of `blocks` show, each with the type of its block."""
    return {(b.media, b.type) for b in blocks
            if isinstance(b, ImageBlock | AudioBlock | VideoBlock | FileBlock)}


def _captions(blocks: Iterable[BlockType]) -> set[str]:
    """The media ids of the captions `blocks` name."""
    return {b.captions.media for b in blocks
            if isinstance(b, AudioBlock | VideoBlock) and b.captions is not None}


class ContentService:
    def __init__(self, repo: ContentRepository, on_write: Callable[[], None] = lambda: None,
                 cache: Cache | None = None, cache_ttl_s: float = 600,
                 members: Members | None = None, media: MediaFiles | None = None,
                 on_cache_read: Callable[[bool], None] = lambda hit: None) -> None:
        """`on_write` runs after each write that stored events (the outbox relay's `wake`);
        `on_cache_read` after each read of a published lesson in the cache (True: found);
        `members` tells who belongs to a tenant (without it, a co-author is taken unchecked);
        `media` tells what the tenant's media are (without it, the media blocks name, and their
        captions, are taken unchecked)."""
        self.repo = repo
        self.members = members
        self.media = media
        self.cache: Cache = cache if cache is not None else MemoryCache()
        self.cache_ttl_s = cache_ttl_s
        self._on_write = on_write
        self._on_cache_read = on_cache_read
        self._turns = Turns()  # writes of a concept or a course applied on top of racing ones

    # concepts

    async def add_concept(self, tenant: str, new: NewConcept) -> Concept:
        concept = Concept.create(tenant, new)
        try:
            await self.repo.add_concept(concept)
        except Duplicate:
            raise Conflict(f"the concept {concept.id!r} already exists",
                           code="concept_exists") from None
        return concept

    async def concepts(self, tenant: str) -> list[Concept]:
        return await self.repo.list_concepts(tenant)

    async def concepts_named(self, tenant: str, ids: Sequence[str]) -> list[Concept]:
        """Those of `ids` the tenant has, ordered by id."""
        return await self.repo.get_concepts(tenant, ids)

    async def concept_page(self, tenant: str, after: str | None = None,
                           limit: int = 100) -> Slice[Concept]:
        """The tenant's concepts by id, a page at a time."""
        return await self.repo.page_concepts(tenant, after=after, limit=limit)

    async def edit_concept(self, tenant: str, concept_id: str, edit: ConceptEdit, *,
                           version: int | None = None) -> Concept:
        """A new name or description; its id, which lessons name, stays. With `version`, only
        while the concept is at it (409 stale_version); without, an edit racing another is
        applied on top of it, so neither loses its fields."""
        async with self._turns.of(("concept", tenant, concept_id)):
            for attempt in range(EDIT_ATTEMPTS):
                found = await self.repo.get_concepts(tenant, [concept_id])
                if not found:
                    raise NotFound(f"no concept {concept_id!r} in tenant {tenant!r}")
                current = found[0]
                if version is not None and current.version != version:
                    raise _stale("concept", concept_id, current.version)
                edited = current.edited(edit)
                try:
                    await self.repo.replace_concept(edited, expected=current.version)
                except Missing:
                    raise NotFound(f"no concept {concept_id!r} in tenant {tenant!r}") from None
                except StaleVersion:
                    await back_off(attempt)
                    continue
                return edited
        raise Conflict(f"the concept {concept_id!r} kept changing; try again", code="busy")

    async def _check_concepts(self, tenant: str, ids: Iterable[str]) -> None:
        wanted = sorted(set(ids))
        if not wanted:
            return
        known = {c.id for c in await self.repo.get_concepts(tenant, wanted)}
        unknown = [c for c in wanted if c not in known]
        if unknown:
            raise Problem(f"unknown concepts: {', '.join(unknown)}; add them first at "
                          f"POST /v1/tenants/{tenant}/concepts", status=422,
                          code="unknown_concepts", extra={"concepts": unknown})

    async def _check_media(self, tenant: str, blocks: Iterable[BlockType],
                           kept: Iterable[BlockType] = ()) -> None:
        """422 unless the media of each media block of `blocks` is media of the tenant of a
        kind the block shows, and each captions file they name is WebVTT media of the tenant;
        but for media `kept` named already the same way (one deleted since does not hold back
        other edits)."""
        if self.media is None:
            return
        for media_id, block in sorted(_shown(blocks) - _shown(kept)):
            found = await self.media.content_type(tenant, media_id)
            if found is None:
                raise Problem(f"no media {media_id!r} in tenant {tenant!r} for a block of type "
                              f"{block!r}; upload it first at POST /v1/tenants/{tenant}/media",
                              status=422, code="unknown_media", extra={"media": media_id})
            fits = BLOCK_MEDIA.get(block)
            if fits is not None and found.partition("/")[0] not in fits:
                raise Problem(f"the media {media_id!r} is {found}, which a block of type "
                              f"{block!r} does not show (it shows {' or '.join(fits)})",
                              status=422,
                              code="wrong_media_kind",
                              extra={"media": media_id, "block": block, "content_type": found})
        for media_id in sorted(_captions(blocks) - _captions(kept)):
            found = await self.media.content_type(tenant, media_id)
            if found is None:
                raise Problem(f"no media {media_id!r} in tenant {tenant!r} for captions; upload "
                              f"the WebVTT file first at POST /v1/tenants/{tenant}/media",
                              status=422, code="unknown_media", extra={"media": media_id})
            if found != "text/vtt":
                raise Problem(f"the media {media_id!r} is {found}, not WebVTT captions "
                              "(text/vtt)", status=422, code="not_captions",
                              extra={"media": media_id})

    async def _concept_names(self, tenant: str, lessons: Iterable[Lesson]) -> dict[str, str]:
        """The names of the concepts `lessons` teach and require, read at once."""
        ids = sorted({c for lesson in lessons for c in (*lesson.teaches, *lesson.requires)})
        return {c.id: c.name for c in await self.repo.get_concepts(tenant, ids)}

    # courses: who may do what

    @staticmethod
    def may_edit(course: Course, by: Principal | None) -> bool:
        return by is None or course.may_edit(by.user_id, by.roles)

    async def _editable(self, tenant: str, course_id: str, by: Principal | None) -> Course:
        """The course, when `by` may edit it; else 404 as a read answers when they may not
        read it either (it was never published), so that no answer tells it exists, and 403
        `not_an_author` when they may."""
        course = await self.course(tenant, course_id)
        if not self.may_edit(course, by):
            if course.publication is None:
                raise NotFound(f"no course {course_id!r} in tenant {tenant!r}")
            raise _not_an_author()
        return course

    async def _editable_lesson(self, tenant: str, lesson_id: str,
                               by: Principal | None) -> tuple[Lesson, Course]:
        """The lesson's draft and its course, when `by` may edit the course; else as
        `_editable`, 404 as a read answers when the lesson was never published."""
        lesson = await self.lesson(tenant, lesson_id)
        course = await self.course(tenant, lesson.course)
        if not self.may_edit(course, by):
            if await self.repo.published_lesson(tenant, lesson_id) is None:
                raise NotFound(f"no lesson {lesson_id!r} in tenant {tenant!r}")
            raise _not_an_author()
        return lesson, course

    async def _publication(self, course: Course, version: int) -> Publication:
        """What the course published as version `version`."""
        entry = next((h for h in course.history if h.version == version), None)
        snapshot = (None if entry is None
                    else await self.repo.get_snapshot(course.tenant, course.id, entry.snapshot))
        if snapshot is None:
            raise NotFound(f"the course {course.id!r} has no version {version}",
                           code="no_such_version")
        return snapshot.publication

    # courses

    async def create_course(self, tenant: str, new: NewCourse, *,
                            by: Principal | None = None) -> Course:
        course = Course.create(tenant, new, owner=by.user_id if by is not None else None)
        at = now()
        await self.repo.delete_lessons_left(tenant, course.id, lambda x: _deleted(x, at))
        try:
            await self.repo.add_course(course)
        except Duplicate:
            raise Conflict(f"the course {course.id!r} already exists",
                           code="course_exists") from None
        return course

    async def course(self, tenant: str, course_id: str) -> Course:
        course = await self.repo.get_course(tenant, course_id)
        if course is None:
            raise NotFound(f"no course {course_id!r} in tenant {tenant!r}")
        return course

    async def _store_head(self, changed: Course, expected: Course) -> Course:
        try:
            await self.repo.update_course(changed, expected.revision)
        except StaleVersion:
            current = await self.repo.get_course(changed.tenant, changed.id)
            raise _stale("course", changed.id, current.revision if current else None,
                         "revision") from None
        except Missing:
            raise NotFound(f"no course {changed.id!r} in tenant {changed.tenant!r}") from None
        return changed

    async def _on_top(self, tenant: str, course_id: str, change: Callable[[], Awaitable[T]],
                      revision: int | None = None) -> T:
        """`change`, which reads the course and writes it, applied again on top of a change
        that landed between its read and its write (the write answered 409 stale_version):
        for a change that named no `revision` to keep to, which would otherwise be refused for
        another's write. One that named it is made once."""
        if revision is not None:
            return await change()
        async with self._turns.of(("course", tenant, course_id)):
            for attempt in range(EDIT_ATTEMPTS):
                try:
                    return await change()
                except Conflict as exc:
                    if exc.code != "stale_version":
                        raise
                await back_off(attempt)
        raise Conflict(f"the course {course_id!r} kept changing; try again", code="busy")

    async def edit_course(self, tenant: str, course_id: str, edit: CourseEdit, *,
                          by: Principal | None = None) -> Course:
        """A new head (title, summary, modules…); with `revision`, only while the course is
        at it (409 stale_version), without, applied on top of an edit racing it. A head the
        edit leaves invalid is `InvalidBody`, its `loc` in `edit`."""
        async def once() -> Course:
            course = await self._editable(tenant, course_id, by)
            if edit.revision is not None and edit.revision != course.revision:
                raise _stale("course", course_id, course.revision, "revision")
            try:
                changed = course.edited(edit)
            except ValidationError as exc:
                raise _invalid(exc) from None
            return await self._store_head(changed, course)

        return await self._on_top(tenant, course_id, once, edit.revision)

    async def delete_course(self, tenant: str, course_id: str, *, revision: int | None = None,
                            by: Principal | None = None) -> None:
        """Deletes a course that was never published, with its lessons (its owner or the
        tenant's admins may). A published one stays: its versions, and its learners'
        enrolments and progress, refer to it. Asked again after a deletion stopped part-way,
        it deletes the lessons left, and answers 404. Without `revision`, it deletes the course
        as a change racing it left it (a lesson added meanwhile goes with it)."""
        async def once() -> None:
            at = now()
            try:
                course = await self.course(tenant, course_id)
            except NotFound:
                await self.repo.delete_lessons_left(tenant, course_id,
                                                    lambda x: _deleted(x, at))
                raise
            _check_owner(course, by, "delete it")
            if revision is not None and revision != course.revision:
                raise _stale("course", course_id, course.revision, "revision")
            if course.version > 0:
                raise _published(course_id)
            try:
                await self.repo.delete_draft_course(course, lambda lesson: _deleted(lesson, at))
            except StaleVersion:
                current = await self.repo.get_course(tenant, course_id)
                if current is not None and current.version > 0:
                    raise _published(course_id) from None
                raise _stale("course", course_id, current.revision if current else None,
                             "revision") from None
            except Missing:
                raise NotFound(f"no course {course_id!r} in tenant {tenant!r}") from None
            self._on_write()

        await self._on_top(tenant, course_id, once, revision)

    async def archive(self, tenant: str, course_id: str, archive: bool = True, *,
                      revision: int | None = None, by: Principal | None = None) -> Course:
        """Takes a published course out of the catalogue and search, closed to new enrolments
        (`archive`), or puts it back (its owner or the tenant's admins may). Learners already
        enrolled keep reading it. Archiving an archived course (or putting back one that is
        not) changes nothing. Without `revision`, it is applied on top of a change racing it."""
        async def once() -> Course:
            course = await self.course(tenant, course_id)
            _check_owner(course, by, "archive it or put it back")
            if revision is not None and revision != course.revision:
                raise _stale("course", course_id, course.revision, "revision")
            if course.publication is None:
                raise Conflict(f"the course {course_id!r} was never published; delete it instead",
                               code="course_not_published")
            if (course.status == "archived") == archive:
                return course
            changed = course.archived(archive)
            lesson_ids = [r.id for r in course.publication.lessons]
            at = changed.updated_at
            event = (type_of(CourseArchived).envelope(CourseArchived(
                course_id=course_id, revision=changed.revision, lesson_ids=lesson_ids,
                archived_at=at), tenant=tenant, subject=course_id, time=at) if archive
                else type_of(CourseUnarchived).envelope(CourseUnarchived(
                    course_id=course_id, revision=changed.revision, lesson_ids=lesson_ids,
                    unarchived_at=at), tenant=tenant, subject=course_id, time=at))
            try:
                await self.repo.set_course_status(changed, course, [event])
            except StaleVersion:
                current = await self.repo.get_course(tenant, course_id)
                raise _stale("course", course_id, current.revision if current else None,
                             "revision") from None
            except Missing:
                raise NotFound(f"no course {course_id!r} in tenant {tenant!r}") from None
            self._on_write()
            return changed

        return await self._on_top(tenant, course_id, once, revision)

    async def reorder_lessons(self, tenant: str, course_id: str, order: Sequence[str], *,
                              by: Principal | None = None) -> list[Lesson]:
        """Puts the draft's lessons in `order`, which names each of them once; learners see the
        new order from the course's next publication. Returns the lessons in their new order."""
        await self._editable(tenant, course_id, by)
        if len(set(order)) != len(order):
            raise Problem("the order names a lesson more than once", status=422,
                          code="lesson_order_mismatch")
        live = {x.id for x in await self.repo.list_lessons(tenant, course_id)}
        if set(order) != live:
            raise Problem("the order must name every lesson of the course once, and nothing "
                          "else", status=422, code="lesson_order_mismatch",
                          extra={"missing": sorted(live - set(order)),
                                 "unknown": sorted(set(order) - live)})
        try:
            await self.repo.reorder_lessons(tenant, course_id, order, now())
        except StaleVersion:
            raise Conflict("the course's lessons changed meanwhile; read them again and retry",
                           code="stale_version") from None
        except Missing:
            raise NotFound(f"no course {course_id!r} in tenant {tenant!r}") from None
        self._on_write()
        return await self.repo.list_lessons(tenant, course_id)

    async def add_module(self, tenant: str, course_id: str, module: Module, *,
                         by: Principal | None = None) -> Course:
        """Appends `module` to the course's modules, on top of a change racing it."""
        async def once() -> Course:
            course = await self._editable(tenant, course_id, by)
            if module.id in course.module_ids():
                raise Conflict(f"the course {course_id!r} already has a module {module.id!r}",
                               code="module_exists")
            if len(course.modules) >= MAX_MODULES:
                raise Problem(f"a course has at most {MAX_MODULES} modules", status=422,
                              code="too_many_modules")
            return await self._store_head(course.changed(modules=[*course.modules, module]),
                                          course)

        return await self._on_top(tenant, course_id, once)

    async def add_modules(self, tenant: str, course_id: str, modules: Sequence[Module], *,
                          by: Principal | None = None) -> list[Module]:
        """Appends those of `modules` the course lacks, in their order and in one write, on top
        of a change racing it; the ones it appended (422 too_many_modules past MAX_MODULES)."""
        async def once() -> list[Module]:
            course = await self._editable(tenant, course_id, by)
            new = [m for m in modules if m.id not in course.module_ids()]
            if not new:
                return []
            if len(course.modules) + len(new) > MAX_MODULES:
                raise Problem(f"a course has at most {MAX_MODULES} modules", status=422,
                              code="too_many_modules")
            await self._store_head(course.changed(modules=[*course.modules, *new]), course)
            return new

        return await self._on_top(tenant, course_id, once)

    async def take_back_modules(self, tenant: str, course_id: str, ids: Sequence[str]) -> None:
        """Removes the modules `ids` from the course (for an import that failed) but those a
        lesson of its draft names, on top of a change racing it."""
        async def once() -> None:
            course = await self.course(tenant, course_id)
            named = {x.module for x in await self.repo.list_lessons(tenant, course_id)}
            gone = set(ids) - named
            if gone & set(course.module_ids()):
                await self._store_head(course.changed(
                    modules=[m for m in course.modules if m.id not in gone]), course)

        await self._on_top(tenant, course_id, once)

    async def set_co_author(self, tenant: str, course_id: str, user_id: str, present: bool, *,
                            by: Principal | None = None,
                            credentials: Mapping[str, str] | None = None) -> Course:
        """Adds (`present`) or removes a co-author; either is idempotent. The owner and the
        tenant's admins manage co-authors (the admins alone when the course has no owner). A
        new co-author is a user of the tenant who may edit courses (an educator or an admin);
        `credentials` are the caller's, to look the user up in identity. Applied on top of
        another change of the course racing it."""
        checked = False

        async def once() -> Course:
            nonlocal checked
            course = await self.course(tenant, course_id)
            _check_owner(course, by, "choose its co-authors")
            if present and user_id == course.owner:
                raise Conflict("the owner is an author already", code="already_owner")
            if (user_id in course.co_authors) == present:
                return course
            if present and len(course.co_authors) >= MAX_CO_AUTHORS:
                raise Problem(f"a course has at most {MAX_CO_AUTHORS} co-authors", status=422,
                              code="too_many_co_authors")
            if present and self.members is not None and not checked:
                await _check_author(self.members, tenant, user_id, by, credentials or {})
                checked = True
            authors = ([*course.co_authors, user_id] if present
                       else [u for u in course.co_authors if u != user_id])
            return await self._store_head(course.changed(co_authors=authors), course)

        return await self._on_top(tenant, course_id, once)

    async def authored(self, tenant: str, user_id: str) -> list[dict[str, object]]:
        """The courses `user_id` owns or co-authors (their part of a data export)."""
        return [{"id": c.id, "title": c.title,
                 "role": "owner" if c.owner == user_id else "co_author"}
                for c in await self.repo.courses_of_author(tenant, user_id)]

    async def forget_author(self, tenant: str, user_id: str) -> int:
        """Takes a deleted user out of every course they own or co-author (an owned course
        passes to its first co-author, or is left to the tenant's admins: `Course.without_author`);
        how many courses changed. Running it again changes nothing."""
        changed = 0
        for _ in range(5):
            stale = False
            for course in await self.repo.courses_of_author(tenant, user_id):
                try:
                    await self.repo.update_course(course.without_author(user_id), course.revision)
                    changed += 1
                except StaleVersion:
                    stale = True
                except Missing:
                    continue
            if not stale:
                return changed
        raise Conflict(f"the courses of {user_id!r} keep changing; try again",
                       code="stale_version")

    async def course_detail(self, tenant: str, course_id: str, *,
                            drafts: bool = True) -> CourseDetail:
        """The course's draft with its lessons, or (`drafts` False) its last publication."""
        course = await self.course(tenant, course_id)
        if drafts:
            lessons = await self.repo.list_lessons(tenant, course_id)
            return CourseDetail.of(CourseView.draft(course, len(lessons)), lessons)
        return await self._published_detail(course)

    async def lesson_pages(self, course: Course, *, drafts: bool = True,
                           size: int = 50) -> tuple[int, AsyncIterator[list[Lesson]]]:
        """How many lessons the course's draft (or, `drafts` False, its last publication) has,
        and those lessons in order, `size` a read, each read once the page before is taken,
        so a big course is never in memory at once. A draft's pages are one state of it:
        `CourseChanged` as soon as a lesson read is not at the version first listed, or, after
        the last page, when the course (`course`, as read before) or the list of its lessons
        and their versions is not the same any more (an edit, a move, a lesson added or
        deleted); a publication's lessons are immutable."""
        tenant = course.tenant
        if drafts:
            stamps = await self.repo.lesson_stamps(tenant, course.id)

            async def drafted() -> AsyncIterator[list[Lesson]]:
                for at in range(0, len(stamps), size):
                    wanted = stamps[at:at + size]
                    page = await self.repo.get_lessons(tenant, [i for i, _ in wanted])
                    if [(x.id, x.version) for x in page] != wanted:
                        raise _changed(course)
                    yield page
                again = await self.repo.get_course(tenant, course.id)
                if again is None or again.revision != course.revision or \
                        await self.repo.lesson_stamps(tenant, course.id) != stamps:
                    raise _changed(course)

            return len(stamps), drafted()
        if course.publication is None:
            raise NotFound(f"no course {course.id!r} in tenant {tenant!r}")
        live = (await self.repo.live_lesson_ids(tenant, [course.id]))[course.id]
        refs = [r for r in course.publication.lessons if r.id in live]

        async def published() -> AsyncIterator[list[Lesson]]:
            for at in range(0, len(refs), size):
                yield await self.repo.lesson_versions(tenant, refs[at:at + size])

        return len(refs), published()

    async def _published_detail(self, course: Course) -> CourseDetail:
        p = course.publication
        if p is None:
            raise NotFound(f"no course {course.id!r} in tenant {course.tenant!r}")
        live = {x.id for x in await self.repo.list_lessons(course.tenant, course.id)}
        lessons = await self.repo.lesson_versions(course.tenant,
                                                  [r for r in p.lessons if r.id in live])
        view = CourseView.published(course, p).model_copy(update={"lesson_count": len(lessons)})
        return CourseDetail.of(view, lessons)

    async def course_for(self, tenant: str, course_id: str,
                         by: Principal) -> tuple[CourseDetail, bool]:
        """What `by` reads of the course: its draft when they may edit it (True), else its
        last publication."""
        found = (await self.courses_for(tenant, [course_id], by)).get(course_id)
        if found is None:
            raise NotFound(f"no course {course_id!r} in tenant {tenant!r}")
        return found

    async def courses_for(self, tenant: str, course_ids: Sequence[str],
                          by: Principal) -> dict[str, tuple[CourseDetail, bool]]:
        """`course_for` of each of `course_ids` that `by` may read, in four reads at most
        (GraphQL batches through this): the courses, the drafts of those `by` may edit, and
        the published lessons of the others; the others are left out."""
        courses = await self.repo.get_courses(tenant, course_ids)
        editable = {c.id for c in courses if self.may_edit(c, by)}
        drafts = await self.repo.lessons_of_courses(tenant, list(editable)) if editable else {}
        published = await self.published_lessons_of(
            tenant, [c for c in courses if c.id not in editable])
        out: dict[str, tuple[CourseDetail, bool]] = {}
        for c in courses:
            if c.id in editable:
                lessons = drafts[c.id]
                out[c.id] = CourseDetail.of(CourseView.draft(c, len(lessons)), lessons), True
            elif c.publication is not None:
                lessons = published[c.id]
                view = CourseView.published(c, c.publication, len(lessons))
                out[c.id] = CourseDetail.of(view, lessons), False
        return out

    async def history(self, tenant: str, course_id: str, *,
                      by: Principal | None = None) -> list[VersionInfo]:
        """The course's published versions, newest first."""
        course = await self._editable(tenant, course_id, by)
        return list(reversed(course.history))

    async def version(self, tenant: str, course_id: str, version: int, *,
                      by: Principal | None = None) -> CourseDetail:
        """Published version `version` of the course, as it was published."""
        course = await self._editable(tenant, course_id, by)
        p = await self._publication(course, version)
        lessons = await self.repo.lesson_versions(tenant, p.lessons)
        return CourseDetail.of(CourseView.published(course, p), lessons)

    async def lessons_of_courses(self, tenant: str,
                                 course_ids: Sequence[str]) -> dict[str, list[Lesson]]:
        """Each course's draft lessons in order, in one read (GraphQL batches through this)."""
        return await self.repo.lessons_of_courses(tenant, course_ids)

    async def published_lessons_of(self, tenant: str,
                                   courses: Sequence[Course]) -> dict[str, list[Lesson]]:
        """Each course's lessons as last published (deleted ones left out), in two reads: the
        ids of the lessons still there, then their published versions."""
        refs = await self._published_refs(tenant, courses)
        found = {x.id: x for x in await self.repo.lesson_versions(
            tenant, [r for c in refs.values() for r in c])}
        return {c: [found[r.id] for r in these if r.id in found] for c, these in refs.items()}

    async def _published_refs(self, tenant: str,
                              courses: Sequence[Course]) -> dict[str, list[LessonRef]]:
        """Each course's lessons as last published that are not deleted since (one read)."""
        if not courses:
            return {}
        live = {x for found in (await self.repo.live_lesson_ids(
            tenant, [c.id for c in courses])).values() for x in found}
        return {c.id: [r for r in (c.publication.lessons if c.publication else []) if r.id in live]
                for c in courses}

    async def courses(self, tenant: str, status: CourseStatus | None = "published", *,
                      after: str | None = None, limit: int = 100,
                      readable_by: ReadableBy | None = None) -> Slice[Course]:
        return await self.repo.list_courses(tenant, status, after=after, limit=limit,
                                            readable_by=readable_by)

    async def every_course(self, tenant: str, status: CourseStatus | None) -> list[Course]:
        return await every(lambda after: self.courses(tenant, status, after=after, limit=500))

    async def readable_courses(self, tenant: str, status: CourseStatus | None, by: Principal, *,
                               after: str | None = None,
                               limit: int = 100) -> Slice[tuple[Course, bool]]:
        """The courses `by` sees, each with whether they see its draft (True) or its last
        publication: published ones as published, and (unless `status` is "published") the
        drafts of those they may edit. Up to `limit` of them, from the cursor `after` on, in
        one read however few of the tenant's courses they may read."""
        listed = await self.courses(tenant, status, after=after, limit=limit,
                                    readable_by=_readable_by(by))
        return Slice([(c, status != "published" and self.may_edit(c, by))
                      for c in listed.items], listed.next)

    async def course_views(self, tenant: str, status: CourseStatus | None, by: Principal, *,
                           after: str | None = None, limit: int = 100) -> Slice[CourseView]:
        """`readable_courses` as the API shows them."""
        readable = await self.readable_courses(tenant, status, by, after=after, limit=limit)
        return Slice(await self.views_of(tenant, readable.items), readable.next)

    async def views_of(self, tenant: str,
                       readable: Sequence[tuple[Course, bool]]) -> list[CourseView]:
        """Each course as its reader sees it (its draft when True), its lessons counted as its
        detail counts them: a publication's deleted lessons left out. One read for them all."""
        live = await self.repo.live_lesson_ids(tenant, [c.id for c, _ in readable])
        return [_view(c, draft, live[c.id]) for c, draft in readable]

    async def published_catalogue(self, tenant: str, *, after: str | None = None,
                                  limit: int = 20) -> Slice[CourseOutline]:
        """Up to `limit` of the tenant's published courses with their lessons' outlines (the
        landing page), from the cursor `after` on, in two reads of lessons whatever their
        number; their blocks are never read."""
        listed = await self.courses(tenant, "published", after=after, limit=limit)
        courses = [c for c in listed.items if c.publication is not None]
        refs = await self._published_refs(tenant, courses)
        found = {x.id: x for x in await self.repo.lesson_outlines(
            tenant, [r for c in refs.values() for r in c])}
        out = []
        for c in courses:
            lessons = [found[r.id] for r in refs[c.id] if r.id in found]
            if c.publication is not None:
                out.append(CourseOutline.of(
                    CourseView.published(c, c.publication, len(lessons)), lessons))
        return Slice(out, listed.next)

    # publishing

    async def publish(self, tenant: str, course_id: str, *, revision: int | None = None,
                      by: Principal | None = None) -> Course:
        """Publishes the draft as it is now as a new version, announced on `content.events`;
        with `revision`, only while the course is at it (409 stale_version). A draft with no
        change since the last publication (`_unchanged`) makes none: the course as it is, and
        nothing written or announced; so does one a racing publication published first. It
        holds only lessons live at its commit, never one deleted before: when the draft's
        lessons changed (added, edited, moved, deleted) since they were read here, the store
        refuses it (409 `draft_changed`) and nothing changes; the store checks them in the
        commit's transaction, or (MongoDB) just before it, where a later edit shows at the next
        publication, and a deletion either comes after the commit or has it refused."""
        course = await self._editable(tenant, course_id, by)
        if revision is not None and revision != course.revision:
            raise _stale("course", course_id, course.revision, "revision")
        return await self._publish(course)

    async def _publish(self, course: Course, rollback_of: int | None = None,
                       expected: set[tuple[str, int]] | None = None) -> Course:
        """`publish` of `course` as read; with `expected`, only when the draft's lessons are
        those (ids and versions), else 409 `draft_changed`."""
        tenant, course_id = course.tenant, course.id
        if course.status == "archived":
            raise _archived(course_id)
        lessons = await self.repo.list_lessons(tenant, course_id)
        if expected is not None and {(x.id, x.version) for x in lessons} != expected:
            raise _draft_changed(course_id, "read the draft again, and roll it back again")
        if not lessons:
            raise Conflict(f"the course {course_id!r} has no lessons to publish",
                           code="course_empty")
        names = await self._concept_names(tenant, lessons)
        if rollback_of is None and _unchanged(course, lessons, names):
            return course
        published = course.published(lessons=lessons, rollback_of=rollback_of,
                                     concept_names=names)
        try:
            await self.repo.publish_course(published, course.version, lessons,
                                           _publication(published, lessons, names))
        except StaleVersion:
            current = await self.repo.get_course(tenant, course_id)
            if current is not None and current.status == "archived":
                raise _archived(course_id) from None
            if (rollback_of is None and current is not None
                    and current.revision == course.revision and _unchanged(
                        current, await self.repo.list_lessons(tenant, course_id), names)):
                return current  # published meanwhile (a racing publish): nothing left to do
            if current is not None and current.version == course.version:
                raise _draft_changed(course_id) from None
            raise _stale("course", course_id, current.version if current else None) from None
        except Missing:
            raise NotFound(f"no course {course_id!r} in tenant {tenant!r}") from None
        self._on_write()
        before = course.publication.lessons if course.publication else []
        await self._forget_after_write(tenant, [x.id for x in lessons] + [r.id for r in before])
        return published

    async def rollback(self, tenant: str, course_id: str, version: int, *,
                       revision: int | None = None, discard_draft: bool = False,
                       by: Principal | None = None) -> Course:
        """Makes the draft equal to published version `version` and publishes it as a new
        version (the history keeps every version); with `revision`, only while the course is
        at it (409 stale_version). A draft holding changes of lessons not published yet
        (`unpublished_changes`) is refused 409 unless `discard_draft`: no version keeps them.
        Its head is restored first, without `revision` on top of a change racing it. Each
        lesson's restoration is one atomic write, against the version read before any;
        one interrupted midway, or refused for an edit landing meanwhile (409), leaves the
        draft partly restored, never a publication, and running it again completes it."""
        async def head_restored() -> tuple[Course, list[Lesson], dict[str, Lesson]]:
            course = await self._editable(tenant, course_id, by)
            if revision is not None and revision != course.revision:
                raise _stale("course", course_id, course.revision, "revision")
            if course.status == "archived":
                raise _archived(course_id)
            p = await self._publication(course, version)
            old = await self.repo.lesson_versions(tenant, p.lessons)
            draft = {x.id: x for x in await self.repo.list_lessons(tenant, course_id)}
            lost = _unpublished(course, draft, old)
            fields = _unpublished_fields(course, p)
            if (lost or fields) and not discard_draft:
                named = [*(f"the course's {f}" for f in fields),
                         *(f"lesson {x['id']}" for x in lost)]
                raise Conflict(
                    f"the draft of the course {course_id!r} holds changes not published yet "
                    f"({', '.join(named)}), which no version keeps and a rollback would "
                    "discard: publish them first, or roll back with `discard_draft`",
                    code="unpublished_changes", extra={"lessons": lost, "course": fields})
            head = course.changed(**{f: getattr(p, f) for f in HEAD_FIELDS})
            return await self._store_head(head, course), old, draft

        head, old, draft = await self._on_top(tenant, course_id, head_restored, revision)
        expected: set[tuple[str, int]] = set()
        for was in old:
            live = draft.get(was.id)
            if live is not None and _same(live, was):
                expected.add((was.id, live.version))
                continue
            current = live or await self.repo.get_lesson(tenant, was.id, deleted=True)
            if current is None:
                continue
            try:
                await self.repo.replace_lesson(current.restored(was), current.version,
                                               revive=live is None)
            except (StaleVersion, Missing):
                raise _draft_changed_meanwhile(course_id, was.id) from None
            expected.add((was.id, current.version + 1))
        kept = {x.id for x in old}
        for extra in draft.values():
            if extra.id not in kept:
                await self._delete(extra)
        restored = await self._editable(tenant, course_id, by)
        if restored.revision != head.revision:  # its head changed since it was restored
            raise _stale("course", course_id, restored.revision, "revision")
        return await self._publish(restored, rollback_of=version, expected=expected)

    # lessons

    async def _check_module(self, course: Course, module: str | None) -> None:
        if module is not None and module not in course.module_ids():
            raise Problem(f"the course {course.id!r} has no module {module!r}; add it first",
                          status=422, code="unknown_module")

    async def add_lesson(self, tenant: str, course_id: str, new: NewLesson, *,
                         by: Principal | None = None) -> Lesson:
        course = await self._editable(tenant, course_id, by)
        await self._check_module(course, new.module)
        await self._check_concepts(tenant, [*new.teaches, *new.requires])
        await self._check_media(tenant, new.blocks)
        try:
            return await self.repo.add_lesson(Lesson.create(tenant, course_id, new))
        except Missing:
            raise NotFound(f"no course {course_id!r} in tenant {tenant!r}") from None

    async def add_lessons(self, tenant: str, course_id: str, new: Sequence[NewLesson], *,
                          ids: Sequence[str], by: Principal | None = None) -> list[Lesson]:
        """`add_lesson` of each of `new` (with the id of the same place in `ids`), in one write:
        all of them are added, or none."""
        course = await self._editable(tenant, course_id, by)
        for each in new:
            await self._check_module(course, each.module)
        await self._check_concepts(tenant, [c for x in new for c in (*x.teaches, *x.requires)])
        await self._check_media(tenant, [b for x in new for b in x.blocks])
        at = now()
        lessons = await each_in_thread(
            lambda pair: Lesson.create(tenant, course_id, pair[0], at).model_copy(
                update={"id": pair[1]}), list(zip(new, ids, strict=True)))
        try:
            return await self.repo.add_lessons(lessons)
        except Missing:
            raise NotFound(f"no course {course_id!r} in tenant {tenant!r}") from None

    async def stored_any(self, tenant: str, lesson_ids: Sequence[str]) -> bool:
        """Whether any of `lesson_ids` was ever stored in the tenant (deleted since or not)."""
        for lesson_id in lesson_ids:
            if await self.repo.get_lesson(tenant, lesson_id) is not None \
                    or await self.repo.get_lesson(tenant, lesson_id, deleted=True) is not None:
                return True
        return False

    async def lesson(self, tenant: str, lesson_id: str, *, drafts: bool = True) -> Lesson:
        """The lesson's draft, or (`drafts` False) the lesson as last published."""
        if drafts:
            lesson = await self.repo.get_lesson(tenant, lesson_id)
        else:
            lesson = await self.repo.published_lesson(tenant, lesson_id)
        if lesson is None:
            raise NotFound(f"no lesson {lesson_id!r} in tenant {tenant!r}")
        return lesson

    async def draft_for(self, tenant: str, lesson_id: str, by: Principal) -> Lesson | None:
        """The lesson's draft when `by` may edit its course; None when they read what learners
        read (or there is no such lesson)."""
        lesson = await self.repo.get_lesson(tenant, lesson_id)
        if lesson is None:
            return None
        course = await self.repo.get_course(tenant, lesson.course)
        return lesson if course is not None and self.may_edit(course, by) else None

    async def lesson_for(self, tenant: str, lesson_id: str, by: Principal) -> tuple[Lesson, bool]:
        """The lesson as `by` reads it: its draft when they may edit its course (True), else
        as last published (False; 404 when it never was)."""
        draft = await self.draft_for(tenant, lesson_id, by) if by.has_any(STAFF) else None
        if draft is not None:
            return draft, True
        return await self.lesson(tenant, lesson_id, drafts=False), False

    async def lesson_access(self, tenant: str, lesson_ids: Sequence[str],
                            by: Principal) -> dict[str, LessonAccess]:
        """What `by` may do with each of `lesson_ids`, as `draft_for` and `lesson` answer them
        one at a time: the draft's version to its course's authors, the version last published
        to everyone else; a lesson they may read none of (or that does not exist) is no key.
        Two reads whatever the number of lessons: where they stand, then their courses."""
        heads = await self.repo.lesson_heads(tenant, lesson_ids)
        courses = {c.id: c for c in await self.repo.get_courses(
            tenant, sorted({h.course for h in heads.values()}))}
        published = {(c.id, r.id): r.version for c in courses.values()
                     if c.publication is not None for r in c.publication.lessons}
        out: dict[str, LessonAccess] = {}
        for lesson_id, head in heads.items():
            course = courses.get(head.course)
            if course is not None and self.may_edit(course, by):
                out[lesson_id] = LessonAccess(id=lesson_id, version=head.version, may_edit=True)
            elif (version := published.get((head.course, lesson_id))) is not None:
                out[lesson_id] = LessonAccess(id=lesson_id, version=version, may_edit=False)
        return out

    async def published_lesson(self, tenant: str, lesson_id: str) -> Rendered:
        """The learner's JSON of the published lesson and its ETag, through the cache."""
        key, generation = cache_key(tenant, lesson_id), generation_key(tenant, lesson_id)
        raw, seen = await self.cache.get_many([key, generation])
        self._on_cache_read(raw is not None)
        if raw is not None:
            return Rendered.unpack(raw)
        lesson = await self.lesson(tenant, lesson_id, drafts=False)
        rendered = learner_json(lesson)
        await self.cache.set_if(key, rendered.pack(), ttl_s=self.cache_ttl_s,
                                guard=generation, seen=seen)
        return rendered

    async def forget(self, tenant: str, lesson_ids: Iterable[str]) -> None:
        """Drops the cached learner's JSON of these lessons, after changing their generations:
        a read that saw the older generation puts no copy back (`published_lesson`). A
        generation is random and lasts as long as a copy, far longer than any read, so none
        sees it vanish and come back as it was. The copies are dropped even when the
        generations cannot be written (a Redis full under `noeviction` refuses them, and takes
        deletes): a racing read's write is refused then too."""
        ids = sorted(set(lesson_ids))
        if ids:
            stamp = secrets.token_bytes(8)
            try:
                await self.cache.set_many({generation_key(tenant, i): stamp for i in ids},
                                          ttl_s=self.cache_ttl_s)
            finally:
                await self.cache.delete(*(cache_key(tenant, i) for i in ids))

    async def _forget_after_write(self, tenant: str, lesson_ids: Sequence[str]) -> None:
        """`forget`, for a write that is done: with the cache down it is left to the consumer
        of the write's event (which retries), so the write is not answered 503 and retried
        into a second one."""
        try:
            await self.forget(tenant, lesson_ids)
        except Exception as exc:
            if not is_store_down(exc):
                raise
            log.warning("the cache is down: the consumer of content.events forgets these "
                        "lessons", extra={"tenant": tenant, "lessons": len(lesson_ids)})

    async def edit_lesson(self, tenant: str, lesson_id: str, edit: LessonEdit, *,
                          by: Principal | None = None) -> Lesson:
        """Applies `edit` if the lesson is still at `edit.version` (409 otherwise). Learners
        see the change at the course's next publication. A lesson the edit leaves invalid is
        `InvalidBody`, its `loc` in `edit`."""
        lesson, course = await self._editable_lesson(tenant, lesson_id, by)
        if edit.version is None:
            raise Problem("name the lesson version this edit was made against: the `version` "
                          'field or an If-Match header like "3"', status=428,
                          code="version_required")
        if lesson.version != edit.version:
            raise _stale("lesson", lesson_id, lesson.version)
        try:
            edited = lesson.edited(edit)
        except ValidationError as exc:
            raise _invalid(exc) from None
        await self._check_module(course, edited.module)
        await self._check_concepts(tenant, [*edited.teaches, *edited.requires])
        await self._check_media(tenant, edited.blocks, kept=lesson.blocks)
        event = type_of(LessonUpdated).envelope(LessonUpdated(
            lesson_id=edited.id, course_id=edited.course, lesson_version=edited.version,
            title=edited.title, estimated_minutes=edited.estimated_minutes,
            teaches=edited.teaches, requires=edited.requires, updated_at=edited.updated_at,
        ), tenant=tenant, subject=edited.id, time=edited.updated_at)
        try:
            await self.repo.replace_lesson(edited, edit.version, [event])
        except StaleVersion:
            current = await self.repo.get_lesson(tenant, lesson_id)
            raise _stale("lesson", lesson_id, current.version if current else None) from None
        except Missing:
            raise NotFound(f"no lesson {lesson_id!r} in tenant {tenant!r}") from None
        self._on_write()
        return edited

    async def attach_media(self, tenant: str, lesson_id: str,
                           blocks: Sequence[AudioBlock | VideoBlock],
                           source: str | None = None) -> Lesson | None:
        """Adds to the lesson's draft those of `blocks` whose media it does not show yet (so
        attaching again adds nothing), as an edit (`lesson.updated`); learners see them once
        an author publishes the course. A block an AI job made (`made_by_ai`) takes the place
        of the first block another job of its kind made, of its type, and the other such
        blocks are dropped (never an author's own); the others are appended.
        None when nothing was added: every media was there already, or the lesson is gone.
        With `source` (the `made_from` of the lesson the job read), 409 `lesson_changed` when
        the draft reads otherwise now. Retries when an author's edit lands meanwhile."""
        for _ in range(5):
            lesson = await self.repo.get_lesson(tenant, lesson_id)
            if lesson is None:
                return None
            if source is not None and source != await self.made_from(lesson):
                raise Conflict(f"the lesson {lesson_id!r} was changed (its text, title or "
                               "language) after the AI job read it", code="lesson_changed")
            shown = {b.media for b in lesson.blocks if isinstance(b, AudioBlock | VideoBlock)}
            new = [b for b in dict.fromkeys(blocks) if b.media not in shown]
            if not new:
                return None
            try:
                return await self.edit_lesson(tenant, lesson_id, LessonEdit(
                    version=lesson.version, blocks=_with_media(lesson.blocks, new)))
            except Conflict as exc:
                if exc.code != "stale_version":
                    raise
        raise Conflict(f"the lesson {lesson_id!r} keeps changing; try again",
                       code="stale_version")

    async def made_from(self, lesson: Lesson) -> str:
        """What an AI narration or video of the lesson as it is would be made from (model's
        `made_from`), in its language, its course's unless it names one."""
        language = lesson.language
        if language is None:
            course = await self.repo.get_course(lesson.tenant, lesson.course)
            language = course.language if course is not None else "en"
        return made_from(lesson.title, lesson.prose, language)

    async def report_unattached(self, tenant: str, job_id: str, lesson_id: str,
                                outputs: Sequence[UnattachedOutput]) -> bool:
        """Announces (`ai_media.not_attached`) the outputs of the AI job that were not added
        to the lesson's draft, and why; False when there is no such lesson, deleted or not."""
        at = now()
        event = type_of(AiMediaNotAttached).envelope(AiMediaNotAttached(
            job_id=job_id, lesson_id=lesson_id, outputs=list(outputs), refused_at=at),
            tenant=tenant, subject=lesson_id, time=at)
        if not await self.repo.announce_on_lesson(tenant, lesson_id, [event]):
            return False
        self._on_write()
        return True

    async def delete_lesson(self, tenant: str, lesson_id: str, *, version: int | None = None,
                            by: Principal | None = None) -> None:
        """Deletes the lesson from its course's draft and from what learners see; `version`,
        when given, must be its current version."""
        lesson, _ = await self._editable_lesson(tenant, lesson_id, by)
        if version is not None and version != lesson.version:
            raise _stale("lesson", lesson_id, lesson.version)
        await self._delete(lesson)

    async def _delete(self, lesson: Lesson) -> None:
        try:
            await self.repo.delete_lesson(lesson.tenant, lesson.id, lesson.version,
                                          [_deleted(lesson, now())])
        except StaleVersion:
            current = await self.repo.get_lesson(lesson.tenant, lesson.id)
            raise _stale("lesson", lesson.id, current.version if current else None) from None
        except Missing:
            raise NotFound(f"no lesson {lesson.id!r} in tenant {lesson.tenant!r}") from None
        self._on_write()
        await self._forget_after_write(lesson.tenant, [lesson.id])


def _with_media(blocks: Sequence[BlockType], new: Sequence[AudioBlock | VideoBlock]
                ) -> list[BlockType]:
    """`blocks` with `new`: each made by an AI job in place of the first block of its type
    another job of its kind made, the others such blocks dropped (a draft could hold several,
    attached before blocks said which job made them); an author's own blocks stay. Every other
    block of `new` goes at the end."""
    kept = list(blocks)
    for block in new:
        ai = block.made_by_ai
        earlier = [] if ai is None else [
            i for i, b in enumerate(kept) if isinstance(b, AudioBlock | VideoBlock)
            and b.type == block.type and made_by(b, ai.kind)
            and (b.made_by_ai is None or b.made_by_ai.job != ai.job)]
        if not earlier:
            kept.append(block)
            continue
        kept[earlier[0]] = block
        kept = [b for i, b in enumerate(kept) if i not in earlier[1:]]
    return kept


def _readable_by(by: Principal) -> ReadableBy | None:
    """The courses of a list `by` may read (None: all of them, to the tenant's admins)."""
    if by.has_any(ADMINS):
        return None
    return ReadableBy(editor=by.user_id if "educator" in by.roles else None)


def _view(course: Course, draft: bool, live: set[str]) -> CourseView:
    """`course` as a list shows it, `live` the ids of its lessons not deleted."""
    p = course.publication
    if draft or p is None:
        return CourseView.draft(course, len(live))
    return CourseView.published(course, p, sum(r.id in live for r in p.lessons))


def _published(course_id: str) -> Conflict:
    return Conflict(f"the course {course_id!r} has been published, so it stays: its versions, "
                    "enrolments and progress refer to it; delete its lessons to take them from "
                    "learners", code="course_published")


def _archived(course_id: str) -> Conflict:
    return Conflict(f"the course {course_id!r} is archived; put it back (…/unarchive) before "
                    "publishing it", code="course_archived")


def _draft_changed(course_id: str, again: str = "publish it again") -> Conflict:
    return Conflict(f"the draft of the course {course_id!r} changed while it was being "
                    "published (a lesson added, edited, moved or deleted); nothing was "
                    f"published: {again}", code="draft_changed")


def _draft_changed_meanwhile(course_id: str, lesson_id: str) -> Conflict:
    return Conflict(f"the lesson {lesson_id!r} changed while the course {course_id!r} was being "
                    "rolled back; nothing was published and the change is kept: read the draft "
                    "again and retry", code="stale_version")


def _unpublished(course: Course, draft: Mapping[str, Lesson],
                 target: Sequence[Lesson]) -> list[dict[str, str]]:
    """The lessons whose draft changed since the course's last publication (its lessons'
    versions against the draft's, as a publication's `draft_changed` check compares them) and
    that a rollback to `target` would change: each id, and whether it was `added`, `changed`
    (edited or moved) or `deleted`. One the draft already has as `target` does (a rollback
    stopped part-way restored it), or deleted and not in `target`, loses nothing."""
    published = {r.id: r.version for r in (course.publication.lessons if course.publication
                                           else [])}
    restored = {x.id: x for x in target}
    # A lesson's place is its rank: moved away and back, its position number is not the same.
    both = draft.keys() & restored.keys()
    rank_now = _ranks(x for x in draft.values() if x.id in both)
    rank_then = _ranks(x for x in target if x.id in both)
    lost: list[dict[str, str]] = []
    for lesson_id in sorted(published.keys() | draft.keys()):
        live, was = draft.get(lesson_id), restored.get(lesson_id)
        if published.get(lesson_id) == (live.version if live else None):
            continue
        if (live is None and was is None) or (
                live is not None and was is not None and _same(live, was, position=False)
                and rank_now[lesson_id] == rank_then[lesson_id]):
            continue
        change = "deleted" if live is None else "changed" if lesson_id in published else "added"
        lost.append({"id": lesson_id, "change": change})
    return lost


def _deleted(lesson: Lesson, at: datetime) -> Envelope:
    return type_of(LessonDeleted).envelope(LessonDeleted(
        lesson_id=lesson.id, course_id=lesson.course, lesson_version=lesson.version,
        deleted_at=at), tenant=lesson.tenant, subject=lesson.id, time=at)


def _not_an_author() -> Forbidden:
    return Forbidden("only the course's owner, its co-authors and the tenant's admins may "
                     "change it or read its drafts", code="not_an_author")


def _check_owner(course: Course, by: Principal | None, action: str) -> None:
    """The owner and the tenant's admins (the admins alone when the course has no owner); 404
    as a read answers to others who may not read it either (it was never published)."""
    if by is not None and not ((by.user_id == course.owner and course.owner is not None)
                               or by.has_any(ADMINS)):
        if course.publication is None and not ContentService.may_edit(course, by):
            raise NotFound(f"no course {course.id!r} in tenant {course.tenant!r}")
        raise Forbidden(f"only the course's owner and the tenant's admins {action}",
                        code="not_the_owner")


HEAD_FIELDS = ("title", "summary", "language", "level", "tags", "modules")
"""What a publication keeps of a course's head, and a rollback restores."""


def _unchanged(course: Course, lessons: Sequence[Lesson], names: Mapping[str, str]) -> bool:
    """Whether the draft (the head and `lessons`, in order, their concepts named `names`) is
    the course's last publication: its HEAD_FIELDS, the same lessons in the same order at the
    same versions (an edit or a move of a lesson takes it a version on), and the same concept
    names (a rename reaches learning with a publication)."""
    p = course.publication
    return p is not None and all(getattr(course, f) == getattr(p, f) for f in HEAD_FIELDS) \
        and [(x.id, x.version) for x in lessons] == [(r.id, r.version) for r in p.lessons] \
        and {c.id: c.name for c in p.concepts} == names


def _unpublished_fields(course: Course, target: Publication) -> list[str]:
    """The fields of the course's head changed since its last publication that a rollback to
    `target` would change."""
    last = course.publication
    return [f for f in HEAD_FIELDS
            if getattr(course, f) != getattr(target, f)
            and (last is None or getattr(course, f) != getattr(last, f))]


def _same(a: Lesson, b: Lesson, *, position: bool = True) -> bool:
    ignored = {"version", "updated_at", "created_at"} | (set() if position else {"position"})
    return a.model_dump(exclude=ignored) == b.model_dump(exclude=ignored)


def _ranks(lessons: Iterable[Lesson]) -> dict[str, int]:
    """Each lesson's place in its course's order."""
    return {x.id: i for i, x in enumerate(sorted(lessons, key=lambda x: (x.position, x.id)))}


def _publication(course: Course, lessons: list[Lesson],
                 names: Mapping[str, str]) -> list[Envelope]:
    p = course.publication
    assert p is not None
    at = p.published_at
    events = [type_of(CoursePublished).envelope(CoursePublished(
        course_id=course.id, version=p.version, title=p.title, summary=p.summary,
        language=p.language, level=p.level, tags=p.tags,
        lesson_ids=[lesson.id for lesson in lessons], published_at=at,
        rollback_of=p.rollback_of,
        modules=[PublishedModule(id=m.id, title=m.title,
                                 lesson_ids=[x.id for x in lessons if x.module == m.id])
                 for m in p.modules],
    ), tenant=course.tenant, subject=course.id, time=at)]
    events += [type_of(LessonPublished).envelope(LessonPublished(
        lesson_id=lesson.id, course_id=course.id, course_version=p.version,
        lesson_version=lesson.version, position=lesson.position, title=lesson.title,
        estimated_minutes=lesson.estimated_minutes, teaches=lesson.teaches,
        requires=lesson.requires, published_at=at, module=lesson.module,
        concept_names={c: names[c] for c in (*lesson.teaches, *lesson.requires) if c in names},
    ), tenant=course.tenant, subject=lesson.id, time=at) for lesson in lessons]
    return events


async def _check_author(members: Members, tenant: str, user_id: str, by: Principal | None,
                        credentials: Mapping[str, str]) -> None:
    """Refuses a co-author who is not a user of the tenant able to edit courses."""
    roles = await members.roles(tenant, user_id, by, credentials)
    if roles is None:
        raise Problem(f"no user {user_id!r} in tenant {tenant!r}", status=422, code="unknown_user")
    if roles.isdisjoint(COURSE_EDITORS):
        raise Problem(f"a co-author edits the course, which needs the educator role; user "
                      f"{user_id!r} holds {', '.join(sorted(roles)) or 'no role'}",
                      status=422, code="not_an_educator")
