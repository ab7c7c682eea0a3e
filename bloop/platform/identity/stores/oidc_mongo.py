"""The MongoDB store of tenants' sign-in providers: collection `oidc_providers` of the `identity`
database, one document per provider keyed `tenant/name` (plain reads and writes, as FerretDB v1
serves them)."""

from __future__ import annotations

from typing import Any

from pymongo import ASCENDING, AsyncMongoClient

from bloop.platform.identity.oidc import OidcProvider
from bloop.platform.kit.read_back import STORED

Doc = dict[str, Any]


def _key(tenant: str, name: str) -> str:
    return f"{tenant}/{name}"


def _provider(doc: Doc) -> OidcProvider:
    return OidcProvider.model_validate({k: v for k, v in doc.items() if not k.startswith("_")},
                                       context=STORED)


class MongoOidcProviders:
    def __init__(self, client: AsyncMongoClient[Doc], database: str = "identity") -> None:
        self.providers = client[database]["oidc_providers"]

    async def setup(self) -> None:
        await self.providers.create_index([("tenant", ASCENDING), ("name", ASCENDING)],
                                          name="tenant_name")

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
        return result.deleted_count > 0
