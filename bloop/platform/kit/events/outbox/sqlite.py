"""The SQLite outbox: `add` runs inside the caller's `SqliteDB.transaction`, beside its writes."""

from __future__ import annotations

import re
import sqlite3
import time
from collections.abc import Sequence

from bloop.platform.kit.events.bus.port import Message
from bloop.platform.kit.events.envelope import Envelope
from bloop.platform.kit.events.outbox.port import Pending, entry_of
from bloop.platform.kit.events.types import EventRegistry
from bloop.platform.kit.sqlite import SqliteDB


class SqliteOutbox:
    def __init__(self, db: SqliteDB, registry: EventRegistry, name: str = "outbox") -> None:
        if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", name):
            raise ValueError(f"outbox name {name!r} must be a plain SQL identifier")
        self.db, self.registry, self.name = db, registry, name
        self.table = name
        self._insert = (f"INSERT INTO {name} (id, topic, key, type, value, created_at)"  # noqa: S608
                        " VALUES (?, ?, ?, ?, ?, ?)")

    async def setup(self) -> None:
        await self.db.run(lambda c: c.executescript(
            f"CREATE TABLE IF NOT EXISTS {self.table} ("
            " seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL, topic TEXT NOT NULL,"
            " key TEXT NOT NULL, type TEXT NOT NULL, value TEXT NOT NULL, created_at REAL NOT NULL,"
            " sent_at REAL);"
            f"CREATE INDEX IF NOT EXISTS {self.table}_unsent ON {self.table} (seq)"
            " WHERE sent_at IS NULL;"))

    def add(self, conn: sqlite3.Connection, *envelopes: Envelope) -> None:
        """Call inside the transaction that changes the state these events describe."""
        now = time.time()
        rows = [(e["id"], e["topic"], e["key"], e["type"], e["value"], now)
                for e in (entry_of(env, self.registry) for env in envelopes)]
        if len(rows) == 1:
            conn.execute(self._insert, rows[0])
        else:
            conn.executemany(self._insert, rows)

    async def pending(self, limit: int) -> list[Pending]:
        rows = await self.db.run(lambda c: c.execute(
            f"SELECT seq, topic, key, type, value FROM {self.table}"  # noqa: S608
            " WHERE sent_at IS NULL ORDER BY seq LIMIT ?", (limit,)).fetchall())
        return [Pending(ref=seq, message=Message(topic=topic, key=key.encode(), value=value.encode(),
                                                 headers=(("type", type_.encode()),)))
                for seq, topic, key, type_, value in rows]

    async def mark_sent(self, sent: Sequence[Pending]) -> None:
        # Writers commit one at a time, so sequence numbers become visible in order: every
        # unsent row up to the batch's last one is in the batch.
        last = max(p.ref for p in sent)
        now = time.time()
        await self.db.transaction(lambda c: c.execute(
            f"UPDATE {self.table} SET sent_at=? WHERE sent_at IS NULL AND seq<=?",  # noqa: S608
            (now, last)))

    async def count_pending(self) -> int:
        row = await self.db.run(lambda c: c.execute(
            f"SELECT count(*) FROM {self.table} WHERE sent_at IS NULL").fetchone())  # noqa: S608
        return int(row[0])

    async def prune(self, older_than_s: float) -> int:
        cutoff = time.time() - older_than_s
        cur = await self.db.run(lambda c: c.execute(
            f"DELETE FROM {self.table} WHERE sent_at IS NOT NULL AND sent_at < ?", (cutoff,)))  # noqa: S608
        return int(cur.rowcount)
