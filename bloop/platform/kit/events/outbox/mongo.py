"""The MongoDB outbox: pending events live in the aggregate's own document (`_outbox`), so the
state change and its events are one single-document write. Works on MongoDB and FerretDB v1
(no multi-document transactions needed). Given a `MongoGuard`, dropping sent events holds the
document's guard, as every other writer of it must on FerretDB (whose updates are not atomic).

The relay lease is a document in `relay_leases` beside the first collection, named for the
outbox: taken by inserting it (the unique `_id` lets one process in), renewed by its holder,
deleted once it has run out or its holder steps down."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

from pymongo import ASCENDING
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError

from bloop.platform.kit.events.envelope import Envelope
from bloop.platform.kit.events.outbox.port import Pending, entry_of, message_of
from bloop.platform.kit.events.types import EventRegistry
from bloop.platform.kit.mongo_guard import DocumentBusy, MongoGuard

Doc = dict[str, Any]
FIELD, FLAG = "_outbox", "_outbox_pending"


class MongoOutbox:
    def __init__(self, collections: Sequence[AsyncCollection[Doc]], registry: EventRegistry,
                 name: str = "mongo-outbox", guard: MongoGuard | None = None) -> None:
        self.collections, self.registry, self.name = list(collections), registry, name
        self.guard = guard
        self.leases = self.collections[0].database["relay_leases"]

    @asynccontextmanager
    async def _held(self, coll: AsyncCollection[Doc], doc_id: Any) -> AsyncIterator[None]:
        if self.guard is None:
            yield
            return
        async with self.guard.hold(coll, doc_id):
            yield

    async def setup(self) -> None:
        for coll in self.collections:
            await coll.create_index([(FLAG, ASCENDING)], name="outbox_pending")

    def _entries(self, envelopes: Sequence[Envelope]) -> list[Doc]:
        now = time.time()
        return [entry_of(e, self.registry) | {"at": now} for e in envelopes]

    def with_events(self, update: Doc, *envelopes: Envelope) -> Doc:
        """Adds the events to an update document (`update_one`, `find_one_and_update`); with
        none, the update as it is (a pending mark with nothing behind it would never clear)."""
        if not envelopes:
            return update
        out = {op: dict(fields) for op, fields in update.items()}
        out.setdefault("$push", {})[FIELD] = {"$each": self._entries(envelopes)}
        out.setdefault("$set", {})[FLAG] = True
        return out

    def new_document(self, doc: Doc, *envelopes: Envelope) -> Doc:
        """A document to insert, carrying its creation events."""
        return {**doc, FIELD: self._entries(envelopes), FLAG: bool(envelopes)}

    async def pending(self, limit: int) -> list[Pending]:
        out: list[Pending] = []
        for coll in self.collections:
            cursor = coll.find({FLAG: True}, {FIELD: 1}).limit(limit)
            async for doc in cursor:
                entries = doc.get(FIELD, [])
                if not entries:  # marked with nothing behind it: cleared, or it blocks the rest
                    await coll.update_one({"_id": doc["_id"], FIELD: {"$size": 0}},
                                          {"$set": {FLAG: False}})
                for entry in entries:
                    out.append(Pending(ref=(coll, doc["_id"], entry), message=message_of(entry)))
                if len(out) >= limit:
                    return out
        return out

    async def mark_sent(self, sent: Sequence[Pending]) -> None:
        by_doc: dict[tuple[int, Any], tuple[AsyncCollection[Doc], list[Doc]]] = {}
        for p in sent:
            coll, doc_id, entry = p.ref
            by_doc.setdefault((id(coll), doc_id), (coll, []))[1].append(entry)
        for (_, doc_id), (coll, entries) in by_doc.items():
            try:
                async with self._held(coll, doc_id):
                    # Whole entries, as read: FerretDB v1's $pull takes values, not conditions.
                    await coll.update_one({"_id": doc_id}, {"$pullAll": {FIELD: entries}})
                    # Only clears the flag when no event was added since we read the document.
                    await coll.update_one({"_id": doc_id, FIELD: {"$size": 0}},
                                          {"$set": {FLAG: False}})
            except DocumentBusy:
                continue  # left pending: sent again later, and dropped by consumers as a duplicate

    async def lead(self, holder: str, ttl_s: float, replacing: str | None = None) -> str | None:
        now = time.time()
        renewed = await self.leases.update_one({"_id": self.name, "holder": holder},
                                               {"$set": {"until": now + ttl_s}})
        if renewed.matched_count:
            return holder
        ended: Doc = {"until": {"$lt": now}}
        if replacing is not None:
            ended = {"$or": [ended, {"holder": replacing}]}
        await self.leases.delete_one({"_id": self.name, **ended})
        try:
            await self.leases.insert_one({"_id": self.name, "holder": holder, "until": now + ttl_s})
        except DuplicateKeyError:
            current = await self.leases.find_one({"_id": self.name})
            return None if current is None else str(current["holder"])
        return holder

    async def step_down(self, holder: str) -> None:
        await self.leases.delete_one({"_id": self.name, "holder": holder})

    async def looks_scan(self) -> bool:
        return self.guard is not None and await self.guard.active()

    async def count_pending(self) -> int:
        total = 0
        for coll in self.collections:
            total += await coll.count_documents({FLAG: True})
        return total

    async def prune(self, older_than_s: float) -> int:
        return 0
