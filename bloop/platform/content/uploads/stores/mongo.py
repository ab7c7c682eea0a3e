"""Import holds on MongoDB (collection `import_holds` of the `content` database). Taking a hold
is a conditional update of its one document and releasing it a conditional delete, so of a sweep
and the import's release one wins; on FerretDB v1, where an update is a query and a separate
write, both may seem to win, and the sweep then finds the import's lessons stored and deletes
nothing (it looks for them after taking the hold, the import stores them before releasing it)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from pymongo import ASCENDING, AsyncMongoClient

from bloop.platform.content.uploads.holds import ImportHold
from bloop.platform.kit.read_back import STORED

Doc = dict[str, Any]


def _key(tenant: str, import_id: str) -> str:
    return f"{tenant}/{import_id}"


class MongoImportHolds:
    def __init__(self, client: AsyncMongoClient[Doc], database: str = "content") -> None:
        self.holds = client[database]["import_holds"]

    async def setup(self) -> None:
        await self.holds.create_index([("expires_at", ASCENDING)], name="expires_at")

    async def add(self, hold: ImportHold) -> None:
        await self.holds.insert_one({"_id": _key(hold.tenant, hold.id), "taken": False,
                                     **hold.model_dump()})

    async def release(self, tenant: str, import_id: str) -> bool:
        result = await self.holds.delete_one({"_id": _key(tenant, import_id), "tenant": tenant,
                                              "taken": False})
        return result.deleted_count == 1

    async def take_expired(self, at: datetime, until: datetime,
                           limit: int = 100) -> Sequence[ImportHold]:
        cursor = self.holds.find({"expires_at": {"$lte": at}}).sort(
            [("expires_at", ASCENDING)]).limit(limit)
        taken: list[ImportHold] = []
        for doc in [d async for d in cursor]:
            result = await self.holds.update_one(
                {"_id": doc["_id"], "expires_at": {"$lte": at}},
                {"$set": {"taken": True, "expires_at": until}})
            if result.modified_count == 1:
                fields = {k: v for k, v in doc.items() if k not in ("_id", "taken")}
                fields["expires_at"] = fields["expires_at"].replace(tzinfo=UTC)  # read back naive
                taken.append(ImportHold.model_validate(fields, context=STORED))
        return taken

    async def drop(self, tenant: str, import_id: str) -> None:
        await self.holds.delete_one({"_id": _key(tenant, import_id), "tenant": tenant})
