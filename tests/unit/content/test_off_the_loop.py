"""The CPU-heavy work of an import and of search's indexing runs in worker threads, not on the
event loop (a 1,500-lesson zip held the loop for 8 s at a time, and indexing its course for
5 s), and an import checks each lesson once (it checked each three times)."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pydantic import TypeAdapter

from bloop.platform.content import model
from bloop.platform.content.media.model import Media, MediaInfo
from bloop.platform.content.model import Course, Lesson, MarkdownBlock, NewCourse, NewLesson
from bloop.platform.content.search import model as search_model
from bloop.platform.content.search.service import SearchService
from bloop.platform.content.stores import embedded
from bloop.platform.content.stores.embedded import EmbeddedContentStore
from bloop.platform.content.uploads import markdown
from bloop.platform.content.uploads import service as uploads
from bloop.platform.content.uploads.api import result_json
from bloop.platform.content.uploads.service import ImportResult
from bloop.platform.kit.events.types import registry
from bloop.platform.kit.sqlite import SqliteDB
from bloop.platform.kit.threads import each_in_thread
from tests.support import embedded_app, member
from tests.unit.content import media_samples as s

BASE = "/v1/tenants/acme"
LESSONS = 60  # more than one piece of `each_in_thread`


@pytest.fixture
async def running(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                  ) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    async with embedded_app(tmp_path, monkeypatch, ["identity", "content"]) as (app, c):
        c.headers.update(await member(app, c, "acme", ["educator"]))
        assert (await c.post(f"{BASE}/courses", json={"id": "py", "title": "Python"})
                ).status_code == 201
        yield app, c


@pytest.fixture
def app(running: tuple[FastAPI, httpx.AsyncClient]) -> FastAPI:
    return running[0]


@pytest.fixture
def client(running: tuple[FastAPI, httpx.AsyncClient]) -> httpx.AsyncClient:
    return running[1]


class Calls:
    """The threads a function was called from (the loop's is the test's)."""

    def __init__(self) -> None:
        self.threads: list[int] = []

    def wrap(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        def recorded(*args: Any, **kwargs: Any) -> Any:
            self.threads.append(threading.get_ident())
            return fn(*args, **kwargs)

        return recorded

    def off_the_loop(self) -> bool:
        return bool(self.threads) and threading.get_ident() not in self.threads


def lesson_file(n: int) -> bytes:
    return (f"---\ntitle: Lesson {n}\n---\n\n# Lesson {n}\n\nThe sum $x_{n}^2$ grows.\n\n"
            f"```python\nprint({n})\n```\n").encode()


def words(n: int) -> str:
    """16 kB of words that do not compress like a zip bomb."""
    return " ".join(f"w{(n * 7919 + i * 104729) % 100003}" for i in range(2500))[:16000]


async def test_an_import_reads_and_checks_its_lessons_off_the_loop_once_each(
        client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch) -> None:
    checked, parsed, counted = Calls(), Calls(), Calls()
    monkeypatch.setattr(model, "check_math", checked.wrap(model.check_math))
    monkeypatch.setattr(markdown, "parse_markdown", parsed.wrap(markdown.parse_markdown))
    monkeypatch.setattr(uploads, "_words", counted.wrap(uploads._words))
    pack = s.zip_of({f"lesson-{n:02d}.md": lesson_file(n) for n in range(LESSONS)})
    r = await client.post(f"{BASE}/courses/py/uploads",
                          files=[("files", ("course.zip", pack, "application/zip"))])
    assert r.status_code == 201, r.text
    lessons = r.json()["lessons"]
    assert [x["title"] for x in lessons] == [f"Lesson {n}" for n in range(LESSONS)]
    blocks = sum(1 for x in lessons for b in x["blocks"] if b["type"] == "markdown")
    assert len(checked.threads) == blocks  # each block's math checked once, not three times
    assert checked.off_the_loop()
    assert parsed.off_the_loop()
    assert counted.off_the_loop()


async def test_a_lesson_showing_a_file_of_the_upload_is_checked_again_with_its_media(
        client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch) -> None:
    """Once its media are stored the lesson is made again, naming them (off the loop too)."""
    checked = Calls()
    monkeypatch.setattr(model, "check_math", checked.wrap(model.check_math))
    r = await client.post(f"{BASE}/courses/py/uploads", files=[
        ("files", ("dot.md", b"# Dot\n\n$x$ is ![dot](dot.png) wide\n", "text/markdown")),
        ("files", ("dot.png", s.png(), "image/png"))])
    assert r.status_code == 201, r.text
    [lesson], [media] = r.json()["lessons"], r.json()["media"]
    assert media["id"] in lesson["blocks"][0]["markdown"]
    assert len(checked.threads) == 2
    assert checked.off_the_loop()


async def test_an_import_s_answer_is_the_json_fastapi_would_write() -> None:
    at = model.now()
    lessons = [Lesson.create("acme", "py", NewLesson(
        title=f"Lesson {n} «ü»", blocks=[MarkdownBlock(markdown=f"Text {n} $x$")]), at)
        for n in range(LESSONS + 3)]
    media = MediaInfo(id="a" * 32, tenant="acme", filename="dot.png", content_type="image/png",
                      kind="image", size=3, sha256="0" * 64, created_at=at)
    for result in (ImportResult(lessons=lessons, media=[Media.of(media)],
                                notes=["a note"]),
                   ImportResult(lessons=lessons[:1], media=[], notes=[]),
                   ImportResult(lessons=[], media=[], notes=[])):
        assert await result_json(result) == TypeAdapter(ImportResult).dump_json(
            result, by_alias=True)


async def test_a_course_sync_reads_the_lessons_text_off_the_loop(
        app: FastAPI, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch) -> None:
    pack = s.zip_of({f"lesson-{n:02d}.md": f"# Lesson {n}\n\n{words(n)}\n".encode()
                     for n in range(LESSONS)})
    r = await client.post(f"{BASE}/courses/py/uploads",
                          files=[("files", ("course.zip", pack, "application/zip"))])
    assert r.status_code == 201, r.text
    assert (await client.post(f"{BASE}/courses/py/publish")).status_code == 200
    service: SearchService = app.state.content.state["search"]
    text, read = Calls(), Calls()
    monkeypatch.setattr(search_model, "lesson_text", text.wrap(search_model.lesson_text))
    monkeypatch.setattr(embedded, "_lesson", read.wrap(embedded._lesson))
    await service.sync_course("acme", "py")
    assert len(text.threads) >= LESSONS  # and the consumer's, after the publication
    assert text.off_the_loop()
    assert read.off_the_loop()  # 1 MB of lessons read back from JSON

    text.threads = []
    await service.sync_lesson("acme", r.json()["lessons"][0]["id"])
    assert text.off_the_loop()
    assert await service.index.count("acme") == LESSONS + 1


async def test_lessons_added_together_follow_one_added_while_they_were_written_out(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The embedded store writes the lessons' JSON where the course's lessons ended when it
    looked, off the loop; a lesson added meanwhile moves them on, in the transaction."""
    db = SqliteDB(tmp_path / "content.sqlite3")
    store = EmbeddedContentStore(db, registry)
    await store.setup()
    course = Course.create("acme", NewCourse(id="py", title="Python"))
    await store.add_course(course)

    def new(title: str) -> Lesson:
        return Lesson.create("acme", "py", NewLesson(title=title))

    meanwhile: list[Lesson] = []

    async def late(fn: Callable[[Any], Any], items: Any) -> list[Any]:
        if not meanwhile:
            meanwhile.append(await store.add_lesson(new("Meanwhile")))
        return await each_in_thread(fn, items)

    monkeypatch.setattr(embedded, "each_in_thread", late)
    try:
        placed = await store.add_lessons([new("One"), new("Two")])
        assert [(x.title, x.position) for x in placed] == [("One", 1), ("Two", 2)]
        assert [(x.title, x.position) for x in await store.list_lessons("acme", "py")] == [
            ("Meanwhile", 0), ("One", 1), ("Two", 2)]
        stored = await store.get_course("acme", "py")
        assert stored is not None
        assert (stored.lesson_count, stored.next_position) == (3, 3)
    finally:
        await db.close()


async def test_the_work_is_done_in_order_a_piece_at_a_time() -> None:
    threads: set[int] = set()

    def square(n: int) -> int:
        threads.add(threading.get_ident())
        if n == 7:
            raise ValueError(n)
        return n * n

    assert await each_in_thread(square, range(5), at_once=2) == [0, 1, 4, 9, 16]
    assert threading.get_ident() not in threads
    with pytest.raises(ValueError, match="7"):
        await each_in_thread(square, range(10), at_once=3)
    assert await each_in_thread(square, []) == []
