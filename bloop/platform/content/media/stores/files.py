"""The embedded media store: each file's bytes on disk under `root/<tenant>/`, its record in
SQLite (table `media`). The bytes are moved into place before the record is written, and the
record is removed before the bytes, so a record never points at missing bytes; a crash between
the two leaves at most an unreferenced file, which `sweep_orphans` removes once it is old enough
that no put can be about to record it.

Table `media_bytes` names, for each of a tenant's bytes and type (sha256, content type), the one
media a new upload of them is deduplicated onto; a record is written only when its bytes and type
have none yet, in the same transaction. (Media stored before the table may share their bytes;
the table names the oldest, and is filled in for them on every start.)"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import sqlite3
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path

from bloop.platform.content.media.model import MediaInfo
from bloop.platform.content.media.ports import MediaExists, MediaMissing, Swept
from bloop.platform.kit.pagination import Slice, key_of
from bloop.platform.kit.read_back import STORED
from bloop.platform.kit.sqlite import SqliteDB

SCHEMA = """
CREATE TABLE IF NOT EXISTS media (
  tenant TEXT NOT NULL, id TEXT NOT NULL, sha256 TEXT NOT NULL, size INTEGER NOT NULL,
  created_at TEXT NOT NULL, doc TEXT NOT NULL, PRIMARY KEY (tenant, id));
CREATE INDEX IF NOT EXISTS media_sha256 ON media (tenant, sha256);
CREATE INDEX IF NOT EXISTS media_created ON media (tenant, created_at);
CREATE TABLE IF NOT EXISTS media_claims (
  tenant TEXT NOT NULL, id TEXT NOT NULL, PRIMARY KEY (tenant, id));
CREATE TABLE IF NOT EXISTS media_bytes (
  tenant TEXT NOT NULL, sha256 TEXT NOT NULL, content_type TEXT NOT NULL, id TEXT NOT NULL,
  PRIMARY KEY (tenant, sha256, content_type));
