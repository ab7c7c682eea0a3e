"""Concurrent SQLite transactions share a commit yet each stays all-or-nothing; reads run beside
them on a thread of their own."""

from __future__ import annotations

import asyncio
import os
import re
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from bloop.platform.kit import sqlite as sqlite_module
from bloop.platform.kit.errors import StoreUnavailable
from bloop.platform.kit.sqlite import SqliteDB
from tests.support import eventually


class Refused(Exception):
    pass


def inserting(*values: object) -> Callable[[sqlite3.Connection], object]:
    marks = ", ".join("?" * len(values))
    return lambda c: c.execute(f"INSERT INTO t VALUES ({marks})", values)


async def test_each_unit_of_a_group_is_atomic_and_answered_on_its_own(tmp_path: Path) -> None:
    db = SqliteDB(tmp_path / "g.sqlite3")
    await db.run(lambda c: c.execute("CREATE TABLE t (unit INTEGER, part INTEGER)"))

    def unit(n: int) -> int:
        def write(c: sqlite3.Connection) -> int:
            c.execute("INSERT INTO t VALUES (?, 1)", (n,))
            if n % 3 == 0:
                raise Refused(n)
            c.execute("INSERT INTO t VALUES (?, 2)", (n,))
            return n * 10

        return write  # type: ignore[return-value]

    results = await asyncio.gather(*(db.transaction(unit(n)) for n in range(60)),  # type: ignore[arg-type]
                                   return_exceptions=True)
    for n, result in enumerate(results):
        expected: object = Refused if n % 3 == 0 else n * 10
        assert (type(result) if n % 3 == 0 else result) == expected
    rows = await db.run(lambda c: c.execute("SELECT unit, count(*) FROM t GROUP BY unit").fetchall())
    counts = {r[0]: r[1] for r in rows}
    assert counts == {n: 2 for n in range(60) if n % 3}
    await db.close()


async def test_reads_see_the_writes_submitted_before_them(tmp_path: Path) -> None:
    db = SqliteDB(tmp_path / "o.sqlite3")
    await db.run(lambda c: c.execute("CREATE TABLE t (n INTEGER)"))

    def insert(n: int) -> Callable[[sqlite3.Connection], object]:
        return lambda c: c.execute("INSERT INTO t VALUES (?)", (n,))

    writes = [db.transaction(insert(n)) for n in range(10)]
    count = db.run(lambda c: c.execute("SELECT count(*) FROM t").fetchone()[0])
    await asyncio.gather(*writes)
    assert await count == 10
    await db.close()


async def test_a_closed_database_refuses_work(tmp_path: Path) -> None:
    db = SqliteDB(tmp_path / "c.sqlite3")
    await db.ping()
    await db.close()
    with pytest.raises(RuntimeError, match="closed"):
        await db.ping()


async def test_rows_left_for_the_commit_are_written_together_in_order(tmp_path: Path) -> None:
    db = SqliteDB(tmp_path / "a.sqlite3")
    await db.run(lambda c: c.execute("CREATE TABLE t (n INTEGER)"))
    flushes: list[list[int]] = []
    durable: list[int] = []

    def flush(c: sqlite3.Connection, rows: list[int]) -> Callable[[], None]:
        flushes.append(rows)
        c.executemany("INSERT INTO t VALUES (?)", [(n,) for n in rows])
        return lambda: durable.extend(rows)

    def unit(n: int) -> Callable[[sqlite3.Connection], None]:
        def write(c: sqlite3.Connection) -> None:
            assert db.append_at_commit("t", [n, n + 100], flush)
            if n % 4 == 1:
                raise Refused(n)  # left no statement of its own, and no row either
            if n % 4 == 2:
                c.cursor().execute("INSERT INTO t VALUES (?)", (-n,))
                raise Refused(n)

        return write

    await asyncio.gather(*(db.transaction(unit(n)) for n in range(12)), return_exceptions=True)
    kept = [n for n in range(12) if n % 4 in (0, 3)]
    expected = [v for n in kept for v in (n, n + 100)]
    assert [v for rows in flushes for v in rows] == expected
    assert durable == expected
    rows = await db.run(lambda c: c.execute("SELECT n FROM t ORDER BY rowid").fetchall())
    assert [r[0] for r in rows] == expected
    assert await db.run(lambda c: db.append_at_commit("t", [1], flush)) is False
    await db.close()


