"""The embedded store of tenants' sign-in providers: a SQLite table in identity's database."""

from __future__ import annotations

import sqlite3

from bloop.platform.identity.oidc import OidcProvider
from bloop.platform.kit.read_back import STORED
from bloop.platform.kit.sqlite import SqliteDB

SCHEMA = """
CREATE TABLE IF NOT EXISTS oidc_providers (
  tenant TEXT NOT NULL, name TEXT NOT NULL, doc TEXT NOT NULL, PRIMARY KEY (tenant, name));
"""


class EmbeddedOidcProviders:
    def __init__(self, db: SqliteDB) -> None:
        self.db = db

    async def setup(self) -> None:
        await self.db.run(lambda c: c.executescript(SCHEMA))

    async def put_provider(self, provider: OidcProvider, *, keep_secret: bool = False) -> bool:
        def write(c: sqlite3.Connection) -> bool:
            written = provider
            if keep_secret:
                row = c.execute("SELECT doc FROM oidc_providers WHERE tenant = ? AND name = ?",
                                (provider.tenant, provider.name)).fetchone()
                if row is None:
                    return False
                stored = OidcProvider.model_validate_json(row["doc"], context=STORED)
                written = provider.model_copy(update={"client_secret": stored.client_secret})
            c.execute("INSERT INTO oidc_providers (tenant, name, doc) VALUES (?, ?, ?) "
                      "ON CONFLICT (tenant, name) DO UPDATE SET doc = excluded.doc",
                      (written.tenant, written.name, written.model_dump_json()))
            return True

        return await self.db.transaction(write)

    async def get_provider(self, tenant: str, name: str) -> OidcProvider | None:
        row = await self.db.run(lambda c: c.execute(
            "SELECT doc FROM oidc_providers WHERE tenant = ? AND name = ?",
            (tenant, name)).fetchone())
        return None if row is None else OidcProvider.model_validate_json(row["doc"], context=STORED)

    async def list_providers(self, tenant: str) -> list[OidcProvider]:
        rows = await self.db.run(lambda c: c.execute(
            "SELECT doc FROM oidc_providers WHERE tenant = ? ORDER BY name", (tenant,)).fetchall())
        return [OidcProvider.model_validate_json(r["doc"], context=STORED) for r in rows]

    async def delete_provider(self, tenant: str, name: str) -> bool:
        removed: int = await self.db.transaction(lambda c: c.execute(
            "DELETE FROM oidc_providers WHERE tenant = ? AND name = ?", (tenant, name)).rowcount)
        return removed > 0
