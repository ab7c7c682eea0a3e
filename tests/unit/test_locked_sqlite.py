"""An embedded store's file whose write lock another process holds past the wait (`bloop seed`
or `bloop tenant create` beside `bloop serve`, a backup tool): the store is unavailable, as one
that is down. Routes that need the lock answer 503 with Retry-After and write nothing; reads go
on; consumers wait for the lock instead of dead-lettering, and deliver once it is let go."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import typer

from bloop.platform.kit import sqlite as sqlite_module
from bloop.platform.kit.events.bus.embedded import EmbeddedEventBus
from bloop.platform.learning.service import LearningService
from tests.support import embedded_app, eventually, member

BASE = "/v1/tenants/acme"


@pytest.fixture(autouse=True)
def short_waits(monkeypatch: pytest.MonkeyPatch) -> None:
    """The waits for a lock held elsewhere, 5 s each, cut short (before the app connects)."""
    monkeypatch.setattr(sqlite_module, "LOCK_WAIT_S", 0.1)
    monkeypatch.setattr(sqlite_module, "BUSY_TIMEOUT_MS", 100)


@contextmanager
def write_locked(path: Path) -> Iterator[None]:
    """Another connection holds the file's write lock, as another process would."""
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        yield
    finally:
        other.execute("ROLLBACK")
        other.close()


async def test_a_route_needing_a_write_lock_held_elsewhere_answers_503_and_writes_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async with embedded_app(tmp_path, monkeypatch, ["identity", "content"]) as (app, c):
        c.headers.update(await member(app, c, "acme", ["educator"]))
        assert (await c.post(f"{BASE}/courses", json={"id": "py", "title": "Python"})
                ).status_code == 201

        with write_locked(tmp_path / "content.sqlite3"):
            r = await c.post(f"{BASE}/courses", json={"id": "js", "title": "JS"})
            assert r.status_code == 503, r.text
            assert r.headers["content-type"] == "application/problem+json"
            assert int(r.headers["Retry-After"]) > 0
            assert (r.json()["code"], r.json()["store"]) == ("store_unavailable", "sqlite:content")
            r = await c.post("/graphql", json={"query": '{ course(tenant: "acme", id: "py")'
                                                        " { title } }"})
            assert r.json()["data"]["course"]["title"] == "Python", "reads go on"
            assert (await c.get(f"{BASE}/courses/py")).status_code == 200

        assert (await c.get(f"{BASE}/courses/js")).status_code == 404, "half-written"
        assert (await c.post(f"{BASE}/courses", json={"id": "js", "title": "JS"})
                ).status_code == 201


async def test_a_statement_sqlite_refuses_is_still_a_500(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Only a lock is the store being unavailable: a mistake in a statement is ours."""
    async with embedded_app(tmp_path, monkeypatch, ["identity", "content"]) as (app, c):
        c.headers.update(await member(app, c, "acme", ["educator"]))
        repo = app.state.content.state["service"].repo

        async def mistaken(*_: object, **__: object) -> None:
            await repo.db.transaction(lambda conn: conn.execute("INSERT INTO nowhere VALUES (1)"))

        monkeypatch.setattr(repo, "add_course", mistaken)
        r = await c.post(f"{BASE}/courses", json={"id": "js", "title": "JS"})
        assert (r.status_code, r.json()["code"]) == (500, "internal_error")


@pytest.fixture
async def authoring(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                    ) -> AsyncIterator[tuple[httpx.AsyncClient, EmbeddedEventBus, LearningService]]:
    async with embedded_app(tmp_path, monkeypatch, ["identity", "content", "learning"]) as (app, c):
        c.headers.update(await member(app, c, "acme", ["educator"]))
        bus = app.state.platform.bus
        assert isinstance(bus, EmbeddedEventBus)
        yield c, bus, app.state.learning.state["service"]


async def test_a_consumer_waits_for_a_lock_held_elsewhere_and_then_delivers(
        tmp_path: Path, authoring: tuple[httpx.AsyncClient, EmbeddedEventBus, LearningService],
        caplog: pytest.LogCaptureFixture) -> None:
    """Learning's file locked while a course is published: its consumer fails more often than
    its attempts allow, waits rather than dead-letters, and projects the course once the lock is
    let go."""
    c, bus, learning = authoring
    caplog.set_level(logging.WARNING, "bloop.events")
    await c.post(f"{BASE}/concepts", json={"id": "loops", "name": "Loops"})
    await c.post(f"{BASE}/courses", json={"id": "py", "title": "Python"})
    r = await c.post(f"{BASE}/courses/py/lessons", json={"title": "Loops", "teaches": ["loops"]})
    lesson = r.json()["id"]

    def failures() -> list[logging.LogRecord]:
        return [r for r in caplog.records
                if r.getMessage() == "handler failed" and getattr(r, "group", "") == "learning"]

    with write_locked(tmp_path / "learning.sqlite3"):
        assert (await c.post(f"{BASE}/courses/py/publish")).status_code == 200

        async def failed_past_its_attempts() -> bool:
            return len(failures()) > 3  # BLOOP_KAFKA_MAX_ATTEMPTS

        await eventually(failed_past_its_attempts, timeout_s=20,
                         what="learning's handler failing on the lock past its attempts")
        assert all(getattr(r, "store_down", False) for r in failures()), [
            getattr(r, "error", "") for r in failures()]
        assert "StoreUnavailable" in getattr(failures()[0], "error", "")

    async def projected() -> bool:
        return (await learning.repo.get_lesson("acme", lesson)) is not None

    await eventually(projected, timeout_s=20, what="learning projected the published lesson")
    await eventually(lambda: bus.drained("learning"), timeout_s=20, what="learning caught up")
    assert await bus.dead_letters("content.events") == []
    assert not [r for r in caplog.records if r.getMessage() == "event dead-lettered"]


def test_a_command_meeting_a_lock_held_elsewhere_says_so_in_one_line(
        capsys: pytest.CaptureFixture[str]) -> None:
    """`bloop tenant create` meeting a file that another command holds: one line, no traceback."""
    from bloop.cli import _until_done
    from bloop.platform.kit.errors import StoreUnavailable

    async def locked() -> None:
        raise StoreUnavailable("sqlite", "database is locked")

    with pytest.raises(typer.Exit) as ended:
        _until_done(locked)
    assert ended.value.exit_code == 1
    assert capsys.readouterr().err.splitlines() == [
        "bloop: a store is down (a file under BLOOP_DATA_DIR is locked by another process); "
        "try again once it is done"]