"""
HOLDERS = """
INSERT OR IGNORE INTO media_bytes (tenant, sha256, content_type, id)
SELECT tenant, sha256, json_extract(doc, '$.content_type'), id FROM media
"""
CHUNK = 256 * 1024


class FileMediaStore:
    def __init__(self, db: SqliteDB, root: Path) -> None:
        self.db = db
        self.root = root

    def _path(self, tenant: str, media_id: str) -> Path:
        return self.root / tenant / media_id[:2] / media_id

    async def setup(self) -> None:
        await asyncio.to_thread(self.root.mkdir, parents=True, exist_ok=True)
        await self.db.run(lambda c: c.executescript(SCHEMA))
        await self.db.transaction(lambda c: c.execute(f"{HOLDERS} ORDER BY created_at, id"))

    async def put(self, info: MediaInfo, source: Path) -> MediaInfo:
        target = self._path(info.tenant, info.id)

        def place() -> None:
            if target.exists():
                raise MediaExists(info.id)
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.replace(source, target)
            except OSError:  # another file system: copy, then let the caller drop `source`
                try:
                    shutil.copyfile(source, target)
                except BaseException:  # a full disk: no part of a file is left behind
                    target.unlink(missing_ok=True)
                    raise

        def write(c: sqlite3.Connection) -> MediaInfo:
            held = c.execute(
                "SELECT m.doc FROM media_bytes b JOIN media m ON m.tenant = b.tenant AND m.id = b.id"
                " WHERE b.tenant = ? AND b.sha256 = ? AND b.content_type = ?",
                (info.tenant, info.sha256, info.content_type)).fetchone()
            if held is not None:
                kept = MediaInfo.model_validate_json(held["doc"], context=STORED)
                c.execute("INSERT OR IGNORE INTO media_claims (tenant, id) VALUES (?, ?)",
                          (kept.tenant, kept.id))
                return kept
            c.execute("INSERT INTO media (tenant, id, sha256, size, created_at, doc)"
                      " VALUES (?, ?, ?, ?, ?, ?)",
                      (info.tenant, info.id, info.sha256, info.size, _created(info),
                       info.model_dump_json()))
            c.execute("INSERT OR REPLACE INTO media_bytes (tenant, sha256, content_type, id)"
                      " VALUES (?, ?, ?, ?)",
                      (info.tenant, info.sha256, info.content_type, info.id))
            return info

        await asyncio.to_thread(place)
        try:
            kept = await self.db.transaction(write)
        except BaseException as exc:
            await asyncio.to_thread(target.unlink, missing_ok=True)
            if isinstance(exc, sqlite3.IntegrityError):
                raise MediaExists(info.id) from None
            raise
        if kept.id != info.id:
            await asyncio.to_thread(target.unlink, missing_ok=True)
        return kept

    async def get(self, tenant: str, media_id: str) -> MediaInfo | None:
        row = await self.db.run(lambda c: c.execute(
            "SELECT doc FROM media WHERE tenant = ? AND id = ?", (tenant, media_id)).fetchone())
        return None if row is None else MediaInfo.model_validate_json(row["doc"], context=STORED)

    async def find_by_checksum(self, tenant: str, sha256: str) -> MediaInfo | None:
        row = await self.db.run(lambda c: c.execute(
            "SELECT doc FROM media WHERE tenant = ? AND sha256 = ? ORDER BY created_at LIMIT 1",
            (tenant, sha256)).fetchone())
        return None if row is None else MediaInfo.model_validate_json(row["doc"], context=STORED)

    async def list_media(self, tenant: str, *, after: str | None = None,
                         limit: int = 100) -> Slice[MediaInfo]:
        where, args = "tenant = ?", list[object]([tenant])
        if after:
            created, media_id = key_of(after, str, str)
            where += " AND (created_at < ? OR (created_at = ? AND id > ?))"
            args += [created, created, media_id]
        rows = await self.db.run(lambda c: c.execute(
            f"SELECT doc FROM media WHERE {where} ORDER BY created_at DESC, id LIMIT ?",  # noqa: S608
            (*args, limit + 1)).fetchall())
        found = [MediaInfo.model_validate_json(r["doc"], context=STORED) for r in rows]
        return Slice.of(found, limit, lambda m: (_created(m), m.id))

    async def uploaded_by(self, tenant: str, user_id: str) -> list[MediaInfo]:
        rows = await self.db.run(lambda c: c.execute(
            "SELECT doc FROM media WHERE tenant = ? AND json_extract(doc, '$.created_by') = ?"
            " ORDER BY created_at, id", (tenant, user_id)).fetchall())
        return [MediaInfo.model_validate_json(r["doc"], context=STORED) for r in rows]

    async def forget_uploader(self, tenant: str, user_id: str) -> int:
        return await self.db.transaction(lambda c: c.execute(
            "UPDATE media SET doc = json_set(doc, '$.created_by', json('null'))"
            " WHERE tenant = ? AND json_extract(doc, '$.created_by') = ?",
            (tenant, user_id)).rowcount)

    async def usage(self, tenant: str) -> int:
        row = await self.db.run(lambda c: c.execute(
            "SELECT COALESCE(SUM(size), 0) AS used FROM media WHERE tenant = ?",
            (tenant,)).fetchone())
        return int(row["used"])

    async def largest(self, tenant: str, *, content_type: str | None = None,
                      at_most: int | None = None) -> int:
        where, args = "tenant = ?", list[object]([tenant])
        if content_type is not None:
            where += " AND json_extract(doc, '$.content_type') = ?"
            args.append(content_type)
        if at_most is not None:
            where += " AND size <= ?"
            args.append(at_most)
        row = await self.db.run(lambda c: c.execute(
            f"SELECT COALESCE(MAX(size), 0) AS size FROM media WHERE {where}",  # noqa: S608
            args).fetchone())
        return int(row["size"])

    async def read(self, tenant: str, media_id: str, start: int,
                   end: int) -> AsyncIterator[bytes]:
        if await self.get(tenant, media_id) is None:
            raise MediaMissing(media_id)
        path = self._path(tenant, media_id)
        try:
            handle = await asyncio.to_thread(path.open, "rb")
        except FileNotFoundError:
            raise MediaMissing(media_id) from None
        try:
            await asyncio.to_thread(handle.seek, start)
            left = end - start
            while left > 0:
                chunk = await asyncio.to_thread(handle.read, min(CHUNK, left))
                if not chunk:
                    break
                left -= len(chunk)
                yield chunk
        finally:
            handle.close()  # not awaited: a client's disconnect cancels what this awaits

    async def claim(self, tenant: str, media_id: str) -> bool:
        def write(c: sqlite3.Connection) -> bool:
            if c.execute("SELECT 1 FROM media WHERE tenant = ? AND id = ?",
                         (tenant, media_id)).fetchone() is None:
                return False
            c.execute("INSERT OR IGNORE INTO media_claims (tenant, id) VALUES (?, ?)",
                      (tenant, media_id))
            return True

        return await self.db.transaction(write)

    async def delete(self, tenant: str, media_id: str, *, unless_claimed: bool = False) -> bool:
        def write(c: sqlite3.Connection) -> int:
            if unless_claimed and c.execute("SELECT 1 FROM media_claims WHERE tenant = ? AND id = ?",
                                            (tenant, media_id)).fetchone() is not None:
                return 0
            c.execute("DELETE FROM media_claims WHERE tenant = ? AND id = ?", (tenant, media_id))
            gone = c.execute("DELETE FROM media WHERE tenant = ? AND id = ?"
                             " RETURNING sha256, json_extract(doc, '$.content_type') AS type",
                             (tenant, media_id)).fetchall()
            if not gone:
                return 0
            c.execute("DELETE FROM media_bytes WHERE tenant = ? AND sha256 = ? AND content_type = ?"
                      " AND id = ?", (tenant, gone[0]["sha256"], gone[0]["type"], media_id))
            c.execute(f"{HOLDERS} WHERE tenant = ? AND sha256 = ?"
                      " AND json_extract(doc, '$.content_type') = ? ORDER BY created_at, id LIMIT 1",
                      (tenant, gone[0]["sha256"], gone[0]["type"]))
            return 1

        if await self.db.transaction(write) == 0:
            return False
        path = self._path(tenant, media_id)
        await asyncio.to_thread(path.unlink, missing_ok=True)
        with contextlib.suppress(OSError):
            await asyncio.to_thread(path.parent.rmdir)
        return True

    async def sweep_orphans(self, older_than: datetime) -> Swept:
        before = older_than.timestamp()
        old = await asyncio.to_thread(_old_files, self.root, before)
        swept = Swept()
        for tenant, paths in old.items():
            recorded = await self._ids(tenant)
            for path in paths:
                if path.name in recorded or await self.get(tenant, path.name) is not None:
                    continue
                swept += await asyncio.to_thread(_remove_if_old, path, before)
        return swept

    async def _ids(self, tenant: str) -> set[str]:
        rows = await self.db.run(lambda c: c.execute(
            "SELECT id FROM media WHERE tenant = ?", (tenant,)).fetchall())
        return {r["id"] for r in rows}


def _old_files(root: Path, before: float) -> dict[str, list[Path]]:
    """The media files under `root` (`<tenant>/<id[:2]>/<id>`) last written before `before`,
    by tenant."""
    found: dict[str, list[Path]] = {}
    for tenant in _folders(root):
        for prefix in _folders(tenant):
            for path in _entries(prefix):
                if path.name[:2] != prefix.name or not path.is_file() or path.is_symlink():
                    continue
                with contextlib.suppress(FileNotFoundError):
                    if path.stat().st_mtime < before:
                        found.setdefault(tenant.name, []).append(path)
    return found


def _folders(folder: Path) -> list[Path]:
    return [p for p in _entries(folder) if p.is_dir() and not p.is_symlink()]


def _entries(folder: Path) -> list[Path]:
    """What `folder` holds; nothing when it is gone (a delete removes a folder it emptied)."""
    try:
        return list(folder.iterdir())
    except FileNotFoundError:
        return []


def _remove_if_old(path: Path, before: float) -> Swept:
    try:
        stat = path.stat()
        if stat.st_mtime >= before:
            return Swept()
        path.unlink()
    except FileNotFoundError:
        return Swept()
    return Swept(files=1, bytes=stat.st_size)


def _created(info: MediaInfo) -> str:
    """The `created_at` column, which orders the list."""
    return info.created_at.isoformat()
