"""The MongoDB identity store (database `identity`). Each change and its events are one
single-document write: the events ride in the document's outbox field (kit MongoOutbox), so it
needs no multi-document transaction and runs on FerretDB v1 as well as MongoDB."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pymongo import ASCENDING, AsyncMongoClient
from pymongo.errors import DuplicateKeyError

from bloop.platform.identity.model import Tenant, User
from bloop.platform.identity.ports import Duplicate
from bloop.platform.kit.events.envelope import Envelope
from bloop.platform.kit.events.outbox.mongo import MongoOutbox
from bloop.platform.kit.events.types import EventRegistry

Doc = dict[str, Any]
# Reads leave out the outbox fields (and any other internal field, all named `_…`).
HIDE = {"_outbox": 0, "_outbox_pending": 0}


def _fields(doc: Doc) -> Doc:
    return {k: v for k, v in doc.items() if not k.startswith("_")}


def _key(tenant: str, record_id: str) -> str:
    """A tenant's records carry the tenant in their `_id`: another tenant's key never matches."""
    return f"{tenant}/{record_id}"


class MongoIdentityStore:
    def __init__(self, client: AsyncMongoClient[Doc], registry: EventRegistry,
                 database: str = "identity") -> None:
        db = client[database]
        self.tenants = db["tenants"]
        self.users = db["users"]
        self._outbox = MongoOutbox([self.tenants, self.users], registry,
                                   name=f"{database}-outbox")

    @property
    def outbox(self) -> MongoOutbox:
        return self._outbox

    async def setup(self) -> None:
        await self.users.create_index([("tenant", ASCENDING), ("email", ASCENDING)],
                                      name="tenant_email", unique=True)
        await self._outbox.setup()

    async def add_tenant(self, tenant: Tenant, events: Sequence[Envelope]) -> None:
        doc = {"_id": tenant.id, **tenant.model_dump(mode="json")}
        try:
            await self.tenants.insert_one(self._outbox.new_document(doc, *events))
        except DuplicateKeyError:
            raise Duplicate(tenant.id) from None

    async def get_tenant(self, tenant_id: str) -> Tenant | None:
        doc = await self.tenants.find_one({"_id": tenant_id}, HIDE)
        return None if doc is None else Tenant.model_validate(_fields(doc))

    async def add_user(self, user: User, events: Sequence[Envelope]) -> None:
        doc = {"_id": _key(user.tenant, user.id), **user.model_dump(mode="json")}
        try:
            await self.users.insert_one(self._outbox.new_document(doc, *events))
        except DuplicateKeyError:
            raise Duplicate(user.email) from None

    async def get_user(self, tenant: str, user_id: str) -> User | None:
        doc = await self.users.find_one({"_id": _key(tenant, user_id), "tenant": tenant}, HIDE)
        return None if doc is None else User.model_validate(_fields(doc))

    async def get_user_by_email(self, tenant: str, email: str) -> User | None:
        doc = await self.users.find_one({"tenant": tenant, "email": email}, HIDE)
        return None if doc is None else User.model_validate(_fields(doc))

    async def list_users(self, tenant: str, *, after: str | None = None,
                         limit: int = 50) -> list[User]:
        cursor = (self.users.find({"tenant": tenant, "email": {"$gt": after or ""}}, HIDE)
                  .sort("email", ASCENDING).limit(limit))
        return [User.model_validate(_fields(d)) async for d in cursor]
