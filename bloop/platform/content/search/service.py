"""Search's use cases: query the index, and keep it in step with published content."""

from __future__ import annotations

import hashlib
import logging
from datetime import datetime, timedelta

import orjson

from bloop.platform.content.model import Course, Lesson, now
from bloop.platform.content.search.model import (
    Filters,
    Position,
    SearchDoc,
    SearchResults,
    course_doc,
    doc_key,
    lesson_doc,
    newer,
)
from bloop.platform.content.search.ports import PublishedContent, SearchIndex
from bloop.platform.content.search.query import QuerySyntaxError, parse
from bloop.platform.content.search.settings import SearchSettings
from bloop.platform.kit.errors import Problem
from bloop.platform.kit.pagination import BadCursor, cursor, key_of
from bloop.platform.kit.threads import each_in_thread

log = logging.getLogger("bloop.content.search")
BATCH = 500


def _fingerprint(q: str, filters: Filters) -> str:
    return hashlib.blake2s(orjson.dumps([q, filters.model_dump()]), digest_size=6).hexdigest()


def cursor_of(position: Position, q: str, filters: Filters) -> str:
    return cursor(*position, _fingerprint(q, filters))


def position_of(token: str, q: str, filters: Filters) -> Position:
    """The place of the last hit a cursor of this same search stands for; 422 for any other
    string (an offset, as cursors of searches before 7 Dec were)."""
    score, key, fingerprint = key_of(token, float, str, str)
    if fingerprint != _fingerprint(q, filters):
        raise BadCursor("the cursor belongs to another search; start again without it")
    return float(score), str(key)


async def lesson_docs(pairs: list[tuple[Course, Lesson]]) -> list[SearchDoc]:
    """`lesson_doc` of each lesson and its course, built in worker threads (reading every
    block's text is too slow for the event loop)."""
    return await each_in_thread(lambda pair: lesson_doc(*pair), pairs)


class SearchService:
    def __init__(self, index: SearchIndex, content: PublishedContent,
                 settings: SearchSettings | None = None) -> None:
        self.index = index
        self.content = content
        self.settings = settings or SearchSettings()

    async def search(self, tenant: str, q: str = "", filters: Filters | None = None, *,
                     limit: int = 10, after: str | None = None) -> SearchResults:
        """The tenant's published courses and lessons matching `q` (every one when `q` is
        blank) and `filters`, best first, with facet counts over all of them."""
        filters = filters or Filters()
        position = None if after is None else position_of(after, q, filters)
        try:
            parsed = parse(q)
            ranked = await self.index.search(tenant, parsed, filters, limit=limit,
                                             after=position, depth=self.settings.max_offset)
        except QuerySyntaxError as exc:
            raise Problem(str(exc), status=422, code="bad_query") from None
        return SearchResults(**ranked.found.model_dump(), next=None if ranked.next is None
                             else cursor_of(ranked.next, q, filters))

    # keeping the index in step

    async def _put(self, docs: list[SearchDoc]) -> int:
        """Writes those of `docs` newer than what the index holds; returns how many."""
        if not docs:
            return 0
        indexed = await self.index.versions([d.key for d in docs])
        fresh = [d for d in docs if newer(d.versions, indexed.get(d.key))]
        await self.index.write(fresh)
        return len(fresh)

    async def _drop(self, keys: list[str]) -> None:
        """Deletes those of `keys` the index holds, at once."""
        if not keys:
            return
        held = await self.index.versions(keys)
        await self.index.delete([k for k in keys if k in held])

    async def sync_course(self, tenant: str, course_id: str) -> None:
        """Indexes the course and its lessons as published now, in one write (their own
        events then find them indexed), or drops the course when it is not published."""
        course = await self.content.course(tenant, course_id)
        if course is None:
            await self._drop([doc_key(tenant, "course", course_id)])
        else:
            lessons = await self.content.course_lessons(tenant, course)
            await self._put([course_doc(course),
                             *await lesson_docs([(course, x) for x in lessons])])

    async def sync_lesson(self, tenant: str, lesson_id: str) -> None:
        """Indexes the lesson as published now, or drops it when it is gone or unpublished."""
        await self.sync_lessons(tenant, [lesson_id])

    async def sync_lessons(self, tenant: str, lesson_ids: list[str]) -> None:
        """`sync_lesson` of each, in one write and one deletion."""
        found: list[tuple[Course, Lesson]] = []
        gone: list[str] = []
        for lesson_id in lesson_ids:
            published = await self.content.lesson(tenant, lesson_id)
            if published is None:
                gone.append(doc_key(tenant, "lesson", lesson_id))
            else:
                found.append(published)
        await self._drop(gone)
        await self._put(await lesson_docs(found))

    def covers(self, at: datetime) -> bool:
        """True when a change made at `at` is surely in the index already: it happened well
        before the index's last complete build began (the build read the store after it)."""
        built = self.index.built_at
        skew = timedelta(seconds=self.settings.clock_skew_s)
        return built is not None and at < built - skew

    async def build(self, *, force: bool = False) -> int:
        """Indexes every published course and lesson of every tenant, unless the index was
        built before and holds documents (and `force` is off): a new, lost or emptied index is
        built again. Returns how many documents were written."""
        if self.index.built_at is not None and not force and await self.index.count() > 0:
            return 0
        started, written, batch = now(), 0, list[SearchDoc]()
        async for course, lessons in self.content.catalogue():
            batch += [course_doc(course), *await lesson_docs([(course, x) for x in lessons])]
            if len(batch) >= BATCH:
                written += await self._put(batch)
                batch = []
        written += await self._put(batch)
        await self.index.mark_built(started)
        log.info("search index built", extra={"documents": written})
        return written
