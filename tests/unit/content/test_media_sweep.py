"""What killed uploads and imports leave in the spool (upload files, import folders) and in the
media store (bytes without their record) is swept at start and every
`BLOOP_MEDIA_SWEEP_INTERVAL_S`, once nothing has written to it for `BLOOP_MEDIA_SWEEP_AGE_S`;
younger leftovers stay, since another process may be writing them."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bloop.platform.app import create_app
from bloop.platform.content.media import service as media_module
from bloop.platform.content.media.ports import Swept
from bloop.platform.content.media.service import MediaService
from bloop.platform.content.media.settings import MediaSettings
from bloop.platform.content.media.stores.files import FileMediaStore
from bloop.platform.kit.settings import RuntimeSettings, Settings
from bloop.platform.kit.sqlite import SqliteDB
from tests.unit.content import media_samples as s

HOURS_AGO = time.time() - 2 * 3600


def written(path: Path, data: bytes, at: float | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    if at is not None:
        os.utime(path, (at, at))
    return path


def leftovers(spool: Path) -> dict[str, Path]:
    """Two of each, one old and one young: upload files, import folders; and one import folder
    old but for one file just written (an import unpacking a zip)."""
    old_import = spool / "import-old"
    busy_import = spool / "import-busy"
    found = {
        "old upload": written(spool / "upload-old.part", b"x" * 3000, HOURS_AGO),
        "young upload": written(spool / "upload-young.part", b"y" * 10),
        "old import": old_import,
        "young import": written(spool / "import-young" / "part-0000", b"z"),
        "busy import": busy_import,
        "not ours": written(spool / "notes.txt", b"n", HOURS_AGO),
    }
    written(old_import / "part-0000", b"a" * 100, HOURS_AGO)
    written(old_import / "zip-0" / "img" / "a.png", b"b" * 20, HOURS_AGO)
    for folder in (old_import / "zip-0" / "img", old_import / "zip-0", old_import):
        os.utime(folder, (HOURS_AGO, HOURS_AGO))
    written(busy_import / "part-0000", b"c" * 50, HOURS_AGO)
    written(busy_import / "zip-0" / "lesson.md", b"# new")
    os.utime(busy_import, (HOURS_AGO, HOURS_AGO))
    return found


@pytest.fixture
async def media(tmp_path: Path) -> AsyncIterator[MediaService]:
    async def nothing_published(tenant: str) -> set[str]:
        return set()

    db = SqliteDB(tmp_path / "content.sqlite3")
    service = MediaService(FileMediaStore(db, tmp_path / "media"), MediaSettings(),
                           tmp_path / "spool", nothing_published)
    await service.setup()
    yield service
    await db.close()


async def test_old_spool_files_and_import_folders_go_and_young_ones_stay(
        media: MediaService, caplog: pytest.LogCaptureFixture) -> None:
    found = leftovers(media.spool)
    orphan = written(media.spool.parent / "media" / "acme" / "ab" / "ab01", b"o" * 7, HOURS_AGO)
    with caplog.at_level(logging.INFO, "bloop.content.media"):
        swept = await media.sweep()
    assert swept == Swept(files=1 + 2 + 1, bytes=3000 + 100 + 20 + 7)
    gone = {name for name, path in found.items() if not path.exists()}
    assert gone == {"old upload", "old import"}
    assert not orphan.exists()
    logged = [(r.getMessage(), getattr(r, "files", None), getattr(r, "bytes", None))
              for r in caplog.records if r.levelno == logging.INFO]
    assert logged == [
        ("removed spool files of uploads and imports that ended unfinished", 3, 3120),
        ("removed stored media bytes that no record names", 1, 7)]
    assert await media.sweep() == Swept()


async def test_a_slow_upload_writes_its_spool_often_enough_to_look_alive(
        media: MediaService, monkeypatch: pytest.MonkeyPatch) -> None:
    """The sweep goes by a spool file's age, so an upload whose bytes trickle in writes what it
    has every `FLUSH_S`, well short of a MiB."""
    monkeypatch.setattr(media_module, "FLUSH_S", 0.0)
    data = s.mp4(20_000)
    on_disk: list[int] = []

    async def trickle() -> AsyncIterator[bytes]:
        yield data[:10_000]
        yield data[10_000:15_000]
        on_disk.extend(p.stat().st_size for p in media.spool.glob("upload-*.part"))
        yield data[15_000:]

    stored = await media.upload("acme", trickle(), filename="clip.mp4")
    assert stored.info.size == len(data)
    assert on_disk == [15_000]


async def test_the_app_sweeps_at_start(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("BLOOP_STORE", "BLOOP_MONGO_ADAPTER", "BLOOP_KAFKA_ADAPTER", "BLOOP_REDIS_ADAPTER"):
        monkeypatch.delenv(var, raising=False)
    found = leftovers(tmp_path / "spool")
    orphan = written(tmp_path / "media" / "acme" / "cd" / "cd01", b"o", HOURS_AGO)
    swept = asyncio.Event()
    sweep = MediaService.sweep

    async def sweep_once(self: MediaService) -> Swept:
        try:
            return await sweep(self)
        finally:
            swept.set()

    monkeypatch.setattr(MediaService, "sweep", sweep_once)
    app = create_app(Settings(runtime=RuntimeSettings(data_dir=tmp_path, seed_demo=False)),
                     services=["identity", "content"])
    async with app.router.lifespan_context(app):
        await asyncio.wait_for(swept.wait(), 30)
        assert not found["old upload"].exists()
        assert not found["old import"].exists()
        assert found["young upload"].exists()
        assert not orphan.exists()
        media: MediaService = app.state.content.state["media"]
        sweeping = media.sweeper._task
        assert sweeping is not None
        assert not sweeping.done()  # it sweeps again every BLOOP_MEDIA_SWEEP_INTERVAL_S
    assert sweeping.done()  # stopped with the app
