"""The GridFS media store (bucket `media` of the `content` database: `media.files` and
`media.chunks`), through PyMongo's async GridFS bucket; it runs on FerretDB v1 as well as MongoDB.

A file's record rides in its GridFS files document (`metadata`), which GridFS writes after the
last chunk: until then no read finds the file, and an upload that fails is aborted (its chunks
removed). The `_id` starts with the tenant (`acme/<id>`), and every query also filters on
`metadata.tenant`.

A files document also carries `bytes` (tenant, content type and sha256), under a unique index: of
uploads of the same bytes side by side, only the first files document is written, and the others
drop their chunks and take that file. The index is sparse, since files stored before it do not
carry the field (and may share their bytes).

A process killed while it writes a file's chunks, or after `delete` removed the files document but
before its chunks, leaves chunks no files document names; `sweep_orphans` removes them once the
newest of them is old enough (by its ObjectId's time) that no upload can still be writing them.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bson import ObjectId
from gridfs import AsyncGridFSBucket, AsyncGridIn, NoFile
from gridfs.errors import FileExists
from pymongo import ASCENDING, DESCENDING, AsyncMongoClient

from bloop.platform.content.media.model import MediaInfo
from bloop.platform.content.media.ports import MediaExists, MediaMissing, Swept
from bloop.platform.kit.pagination import BadCursor, Slice, key_of
from bloop.platform.kit.read_back import STORED

Doc = dict[str, Any]
CHUNK_BYTES = 255 * 1024
READ_BYTES = 4 * CHUNK_BYTES
ATTEMPTS = 3
SWEEP_BATCH = 500


class _Taken(Exception):
    """The files document was refused: its id or its bytes are taken."""


def _key(tenant: str, media_id: str) -> str:
    return f"{tenant}/{media_id}"


def _bytes(info: MediaInfo) -> str:
    return f"{info.tenant} {info.content_type} {info.sha256}"


class GridFsMediaStore:
    def __init__(self, client: AsyncMongoClient[Doc], database: str = "content",
                 bucket: str = "media") -> None:
        db = client[database]
        self.bucket = AsyncGridFSBucket(db, bucket_name=bucket, chunk_size_bytes=CHUNK_BYTES)
        self.root = db[bucket]
        self.files = db[f"{bucket}.files"]
        self.chunks = db[f"{bucket}.chunks"]

    async def setup(self) -> None:
        await self.chunks.create_index([("files_id", ASCENDING), ("n", ASCENDING)], unique=True,
                                       name="files_id_1_n_1")
        await self.files.create_index([("filename", ASCENDING), ("uploadDate", ASCENDING)],
                                      name="filename_1_uploadDate_1")
        await self.files.create_index([("metadata.tenant", ASCENDING),
                                       ("metadata.sha256", ASCENDING)], name="tenant_sha256")
        await self.files.create_index([("metadata.tenant", ASCENDING),
                                       ("uploadDate", DESCENDING)], name="tenant_uploaded")
        await self.files.create_index([("bytes", ASCENDING)], unique=True, sparse=True,
                                      name="bytes_unique")

    async def put(self, info: MediaInfo, source: Path) -> MediaInfo:
        key = _key(info.tenant, info.id)
        # An upload that collided with a stored file's chunks would, when aborted, remove them.
        if await self.files.count_documents({"_id": key}, limit=1):
            raise MediaExists(info.id)
        for _ in range(ATTEMPTS):
            try:
                await self._write(key, info, source)
                return info
            except _Taken:
                pass
            held = await self.files.find_one({"bytes": _bytes(info)})
            if held is None:
                continue  # removed meanwhile: the bytes are free again
            kept = MediaInfo.model_validate(held["metadata"], context=STORED)
            if await self.claim(kept.tenant, kept.id):
                return kept
            # Being deleted: it gives up its bytes now, so that this file may take them.
            await self.files.update_one({"_id": held["_id"], "_deleting": True},
                                        {"$unset": {"bytes": ""}})
        raise MediaExists(info.id)  # not the bytes, then, but the id that is taken

    async def _write(self, key: str, info: MediaInfo, source: Path) -> None:
        stream = AsyncGridIn(self.root, _id=key, filename=info.filename,
                             chunkSize=CHUNK_BYTES, metadata=info.model_dump(mode="json"),
                             bytes=_bytes(info))
        try:
            with source.open("rb") as handle:
                while chunk := await asyncio.to_thread(handle.read, READ_BYTES):
                    await stream.write(chunk)
            await stream.close()
        except FileExists:
            await asyncio.shield(stream.abort())
            raise _Taken from None
        except BaseException:
            await asyncio.shield(stream.abort())
            raise

    async def get(self, tenant: str, media_id: str) -> MediaInfo | None:
        doc = await self.files.find_one({"_id": _key(tenant, media_id),
                                         "metadata.tenant": tenant})
        return None if doc is None else MediaInfo.model_validate(doc["metadata"], context=STORED)

    async def find_by_checksum(self, tenant: str, sha256: str) -> MediaInfo | None:
        doc = await self.files.find_one({"metadata.tenant": tenant, "metadata.sha256": sha256},
                                        sort=[("uploadDate", ASCENDING)])
        return None if doc is None else MediaInfo.model_validate(doc["metadata"], context=STORED)

    async def list_media(self, tenant: str, *, after: str | None = None,
                         limit: int = 100) -> Slice[MediaInfo]:
        query: dict[str, Any] = {"metadata.tenant": tenant}
        if after:
            ms, key = key_of(after, int, str)
            try:
                uploaded = EPOCH + timedelta(milliseconds=int(ms))
            except OverflowError:
                raise BadCursor("`after` is not a cursor of this list") from None
            query["$or"] = [{"uploadDate": {"$lt": uploaded}},
                            {"uploadDate": uploaded, "_id": {"$gt": key}}]
        cursor = (self.files.find(query)
                  .sort([("uploadDate", DESCENDING), ("_id", ASCENDING)]).limit(limit + 1))
        docs = Slice.of([d async for d in cursor], limit, lambda d: (_ms(d["uploadDate"]), d["_id"]))
        return docs.map(lambda d: MediaInfo.model_validate(d["metadata"], context=STORED))

    async def uploaded_by(self, tenant: str, user_id: str) -> list[MediaInfo]:
        cursor = self.files.find({"metadata.tenant": tenant, "metadata.created_by": user_id}
                                 ).sort([("uploadDate", ASCENDING), ("_id", ASCENDING)])
        return [MediaInfo.model_validate(d["metadata"], context=STORED) async for d in cursor]

    async def forget_uploader(self, tenant: str, user_id: str) -> int:
        result = await self.files.update_many(
            {"metadata.tenant": tenant, "metadata.created_by": user_id},
            {"$set": {"metadata.created_by": None}})
        return result.modified_count

    async def usage(self, tenant: str) -> int:
        cursor = await self.files.aggregate([
            {"$match": {"metadata.tenant": tenant}},
            {"$group": {"_id": None, "used": {"$sum": "$length"}}}])
        found = [d async for d in cursor]
        return int(found[0]["used"]) if found else 0

    async def largest(self, tenant: str, *, content_type: str | None = None,
                      at_most: int | None = None) -> int:
        query: Doc = {"metadata.tenant": tenant}
        if content_type is not None:
            query["metadata.content_type"] = content_type
        if at_most is not None:
            query["length"] = {"$lte": at_most}
        doc = await self.files.find_one(query, projection={"length": 1},
                                        sort=[("length", DESCENDING)])
        return 0 if doc is None else int(doc["length"])

    async def read(self, tenant: str, media_id: str, start: int,
                   end: int) -> AsyncIterator[bytes]:
        if await self.get(tenant, media_id) is None:
            raise MediaMissing(media_id)
        try:
            stream = await self.bucket.open_download_stream(_key(tenant, media_id))
        except NoFile:
            raise MediaMissing(media_id) from None
        try:
            await stream.seek(start)
            left = end - start
            while left > 0:
                chunk = await stream.read(min(READ_BYTES, left))
                if not chunk:
                    break
                left -= len(chunk)
                yield chunk
        finally:
            await asyncio.shield(stream.close())  # closed even when a disconnect cancels this

    async def claim(self, tenant: str, media_id: str) -> bool:
        result = await self.files.update_one(
            {"_id": _key(tenant, media_id), "metadata.tenant": tenant, "_deleting": {"$ne": True}},
            {"$set": {"_claimed": True}})
        return result.matched_count == 1

    async def delete(self, tenant: str, media_id: str, *, unless_claimed: bool = False) -> bool:
        # Marked first, under the condition, so that no claim lands between the check and the
        # removal (a claim skips a file being deleted).
        match: Doc = {"_id": _key(tenant, media_id), "metadata.tenant": tenant}
        if unless_claimed:
            match["_claimed"] = {"$ne": True}
        marked = await self.files.update_one(match, {"$set": {"_deleting": True}})
        if marked.matched_count == 0:
            return False
        try:
            await self.bucket.delete(_key(tenant, media_id))
        except NoFile:
            return False
        return True

    async def sweep_orphans(self, older_than: datetime) -> Swept:
        # A covered scan of the chunks' index on MongoDB (FerretDB reads the chunks through).
        chunked: set[Any] = set()
        async for doc in self.chunks.find({}, {"files_id": 1, "_id": 0}).hint("files_id_1_n_1"):
            chunked.add(doc["files_id"])
        swept = Swept()
        ids = list(chunked)
        for at in range(0, len(ids), SWEEP_BATCH):
            batch = ids[at:at + SWEEP_BATCH]
            named = {d["_id"] async for d in self.files.find({"_id": {"$in": batch}}, {"_id": 1})}
            for files_id in batch:
                if files_id not in named:
                    swept += await self._sweep_chunks(files_id, older_than)
        return swept

    async def _sweep_chunks(self, files_id: Any, older_than: datetime) -> Swept:
        """Removes the chunks of `files_id` when none was written since `older_than` and still
        no files document names them (they are removed by their ids, so a chunk written
        meanwhile stays)."""
        marks = [d async for d in self.chunks.find({"files_id": files_id}, {"n": 1})]
        if not marks or not all(isinstance(d["_id"], ObjectId)
                                and d["_id"].generation_time < older_than for d in marks):
            return Swept()
        if await self.files.count_documents({"_id": files_id}, limit=1):
            return Swept()
        size = await self._chunk_bytes(files_id, sorted(d["n"] for d in marks))
        await self.chunks.delete_many({"files_id": files_id,
                                       "_id": {"$in": [d["_id"] for d in marks]}})
        return Swept(files=1, bytes=size)

    async def _chunk_bytes(self, files_id: Any, ns: list[int]) -> int:
        """The bytes of a file's chunks `ns`: every chunk but a file's last is as long as its
        first."""
        async def length(n: int) -> int:
            doc = await self.chunks.find_one({"files_id": files_id, "n": n}, {"data": 1})
            return 0 if doc is None else len(doc["data"])

        last = await length(ns[-1])
        return last if len(ns) == 1 else last + (len(ns) - 1) * await length(ns[0])


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _ms(uploaded: datetime) -> int:
    """GridFS's upload time (BSON's milliseconds, read back without a time zone) as a number."""
    return (uploaded.replace(tzinfo=UTC) - EPOCH) // timedelta(milliseconds=1)
