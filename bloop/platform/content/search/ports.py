"""What search needs: an index it writes and queries, and the published content it indexes."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from typing import Protocol

from bloop.platform.content.model import Course, Lesson
from bloop.platform.content.search.model import Filters, Position, Ranked, SearchDoc, Versions
from bloop.platform.content.search.query import ParsedQuery


class SearchIndex(Protocol):
    @property
    def index_id(self) -> str:
        """Names this index, and the consumer group that feeds it; a new index gets a new one."""

    @property
    def built_at(self) -> datetime | None:
        """When the last complete build from the content store began; None until one ends."""

    async def versions(self, keys: Sequence[str]) -> dict[str, Versions]:
        """The indexed versions of those of `keys` the index holds."""

    async def write(self, docs: Sequence[SearchDoc]) -> None:
        """Adds the documents, each replacing the one with its key; durable when it returns."""

    async def delete(self, keys: Sequence[str]) -> None:
        """Removes the documents with these keys; durable when it returns."""

    async def mark_built(self, started_at: datetime) -> None:
        """Records a complete build from the store that began at `started_at`."""

    async def search(self, tenant: str, query: ParsedQuery, filters: Filters, *,
                     limit: int, after: Position | None, depth: int) -> Ranked:
        """`limit` of the tenant's documents matching `query` and `filters`, best first (ties
        in order of key), after the hit at `after` (where it ranks now, when it still matches),
        among the first `depth` of them; `QuerySyntaxError` when the query has nothing to
        search for."""

    async def count(self, tenant: str | None = None) -> int:
        """The documents of `tenant`, or of every tenant."""

    async def close(self) -> None: ...


class PublishedContent(Protocol):
    """Content as learners see it: published courses and their lessons."""

    async def course(self, tenant: str, course_id: str) -> Course | None:
        """The course, when it is published."""

    async def lesson(self, tenant: str, lesson_id: str) -> tuple[Course, Lesson] | None:
        """The lesson and its course, when the course is published."""

    async def course_lessons(self, tenant: str, course: Course) -> list[Lesson]:
        """The lessons of `course`'s current publication, as published, in its order (those
        deleted since left out)."""

    def catalogue(self) -> AsyncIterator[tuple[Course, list[Lesson]]]:
        """Every tenant's published courses with their lessons, read in pages."""
