"""The embedded identity store: SQLite, with the outbox in the same database. Each change and
its events are written in one transaction."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from bloop.platform.identity.model import Tenant, User
from bloop.platform.identity.ports import Duplicate
from bloop.platform.kit.events.envelope import Envelope
from bloop.platform.kit.events.outbox.sqlite import SqliteOutbox
from bloop.platform.kit.events.types import EventRegistry
from bloop.platform.kit.sqlite import SqliteDB

SCHEMA = """
CREATE TABLE IF NOT EXISTS tenants (
  id TEXT PRIMARY KEY, doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS users (
  tenant TEXT NOT NULL, id TEXT NOT NULL, email TEXT NOT NULL, doc TEXT NOT NULL,
  PRIMARY KEY (tenant, id), UNIQUE (tenant, email));
"""


class EmbeddedIdentityStore:
    def __init__(self, db: SqliteDB, registry: EventRegistry) -> None:
        self.db = db
        self._outbox = SqliteOutbox(db, registry, name="identity_outbox")

    @property
    def outbox(self) -> SqliteOutbox:
        return self._outbox

    async def setup(self) -> None:
        await self.db.run(lambda c: c.executescript(SCHEMA))
        await self._outbox.setup()

    async def add_tenant(self, tenant: Tenant, events: Sequence[Envelope]) -> None:
        def write(c: sqlite3.Connection) -> None:
            c.execute("INSERT INTO tenants (id, doc) VALUES (?, ?)",
                      (tenant.id, tenant.model_dump_json()))
            self._outbox.add(c, *events)

        try:
            await self.db.transaction(write)
        except sqlite3.IntegrityError:
            raise Duplicate(tenant.id) from None

    async def get_tenant(self, tenant_id: str) -> Tenant | None:
        row = await self.db.run(lambda c: c.execute(
            "SELECT doc FROM tenants WHERE id = ?", (tenant_id,)).fetchone())
        return None if row is None else Tenant.model_validate_json(row["doc"])

    async def add_user(self, user: User, events: Sequence[Envelope]) -> None:
        def write(c: sqlite3.Connection) -> None:
            c.execute("INSERT INTO users (tenant, id, email, doc) VALUES (?, ?, ?, ?)",
                      (user.tenant, user.id, user.email, user.model_dump_json()))
            self._outbox.add(c, *events)

        try:
            await self.db.transaction(write)
        except sqlite3.IntegrityError:
            raise Duplicate(user.email) from None

    async def get_user(self, tenant: str, user_id: str) -> User | None:
        row = await self.db.run(lambda c: c.execute(
            "SELECT doc FROM users WHERE tenant = ? AND id = ?", (tenant, user_id)).fetchone())
        return None if row is None else User.model_validate_json(row["doc"])

    async def get_user_by_email(self, tenant: str, email: str) -> User | None:
        row = await self.db.run(lambda c: c.execute(
            "SELECT doc FROM users WHERE tenant = ? AND email = ?", (tenant, email)).fetchone())
        return None if row is None else User.model_validate_json(row["doc"])

    async def list_users(self, tenant: str, *, after: str | None = None,
                         limit: int = 50) -> list[User]:
        rows = await self.db.run(lambda c: c.execute(
            "SELECT doc FROM users WHERE tenant = ? AND email > ? ORDER BY email LIMIT ?",
            (tenant, after or "", limit)).fetchall())
        return [User.model_validate_json(r["doc"]) for r in rows]