async def test_a_failing_flush_fails_the_whole_group(tmp_path: Path) -> None:
    db = SqliteDB(tmp_path / "f.sqlite3")
    await db.run(lambda c: c.execute("CREATE TABLE t (n INTEGER)"))

    ran: list[list[int]] = []

    def written(c: sqlite3.Connection, rows: list[int]) -> Callable[[], None]:
        c.executemany("INSERT INTO t VALUES (?)", [(n,) for n in rows])
        return lambda: ran.append(rows)

    def flush(c: sqlite3.Connection, rows: list[int]) -> None:
        raise sqlite3.OperationalError("disk full")

    def write(c: sqlite3.Connection) -> None:
        c.execute("INSERT INTO t VALUES (1)")
        db.append_at_commit("written first", [2], written)
        db.append_at_commit("t", [1], flush)

    with pytest.raises(sqlite3.OperationalError):
        await db.transaction(write)
    assert await db.run(lambda c: c.execute("SELECT count(*) FROM t").fetchone()[0]) == 0
    assert ran == [], "the hook of a flush whose group rolled back ran"
    await db.close()


async def test_a_long_read_holds_neither_the_loop_nor_the_writer(tmp_path: Path) -> None:
    db = SqliteDB(tmp_path / "r.sqlite3")
    await db.transaction(lambda c: c.execute("CREATE TABLE t (n INTEGER)"))
    started = threading.Event()

    def slow_count(c: sqlite3.Connection) -> int:
        snapshot = c.execute("SELECT count(*) FROM t")  # its read begins here
        started.set()
        time.sleep(0.5)
        return int(snapshot.fetchone()[0])

    reading = asyncio.create_task(db.run(slow_count))
    await asyncio.to_thread(started.wait, 5)
    began = time.perf_counter()
    await asyncio.gather(*(db.transaction(lambda c: c.execute("INSERT INTO t VALUES (1)"))
                           for _ in range(10)))
    assert time.perf_counter() - began < 0.25, "the writes waited for the read"
    assert not reading.done()
    assert await reading == 0, "the read kept the snapshot it began with"
    assert await db.run(lambda c: c.execute("SELECT count(*) FROM t").fetchone()[0]) == 10
    await db.close()


async def test_the_reader_thread_checkpoints_what_the_writer_left_in_the_log(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sqlite_module, "CHECKPOINT_ROWS", 50)
    path = tmp_path / "w.sqlite3"
    db = SqliteDB(path)
    await db.transaction(lambda c: c.execute("CREATE TABLE t (n INTEGER, pad TEXT)"))
    size = path.stat().st_size
    for n in range(60):
        await db.transaction(inserting(n, "x" * 500))

    async def copied_into_the_database() -> bool:
        return path.stat().st_size > size

    await eventually(copied_into_the_database, timeout_s=5, what="a checkpoint")
    await db.close()


