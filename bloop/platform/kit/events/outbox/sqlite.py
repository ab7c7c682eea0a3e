"""The SQLite outbox: `add` runs inside the caller's `SqliteDB.transaction`, beside its writes.

Rows are numbered in commit order (writers take the database's write lock one at a time, and
AUTOINCREMENT never reuses a number), so what the relay has sent is one number, `sent_seq` in the
`<name>_relay` table, not a mark on every row.

Rows this object writes are also handed to the relay in memory once their transaction commits.
The relay reads the table instead whenever memory does not hold the numbers right after
`sent_seq` (a restart, another process writing to the same file, a write made outside a
transaction, a backlog beyond `MEMORY_CAP`), and whenever memory is empty.
"""

from __future__ import annotations

import re
import sqlite3
import time
from collections import deque
from collections.abc import Callable, Sequence
from itertools import chain

from bloop.platform.kit.events.bus.port import Message, new_tuple
from bloop.platform.kit.events.envelope import Envelope
from bloop.platform.kit.events.outbox.port import Pending, value_of
from bloop.platform.kit.events.sqlite_lease import give_up_lease, take_lease
from bloop.platform.kit.events.types import EventRegistry
from bloop.platform.kit.ids import id_text
from bloop.platform.kit.sqlite import SqliteDB

MEMORY_CAP = 20_000
ROWS_PER_INSERT = 150  # 900 parameters: under the 999 older SQLite builds allow
Row = tuple[str, str, str, str, bytes, float]


