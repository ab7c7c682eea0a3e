"""A `Lease`'s rows in SQLite: one row per thing leased, named by its key columns, holding the
holder and when its lease runs out (wall-clock time, shared by every process on the file)."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Mapping


def _where(key: Mapping[str, object]) -> str:
    return " AND ".join(f"{column} = ?" for column in key)


def take_lease(c: sqlite3.Connection, table: str, key: Mapping[str, object], holder: str,
               ttl_s: float, replacing: str | None) -> str | None:
    """Takes the lease of `key` for `ttl_s`, or renews it, unless another holder's is still
    running (or that holder is `replacing`, known to be gone); returns who holds it now. Run in
    a transaction."""
    now = time.time()
    columns = ", ".join(key)
    c.execute(f"INSERT INTO {table} ({columns}, holder, until)"  # noqa: S608
              f" VALUES ({'?, ' * len(key)}?, ?)"
              f" ON CONFLICT ({columns}) DO UPDATE SET holder = excluded.holder,"
              " until = excluded.until WHERE holder IN (excluded.holder, ?) OR until < ?",
              (*key.values(), holder, now + ttl_s, replacing, now))
    row = c.execute(f"SELECT holder FROM {table} WHERE {_where(key)}",  # noqa: S608
                    tuple(key.values())).fetchone()
    return None if row is None else str(row[0])


def give_up_lease(c: sqlite3.Connection, table: str, key: Mapping[str, object],
                  holder: str) -> None:
    c.execute(f"DELETE FROM {table} WHERE {_where(key)} AND holder = ?",  # noqa: S608
              (*key.values(), holder))
