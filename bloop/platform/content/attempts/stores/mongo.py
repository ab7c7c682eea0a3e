"""The MongoDB quiz attempt store (collection `quiz_attempts` of content's database). An attempt
and its event are one single-document insert (kit MongoOutbox). Runs on FerretDB v1 as well as
MongoDB. An attempt is never updated after its insert; only the outbox relay writes it again,
under its guard (kit mongo_guard), so that two relays never interleave on one document.

Numbers come from a counter per learner and quiz (collection `quiz_attempt_numbers`), taken
with `$inc` before the insert (under the counter's guard: FerretDB's updates are not atomic).
Without transactions the two writes are apart: a process stopped between them, or an insert
that fails, leaves its number unused. A counter starts from the learner's latest stored attempt
(attempts stored before counters existed keep their numbers), and a unique index keeps numbers
unique whatever wrote them.

Beside the attempt's fields, a document keeps its `sort_key` and `answered` (how many questions
it answered; missing in attempts stored before it), neither read back into the attempt.

Every `_id` starts with the tenant, and every query also filters on the `tenant` field.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING, AsyncMongoClient, ReturnDocument
from pymongo.errors import DuplicateKeyError

from bloop.platform.content.attempts.model import Attempt
from bloop.platform.content.attempts.ports import Numbered
from bloop.platform.kit.events.outbox.mongo import MongoOutbox
from bloop.platform.kit.events.types import EventRegistry
from bloop.platform.kit.mongo_guard import MongoGuard
from bloop.platform.kit.pagination import Slice, key_of
from bloop.platform.kit.read_back import STORED

Doc = dict[str, Any]


def _attempt(doc: Doc) -> Attempt:
    return Attempt.model_validate({k: v for k, v in doc.items()
                                   if not k.startswith("_") and k != "sort_key"},
                                  context=STORED)


class MongoAttemptStore:
    def __init__(self, client: AsyncMongoClient[Doc], registry: EventRegistry,
                 database: str = "content", guard: MongoGuard | None = None) -> None:
        self.attempts = client[database]["quiz_attempts"]
        self.numbers = client[database]["quiz_attempt_numbers"]
        self.guard = guard or MongoGuard.of(client[database])
        self._outbox = MongoOutbox([self.attempts], registry,
                                   name=f"{database}-quiz-attempts-outbox", guard=self.guard)

    @property
    def outbox(self) -> MongoOutbox:
        return self._outbox

    async def setup(self) -> None:
        await self.attempts.create_index(
            [("tenant", ASCENDING), ("lesson_id", ASCENDING), ("quiz_id", ASCENDING),
             ("learner", ASCENDING), ("number", ASCENDING)], name="attempt_number", unique=True)
        await self.attempts.create_index(
            [("tenant", ASCENDING), ("learner", ASCENDING), ("sort_key", DESCENDING)],
            name="tenant_learner_sort")
        await self.attempts.create_index(
            [("tenant", ASCENDING), ("lesson_id", ASCENDING), ("sort_key", DESCENDING)],
            name="tenant_lesson_sort")
        await self.numbers.create_index([("tenant", ASCENDING), ("learner", ASCENDING)],
                                        name="tenant_learner")
        await self._outbox.setup()
        await self.guard.setup()

    async def add(self, tenant: str, learner: str, lesson_id: str, quiz_id: str,
                  make: Numbered) -> Attempt:
        series: Doc = {"tenant": tenant, "lesson_id": lesson_id, "quiz_id": quiz_id,
                       "learner": learner}
        counter = f"{tenant}/{json.dumps([lesson_id, quiz_id, learner])}"
        while True:
            number = await self._next_number(counter, series)
            attempt, events = make(number, await self._graded_before(series, number))
            doc = {"_id": f"{attempt.tenant}/{attempt.id}", **attempt.model_dump(mode="json"),
                   "sort_key": attempt.sort_key, "answered": attempt.answered}
            try:
                await self.attempts.insert_one(self._outbox.new_document(doc, *events))
            except DuplicateKeyError:
                # The number was taken without the counter (by a Bloop before it, during an
                # upgrade): the counter moves past every stored number, and the attempt takes
                # the next one.
                await self._catch_up(counter, series)
                continue
            return attempt

    async def _next_number(self, counter: str, series: Doc) -> int:
        while True:
            async with self.guard.hold(self.numbers, counter):
                doc = await self.numbers.find_one_and_update(
                    {"_id": counter}, {"$inc": {"last": 1}}, return_document=ReturnDocument.AFTER)
            if doc is not None:
                return int(doc["last"])
            await self._catch_up(counter, series)  # a first attempt, or a learner just erased

    async def _graded_before(self, series: Doc, number: int) -> datetime | None:
        """When the series' latest attempt numbered below `number` that answered a question
        was graded: blank ones, and one not stored yet (taken at once by another request), are
        passed over. An attempt stored before `answered` was kept counts as answered."""
        latest = await self.attempts.find_one(
            {**series, "number": {"$lt": number}, "answered": {"$ne": 0}}, {"graded_at": 1},
            sort=[("number", DESCENDING)])
        return None if latest is None else datetime.fromisoformat(latest["graded_at"])

    async def _catch_up(self, counter: str, series: Doc) -> None:
        """Raises the counter (creating it when missing) to the series' latest stored number."""
        latest = await self.attempts.find_one(series, {"number": 1},
                                              sort=[("number", DESCENDING)])
        last = 0 if latest is None else int(latest["number"])
        async with self.guard.hold(self.numbers, counter):
            await self.numbers.update_one(
                {"_id": counter}, {"$max": {"last": last}, "$setOnInsert": series}, upsert=True)

    async def _find(self, query: Doc, after: str | None, limit: int | None) -> Slice[Attempt]:
        query = {k: v for k, v in query.items() if v is not None}
        if after:
            query["sort_key"] = {"$lt": key_of(after, str)[0]}
        cursor = self.attempts.find(query, {"_outbox": 0, "_outbox_pending": 0}).sort(
            "sort_key", DESCENDING)
        if limit is not None:
            cursor = cursor.limit(limit + 1)
        found = [_attempt(d) async for d in cursor]
        return Slice(found) if limit is None else Slice.of(found, limit, lambda a: (a.sort_key,))

    async def of_learner(self, tenant: str, learner: str, *, lesson_id: str | None = None,
                         quiz_id: str | None = None, after: str | None = None,
                         limit: int | None = 100) -> Slice[Attempt]:
        return await self._find({"tenant": tenant, "learner": learner, "lesson_id": lesson_id,
                                 "quiz_id": quiz_id}, after, limit)

    async def of_lesson(self, tenant: str, lesson_id: str, *, quiz_id: str | None = None,
                        learner: str | None = None, after: str | None = None,
                        limit: int = 100) -> Slice[Attempt]:
        return await self._find({"tenant": tenant, "lesson_id": lesson_id, "quiz_id": quiz_id,
                                 "learner": learner}, after, limit)

    async def erase_learner(self, tenant: str, learner: str) -> int:
        result = await self.attempts.delete_many({"tenant": tenant, "learner": learner})
        await self.numbers.delete_many({"tenant": tenant, "learner": learner})
        return int(result.deleted_count)
