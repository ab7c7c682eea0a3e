"""Reads of stored bytes close their file even when a client's disconnect cancels the read as it
ends (a cancelled close left the file open until the garbage collector came)."""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from bloop.platform.content.media.model import MediaInfo, new_media_id
from bloop.platform.content.media.stores.files import FileMediaStore
from bloop.platform.content.model import now
from bloop.platform.kit.sqlite import SqliteDB


def open_copies(path: Path) -> int:
    """How many of this process's file descriptors are `path`."""
    found = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            found += os.readlink(f"/proc/self/fd/{fd}") == str(path)
        except OSError:
            continue
    return found


async def cancel_as_it_ends(chunks: AsyncIterator[bytes], size: int,
                            monkeypatch: pytest.MonkeyPatch) -> None:
    """Reads every byte, then cancels the step that ends the read while anything it hands to a
    thread waits for one, as a server does when the client closes as soon as it has the last
    byte and the loop's threads are busy."""
    got = 0
    while got < size:
        got += len(await anext(chunks))
    busy = asyncio.Event()
    real = asyncio.to_thread

    async def held(fn: Callable[..., Any], /, *args: Any) -> Any:
        await busy.wait()  # no thread free yet
        return await real(fn, *args)

    monkeypatch.setattr(asyncio, "to_thread", held)
    ending = asyncio.ensure_future(anext(chunks, b""))
    await asyncio.sleep(0)
    ending.cancel()
    busy.set()
    await asyncio.gather(ending, return_exceptions=True)


async def test_a_stored_file_read_to_its_end_is_closed_when_the_end_is_cancelled(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = os.urandom(300_000)
    source = tmp_path / "source"
    source.write_bytes(data)
    db = SqliteDB(tmp_path / "content.sqlite3")
    store = FileMediaStore(db, tmp_path / "media")
    await store.setup()
    info = MediaInfo(id=new_media_id(), tenant="acme", filename="clip.mp4",
                     content_type="video/mp4", kind="video", size=len(data),
                     sha256=hashlib.sha256(data).hexdigest(), created_by="u1", created_at=now())
    await store.put(info, source)
    stored = next(p for p in (tmp_path / "media").rglob("*") if p.is_file())
    try:
        await cancel_as_it_ends(store.read("acme", info.id, 0, len(data)), len(data),
                                monkeypatch)
        assert open_copies(stored) == 0
    finally:
        await db.close()
