"""The MongoDB store of tenants' sign-in providers: collection `oidc_providers` of the `identity`
database, one document per provider keyed `tenant/name`, and `oidc_links`, one per link keyed
`tenant/provider/subject` with one link per account held by a unique index (plain reads and
writes, as FerretDB v1 serves them)."""

from __future__ import annotations

from typing import Any

from pymongo import ASCENDING, AsyncMongoClient
from pymongo.errors import DuplicateKeyError

from bloop.platform.identity.oidc.model import OidcLink, OidcProvider
from bloop.platform.kit.read_back import STORED

Doc = dict[str, Any]


def _key(tenant: str, name: str) -> str:
    return f"{tenant}/{name}"


def _fields(doc: Doc) -> Doc:
    return {k: v for k, v in doc.items() if not k.startswith("_")}


def _provider(doc: Doc) -> OidcProvider:
    return OidcProvider.model_validate(_fields(doc), context=STORED)


def _link(doc: Doc) -> OidcLink:
    return OidcLink.model_validate(_fields(doc), context=STORED)


class MongoOidcProviders:
    def __init__(self, client: AsyncMongoClient[Doc], database: str = "identity") -> None:
        self.providers = client[database]["oidc_providers"]
        self.links = client[database]["oidc_links"]

    async def setup(self) -> None:
        await self.providers.create_index([("tenant", ASCENDING), ("name", ASCENDING)],
                                          name="tenant_name")
        await self.links.create_index([("tenant", ASCENDING), ("user_id", ASCENDING)],
                                      name="tenant_user", unique=True)
        await self.links.create_index([("tenant", ASCENDING), ("provider", ASCENDING)],
                                      name="tenant_provider")

    async def put_provider(self, provider: OidcProvider, *, keep_secret: bool = False) -> bool:
        key = _key(provider.tenant, provider.name)
        if not keep_secret:
            await self.providers.replace_one({"_id": key}, provider.model_dump(mode="json"),
                                             upsert=True)
            return True
        fields = provider.model_dump(mode="json", exclude={"client_secret"})
        result = await self.providers.update_one({"_id": key}, {"$set": fields})
        return result.matched_count == 1

    async def get_provider(self, tenant: str, name: str) -> OidcProvider | None:
        doc = await self.providers.find_one({"_id": _key(tenant, name), "tenant": tenant})
        return None if doc is None else _provider(doc)

    async def list_providers(self, tenant: str) -> list[OidcProvider]:
        cursor = self.providers.find({"tenant": tenant}).sort("name", ASCENDING)
        return [_provider(d) async for d in cursor]

    async def delete_provider(self, tenant: str, name: str) -> bool:
        result = await self.providers.delete_one({"_id": _key(tenant, name), "tenant": tenant})
        await self.links.delete_many({"tenant": tenant, "provider": name})
        return result.deleted_count > 0

    async def add_link(self, link: OidcLink) -> bool:
        doc = {"_id": _key(link.tenant, f"{link.provider}/{link.subject}"),
               **link.model_dump(mode="json")}
        try:
            await self.links.insert_one(doc)
        except DuplicateKeyError:
            return False
        return True

    async def get_link(self, tenant: str, provider: str, subject: str) -> OidcLink | None:
        doc = await self.links.find_one({"_id": _key(tenant, f"{provider}/{subject}"),
                                         "tenant": tenant})
        return None if doc is None else _link(doc)

    async def links_of(self, tenant: str, user_id: str) -> list[OidcLink]:
        cursor = self.links.find({"tenant": tenant, "user_id": user_id}).sort(
            "provider", ASCENDING)
        return [_link(d) async for d in cursor]

    async def forget_links(self, tenant: str, provider: str) -> int:
        result = await self.links.delete_many({"tenant": tenant, "provider": provider})
        return int(result.deleted_count)

    async def delete_link(self, tenant: str, user_id: str, provider: str) -> bool:
        result = await self.links.delete_many({"tenant": tenant, "user_id": user_id,
                                               "provider": provider})
        return result.deleted_count > 0
