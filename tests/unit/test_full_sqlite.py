"""An embedded store whose file cannot take a write (a full disk, made here with SQLite's
`max_page_count`, which fails a write with SQLITE_FULL as a full disk does): routes answer 503
naming the store and keep nothing of the write, `/readyz` reports the store down, reads go on,
and once there is room again writes succeed and the store is reported up."""

from __future__ import annotations

import asyncio
import errno
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import typer
from fastapi import FastAPI

from bloop.platform.kit import sqlite as sqlite_module
from bloop.platform.kit.errors import StoreUnavailable
from bloop.platform.kit.sqlite import SqliteDB
from tests.support import PASSWORD, bounded, embedded_app, member

BASE = "/v1/tenants/acme"
NO_LIMIT = 1073741823  # SQLite's largest max_page_count


async def cap(db: SqliteDB, pages: int) -> None:
    """The writer connection may grow the file to `pages` pages at most (at least its size)."""
    await db.transaction(lambda c: c.execute(f"PRAGMA max_page_count={pages:d}").fetchone())


async def fill(c: httpx.AsyncClient, db: SqliteDB) -> tuple[str, httpx.Response]:
    """Caps `db` at its size and adds concepts until one is refused: that one's id, and answer."""
    await cap(db, 1)
    for n in range(500):
        r = await bounded(c.post(f"{BASE}/concepts", json={"id": f"c{n}", "name": "x" * 200}),
                          10, "a write to a full database")
        if r.status_code != 201:
            return f"c{n}", r
    raise AssertionError("a capped database took 500 concepts")


def unavailable(r: httpx.Response, store: str) -> None:
    assert r.status_code == 503, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert int(r.headers["Retry-After"]) > 0
    assert (r.json()["code"], r.json()["store"]) == ("store_unavailable", store)
    assert "full" in r.json()["detail"]


async def concepts(c: httpx.AsyncClient) -> set[str]:
    r = await c.get(f"{BASE}/concepts", params={"limit": 200})
    assert r.status_code == 200, r.text
    return {concept["id"] for concept in r.json()["items"]}


async def readiness(c: httpx.AsyncClient) -> tuple[int, dict[str, str]]:
    r = await c.get("/readyz")
    return r.status_code, {name: check["state"] for name, check in r.json()["checks"].items()}


@pytest.fixture
async def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
              ) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    async with embedded_app(tmp_path, monkeypatch, ["identity", "content"]) as (application, c):
        yield application, c


async def test_a_full_database_answers_503_keeps_nothing_and_is_reported_down_until_it_has_room(
        app: tuple[FastAPI, httpx.AsyncClient], monkeypatch: pytest.MonkeyPatch) -> None:
    application, c = app
    c.headers.update(await member(application, c, "acme", ["educator"]))
    assert (await c.post(f"{BASE}/concepts", json={"id": "kept", "name": "Kept"})).status_code == 201
    db = application.state.platform.sqlite("content")
    assert await readiness(c) == (200, {"sqlite:auth": "up", "sqlite:events": "up",
                                        "sqlite:identity": "up", "sqlite:content": "up"})

    refused, r = await fill(c, db)
    unavailable(r, "sqlite:content")
    assert refused not in await concepts(c), "half-written"
    events = await db.run(lambda conn: conn.execute(
        "SELECT count(*) FROM content_outbox WHERE key = ?", (refused,)).fetchone()[0])
    assert events == 0, "an event of the refused write was kept"
    assert "kept" in await concepts(c), "reads go on"
    status, checks = await readiness(c)
    assert status == 503
    assert checks == {"sqlite:auth": "up", "sqlite:events": "up", "sqlite:identity": "up",
                      "sqlite:content": "down"}
    assert "full" in (await c.get("/readyz")).json()["checks"]["sqlite:content"]["error"]

    await cap(db, NO_LIMIT)
    monkeypatch.setattr(sqlite_module, "ROOM_BYTES", 1 << 62)  # the disk still has no room
    r = await c.post(f"{BASE}/concepts", json={"id": refused, "name": "x" * 200})
    assert r.status_code == 201, "writes recover by themselves once there is room"
    assert (await readiness(c))[0] == 503, "one write that fits does not prove there is room"
    monkeypatch.setattr(sqlite_module, "ROOM_BYTES", 4096)
    assert await readiness(c) == (200, {"sqlite:auth": "up", "sqlite:events": "up",
                                        "sqlite:identity": "up", "sqlite:content": "up"}), (
        "a write on a disk with room: up at once, not 30 s after the last failure")


async def test_a_sign_in_on_a_full_identity_store_answers_503(
        app: tuple[FastAPI, httpx.AsyncClient]) -> None:
    """A password sign-in writes (the user's last sign-in, a refresh token): with identity's
    file full it is refused as the store being unavailable, not a 500."""
    application, c = app
    await member(application, c, "acme", ["educator"], email="full@acme.test")
    db = application.state.platform.sqlite("identity")
    await cap(db, 1)
    for _ in range(200):
        r = await bounded(c.post("/v1/auth/token", data={
            "grant_type": "password", "tenant": "acme", "username": "full@acme.test",
            "password": PASSWORD}), 10, "a sign-in on a full database")
        if r.status_code != 200:
            break
    unavailable(r, "sqlite:identity")