async def test_many_small_commits_are_checkpointed_and_the_log_starts_over(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """One-row commits (an outbox lease renewed every few seconds) add a page to the WAL each:
    counting rows alone, it grew for hours without a checkpoint. And under steady writes a
    PASSIVE checkpoint leaves what is committed while it runs, so the WAL never started over."""
    monkeypatch.setattr(sqlite_module, "CHECKPOINT_COMMITS", 40)
    monkeypatch.setattr(sqlite_module, "WAL_TRUNCATE_BYTES", 100 * 4096)
    path = tmp_path / "trickle.sqlite3"
    wal = tmp_path / "trickle.sqlite3-wal"
    db = SqliteDB(path)
    await db.transaction(lambda c: c.execute("CREATE TABLE t (n INTEGER)"))
    for n in range(sqlite_module.CHECKPOINT_ROWS // 4):  # far fewer rows than a checkpoint needs
        await db.transaction(inserting(n))
    page = int((await db.run(lambda c: c.execute("PRAGMA page_size").fetchone()))[0])
    assert wal.stat().st_size < 200 * page, "the log started over after a checkpoint"
    assert await db.run(lambda c: c.execute("PRAGMA journal_size_limit").fetchone()[0]) == \
        sqlite_module.WAL_KEEP_BYTES
    await db.close()


async def test_what_is_deleted_leaves_the_file(tmp_path: Path) -> None:
    """Freed pages kept deleted rows (an erased learner's bio) on SQLite builds that do not
    overwrite them by default."""
    path = tmp_path / "erased.sqlite3"
    db = SqliteDB(path)
    await db.transaction(lambda c: c.execute("CREATE TABLE t (bio TEXT)"))
    await db.transaction(lambda c: c.executemany("INSERT INTO t VALUES (?)", [
        (f"okapi-{n}-" + "x" * 500,) for n in range(50)]))
    await db.transaction(lambda c: c.execute("DELETE FROM t"))
    assert await db.run(lambda c: c.execute("PRAGMA secure_delete").fetchone()[0]) == 1
    assert await db.transaction(lambda c: c.execute("PRAGMA secure_delete").fetchone()[0]) == 1
    await db.close()
    assert b"okapi-" not in path.read_bytes()


async def test_an_emptied_wal_keeps_nothing_deleted(tmp_path: Path) -> None:
    """After an erasure the erased text stayed in the WAL until a checkpoint fell due (2,000
    rows or 500 commits: weeks on a quiet store)."""
    path = tmp_path / "erased.sqlite3"
    wal = tmp_path / "erased.sqlite3-wal"
    db = SqliteDB(path)
    await db.transaction(lambda c: c.execute("CREATE TABLE t (bio TEXT)"))
    await db.transaction(inserting("okapi-bio"))
    await db.transaction(lambda c: c.execute("DELETE FROM t"))
    assert b"okapi-bio" in wal.read_bytes()
    assert await db.empty_wal()
    assert wal.read_bytes() == b""
    assert b"okapi-bio" not in path.read_bytes()
    assert await db.run(lambda c: c.execute("SELECT count(*) FROM t").fetchone()[0]) == 0
    reader = sqlite3.connect(path, isolation_level=None)  # a reader elsewhere, mid-read
    reader.execute("BEGIN")
    reader.execute("SELECT count(*) FROM t").fetchone()
    await db.transaction(inserting("later"))
    began = time.perf_counter()
    assert not await db.empty_wal()  # it does not wait for the reader long
    assert time.perf_counter() - began < 1
    reader.execute("COMMIT")
    reader.close()
    await db.transaction(inserting("next"))  # the next commit group empties it after all

    async def emptied() -> bool:
        return wal.read_bytes() == b""

    await eventually(emptied, timeout_s=5, what="the WAL emptied")
    assert await db.empty_wal()
    await db.close()


async def test_an_in_memory_database_is_one_connection(tmp_path: Path) -> None:
    db = SqliteDB(":memory:")
    await db.run(lambda c: c.execute("CREATE TABLE t (n INTEGER)"))
    await asyncio.gather(*(db.transaction(inserting(n)) for n in range(5)))
    assert await db.run(lambda c: c.execute("SELECT sum(n) FROM t").fetchone()[0]) == 10
    await db.close()
    assert not (tmp_path / ":memory:").exists()


async def locked_elsewhere(path: Path) -> tuple[SqliteDB, sqlite3.Connection]:
    """A database with table t, and a connection holding its write lock (as another process
    would)."""
    db = SqliteDB(path)
    await db.transaction(lambda c: c.execute("CREATE TABLE t (n INTEGER)"))
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    return db, other


async def test_a_write_lock_held_elsewhere_is_waited_for_off_the_loop(tmp_path: Path) -> None:
    db, other = await locked_elsewhere(tmp_path / "l.sqlite3")
    writing = asyncio.create_task(db.transaction(lambda c: c.execute("INSERT INTO t VALUES (1)")))
    began = time.perf_counter()
    await asyncio.sleep(0.2)
    assert time.perf_counter() - began < 0.3, "the loop was held while the lock was taken"
    assert not writing.done()
    other.execute("COMMIT")
    await asyncio.wait_for(writing, 1)
    assert await db.run(lambda c: c.execute("SELECT count(*) FROM t").fetchone()[0]) == 1
    other.close()
    await db.close()


def unavailable(exc: BaseException) -> None:
    """`exc` is the sqlite store being unavailable (a 503 on a route, a wait in a consumer),
    caused by SQLite's own busy error."""
    assert isinstance(exc, StoreUnavailable), repr(exc)
    assert (exc.status, "Retry-After" in exc.headers) == (503, True)
    assert re.fullmatch(r"sqlite:\w+", exc.extra["store"]), exc.extra  # named as its file is
    assert isinstance(exc.__cause__, sqlite3.OperationalError)
    assert exc.__cause__.sqlite_errorcode & 0xFF == sqlite3.SQLITE_BUSY


async def test_a_write_lock_never_released_fails_the_write_as_the_store_unavailable(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Past the wait, each transaction of the group fails as the store being unavailable, and
    none of them wrote anything."""
    monkeypatch.setattr(sqlite_module, "LOCK_WAIT_S", 0.2)
    db, other = await locked_elsewhere(tmp_path / "n.sqlite3")
    failed = await asyncio.gather(*(db.transaction(inserting(n)) for n in range(3)),
                                  return_exceptions=True)
    for exc in failed:
        unavailable(exc)  # type: ignore[arg-type]
    other.execute("ROLLBACK")
    await db.transaction(lambda c: c.execute("INSERT INTO t VALUES (7)"))
    assert [r[0] for r in await db.run(lambda c: c.execute("SELECT n FROM t").fetchall())] == [7]
    other.close()
    await db.close()


async def test_a_read_thread_write_that_outlasts_the_busy_timeout_is_the_store_unavailable(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`run` calls wait for a lock on their thread, up to the busy timeout."""
    monkeypatch.setattr(sqlite_module, "BUSY_TIMEOUT_MS", 100)
    db, other = await locked_elsewhere(tmp_path / "b.sqlite3")
    with pytest.raises(StoreUnavailable) as failed:
        await db.run(inserting(1))
    unavailable(failed.value)
    assert await db.run(lambda c: c.execute("SELECT count(*) FROM t").fetchone()[0]) == 0
    other.execute("COMMIT")
    await db.run(inserting(2))
    other.close()
    await db.close()


async def test_a_run_call_failing_inside_its_own_transaction_leaves_nothing(
        tmp_path: Path) -> None:
    """Rolled back whole, whatever failed it: its rows are gone, and the connection holds no
    lock (a write elsewhere goes through) and no old snapshot (it sees that write)."""
    db = SqliteDB(tmp_path / "h.sqlite3")
    await db.transaction(lambda c: c.execute("CREATE TABLE t (n INTEGER)"))

    def half_written(c: sqlite3.Connection) -> None:
        c.execute("BEGIN IMMEDIATE")
        c.execute("INSERT INTO t VALUES (1)")
        c.execute("INSERT INTO missing VALUES (2)")

    with pytest.raises(sqlite3.OperationalError, match="no such table"):
        await db.run(half_written)

    def stale_snapshot(c: sqlite3.Connection) -> None:
        c.execute("BEGIN")
        c.execute("SELECT count(*) FROM t").fetchone()  # its snapshot begins here
        other = sqlite3.connect(db.path, isolation_level=None)
        other.execute("INSERT INTO t VALUES (3)")  # a write after it: the snapshot is stale
        other.close()
        c.execute("INSERT INTO t VALUES (4)")  # SQLITE_BUSY_SNAPSHOT, at once

    with pytest.raises(StoreUnavailable) as failed:
        await db.run(stale_snapshot)
    unavailable(failed.value)
    await asyncio.wait_for(db.transaction(inserting(5)), 1)
    assert [r[0] for r in await db.run(lambda c: c.execute("SELECT n FROM t").fetchall())] == [3, 5]
    await db.close()


async def test_an_error_other_than_a_lock_is_raised_as_it_was(tmp_path: Path) -> None:
    """A mistake in a statement is no store being down: it stays a 500."""
    db = SqliteDB(tmp_path / "e.sqlite3")
    with pytest.raises(sqlite3.OperationalError, match="no such table") as in_transaction:
        await db.transaction(lambda c: c.execute("INSERT INTO missing VALUES (1)"))
    with pytest.raises(sqlite3.OperationalError, match="syntax error") as in_run:
        await db.run(lambda c: c.execute("SELEC 1"))
    assert not isinstance(in_transaction.value, StoreUnavailable)
    assert not isinstance(in_run.value, StoreUnavailable)
    await db.close()


async def test_a_transaction_cancelled_before_it_ran_writes_nothing(tmp_path: Path) -> None:
    """A caller cancelled while its transaction waited for its turn (or for a lock held
    elsewhere) may clean up as if nothing was written: nothing is."""
    db = SqliteDB(tmp_path / "c.sqlite3")
    await db.transaction(lambda c: c.execute("CREATE TABLE t (n INTEGER)"))
    kept = asyncio.create_task(db.transaction(inserting(1)))
    cancelled = asyncio.create_task(db.transaction(inserting(2)))
    await asyncio.sleep(0)  # both submitted, neither run yet
    cancelled.cancel()
    await kept
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    assert [r[0] for r in await db.run(lambda c: c.execute("SELECT n FROM t").fetchall())] == [1]
    await db.close()


async def test_a_transaction_cancelled_while_waiting_for_a_lock_writes_nothing(
        tmp_path: Path) -> None:
    db, other = await locked_elsewhere(tmp_path / "w.sqlite3")
    waiting = asyncio.create_task(db.transaction(inserting(1)))
    await asyncio.sleep(0.05)
    waiting.cancel()
    other.execute("COMMIT")
    await asyncio.sleep(0.2)
    await db.transaction(inserting(2))
    assert [r[0] for r in await db.run(lambda c: c.execute("SELECT n FROM t").fetchall())] == [2]
    other.close()
    await db.close()


async def test_a_file_locked_before_it_could_be_opened_is_the_store_unavailable_until_let_go(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A file not yet in WAL mode under an exclusive lock (readers wait too): the read fails as
    the store being unavailable rather than never being answered, and the next one, once the
    lock is let go, opens the file."""
    monkeypatch.setattr(sqlite_module, "BUSY_TIMEOUT_MS", 100)
    path = tmp_path / "x.sqlite3"
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("CREATE TABLE t (n INTEGER)")
    other.execute("BEGIN EXCLUSIVE")
    db = SqliteDB(path)
    with pytest.raises(StoreUnavailable) as failed:
        await asyncio.wait_for(db.run(lambda c: c.execute("SELECT count(*) FROM t").fetchone()), 2)
    unavailable(failed.value)
    other.execute("COMMIT")
    other.close()
    assert await asyncio.wait_for(db.run(lambda c: c.execute("SELECT count(*) FROM t").fetchone()[0]), 2) == 0
    await db.close()


async def test_processes_opening_a_new_file_at_once_all_open_it(tmp_path: Path) -> None:
    """Each switches the file to WAL; SQLite refused all but one at once, without the busy wait
    (a second `bloop serve` started beside the first failed a call, or its start-up)."""
    for attempt in range(20):
        path = tmp_path / f"x{attempt}.sqlite3"
        dbs = [SqliteDB(path) for _ in range(6)]
        try:
            counts = await asyncio.wait_for(asyncio.gather(*(
                db.run(lambda c: c.execute("SELECT count(*) FROM sqlite_master").fetchone()[0])
                for db in dbs)), 10)
            assert counts == [0] * len(dbs)
        finally:
            for db in dbs:
                await db.close()


def _modes(path: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mode & 0o777 for p in sorted(path.parent.glob(f"{path.name}*"))}


async def test_the_files_are_readable_by_their_owner_alone(tmp_path: Path) -> None:
    """identity.sqlite3 (signing keys, password hashes) was made 0644, and its WAL with it."""
    made = os.umask(0o022)
    try:
        new = tmp_path / "new.sqlite3"
        db = SqliteDB(new)
        await db.transaction(lambda c: c.execute("CREATE TABLE t (x)"))
        await db.run(lambda c: c.execute("SELECT * FROM t").fetchall())
        assert _modes(new) == {"new.sqlite3": 0o600, "new.sqlite3-shm": 0o600,
                               "new.sqlite3-wal": 0o600}
        await db.close()

        # Files an earlier version made, the WAL of another process still open.
        old = tmp_path / "old.sqlite3"
        other = sqlite3.connect(old)
        other.execute("PRAGMA journal_mode=WAL")
        other.execute("CREATE TABLE t (x)")
        other.commit()
        assert set(_modes(old).values()) == {0o644}
        db = SqliteDB(old)
        await db.transaction(lambda c: c.execute("INSERT INTO t VALUES (1)"))
        assert _modes(old) == {"old.sqlite3": 0o600, "old.sqlite3-shm": 0o600,
                               "old.sqlite3-wal": 0o600}
        other.close()
        await db.close()
    finally:
        os.umask(made)
