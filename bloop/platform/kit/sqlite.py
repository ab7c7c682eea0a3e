"""SQLite for the embedded adapters, used from asyncio: two connections to one file.

Transactions run on the event loop's thread, on the writer connection. Those submitted in the
same turn of the loop are committed together (group commit): each runs inside its own SAVEPOINT,
so each is still all-or-nothing on its own, and every caller is answered only after the shared
COMMIT has succeeded; one whose caller was cancelled before it ran is not run, so a caller that
cleans up after a cancellation never races its own write. A transaction holds the loop while it
runs, so a transaction function does the writes and the reads they depend on, nothing slow.
With WAL and synchronous=NORMAL a COMMIT does not wait for the disk; checkpoints, which do, run
on the reader thread. While another process holds the write lock, the group tries again a
little later instead of holding the loop.

A lock held elsewhere for longer than that wait (a CLI command or a backup tool beside the
server) fails the call as StoreUnavailable("sqlite:<name>"), whether it met the lock beginning a
transaction or in a `run` call: a 503 with Retry-After on a route, a wait in a consumer or a
relay, as any store that is down. What it had written is rolled back whole. So does a file SQLite
cannot write or read (a full disk, an I/O error, a read-only or vanished file, a damaged
database: `_unusable`), and `ping` reports the store down until FAILED_DOWN_S have passed
without another such failure, or until a commit has written rows since on a disk with room.
Every other SQLite error reaches the caller as it was raised.

`run` calls go to a thread with a connection of its own, so a long read never holds the loop;
each sees every transaction committed before it started. (An in-memory database is a single
connection: its `run` calls take their turn with the transactions, on the loop.)

A transaction's savepoint is taken just before its first statement, so one that only leaves rows
for the commit (`append_at_commit`: written for the whole group in one go, just before COMMIT)
runs no statement of its own; the hook its `flush` returns runs once those rows are durable.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
import queue
import random
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from bloop.platform.kit.errors import StoreUnavailable

T = TypeVar("T")
Hook = Callable[[], None]
Flush = Callable[[sqlite3.Connection, list[Any]], Hook | None]
log = logging.getLogger("bloop.sqlite")
# A checkpoint is asked for once the writer has changed this many rows, or committed this many
# times (each commit adds a page or more to the WAL however few rows it changes).
CHECKPOINT_ROWS = 2000
CHECKPOINT_COMMITS = 500
WAL_KEEP_BYTES = 16 * 1024 * 1024  # a WAL that starts over is cut back to this size
CHECKPOINT_WAIT_MS = 100  # how long a TRUNCATE checkpoint waits for readers, holding writers off
WAL_TRUNCATE_BYTES = 4 * 1024 * 1024  # a WAL past this after a checkpoint is emptied
LOCK_WAIT_S = 5.0  # how long a commit group waits for another process's write lock
BUSY_TIMEOUT_MS = 5000  # how long a `run` call waits for a lock held elsewhere
# How long `ping` reports a store down after a call last failed on its file (`_unusable`). A read
# does not see a full disk, and a commit that succeeds does not prove it has room again (an
# update in place, a WAL that starts over needs none): the calls' failures are the signal. It
# is up sooner once a commit wrote rows after the failure and its disk, writable, has ROOM_BYTES
# free.
FAILED_DOWN_S = 30.0
ROOM_BYTES = 4 * 1024 * 1024


_HEADER = b"SQLite format 3\x00"


def at_once(c: sqlite3.Connection, step: Callable[[sqlite3.Connection], None]) -> None:
    """`step` (a schema change at start-up) in one immediate transaction: of processes starting
    at once on one file, one makes the change and the others find it made."""
    c.execute("BEGIN IMMEDIATE")
    try:
        step(c)
    except BaseException:
        c.execute("ROLLBACK")
        raise
    c.execute("COMMIT")


def file_problem(path: Path) -> str | None:
    """Why SQLite would refuse to open the file at `path` as a database (it is another kind of
    file, or cannot be read), or None; a file yet to be made, or empty, is a new database."""
    try:
        with path.open("rb") as file:
            head = file.read(len(_HEADER))
    except FileNotFoundError:
        return None
    except OSError as exc:
        return f"cannot be read ({exc.strerror})"
    return "is not a SQLite database" if head and head != _HEADER else None


def owner_only(path: Path) -> None:
    """Makes the database at `path` (signing keys, password hashes, …) and its WAL files
    readable by their owner alone, made so or, when they exist, tightened; SQLite gives the WAL
    and shared-memory files it makes the database's mode. What cannot be (a file of another
    user, a read-only file system) is logged and left as it is."""
    with contextlib.suppress(OSError):  # a database that exists; SQLite reports the others
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    for file in (path, path.with_name(f"{path.name}-wal"), path.with_name(f"{path.name}-shm")):
        try:
            mode = file.stat().st_mode & 0o777
            if mode & 0o077:
                file.chmod(mode & 0o700)
        except FileNotFoundError:
            continue
        except OSError as exc:
            log.warning("a store file stays readable by others than its owner",
                        extra={"path": str(file), "error": exc.strerror})


@dataclass(slots=True)
class _Call:
    fn: Callable[[sqlite3.Connection], Any]
    future: asyncio.Future[Any]
    transactional: bool
    result: Any = None
    error: BaseException | None = None
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
        self._memory = self.path == ":memory:"
        # The store's name in a 503 and in /readyz (`sqlite:content` for content.sqlite3).
        self.store = "sqlite" if self._memory else f"sqlite:{Path(self.path).stem}"
        self._failed: tuple[float, str] | None = None  # when a call last met `_unusable`, why
        self._wrote_at = 0.0  # when a commit that changed rows last succeeded
        if not self._memory:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._closed = False
        # The writer, on the loop's thread.
        self._writer: _Connection | None = None
        self._due: list[_Call] = []  # submitted this turn of the loop, not yet run
        self._writer_thread = 0  # the loop's, where every transaction runs
        self._unit: _Call | None = None  # the transaction running now
        self._checkpointed_at = 0  # the writer's total_changes when a checkpoint was last asked
        self._commits = 0  # since then
        self._checkpointing = False
        self._empty_owed = False  # `empty_wal` did not finish: the next commit group tries again
        # The reader thread; its answers wait here for the loop, one wake-up carrying all that
        # gathered.
        self._queue: queue.SimpleQueue[_Call | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._answers: collections.deque[_Call] = collections.deque()
        self._answers_due = False

    def _connect(self) -> _Connection:
        if not self._memory:
            owner_only(Path(self.path))
        conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None,
                               factory=_Connection)
        try:
            conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS:d}")
            _enter_wal(conn)
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute(f"PRAGMA journal_size_limit={WAL_KEEP_BYTES:d}")
            # What is deleted (an erased learner) is overwritten, not left in free pages; some
            # builds of SQLite do so by default, others not.
            conn.execute("PRAGMA secure_delete=ON")
        except BaseException:
            conn.close()
            raise
        conn.row_factory = sqlite3.Row
        return conn

    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Runs `fn` with a connection, outside any transaction of ours."""
        future = self._enqueue(fn, transactional=False) if self._memory else self._submit(fn)
        result: T = await future
        return result

    async def transaction(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Runs `fn` atomically: on any exception nothing it wrote is kept. Returns once durable."""
        result: T = await self._enqueue(fn, transactional=True)
        return result

    def _refuse_if_closed(self) -> None:
        if self._closed:
            raise RuntimeError(f"database {self.path} is closed")

    # -- the writer, on the loop ------------------------------------------------------------
    def _enqueue(self, fn: Callable[[sqlite3.Connection], Any], transactional: bool) -> asyncio.Future[Any]:
        self._refuse_if_closed()
        due = self._due
        if due:
            # Not the first call this turn: the loop is the first one's. (asyncio's
            # get_running_loop makes a getpid system call each time.)
            due.append(_Call(fn, future := due[0].future.get_loop().create_future(), transactional))
            return future
        loop = asyncio.get_running_loop()
        due.append(_Call(fn, future := loop.create_future(), transactional))
        loop.call_soon(self._run_due)
        return future

    def _run_due(self) -> None:
        due = [call for call in self._due if not call.future.cancelled()]
        self._due = []
        if not due:
            return
        try:
            conn = self._writer or self._open_writer()
        except Exception as exc:
            for call in due:
                call.error = exc
            self._resolve(due)
            return
        group: list[_Call] = []
        for call in due:
            if call.transactional:
                group.append(call)
                continue
            self._commit_group(conn, group)
            group = []
            _run_outside_transaction(conn, call)
            self._resolve([call])
        self._commit_group(conn, group)
        self._checkpoint_if_due(conn)

    def _open_writer(self) -> _Connection:
        conn = self._connect()
        try:
            conn.execute("PRAGMA busy_timeout=0")  # the loop never waits on a lock: _commit_group
            if not self._memory:
                conn.execute("PRAGMA wal_autocheckpoint=0")  # see _checkpoint_if_due
        except BaseException:
            conn.close()
            raise
        self._writer_thread = threading.get_ident()
        self._writer = conn
        return conn

    def _commit_group(self, conn: _Connection, group: list[_Call], waited_s: float = 0.0) -> None:
        if not group:
            return
        try:
            conn.execute("BEGIN IMMEDIATE")
        except BaseException as exc:
            if _busy(exc) and waited_s < LOCK_WAIT_S:
                # Another process holds the write lock: try again later, off the loop's time.
                delay = min(max(waited_s, 0.001), 0.05)
                asyncio.get_running_loop().call_later(delay, self._retry_group, group,
                                                      waited_s + delay)
                return
            for call in group:
                call.error = exc
            self._resolve(group)
            return
        wrote = False  # a unit that changed rows and kept them
        for call in group:
            changes = conn.total_changes
            self._run_unit(conn, call)
            wrote = wrote or (call.error is None and conn.total_changes > changes)
            if not conn.in_transaction:
                # SQLite rolled the whole transaction back itself (it may on a full disk or an
                # I/O error): what the group's other units wrote is gone too.
                lost = call.error or sqlite3.OperationalError("the transaction was rolled back")
                for other in group:
                    other.error = other.error or lost
                self._resolve(group)
                return
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
            self._commits += 1
            if wrote:
                self._wrote_at = time.monotonic()
        except BaseException as exc:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            for call in group:
                call.error = call.error or exc
            after = []
        self._resolve(group, after)

    def _retry_group(self, group: list[_Call], waited_s: float) -> None:
        group = [call for call in group if not call.future.cancelled()]
        if self._writer is None:
            for call in group:
                call.error = RuntimeError(f"database {self.path} is closed")
            self._resolve(group)
            return
        self._commit_group(self._writer, group, waited_s)

    def _run_unit(self, conn: _Connection, call: _Call) -> None:
        conn.savepoint_due = True
        self._unit = call
        try:
            call.result = call.fn(conn)
        except BaseException as exc:
            call.error = exc
            call.rows = None
        finally:
            self._unit = None
        taken = not conn.savepoint_due and conn.in_transaction
        conn.savepoint_due = False
        if taken and call.error is not None:
            conn.execute("ROLLBACK TO unit")
        if taken:
            conn.execute("RELEASE unit")

    def _checkpoint_if_due(self, conn: _Connection) -> None:
        """Asks the reader thread to copy the WAL into the database once the writer has changed
        CHECKPOINT_ROWS rows or committed CHECKPOINT_COMMITS times since the last time: a
        checkpoint waits for the disk, the loop must not. See `_checkpoint`. After an
        `empty_wal` that did not finish, at the next commit group, emptying the WAL."""
        if self._memory or self._checkpointing:
            return
        if self._commits < CHECKPOINT_COMMITS and not self._empty_owed \
                and conn.total_changes - self._checkpointed_at < CHECKPOINT_ROWS:
            return
        self._checkpointed_at, self._commits = conn.total_changes, 0
        self._checkpointing = True
        self._submit(partial(_checkpoint, wal=f"{self.path}-wal", empty=self._empty_owed)
                     ).add_done_callback(self._checkpoint_done)

    async def empty_wal(self) -> bool:
        """Copies the WAL into the database and empties it now (after an erasure, so what was
        erased does not linger in it until a checkpoint falls due). It waits CHECKPOINT_WAIT_MS
        at most for readers elsewhere; False when they kept it from finishing, or it failed
        (logged): it is tried again after the next commit group, until it finishes."""
        if self._memory:
            return True
        try:
            emptied: bool = await self._submit(_truncate)
        except Exception as exc:
            log.warning("WAL checkpoint failed", extra={"path": self.path, "error": repr(exc)})
            emptied = False
        self._empty_owed = self._empty_owed or not emptied
        return emptied

    def _checkpoint_done(self, future: asyncio.Future[Any]) -> None:
        self._checkpointing = False
        if future.cancelled():
            return
        if future.exception() is not None:
            log.warning("WAL checkpoint failed", extra={"path": self.path, "error": repr(future.exception())})
        elif future.result():
            self._empty_owed = False

    def _running_unit(self) -> _Call | None:
        unit = self._unit
        if unit is None or threading.get_ident() != self._writer_thread:
            return None
        return unit

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

    # -- the reader thread ------------------------------------------------------------------
    def _submit(self, fn: Callable[[sqlite3.Connection], Any]) -> asyncio.Future[Any]:
        self._refuse_if_closed()
        loop = asyncio.get_running_loop()
        if self._thread is None:
            self._loop = loop
            self._thread = threading.Thread(target=self._worker, name=f"sqlite:{Path(self.path).name}",
                                            daemon=True)
            self._thread.start()
        future = loop.create_future()
        self._queue.put(_Call(fn, future, transactional=False))
        return future

    def _worker(self) -> None:
        conn: _Connection | None = None
        try:
            while True:
                call = self._queue.get()
                if call is None:
                    return
                if conn is None:
                    try:
                        conn = self._connect()
                    except Exception as exc:  # the call fails; the next one tries again
                        call.error = exc
                        self._answer(call)
                        continue
                _run_outside_transaction(conn, call)
                self._answer(call)
        finally:
            if conn is not None:
                conn.close()

    def _answer(self, call: _Call) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        self._answers.append(call)
        if not self._answers_due:
            self._answers_due = True
            loop.call_soon_threadsafe(self._deliver)

    def _deliver(self) -> None:
        self._answers_due = False
        answers = self._answers
        calls = [answers.popleft() for _ in range(len(answers))]
        self._resolve(calls)

    async def ping(self) -> None:
        """Raises while the store is not usable: its file cannot be read, or a call failed on it
        (`_unusable`) less than FAILED_DOWN_S ago. A lock held elsewhere is not the store being
        down."""
        await self.run(lambda c: c.execute("PRAGMA schema_version").fetchone())
        if (failed := self._failed_lately()) is not None:
            raise StoreUnavailable(self.store, failed)

    def _failed_lately(self) -> str | None:
        """Why a call last failed on the store's file, if less than FAILED_DOWN_S ago and no
        commit has written rows since on a disk with room."""
        if self._failed is None or time.monotonic() - self._failed[0] >= FAILED_DOWN_S:
            return None
        if self._wrote_at > self._failed[0] and _has_room(Path(self.path).parent):
            self._failed = None
            return None
        return f"{self._failed[1]}, {time.monotonic() - self._failed[0]:.0f}s ago"

    def _failing(self, error: BaseException) -> None:
        """Notes a call that failed on the store's file; logged once for a run of such failures
        less than FAILED_DOWN_S apart, at ERROR where the file is damaged (an operator must
        restore it)."""
        if self._failed_lately() is None:
            level = logging.ERROR if _damaged(error) else logging.WARNING
            log.log(level, "the store's file cannot be used; the store is unavailable",
                    extra={"store": self.store, "path": self.path, "error": repr(error)})
        self._failed = (time.monotonic(), str(error))

    async def close(self) -> None:
        if self._closed:
            return
        self._run_due()  # what was submitted before closing is still answered
        self._closed = True
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if self._thread is not None:
            self._queue.put(None)
            await asyncio.to_thread(self._thread.join)
            self._thread = None

    def _resolve(self, calls: list[_Call], after: Sequence[Hook] = ()) -> None:
        """Answers each call: its result, or its error, where a lock held elsewhere past the
        wait, or a file SQLite cannot use, is the store being unavailable. Every answer goes
        through here."""
        for hook in after:
            try:
                hook()
            except Exception:
                log.exception("a commit hook failed")
        logged: set[int] = set()
        for call in calls:
            if call.future.done():
                continue
            if call.error is None:
                call.future.set_result(call.result)
            elif _busy(call.error):
                if id(call.error) not in logged:  # a group's calls share its error
                    logged.add(id(call.error))
                    log.warning("a lock held elsewhere outlasted the wait; the store is "
                                "unavailable", extra={"path": self.path, "error": repr(call.error)})
                unavailable = StoreUnavailable(self.store, "database is locked")
                unavailable.__cause__ = call.error
                call.future.set_exception(unavailable)
            elif _unusable(call.error):
                self._failing(call.error)
                unavailable = StoreUnavailable(self.store, str(call.error))
                unavailable.__cause__ = call.error
                call.future.set_exception(unavailable)
            else:
                call.future.set_exception(call.error)


def _has_room(directory: Path) -> bool:
    """Whether the disk holding `directory` is writable and has ROOM_BYTES free."""
    try:
        disk = os.statvfs(directory)
    except OSError:
        return False
    return not disk.f_flag & os.ST_RDONLY and disk.f_bavail * disk.f_frsize >= ROOM_BYTES


def _run_outside_transaction(conn: sqlite3.Connection, call: _Call) -> None:
    """Runs a `run` call. One that began a transaction of its own and failed inside it leaves
    nothing of it: what it wrote is rolled back, and the connection holds no lock or snapshot."""
    try:
        call.result = call.fn(conn)
    except BaseException as exc:
        call.error = exc
        if conn.in_transaction:
            try:
                conn.execute("ROLLBACK")
            except sqlite3.Error as failed:
                log.warning("rolling back a failed call failed", extra={"error": repr(failed)})


def _truncate(c: sqlite3.Connection) -> bool:
    """A TRUNCATE checkpoint, waiting CHECKPOINT_WAIT_MS at most for readers elsewhere: whether
    it copied every frame and emptied the WAL."""
    c.execute(f"PRAGMA busy_timeout={CHECKPOINT_WAIT_MS:d}")
    try:
        busy, _, _ = c.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    except sqlite3.OperationalError as exc:
        if not _busy(exc):
            raise
        return False
    finally:
        c.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS:d}")
    return not busy


def _checkpoint(c: sqlite3.Connection, wal: str, empty: bool = False) -> bool:
    """Copies the WAL into the database. PASSIVE copies it without holding writers off, but
    leaves what is committed while it runs, and under steady writes the WAL then never starts
    over and grows. So once it has passed WAL_TRUNCATE_BYTES, TRUNCATE copies the frames left
    and empties the file, holding writers off meanwhile (they wait off the loop, as for a lock
    held elsewhere); it gives up after CHECKPOINT_WAIT_MS if readers elsewhere keep it from
    finishing, and a later checkpoint tries again. `empty` TRUNCATEs whatever the size; returns
    whether the WAL was emptied."""
    c.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
    with contextlib.suppress(OSError):
        if not empty and os.path.getsize(wal) <= WAL_TRUNCATE_BYTES:
            return False
    return _truncate(c)


def _enter_wal(c: sqlite3.Connection) -> None:
    """Connections opening a new file at once each switch it to WAL holding a shared lock and
    wanting an exclusive one: SQLite answers all but one busy at once rather than wait (the
    busy timeout would deadlock them), so those try again until the busy timeout has passed."""
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            c.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if not _busy(exc) or time.monotonic() >= deadline:
                raise
        time.sleep(random.uniform(0.002, 0.02))


def _busy(exc: BaseException) -> bool:
    """SQLITE_BUSY, with any of its extended codes: another connection holds the lock. (Not
    SQLITE_LOCKED: with a connection of its own per thread, that is a conflict within one
    connection, a bug to answer 500, not a store to wait for.)"""
    return (isinstance(exc, sqlite3.OperationalError)
            and getattr(exc, "sqlite_errorcode", 0) & 0xFF == sqlite3.SQLITE_BUSY)


# The file cannot be written or read: a full disk (or quota), an I/O error, a read-only or
# vanished file or folder; and a damaged file, or one that is no database, which needs an operator.
_DAMAGED = frozenset({sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB})
_UNUSABLE = _DAMAGED | {sqlite3.SQLITE_FULL, sqlite3.SQLITE_IOERR, sqlite3.SQLITE_READONLY,
                        sqlite3.SQLITE_CANTOPEN}


def _code(exc: BaseException) -> int:
    """SQLite's primary result code of `exc` (0 for an error that is not SQLite's)."""
    return getattr(exc, "sqlite_errorcode", 0) & 0xFF if isinstance(exc, sqlite3.Error) else 0


def _unusable(exc: BaseException) -> bool:
    """SQLITE_FULL, _IOERR, _READONLY, _CANTOPEN, _CORRUPT or _NOTADB, with any of their extended
    codes: the store's file, not the statement, is at fault."""
    return _code(exc) in _UNUSABLE


def _damaged(exc: BaseException) -> bool:
    return _code(exc) in _DAMAGED