@pytest.mark.parametrize(("code", "damaged"), [
    (sqlite3.SQLITE_FULL, False), (sqlite3.SQLITE_IOERR_WRITE, False),
    (sqlite3.SQLITE_READONLY, False), (sqlite3.SQLITE_CANTOPEN, False),
    (sqlite3.SQLITE_CORRUPT, True), (sqlite3.SQLITE_NOTADB, True)])
async def test_each_error_of_the_file_is_the_store_unavailable(
        tmp_path: Path, code: int, damaged: bool, caplog: pytest.LogCaptureFixture) -> None:
    """Raised by SQLite inside a transaction: the transaction keeps nothing and fails as the
    store being unavailable, logged once (at ERROR for a damaged file, which needs an
    operator); the probe reports it down."""
    db = SqliteDB(tmp_path / "s.sqlite3")
    await db.transaction(lambda c: c.execute("CREATE TABLE t (n INTEGER)"))

    def failing(c: sqlite3.Connection) -> None:
        c.execute("INSERT INTO t VALUES (1)")
        exc = sqlite3.OperationalError("the file failed")
        exc.sqlite_errorcode = code
        raise exc

    for _ in range(2):
        with pytest.raises(StoreUnavailable) as raised:
            await db.transaction(failing)
        assert (raised.value.status, raised.value.extra) == (503, {"store": "sqlite:s"})
        assert isinstance(raised.value.__cause__, sqlite3.OperationalError)
    assert await db.run(lambda c: c.execute("SELECT count(*) FROM t").fetchone()[0]) == 0
    logged = [r for r in caplog.records if r.name == "bloop.sqlite"]
    assert [r.levelname for r in logged] == ["ERROR" if damaged else "WARNING"]
    with pytest.raises(StoreUnavailable):
        await db.ping()
    await db.close()


async def test_a_read_only_file_is_the_store_unavailable(tmp_path: Path) -> None:
    """SQLite's own SQLITE_READONLY (as a file remounted read-only gives)."""
    db = SqliteDB(tmp_path / "r.sqlite3")
    await db.transaction(lambda c: c.execute("CREATE TABLE t (n INTEGER)"))
    await db.transaction(lambda c: c.execute("PRAGMA query_only=ON"))
    with pytest.raises(StoreUnavailable) as raised:
        await db.transaction(lambda c: c.execute("INSERT INTO t VALUES (1)"))
    assert raised.value.extra == {"store": "sqlite:r"}
    await db.close()


async def test_a_transaction_sqlite_rolled_back_itself_fails_its_whole_group(
        tmp_path: Path) -> None:
    """On a full disk or an I/O error SQLite may roll the whole transaction back, not only the
    statement: the group's other transactions, committed with it, are lost too and fail;
    none is left waiting, and one run after it is not committed on its own."""
    db = SqliteDB(tmp_path / "g.sqlite3")
    await db.transaction(lambda c: c.execute("CREATE TABLE t (n INTEGER)"))

    def rolled_back(c: sqlite3.Connection) -> None:
        c.execute("INSERT INTO t VALUES (2)")
        c.execute("ROLLBACK")  # as SQLite does by itself
        exc = sqlite3.OperationalError("disk I/O error")
        exc.sqlite_errorcode = sqlite3.SQLITE_IOERR
        raise exc

    failed = await asyncio.wait_for(asyncio.gather(
        db.transaction(lambda c: c.execute("INSERT INTO t VALUES (1)")),
        db.transaction(rolled_back),
        db.transaction(lambda c: c.execute("INSERT INTO t VALUES (3)")),
        return_exceptions=True), 2)
    assert all(isinstance(exc, StoreUnavailable) for exc in failed), failed
    assert await db.run(lambda c: c.execute("SELECT count(*) FROM t").fetchone()[0]) == 0
    await db.transaction(lambda c: c.execute("INSERT INTO t VALUES (4)"))
    assert [tuple(r) for r in await db.run(lambda c: c.execute("SELECT n FROM t").fetchall())] == [(4,)]
    await db.close()


def test_a_full_disk_is_not_the_same_errno_as_a_missing_file() -> None:
    """Only the disk refusing a write is the store being unavailable."""
    from bloop.platform.kit.errors import disk_unavailable

    full = disk_unavailable(OSError(errno.ENOSPC, "No space left on device"))
    assert full is not None
    assert (full.status, full.extra) == (503, {"store": "disk"})
    assert disk_unavailable(FileNotFoundError(errno.ENOENT, "gone")) is None


def test_a_command_meeting_a_full_store_says_so_in_one_line(
        capsys: pytest.CaptureFixture[str]) -> None:
    from bloop.cli import _until_done

    async def full() -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(typer.Exit):
        _until_done(full)
    assert capsys.readouterr().err.splitlines() == [
        "bloop: a store is down (disk: no space left on device); free space or check the files "
        "under BLOOP_DATA_DIR"]
