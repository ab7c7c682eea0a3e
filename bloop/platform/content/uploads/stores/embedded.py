"""Import holds in SQLite (table `import_holds` of the content database)."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import datetime

from bloop.platform.content.uploads.holds import ImportHold
from bloop.platform.kit.read_back import STORED
from bloop.platform.kit.sqlite import SqliteDB

SCHEMA = """
CREATE TABLE IF NOT EXISTS import_holds (
  tenant TEXT NOT NULL, id TEXT NOT NULL, expires_ms INTEGER NOT NULL,
  taken INTEGER NOT NULL DEFAULT 0, doc TEXT NOT NULL, PRIMARY KEY (tenant, id));
CREATE INDEX IF NOT EXISTS import_holds_expiry ON import_holds (expires_ms);
"""


def _ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)


class EmbeddedImportHolds:
    def __init__(self, db: SqliteDB) -> None:
        self.db = db

    async def setup(self) -> None:
        await self.db.run(lambda c: c.executescript(SCHEMA))

    async def add(self, hold: ImportHold) -> None:
        await self.db.transaction(lambda c: c.execute(
            "INSERT INTO import_holds (tenant, id, expires_ms, doc) VALUES (?, ?, ?, ?)",
            (hold.tenant, hold.id, _ms(hold.expires_at), hold.model_dump_json())))

    async def release(self, tenant: str, import_id: str) -> bool:
        return bool(await self.db.transaction(lambda c: c.execute(
            "DELETE FROM import_holds WHERE tenant = ? AND id = ? AND taken = 0",
            (tenant, import_id)).rowcount))

    async def take_expired(self, at: datetime, until: datetime,
                           limit: int = 100) -> Sequence[ImportHold]:
        def write(c: sqlite3.Connection) -> list[ImportHold]:
            rows = c.execute("SELECT doc FROM import_holds WHERE expires_ms <= ?"
                             " ORDER BY expires_ms LIMIT ?", (_ms(at), limit)).fetchall()
            holds = [ImportHold.model_validate_json(r["doc"], context=STORED) for r in rows]
            c.executemany("UPDATE import_holds SET taken = 1, expires_ms = ?"
                          " WHERE tenant = ? AND id = ?",
                          [(_ms(until), h.tenant, h.id) for h in holds])
            return holds

        return await self.db.transaction(write)

    async def drop(self, tenant: str, import_id: str) -> None:
        await self.db.transaction(lambda c: c.execute(
            "DELETE FROM import_holds WHERE tenant = ? AND id = ?", (tenant, import_id)))


