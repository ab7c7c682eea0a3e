"""An import whose process dies part-way (no undo runs): its lessons are all stored or none, a
sweep leaves an import still running alone, and once its hold expires deletes the media of an
import whose lessons were never stored, except those another upload claimed."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI

from bloop.platform.app import create_app
from bloop.platform.content.media.refs import referenced_media
from bloop.platform.content.media.service import MediaService
from bloop.platform.content.model import Course, NewCourse, now
from bloop.platform.content.service import ContentService
from bloop.platform.content.uploads.service import Incoming, UploadService
from bloop.platform.kit.settings import RuntimeSettings, Settings
from tests.unit.content import media_samples as s


class Killed(BaseException):
    """The process dies: nothing after the write that raised it runs."""


@pytest.fixture
async def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FastAPI]:
    for var in ("BLOOP_STORE", "BLOOP_MONGO_ADAPTER", "BLOOP_KAFKA_ADAPTER", "BLOOP_REDIS_ADAPTER"):
        monkeypatch.delenv(var, raising=False)
    settings = Settings(runtime=RuntimeSettings(data_dir=tmp_path, seed_demo=False))
    application = create_app(settings, services=["identity", "content"])
    async with application.router.lifespan_context(application):
        content: ContentService = application.state.content.state["service"]
        await content.repo.add_course(Course.create("acme", NewCourse(id="py", title="Python")))
        yield application


def sent(tmp_path: Path) -> list[Incoming]:
    """Three lessons (two of a zip, one of a PDF) and two media (an image, the PDF)."""
    pack = tmp_path / "pack.zip"
    pack.write_bytes(s.zip_of({"one.md": b"# One\n\n![a](a.png)", "two.md": b"# Two\n\nText.",
                               "a.png": s.png()}))
    doc = tmp_path / "doc.pdf"
    doc.write_bytes(s.pdf("text"))
    return [Incoming("pack.zip", pack), Incoming("doc.pdf", doc)]


def dying_at(kill_at: int, app: FastAPI, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Makes the `kill_at`-th write of an import (a hold, a media, lessons) the last the process
    makes, and its undo never run; returns the names of the writes made."""
    uploads: UploadService = app.state.content.state["uploads"]
    content: ContentService = app.state.content.state["service"]
    media: MediaService = app.state.content.state["media"]
    made: list[str] = []

    def dying(name: str, write: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        async def run(*args: Any, **kwargs: Any) -> Any:
            result = await write(*args, **kwargs)
            made.append(name)
            if len(made) == kill_at:
                raise Killed
            return result
        return run

    for target, name in [(media.store, "put"), (content.repo, "add_lesson"),
                         (content.repo, "add_lessons"), (getattr(uploads, "holds", None), "add"),
                         (getattr(uploads, "holds", None), "release")]:
        if target is not None and hasattr(target, name):
            monkeypatch.setattr(target, name, dying(name, getattr(target, name)))

    async def undo(*args: Any) -> None:
        return None  # the process is gone: no undo runs

    monkeypatch.setattr(uploads, "_undo", undo)
    return made


async def stored(app: FastAPI) -> tuple[list[str], list[str], set[str]]:
    """The course's lessons, the tenant's media, and the media the lessons show."""
    content: ContentService = app.state.content.state["service"]
    media: MediaService = app.state.content.state["media"]
    lessons = await content.repo.list_lessons("acme", "py")
    return ([x.title for x in lessons], sorted(m.filename for m in (await media.media("acme")).items),
            referenced_media(lessons))


@pytest.mark.parametrize("kill_at", [1, 2, 3, 4, 5])
async def test_a_killed_import_leaves_all_its_lessons_or_none_and_no_media_for_good(
        app: FastAPI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kill_at: int) -> None:
    uploads: UploadService = app.state.content.state["uploads"]
    media: MediaService = app.state.content.state["media"]
    made = dying_at(kill_at, app, monkeypatch)
    with pytest.raises(Killed):
        await uploads.import_files("acme", "py", sent(tmp_path))
    assert len(made) == kill_at
    monkeypatch.undo()

    lessons, _, _ = await stored(app)
    assert lessons in ([], ["One", "Two", "Doc"])  # together or not at all
    before = await stored(app)
    assert await uploads.sweep() == 0  # the import might still be running: nothing is taken
    assert await stored(app) == before

    started = now()
    uploads.clock = lambda: started + timedelta(seconds=uploads.settings.hold_s + 1)
    await uploads.sweep()
    lessons, files, shown = await stored(app)
    ids = {m.id for m in (await media.media("acme")).items}
    assert ids == shown  # every media left is one a lesson shows
    assert files == ([] if not lessons else ["a.png", "doc.pdf"])


async def test_the_sweep_keeps_media_another_upload_claimed(
        app: FastAPI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    uploads: UploadService = app.state.content.state["uploads"]
    media: MediaService = app.state.content.state["media"]
    dying_at(3, app, monkeypatch)  # the hold, both media, then no lessons
    with pytest.raises(Killed):
        await uploads.import_files("acme", "py", sent(tmp_path))
    monkeypatch.undo()
    again = tmp_path / "again.png"
    again.write_bytes(s.png())
    kept = await media.upload_file("acme", again, filename="again.png")
    assert not kept.created  # the same bytes: the import's media, claimed

    started = now()
    uploads.clock = lambda: started + timedelta(seconds=uploads.settings.hold_s + 1)
    assert await uploads.sweep() == 1
    assert await stored(app) == ([], ["a.png"], set())
    assert await uploads.sweep() == 0  # the hold is gone
