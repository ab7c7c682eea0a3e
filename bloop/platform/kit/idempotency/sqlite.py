"""Idempotency-Keys in a SQLite file of the data dir, which every process on it shares: a key is
taken in a write transaction, so two processes never both take it. Expired keys are dropped by
each serving process at its start and once an hour after (`start`), keyed requests or none."""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable

from bloop.platform.kit.every import Every
from bloop.platform.kit.idempotency.port import Entry
from bloop.platform.kit.sqlite import SqliteDB, at_once

log = logging.getLogger("bloop.idempotency")
PRUNE_EVERY_S = 3600.0
PRUNE_CHUNK = 10_000


def _schema(c: sqlite3.Connection) -> None:
    # A key is unique on its own (a hash of its tenant, caller and the client's key); its tenant
    # is there for an erasure. A file from before tenants gains the column, not a new table, so
    # a process of the earlier version beside this one (a rolling upgrade, a rollback) still
    # writes it: its rows' tenant is '', which every erasure drops.
    c.execute("CREATE TABLE IF NOT EXISTS idempotency_keys (key TEXT PRIMARY KEY,"
              " entry BLOB NOT NULL, expires REAL NOT NULL, tenant TEXT NOT NULL DEFAULT '')"
              " WITHOUT ROWID")
    if "tenant" not in {r["name"] for r in c.execute("PRAGMA table_info(idempotency_keys)")}:
        c.execute("ALTER TABLE idempotency_keys ADD COLUMN tenant TEXT NOT NULL DEFAULT ''")
    c.execute("CREATE INDEX IF NOT EXISTS idempotency_keys_expires ON idempotency_keys (expires)")
    c.execute("CREATE INDEX IF NOT EXISTS idempotency_keys_tenant ON idempotency_keys (tenant)")


class SqliteIdempotency:
    def __init__(self, db: SqliteDB, clock: Callable[[], float] = time.time,
                 prune_every_s: float = PRUNE_EVERY_S) -> None:
        self.db, self.clock = db, clock
        self._ready = False
        self._pruner = Every("idempotency:prune", self.prune, prune_every_s, log=log,
                             failed="expired Idempotency-Keys cannot be dropped yet")

    def start(self) -> None:
        self._pruner.start()

    async def stop(self) -> None:
        await self._pruner.stop()

    async def prune(self) -> int:
        """Drops expired keys, a chunk at a time; returns how many (a full chunk: maybe more)."""
        await self._setup()
        now = self.clock()
        return await self.db.transaction(lambda c: c.execute(
            "DELETE FROM idempotency_keys WHERE key IN (SELECT key FROM idempotency_keys"
            " WHERE expires <= ? LIMIT ?)", (now, PRUNE_CHUNK)).rowcount)

    async def _setup(self) -> None:
        if not self._ready:
            await self.db.run(lambda c: at_once(c, _schema))
            self._ready = True

    async def claim(self, tenant: str, key: str, fingerprint: str, lock_s: float,
                    keep_s: float = 0.0, token: str = "") -> Entry | None:
        await self._setup()
        now = self.clock()

        def take(c: sqlite3.Connection) -> Entry | None:
            row = c.execute("SELECT entry FROM idempotency_keys WHERE key = ? AND expires > ?",
                            (key, now)).fetchone()
            if row is not None:
                return Entry.decode(bytes(row[0]), int(now * 1000))
            c.execute("INSERT OR REPLACE INTO idempotency_keys (tenant, key, entry, expires)"
                      " VALUES (?, ?, ?, ?)",
                      (tenant, key, Entry(fingerprint, None, token).pending(
                          int((now + lock_s) * 1000)), now + lock_s + keep_s))
            return None

        return await self.db.transaction(take)

    async def finish(self, tenant: str, key: str, fingerprint: str, response: bytes,
                     keep_s: float, token: str = "") -> None:
        await self._setup()
        pending = Entry(fingerprint, None, token).encode()
        entry, expires = Entry(fingerprint, response).encode(), self.clock() + keep_s
        await self.db.transaction(lambda c: c.execute(
            "UPDATE idempotency_keys SET entry = ?, expires = ?, tenant = ? WHERE key = ?"
            " AND substr(entry, 1, ?) = ?", (entry, expires, tenant, key, len(pending), pending)))

    async def release(self, tenant: str, key: str, fingerprint: str, token: str = "") -> None:
        await self._setup()
        pending = Entry(fingerprint, None, token).encode()
        await self.db.transaction(lambda c: c.execute(
            "DELETE FROM idempotency_keys WHERE key = ? AND substr(entry, 1, ?) = ?",
            (key, len(pending), pending)))

    async def drop_tenant(self, tenant: str) -> None:
        await self._setup()
        dropped: int = await self.db.transaction(lambda c: c.execute(
            "DELETE FROM idempotency_keys WHERE tenant IN (?, '')", (tenant,)).rowcount)
        if dropped:  # an erasure: what it dropped leaves the WAL too
            await self.db.empty_wal()

    async def ping(self) -> None:
        await self.db.ping()
