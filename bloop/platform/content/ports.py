"""What content needs from a store. Every read and write names its tenant; there is no way to
reach another tenant's courses through this port.

Lessons are never removed: a deleted lesson stays as a tombstone that reads leave out (so its
version numbers keep growing if a rollback brings it back, and lesson snapshots, keyed by lesson
version, stay immutable)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from bloop.platform.content.model import (
    Concept,
    Course,
    CourseSnapshot,
    CourseStatus,
    Lesson,
    LessonOutline,
    LessonRef,
)
from bloop.platform.kit.events.envelope import Envelope
from bloop.platform.kit.events.outbox import OutboxStore
from bloop.platform.kit.pagination import Slice


def listed_title(course: Course) -> str:
    """What `list_courses` orders a course by, ignoring case: the title learners read (its last
    publication's), or its draft's before it is published. A draft title of a published course
    is never part of its place or its cursor: learners do not see it."""
    return (course.publication.title if course.publication is not None
            else course.title).casefold()


def course_key(course: Course) -> tuple[str, str]:
    """Where a course stands in `list_courses`' order: its cursor is made of this."""
    return listed_title(course), course.id


@dataclass(frozen=True)
class ReadableBy:
    """Which courses `list_courses` keeps for a reader who is no admin of the tenant: those
    published at least once, and those `editor` (an educator's user id) may edit as
    `Course.may_edit` has it: that they own or co-author, or that no one owns (and is not
    `orphaned`)."""

    editor: str | None = None


@dataclass(frozen=True)
class LessonHead:
    """Where a lesson stands: its course, and its draft's version."""

    course: str
    version: int


class Duplicate(Exception):
    """A record with this id already exists in the tenant."""


class Missing(Exception):
    """The record a write depends on does not exist in the tenant."""


class StaleVersion(Exception):
    """The record changed since the version the write was made against."""


# The head fields `update_course` writes; a publication writes the PUBLICATION_FIELDS only, so
# neither undoes the other, nor a lesson added meanwhile (`lesson_count`, `next_position`).
HEAD_FIELDS = ("title", "summary", "language", "level", "tags", "modules", "owner",
               "co_authors", "orphaned", "revision", "updated_at")
PUBLICATION_FIELDS = ("status", "version", "published_at", "updated_at", "publication",
                      "history")
# What archiving a course, or putting it back, writes.
STATUS_FIELDS = ("status", "archived_at", "revision", "updated_at")


class ContentRepository(Protocol):
    @property
    def outbox(self) -> OutboxStore:
        """Where the events written beside each change wait for the relay."""

    async def setup(self) -> None:
        """Creates tables or indexes; safe to call on every start."""

    async def add_concept(self, concept: Concept) -> None:
        """`Duplicate` when the tenant has a concept with this id."""

    async def replace_concept(self, concept: Concept, *, expected: int | None = None) -> None:
        """Stores the concept's name, description and version; `Missing` when there is none,
        `StaleVersion` when `expected` is given and the stored version is another."""

    async def list_concepts(self, tenant: str) -> list[Concept]:
        """The tenant's concepts, ordered by id."""

    async def page_concepts(self, tenant: str, *, after: str | None = None,
                            limit: int = 100) -> Slice[Concept]:
        """`list_concepts` `limit` at a time from the cursor `after` on, in one read.
        `BadCursor` for a cursor of no such list."""

    async def get_concepts(self, tenant: str, ids: Sequence[str]) -> list[Concept]:
        """Those of `ids` the tenant has, ordered by id."""

    # course heads

    async def add_course(self, course: Course) -> None:
        """`Duplicate` when the tenant has a course with this id."""

    async def get_course(self, tenant: str, course_id: str) -> Course | None: ...

    async def get_courses(self, tenant: str, ids: Sequence[str]) -> list[Course]:
        """Those of `ids` the tenant has, ordered by id, read at once (one query)."""

    async def list_courses(self, tenant: str, status: CourseStatus | None = None, *,
                           after: str | None = None, limit: int = 100,
                           readable_by: ReadableBy | None = None) -> Slice[Course]:
        """The tenant's courses (of `status`, or all; only those `readable_by` keeps when it is
        given), ordered by `course_key` (the title learners read, ignoring case, then id) from
        the cursor `after` on, along an index, in one read."""

    async def list_published(self, after: tuple[str, str] | None = None, *,
                             limit: int = 100) -> list[Course]:
        """Every tenant's published courses ordered by (tenant, id), those after the (tenant, id)
        `after` only: for readers of the whole store (the search index's build), never a
        request."""

    async def courses_of_author(self, tenant: str, user_id: str) -> list[Course]:
        """The tenant's courses `user_id` owns or co-authors, ordered by title then id."""

    async def delete_draft_course(self, course: Course,
                                  deleted: Callable[[Lesson], Envelope]) -> None:
        """Deletes the course if it was never published and is still as `course` has it (its
        revision, and no lesson added since), else `StaleVersion`; `Missing` when there is
        none. Its lessons go with it, each stored with its `deleted` event."""

    async def delete_lessons_left(self, tenant: str, course_id: str,
                                  deleted: Callable[[Lesson], Envelope]) -> int:
        """Deletes the lessons a course deletion stopped part-way left behind (their course is
        gone), each with its `deleted` event; how many there were. None while the course
        exists."""

    async def reorder_lessons(self, tenant: str, course_id: str, order: Sequence[str],
                              at: datetime) -> None:
        """Places the course's live lessons in `order` (each of them once), after every place
        used so far, each one version on and updated `at` (so an edit made against its earlier
        place is refused, and its publication shows the new place); `StaleVersion` when its
        lessons are not those, `Missing` with no course."""

    async def set_course_status(self, course: Course, expected: Course,
                                events: Sequence[Envelope]) -> None:
        """Stores the STATUS_FIELDS of `course` with `events` if the stored head is still at
        the revision and the published version of `expected`, else `StaleVersion`; `Missing`
        when there is none."""

    async def update_course(self, course: Course, expected_revision: int) -> None:
        """Stores the HEAD_FIELDS of `course` if the stored head is still at
        `expected_revision`, else `StaleVersion`; `Missing` when there is none."""

    # lessons (the draft)

    async def add_lesson(self, lesson: Lesson) -> Lesson:
        """Appends the lesson to its course and returns it with its position; `Missing` when
        the course does not exist in the lesson's tenant."""

    async def add_lessons(self, lessons: Sequence[Lesson]) -> list[Lesson]:
        """Appends the lessons (all of one course) to their course in their order, in one
        write, and returns them with their positions; `Missing` when the course does not exist
        in their tenant. The embedded store writes them in one transaction; on MongoDB they are
        one `insert` command (see the adapter for what that holds across failures)."""

    async def get_lesson(self, tenant: str, lesson_id: str, *,
                         deleted: bool = False) -> Lesson | None:
        """The lesson; a deleted one only when `deleted` is True."""

    async def list_lessons(self, tenant: str, course_id: str) -> list[Lesson]:
        """The course's lessons in order."""

    async def lesson_stamps(self, tenant: str, course_id: str) -> list[tuple[str, int]]:
        """The id and draft version of each of the course's lessons, in order, without reading
        the lessons (one query): what changes whenever one is edited, moved, added or
        deleted."""

    async def get_lessons(self, tenant: str, lesson_ids: Sequence[str]) -> list[Lesson]:
        """The lessons `lesson_ids` name, in their order, read at once (one query); those the
        tenant does not have (or has deleted) are left out."""

    async def published_lesson(self, tenant: str, lesson_id: str) -> Lesson | None:
        """The lesson as its course's current publication holds it (what learners read); None
        when the lesson is deleted or that publication does not hold it. One read, normally:
        the store keeps each lesson's current publication beside it, written with each
        publication and deletion."""

    async def lessons_of_courses(self, tenant: str,
                                 course_ids: Sequence[str]) -> dict[str, list[Lesson]]:
        """The lessons of each of `course_ids` in order, read at once (one query); every id is
        a key, with an empty list when the course has no lessons or is not the tenant's."""

    async def live_lesson_ids(self, tenant: str,
                              course_ids: Sequence[str]) -> dict[str, set[str]]:
        """The ids of each of `course_ids`' lessons (deleted ones left out), read at once (one
        query); every id is a key, with an empty set when the course has no lessons or is not
        the tenant's."""

    async def lesson_heads(self, tenant: str,
                           lesson_ids: Sequence[str]) -> dict[str, LessonHead]:
        """The course and draft version of each of `lesson_ids` the tenant has (deleted ones
        left out), read at once (one query) without reading the lessons themselves; an id with
        no such lesson is no key."""

    async def replace_lesson(self, lesson: Lesson, expected_version: int,
                             events: Sequence[Envelope] = (), *, revive: bool = False) -> None:
        """Stores `lesson` and `events` atomically if the stored one is still at
        `expected_version`, else `StaleVersion`; `Missing` when there is none (or it is
        deleted, unless `revive`, which brings a deleted lesson back)."""

    async def delete_lesson(self, tenant: str, lesson_id: str, expected_version: int,
                            events: Sequence[Envelope] = ()) -> None:
        """Deletes the lesson and stores `events` atomically if it is still at
        `expected_version`, else `StaleVersion`; `Missing` when there is none."""

    async def announce_on_lesson(self, tenant: str, lesson_id: str,
                                 events: Sequence[Envelope]) -> bool:
        """Stores `events` in the lesson's outbox (a deleted lesson's too), changing nothing
        else; False, and nothing written, when the tenant has no such lesson."""

    # publications

    async def publish_course(self, course: Course, expected_version: int,
                             lessons: Sequence[Lesson], events: Sequence[Envelope]) -> None:
        """Stores `course.publication` as a snapshot, each of `lessons` as a lesson snapshot,
        and the PUBLICATION_FIELDS of `course` with `events`, if the stored course is still at
        `expected_version` and not archived, and `lessons` are still its live lessons at their
        versions, else `StaleVersion`; `Missing` when there is none. The head and its events
        are one atomic write, made last: until it is made, nothing shows the new version. A
        lesson deleted meanwhile is never published: either the publication is refused, or
        the deletion comes after it (and its event after the publication's)."""

    async def get_snapshot(self, tenant: str, course_id: str,
                           snapshot_id: str) -> CourseSnapshot | None: ...

    async def lesson_versions(self, tenant: str, refs: Sequence[LessonRef]) -> list[Lesson]:
        """The lesson snapshots `refs` name, in their order, read at once; those not stored
        are left out."""

    async def lesson_outlines(self, tenant: str,
                              refs: Sequence[LessonRef]) -> list[LessonOutline]:
        """`lesson_versions` without their blocks, which the store leaves unread (one query)."""
