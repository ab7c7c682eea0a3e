"""What content needs from a store. Every read and write names its tenant; there is no way to
reach another tenant's courses through this port."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from bloop.platform.content.model import Concept, Course, CourseStatus, Lesson
from bloop.platform.kit.events.envelope import Envelope
from bloop.platform.kit.events.outbox import OutboxStore


class Duplicate(Exception):
    """A record with this id already exists in the tenant."""


class Missing(Exception):
    """The record a write depends on does not exist in the tenant."""


class StaleVersion(Exception):
    """The record changed since the version the write was made against."""


class ContentRepository(Protocol):
    @property
    def outbox(self) -> OutboxStore:
        """Where the events written beside each change wait for the relay."""

    async def setup(self) -> None:
        """Creates tables or indexes; safe to call on every start."""

    async def add_concept(self, concept: Concept) -> None:
        """`Duplicate` when the tenant has a concept with this id."""

    async def list_concepts(self, tenant: str) -> list[Concept]:
        """The tenant's concepts, ordered by id."""

    async def get_concepts(self, tenant: str, ids: Sequence[str]) -> list[Concept]:
        """Those of `ids` the tenant has, ordered by id."""

    async def add_course(self, course: Course) -> None:
        """`Duplicate` when the tenant has a course with this id."""

    async def get_course(self, tenant: str, course_id: str) -> Course | None: ...

    async def list_courses(self, tenant: str, status: CourseStatus | None = None, *,
                           limit: int = 100) -> list[Course]:
        """The tenant's courses (of `status`, or all), ordered by title then id."""

    async def add_lesson(self, lesson: Lesson) -> Lesson:
        """Appends the lesson to its course and returns it with its position; `Missing` when
        the course does not exist in the lesson's tenant."""

    async def get_lesson(self, tenant: str, lesson_id: str) -> Lesson | None: ...

    async def list_lessons(self, tenant: str, course_id: str) -> list[Lesson]:
        """The course's lessons in order."""

    async def lessons_of_courses(self, tenant: str,
                                 course_ids: Sequence[str]) -> dict[str, list[Lesson]]:
        """The lessons of each of `course_ids` in order, read at once (one query); every id is
        a key, with an empty list when the course has no lessons or is not the tenant's."""

    async def replace_lesson(self, lesson: Lesson, expected_version: int) -> None:
        """Stores `lesson` if the stored one is still at `expected_version`, else
        `StaleVersion`; `Missing` when there is none."""

    async def publish_course(self, course: Course, expected: Course,
                             events: Sequence[Envelope]) -> None:
        """Stores `course` and its events atomically if the stored course still has `expected`'s
        version and lesson count, else `StaleVersion`; `Missing` when there is none."""
