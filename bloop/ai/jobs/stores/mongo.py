"""The MongoDB AI stores (database `ai` by default): jobs with their pending events in the job's
own document (kit MongoOutbox, one single-document write each), deleted lessons' tombstones,
tenant settings, and job outputs in GridFS (bucket `media`). Runs on FerretDB v1 as on MongoDB:
no transactions, no `$lookup`, no projection in `find_one_and_update`.

Every `_id` starts with the tenant, and every query also filters on the `tenant` field.

A filter on `rev` alone is no compare-and-set on FerretDB v1: it applies concurrent updates of
one document as read-modify-writes, so two writers expecting the same revision can both match and
one's change is lost (so is a worker's change under the relay's `$pullAll`). Every write to a job
document therefore holds that document's guard (kit mongo_guard), and so does the relay dropping
sent events; on MongoDB the guard does nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections import Counter
from collections.abc import AsyncIterator, Collection
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gridfs import AsyncGridFSBucket
from gridfs.errors import NoFile
from pymongo import ASCENDING, DESCENDING, AsyncMongoClient
from pymongo.errors import DuplicateKeyError

from bloop.ai.jobs.model import Job, JobKind, JobStatus, TenantAiConfig
from bloop.ai.jobs.ports import JobLimit, Spend, StoredFile, TooManyJobs
from bloop.ai.jobs.stores.common import (
    chunks_of,
    config_doc,
    index_fields,
    job_key,
    outputs_since,
)
from bloop.platform.kit.events.envelope import Envelope
from bloop.platform.kit.events.outbox.mongo import MongoOutbox
from bloop.platform.kit.events.types import EventRegistry
from bloop.platform.kit.mongo_guard import DocumentBusy, MongoGuard
from bloop.platform.kit.pagination import Slice, key_of
from bloop.platform.kit.read_back import STORED

Doc = dict[str, Any]
HIDE = {"_outbox": 0, "_outbox_pending": 0}


def _key(tenant: str, record_id: str) -> str:
    return f"{tenant}/{record_id}"


def _fields(job: Job) -> Doc:
    return index_fields(job) | {"job": job.model_dump(mode="json")}


def _job(doc: Doc) -> Job:
    return Job.model_validate(doc["job"], context=STORED)


class MongoJobStore:
    def __init__(self, client: AsyncMongoClient[Doc], registry: EventRegistry,
                 database: str = "ai", guard: MongoGuard | None = None) -> None:
        db = client[database]
        self.jobs = db["jobs"]
        self.config = db["config"]
        self.deleted_lessons = db["deleted_lessons"]
        self.guard = guard or MongoGuard.of(db)
        self._outbox = MongoOutbox([self.jobs], registry, name=f"{database}-outbox",
                                   guard=self.guard)

    @property
    def outbox(self) -> MongoOutbox:
        return self._outbox

    async def setup(self) -> None:
        await self.jobs.create_index([("tenant", ASCENDING), ("idempotency_key", ASCENDING)],
                                     name="tenant_key", unique=True)
        await self.jobs.create_index([("tenant", ASCENDING), ("created", DESCENDING)],
                                     name="tenant_created")
        await self.jobs.create_index([("final", ASCENDING), ("lease_until", ASCENDING)],
                                     name="open_jobs")
        await self.jobs.create_index([("tenant", ASCENDING), ("job.requested_by", ASCENDING)],
                                     name="tenant_requester")
        await self.jobs.create_index([("outputs_since", ASCENDING)], name="outputs_kept")
        await self.jobs.create_index([("tenant", ASCENDING), ("lesson_id", ASCENDING),
                                      ("created", DESCENDING)], name="tenant_lesson")
        await self.deleted_lessons.create_index([("at", ASCENDING)], name="deleted_at")
        await self._outbox.setup()
        await self.guard.setup()
        await self._add_outputs_since()

    async def _add_outputs_since(self) -> None:
        """The field the retention sweep reads, on the finished media jobs stored before it (a
        job written since has it: the write that changed it set it too)."""
        async for doc in self.jobs.find({"outputs_since": {"$exists": False}, "final": True,
                                         "job.result.kind": "media"}, HIDE):
            job = _job(doc)
            with contextlib.suppress(DocumentBusy):  # a writer sets it meanwhile
                async with self.guard.hold(self.jobs, doc["_id"]):
                    await self.jobs.update_one(
                        {"_id": doc["_id"], "rev": job.rev, "outputs_since": {"$exists": False}},
                        {"$set": {"outputs_since": outputs_since(job)}})

    async def create(self, job: Job, events: list[Envelope], *,
                     limit: JobLimit | None = None) -> tuple[Job, bool]:
        doc = {"_id": _key(job.tenant, job.id), **_fields(job)}
        try:
            await self.jobs.insert_one(self._outbox.new_document(doc, *events) if events else doc)
        except DuplicateKeyError:
            found = await self.jobs.find_one(
                {"tenant": job.tenant, "idempotency_key": job.idempotency_key}, HIDE)
            if found is None:
                raise
            return _job(found), False
        # Counted after the insert, so that jobs asked for at once see each other: each that
        # finds the tenant past its limit takes itself back (both may; never one too many),
        # unless a worker already took it up.
        if limit is not None and await self.jobs.count_documents(
                {"tenant": job.tenant, "created": {"$gte": limit.since.timestamp()}}) > limit.jobs:
            taken_back = await asyncio.shield(self.jobs.delete_one(
                {"_id": doc["_id"], "status": job.status, "rev": job.rev}))
            if taken_back.deleted_count:
                raise TooManyJobs(job.tenant)
        return job, True

    async def get(self, tenant: str, job_id: str) -> Job | None:
        doc = await self.jobs.find_one({"_id": _key(tenant, job_id), "tenant": tenant}, HIDE)
        return None if doc is None else _job(doc)

    async def find_by_key(self, tenant: str, idempotency_key: str) -> Job | None:
        doc = await self.jobs.find_one({"tenant": tenant, "idempotency_key": idempotency_key},
                                       HIDE)
        return None if doc is None else _job(doc)

    async def list_jobs(self, tenant: str, *, lesson_id: str | None = None,
                        status: JobStatus | None = None, kind: JobKind | None = None,
                        after: str | None = None, limit: int = 50) -> Slice[Job]:
        query: Doc = {"tenant": tenant}
        if lesson_id is not None:
            query["lesson_id"] = lesson_id
        if status is not None:
            query["status"] = status
        if kind is not None:
            query["job.kind"] = kind
        if after:
            created, job_id = key_of(after, float, str)
            query["$or"] = [{"created": {"$lt": created}}, {"created": created, "id": {"$gt": job_id}}]
        cursor = self.jobs.find(query, HIDE).sort([("created", DESCENDING),
                                                   ("id", ASCENDING)]).limit(limit + 1)
        jobs = [_job(d) async for d in cursor]
        return Slice.of(jobs, limit, job_key)

    async def by_requester(self, tenant: str, user_id: str) -> list[Job]:
        cursor = self.jobs.find({"tenant": tenant, "job.requested_by": user_id}, HIDE).sort(
            [("created", ASCENDING), ("id", ASCENDING)])
        return [_job(d) async for d in cursor]

    async def replace(self, job: Job, expected_rev: int, events: list[Envelope]) -> bool:
        update: Doc = {"$set": _fields(job)}
        if events:
            update = self._outbox.with_events(update, *events)
        doc_id = _key(job.tenant, job.id)
        try:
            async with self.guard.hold(self.jobs, doc_id):
                result = await self.jobs.update_one(
                    {"_id": doc_id, "tenant": job.tenant, "rev": expected_rev}, update)
        except DocumentBusy:
            return False  # as a lost race: the caller reads the job again
        return result.matched_count == 1

    async def after_erasure(self) -> None:
        pass

    async def spend(self, tenant: str, since: datetime) -> Spend:
        jobs, usd = 0, 0.0
        async for d in self.jobs.find({"tenant": tenant, "created": {"$gte": since.timestamp()}},
                                      {"usd": 1}):
            jobs += 1
            usd += float(d.get("usd") or 0)
        return Spend(jobs=jobs, usd=round(usd, 8))

    async def unfinished(self) -> dict[tuple[str, str], int]:
        found: Counter[tuple[str, str]] = Counter()
        async for d in self.jobs.find({"final": False}, {"job.kind": 1, "status": 1, "_id": 0}):
            found[d["job"]["kind"], d["status"]] += 1
        return dict(found)

    async def stale(self, at: datetime, *, touched_before: datetime | None = None,
                    skip_tenants: Collection[str] = (), limit: int = 100
                    ) -> list[tuple[str, str]]:
        t, touched = at.timestamp(), (touched_before or at).timestamp()
        base: Doc = {"final": False}
        if skip_tenants:
            base["tenant"] = {"$nin": list(skip_tenants)}
        fields = {"tenant": 1, "id": 1, "lease_until": 1, "updated": 1}
        # Two reads, each in the order it is free (a sort on an expression needs more than
        # FerretDB v1 offers), merged.
        lapsed = self.jobs.find(base | {"lease_until": {"$lte": t}}, fields).sort(
            [("lease_until", ASCENDING), ("tenant", ASCENDING), ("id", ASCENDING)]).limit(limit)
        unclaimed = self.jobs.find(base | {"lease_until": None, "updated": {"$lt": touched}},
                                   fields).sort([("updated", ASCENDING), ("tenant", ASCENDING),
                                                 ("id", ASCENDING)]).limit(limit)
        found = [(float(d["lease_until"]), d["tenant"], d["id"]) async for d in lapsed]
        found += [(float(d["updated"]) + t - touched, d["tenant"], d["id"])
                  async for d in unclaimed]
        return [(tenant, job_id) for _, tenant, job_id in sorted(found)[:limit]]

    async def outputs_due(self, before: datetime, *, limit: int = 100) -> list[tuple[str, str]]:
        cursor = self.jobs.find({"outputs_since": {"$lt": before.timestamp()}},
                                {"tenant": 1, "id": 1}).sort(
            [("outputs_since", ASCENDING), ("tenant", ASCENDING), ("id", ASCENDING)]).limit(limit)
        return [(d["tenant"], d["id"]) async for d in cursor]

    async def lesson_deleted(self, tenant: str, lesson_id: str, at: datetime) -> None:
        with contextlib.suppress(DuplicateKeyError):  # the first time stays
            await self.deleted_lessons.insert_one({
                "_id": _key(tenant, lesson_id), "tenant": tenant, "lesson_id": lesson_id,
                "at": at.timestamp()})

    async def deleted_at(self, tenant: str, lesson_id: str) -> datetime | None:
        doc = await self.deleted_lessons.find_one({"_id": _key(tenant, lesson_id),
                                                   "tenant": tenant})
        return None if doc is None else datetime.fromtimestamp(float(doc["at"]), UTC)

    async def forget_deleted_lessons(self, before: datetime) -> int:
        result = await self.deleted_lessons.delete_many({"at": {"$lt": before.timestamp()}})
        return int(result.deleted_count)

    async def get_config(self, tenant: str) -> TenantAiConfig | None:
        doc = await self.config.find_one({"_id": tenant})
        if doc is None:
            return None
        return TenantAiConfig.model_validate({k: v for k, v in doc.items() if k != "_id"},
                                             context=STORED)

    async def put_config(self, tenant: str, config: TenantAiConfig, *,
                         keep_api_key: bool = False) -> None:
        doc = config_doc(config)
        if keep_api_key:
            del doc["api_key"]
            await self.config.update_one({"_id": tenant}, {"$set": doc}, upsert=True)
        else:
            await self.config.replace_one({"_id": tenant}, {"_id": tenant, **doc}, upsert=True)


class GridFsMediaStore:
    """Job outputs in GridFS (`media.files`, `media.chunks`); each file's metadata names its
    tenant, and reads check it."""

    def __init__(self, client: AsyncMongoClient[Doc], database: str = "ai") -> None:
        db = client[database]
        self.bucket = AsyncGridFSBucket(db, bucket_name="media")
        self.files = db["media.files"]
        self.chunks = db["media.chunks"]

    async def setup(self) -> None:
        await self.files.create_index([("filename", ASCENDING), ("uploadDate", ASCENDING)],
                                      name="filename_uploadDate")
        await self.chunks.create_index([("files_id", ASCENDING), ("n", ASCENDING)],
                                       name="files_id_n", unique=True)

    async def put(self, tenant: str, job_id: str, name: str, content_type: str,
                  path: Path) -> StoredFile:
        file_id = hashlib.sha256(f"{tenant}/{job_id}/{name}".encode()).hexdigest()[:32]
        with contextlib.suppress(NoFile):
            await self.bucket.delete(file_id)  # an earlier try that died after uploading
        with path.open("rb") as source:
            await self.bucket.upload_from_stream_with_id(
                file_id, name, source, metadata={"tenant": tenant, "job_id": job_id,
                                                 "content_type": content_type})
            length = source.tell()
        return StoredFile(file_id, name, content_type, length)

    async def info(self, tenant: str, file_id: str) -> StoredFile | None:
        doc = await self.files.find_one({"_id": file_id, "metadata.tenant": tenant})
        if doc is None:
            return None
        return StoredFile(file_id, str(doc["filename"]), str(doc["metadata"]["content_type"]),
                          int(doc["length"]))

    async def delete(self, tenant: str, file_id: str) -> None:
        if await self.info(tenant, file_id) is None:
            return
        with contextlib.suppress(NoFile):
            await self.bucket.delete(file_id)

    async def read(self, tenant: str, file_id: str, start: int = 0, end: int | None = None, *,
                   chunk: int = 256 * 1024) -> AsyncIterator[bytes]:
        if await self.info(tenant, file_id) is None:
            return
        try:
            stream = await self.bucket.open_download_stream(file_id)
        except NoFile:
            return  # removed since
        try:
            await stream.seek(start)
            async for data in chunks_of(stream.read, start, end, chunk):
                yield data
        finally:
            # shielded: a disconnect that cancels the read must not leave the cursor open
            await asyncio.shield(stream.close())