class SqliteOutbox:
    def __init__(self, db: SqliteDB, registry: EventRegistry, name: str = "outbox") -> None:
        if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", name):
            raise ValueError(f"outbox name {name!r} must be a plain SQL identifier")
        self.db, self.registry, self.name = db, registry, name
        self.table, self.mark_table, self.lease_table = name, f"{name}_relay", f"{name}_lease"
        self._insert = f"INSERT INTO {name} (id, topic, key, type, value, created_at) VALUES "  # noqa: S608
        self._inserts: dict[int, str] = {}
        self._fresh: deque[Pending] = deque()  # committed rows, in order, not yet known sent
        self._sent_seq = 0
        self._listeners: list[Callable[[], None]] = []

    async def setup(self) -> None:
        await self.db.transaction(self._create)
        self._sent_seq = await self._read_sent_seq()

    def _create(self, c: sqlite3.Connection) -> None:
        t, m = self.table, self.mark_table
        c.execute(f"CREATE TABLE IF NOT EXISTS {self.lease_table} ("
                  " one INTEGER PRIMARY KEY CHECK (one = 1), holder TEXT NOT NULL,"
                  " until REAL NOT NULL)")
        c.execute(f"CREATE TABLE IF NOT EXISTS {t} ("
                  " seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL, topic TEXT NOT NULL,"
                  " key TEXT NOT NULL, type TEXT NOT NULL, value BLOB NOT NULL,"
                  " created_at REAL NOT NULL)")
        c.execute(f"CREATE TABLE IF NOT EXISTS {m} ("
                  " one INTEGER PRIMARY KEY CHECK (one = 1), sent_seq INTEGER NOT NULL)")
        if c.execute(f"SELECT 1 FROM {m}").fetchone() is not None:  # noqa: S608
            return
        columns = {row[1] for row in c.execute(f"PRAGMA table_info({t})")}
        # A table from before the relay kept one number marked each row it sent.
        first_unsent = (f"(SELECT min(seq) - 1 FROM {t} WHERE sent_at IS NULL)"  # noqa: S608
                        if "sent_at" in columns else "NULL")
        c.execute(f"INSERT INTO {m} (one, sent_seq) VALUES"  # noqa: S608
                  f" (1, coalesce({first_unsent}, (SELECT max(seq) FROM {t}), 0))")
        c.execute(f"DROP INDEX IF EXISTS {t}_unsent")

    async def _read_sent_seq(self) -> int:
        row = await self.db.run(lambda c: c.execute(
            f"SELECT sent_seq FROM {self.mark_table}").fetchone())  # noqa: S608
        return int(row[0])

    def add(self, conn: sqlite3.Connection, *envelopes: Envelope) -> None:
        """Call inside the transaction that changes the state these events describe. The rows
        are written with the rest of the commit group's events, just before its COMMIT."""
        now = time.time()
        rows = []
        for envelope in envelopes:
            et = self.registry.checked(envelope)
            rows.append((id_text(envelope.id), et.topic, envelope.subject, envelope.type,
                         value_of(envelope), now))
        if rows and not self.db.append_at_commit(self, rows, self._write):
            self._write(conn, rows)

    def _write(self, conn: sqlite3.Connection, rows: list[Row]) -> Callable[[], None]:
        added: list[Pending] = []
        for start in range(0, len(rows), ROWS_PER_INSERT):
            chunk = rows[start:start + ROWS_PER_INSERT]
            statement = self._inserts.get(len(chunk))
            if statement is None:
                statement = self._inserts[len(chunk)] = self._insert + ", ".join(
                    ["(?, ?, ?, ?, ?, ?)"] * len(chunk))
            last = conn.execute(statement, list(chain.from_iterable(chunk))).lastrowid
            if last is None:
                raise RuntimeError(f"outbox {self.name}: SQLite gave no row number")
            # One statement's rows take consecutive numbers, in the order they are listed.
            added.extend(new_tuple(Pending, (seq, Message.event(topic, key.encode(), type_, value)))
                         for seq, (_, topic, key, type_, value, _) in enumerate(chunk, last - len(chunk) + 1))
        return lambda: self._committed(added)

    def _committed(self, added: list[Pending]) -> None:
        if len(self._fresh) + len(added) > MEMORY_CAP:
            self._fresh.clear()  # the relay reads the table until it is past the gap
        self._fresh.extend(added)
        for listener in self._listeners:
            listener()

    def notify(self, listener: Callable[[], None]) -> None:
        """Calls `listener` (on the event loop) whenever written events have committed."""
        self._listeners.append(listener)

    async def pending(self, limit: int) -> list[Pending]:
        fresh = self._fresh
        while fresh and fresh[0].ref <= self._sent_seq:
            fresh.popleft()
        # Held events that follow the mark without a gap can go as they are: a row written by
        # anyone else before or between them would leave a gap. Rows after them are found on a
        # later call, once memory runs out.
        held: list[Pending] = []
        expected = self._sent_seq + 1
        for p in fresh:
            if p.ref != expected or len(held) == limit:
                break
            held.append(p)
            expected += 1
        if held:
            return held

        def read(c: sqlite3.Connection) -> tuple[int, list[sqlite3.Row]]:
            # Another process on the same file (a command beside the server) may have sent rows
            # since this one last looked at the mark.
            mark = max(self._sent_seq, int(c.execute(
                f"SELECT sent_seq FROM {self.mark_table}").fetchone()[0]))  # noqa: S608
            return mark, c.execute(
                f"SELECT seq, topic, key, type, value FROM {self.table}"  # noqa: S608
                " WHERE seq > ? ORDER BY seq LIMIT ?", (mark, limit)).fetchall()

        self._sent_seq, rows = await self.db.run(read)
        return [Pending(ref=seq, message=Message.event(
                    topic, key.encode(), type_, value if isinstance(value, bytes) else value.encode()))
                for seq, topic, key, type_, value in rows]

    async def mark_sent(self, sent: Sequence[Pending]) -> None:
        # Numbers become visible in commit order, so every row up to the batch's last one has
        # been read, in the batch or before it.
        if not sent:
            return
        last = max(p.ref for p in sent)
        await self.db.transaction(lambda c: c.execute(
            f"UPDATE {self.mark_table} SET sent_seq = max(sent_seq, ?)", (last,)))  # noqa: S608
        self._sent_seq = max(self._sent_seq, last)

    async def lead(self, holder: str, ttl_s: float, replacing: str | None = None) -> str | None:
        def claim(c: sqlite3.Connection) -> tuple[str | None, int]:
            current = take_lease(c, self.lease_table, {"one": 1}, holder, ttl_s, replacing)
            sent_seq = c.execute(f"SELECT sent_seq FROM {self.mark_table}").fetchone()[0]  # noqa: S608
            return current, int(sent_seq)

        current, sent_seq = await self.db.transaction(claim)
        # What the last leader sent, so events held in memory are not sent again.
        self._sent_seq = max(self._sent_seq, sent_seq)
        return current

    async def step_down(self, holder: str) -> None:
        await self.db.transaction(lambda c: give_up_lease(c, self.lease_table, {"one": 1}, holder))

    async def count_pending(self) -> int:
        row = await self.db.run(lambda c: c.execute(
            f"SELECT count(*) FROM {self.table} WHERE seq >"  # noqa: S608
            f" (SELECT sent_seq FROM {self.mark_table})").fetchone())
        return int(row[0])

    async def prune(self, older_than_s: float) -> int:
        cutoff = time.time() - older_than_s
        cur = await self.db.transaction(lambda c: c.execute(
            f"DELETE FROM {self.table} WHERE created_at < ?"  # noqa: S608
            f" AND seq <= (SELECT sent_seq FROM {self.mark_table})", (cutoff,)))
        return int(cur.rowcount)
