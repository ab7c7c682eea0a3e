"""The MongoDB quiz attempt store (collection `quiz_attempts` of content's database). An attempt
and its event are one single-document insert (kit MongoOutbox); a unique index numbers each
learner's attempts at a quiz. Runs on FerretDB v1 as well as MongoDB. An attempt is never
updated after its insert; only the outbox relay writes it again, under its guard (kit
mongo_guard), so that two relays never interleave on one document.

Every `_id` starts with the tenant, and every query also filters on the `tenant` field.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pymongo import ASCENDING, DESCENDING, AsyncMongoClient
from pymongo.errors import DuplicateKeyError

from bloop.platform.content.attempts.model import Attempt
from bloop.platform.content.attempts.ports import Duplicate
from bloop.platform.kit.events.envelope import Envelope
from bloop.platform.kit.events.outbox.mongo import MongoOutbox
from bloop.platform.kit.events.types import EventRegistry
from bloop.platform.kit.mongo_guard import MongoGuard

Doc = dict[str, Any]


def _attempt(doc: Doc) -> Attempt:
    return Attempt.model_validate({k: v for k, v in doc.items()
                                   if not k.startswith("_") and k != "sort_key"})


class MongoAttemptStore:
    def __init__(self, client: AsyncMongoClient[Doc], registry: EventRegistry,
                 database: str = "content", guard: MongoGuard | None = None) -> None:
        self.attempts = client[database]["quiz_attempts"]
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
        await self._outbox.setup()
        await self.guard.setup()

    async def add(self, attempt: Attempt, events: Sequence[Envelope]) -> None:
        doc = {"_id": f"{attempt.tenant}/{attempt.id}", **attempt.model_dump(mode="json"),
               "sort_key": attempt.sort_key}
        try:
            await self.attempts.insert_one(self._outbox.new_document(doc, *events))
        except DuplicateKeyError:
            raise Duplicate(attempt.id) from None

    async def last_number(self, tenant: str, learner: str, lesson_id: str, quiz_id: str) -> int:
        doc = await self.attempts.find_one(
            {"tenant": tenant, "lesson_id": lesson_id, "quiz_id": quiz_id, "learner": learner},
            {"number": 1}, sort=[("number", DESCENDING)])
        return 0 if doc is None else int(doc["number"])

    async def _find(self, query: Doc, before: str | None, limit: int | None) -> list[Attempt]:
        query = {k: v for k, v in query.items() if v is not None}
        if before is not None:
            query["sort_key"] = {"$lt": before}
        cursor = self.attempts.find(query, {"_outbox": 0, "_outbox_pending": 0}).sort(
            "sort_key", DESCENDING)
        if limit is not None:
            cursor = cursor.limit(limit)
        return [_attempt(d) async for d in cursor]

    async def of_learner(self, tenant: str, learner: str, *, lesson_id: str | None = None,
                         quiz_id: str | None = None, before: str | None = None,
                         limit: int | None = 100) -> list[Attempt]:
        return await self._find({"tenant": tenant, "learner": learner, "lesson_id": lesson_id,
                                 "quiz_id": quiz_id}, before, limit)

    async def of_lesson(self, tenant: str, lesson_id: str, *, quiz_id: str | None = None,
                        learner: str | None = None, before: str | None = None,
                        limit: int = 100) -> list[Attempt]:
        return await self._find({"tenant": tenant, "lesson_id": lesson_id, "quiz_id": quiz_id,
                                 "learner": learner}, before, limit)

    async def erase_learner(self, tenant: str, learner: str) -> int:
        result = await self.attempts.delete_many({"tenant": tenant, "learner": learner})
        return int(result.deleted_count)
