"""The embedded store of tenants' sign-in providers and the accounts linked through them: SQLite
tables in identity's database."""

from __future__ import annotations

import sqlite3

from bloop.platform.identity.oidc.model import OidcLink, OidcProvider
from bloop.platform.identity.stores.embedded import OIDC_LINK_SCHEMA
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
        await self.db.run(lambda c: c.executescript(SCHEMA + OIDC_LINK_SCHEMA))

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
        def write(c: sqlite3.Connection) -> int:
            c.execute("DELETE FROM oidc_links WHERE tenant = ? AND provider = ?", (tenant, name))
            removed: int = c.execute("DELETE FROM oidc_providers WHERE tenant = ? AND name = ?",
                                     (tenant, name)).rowcount
            return removed

        return await self.db.transaction(write) > 0

    async def add_link(self, link: OidcLink) -> bool:
        def write(c: sqlite3.Connection) -> None:
            c.execute("INSERT INTO oidc_links (tenant, provider, subject, user_id, doc) "
                      "VALUES (?, ?, ?, ?, ?)", (link.tenant, link.provider, link.subject,
                                                 link.user_id, link.model_dump_json()))

        try:
            await self.db.transaction(write)
        except sqlite3.IntegrityError:
            return False
        return True

    async def get_link(self, tenant: str, provider: str, subject: str) -> OidcLink | None:
        row = await self.db.run(lambda c: c.execute(
            "SELECT doc FROM oidc_links WHERE tenant = ? AND provider = ? AND subject = ?",
            (tenant, provider, subject)).fetchone())
        return None if row is None else OidcLink.model_validate_json(row["doc"], context=STORED)

    async def links_of(self, tenant: str, user_id: str) -> list[OidcLink]:
        rows = await self.db.run(lambda c: c.execute(
            "SELECT doc FROM oidc_links WHERE tenant = ? AND user_id = ? ORDER BY provider",
            (tenant, user_id)).fetchall())
        return [OidcLink.model_validate_json(r["doc"], context=STORED) for r in rows]

    async def forget_links(self, tenant: str, provider: str) -> int:
        removed: int = await self.db.transaction(lambda c: c.execute(
            "DELETE FROM oidc_links WHERE tenant = ? AND provider = ?", (tenant, provider)).rowcount)
        return removed

    async def delete_link(self, tenant: str, user_id: str, provider: str) -> bool:
        removed: int = await self.db.transaction(lambda c: c.execute(
            "DELETE FROM oidc_links WHERE tenant = ? AND user_id = ? AND provider = ?",
            (tenant, user_id, provider)).rowcount)
        return removed > 0
