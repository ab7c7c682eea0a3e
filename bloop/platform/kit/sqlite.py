"""SQLite for the embedded adapters: one connection on one thread, used from asyncio.

Transactions submitted while the thread is busy are committed together (group commit): each runs
inside its own SAVEPOINT, so each is still all-or-nothing on its own, and every caller is
answered only after the shared COMMIT has succeeded. Under concurrent load this turns N commits
and N thread hops into one of each. A transaction's savepoint is taken just before its first
statement, so one that only leaves rows for the commit (`append_at_commit`: written for the whole
group in one go, just before COMMIT) runs no statement of its own. A transaction can also leave
hooks (`on_commit`) that run on the event loop once it is durable, and never if it rolled back.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import queue
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")
Hook = Callable[[], None]
Flush = Callable[[sqlite3.Connection, list[Any]], Hook | None]
log = logging.getLogger("bloop.sqlite")
MAX_GROUP = 256


@dataclass
class _Call:
    fn: Callable[[sqlite3.Connection], Any]
    future: asyncio.Future[Any]
    transactional: bool
    result: Any = None
    error: BaseException | None = None
    hooks: list[Hook] | None = None
    rows: dict[object, tuple[Flush, list[Any]]] | None = None


class _Connection(sqlite3.Connection):
    savepoint_due = False

    def _begin_unit(self) -> None:
        if self.savepoint_due:
            self.savepoint_due = False
            super().execute("SAVEPOINT unit")

    def execute(self, sql: str, parameters: Any = (), /) -> sqlite3.Cursor:
        self._begin_unit()
        return super().execute(sql, parameters)

    def executemany(self, sql: str, parameters: Any, /) -> sqlite3.Cursor:
        self._begin_unit()
        return super().executemany(sql, parameters)

    def executescript(self, sql_script: str, /) -> sqlite3.Cursor:
        self._begin_unit()
        return super().executescript(sql_script)

    def cursor(self, *args: Any, **kwargs: Any) -> Any:
        self._begin_unit()
        return super().cursor(*args, **kwargs)


class SqliteDB:
    def __init__(self, path: Path | str) -> None:
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._queue: queue.SimpleQueue[_Call | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False
        self._unit: _Call | None = None  # the transaction running on the worker thread
        # Answers wait here for the loop; one wake-up of the loop carries all that gathered.
        self._answers: collections.deque[tuple[list[_Call], list[Hook]]] = collections.deque()
        self._answers_due = False

    def _connect(self) -> _Connection:
        conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None,
                               factory=_Connection)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA busy_timeout=5000")
        conn.row_factory = sqlite3.Row
        return conn

    def _submit(self, fn: Callable[[sqlite3.Connection], Any], transactional: bool) -> asyncio.Future[Any]:
        if self._closed:
            raise RuntimeError(f"database {self.path} is closed")
        loop = asyncio.get_running_loop()
        if self._thread is None:
            self._loop = loop
            self._thread = threading.Thread(target=self._worker, name=f"sqlite:{Path(self.path).name}",
                                            daemon=True)
            self._thread.start()
        future = loop.create_future()
        self._queue.put(_Call(fn, future, transactional))
        return future

    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Runs `fn` with the connection, outside any transaction of ours."""
        result: T = await self._submit(fn, transactional=False)
        return result

    async def transaction(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Runs `fn` atomically: on any exception nothing it wrote is kept. Returns once durable."""
        result: T = await self._submit(fn, transactional=True)
        return result

    def _running_unit(self) -> _Call | None:
        if threading.current_thread() is not self._thread:
            return None
        return self._unit

    def on_commit(self, hook: Hook) -> bool:
        """From inside a transaction's function: runs `hook` on the event loop once that
        transaction is durable, before its caller is answered. Returns False (and keeps nothing)
        when called outside a transaction."""
        unit = self._running_unit()
        if unit is None:
            return False
        if unit.hooks is None:
            unit.hooks = []
        unit.hooks.append(hook)
        return True

    def append_at_commit(self, key: object, rows: list[Any], flush: Flush) -> bool:
        """From inside a transaction's function: `flush(conn, rows)` writes `rows` just before
        the group's COMMIT, with the rows the group's other transactions left under `key`, in
        the order the transactions ran. The hook `flush` returns runs once they are durable.
        Returns False (and keeps nothing) when called outside a transaction."""
        unit = self._running_unit()
        if unit is None:
            return False
        if unit.rows is None:
            unit.rows = {}
        kept = unit.rows.get(key)
        if kept is None:
            unit.rows[key] = (flush, list(rows))
        else:
            kept[1].extend(rows)
        return True

    def _worker(self) -> None:
        conn = self._connect()
        try:
            while True:
                call = self._queue.get()
                if call is None:
                    return
                batch = [call]
                while len(batch) < MAX_GROUP:
                    try:
                        nxt = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if nxt is None:
                        self._queue.put(None)
                        break
                    batch.append(nxt)
                self._execute(conn, batch)
        finally:
            conn.close()

    def _execute(self, conn: _Connection, batch: list[_Call]) -> None:
        group: list[_Call] = []
        for call in batch:
            if call.transactional:
                group.append(call)
                continue
            self._commit_group(conn, group)
            group = []
            try:
                call.result = call.fn(conn)
            except BaseException as exc:
                call.error = exc
            self._answer([call])
        self._commit_group(conn, group)

    def _commit_group(self, conn: _Connection, group: list[_Call]) -> None:
        if not group:
            return
        try:
            conn.execute("BEGIN IMMEDIATE")
        except BaseException as exc:
            for call in group:
                call.error = exc
            self._answer(group)
            return
        for call in group:
            self._run_unit(conn, call)
        merged: dict[object, tuple[Flush, list[Any]]] = {}
        for call in group:
            for key, (flush, rows) in (call.rows or {}).items():
                merged.setdefault(key, (flush, []))[1].extend(rows)
        after: list[Hook] = []
        try:
            for flush, rows in merged.values():
                hook = flush(conn, rows)
                if hook is not None:
                    after.append(hook)
            conn.execute("COMMIT")
        except BaseException as exc:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            for call in group:
                call.error = call.error or exc
                call.hooks = None
            after = []
        self._answer(group, after)

    def _run_unit(self, conn: _Connection, call: _Call) -> None:
        conn.savepoint_due = True
        self._unit = call
        try:
            call.result = call.fn(conn)
        except BaseException as exc:
            call.error = exc
            call.hooks = call.rows = None
        finally:
            self._unit = None
        taken = not conn.savepoint_due
        conn.savepoint_due = False
        if taken and call.error is not None:
            conn.execute("ROLLBACK TO unit")
        if taken:
            conn.execute("RELEASE unit")

    def _answer(self, calls: list[_Call], after: list[Hook] | None = None) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        self._answers.append((calls, after or []))
        if not self._answers_due:
            self._answers_due = True
            loop.call_soon_threadsafe(self._deliver)

    def _deliver(self) -> None:
        self._answers_due = False
        while self._answers:
            _resolve(*self._answers.popleft())

    async def ping(self) -> None:
        await self.run(lambda c: c.execute("SELECT 1").fetchone())

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._thread is not None:
            self._queue.put(None)
            await asyncio.to_thread(self._thread.join)
            self._thread = None


def _resolve(calls: list[_Call], after: list[Hook]) -> None:
    for hook in after + [h for call in calls for h in call.hooks or ()]:
        try:
            hook()
        except Exception:
            log.exception("a commit hook failed")
    for call in calls:
        if call.future.done():
            continue
        if call.error is not None:
            call.future.set_exception(call.error)
        else:
            call.future.set_result(call.result)
