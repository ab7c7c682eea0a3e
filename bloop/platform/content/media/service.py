"""Media use cases over a `MediaStore`: streamed uploads (typed from their bytes, hashed, held to
the size limit of their kind and to the tenant's quota as the bytes arrive), reads of byte ranges,
and who may read what. What a killed process leaves (spool files, import folders, stored bytes
without their record) is swept at start and every `sweep_interval_s`, once `sweep_age_s` old."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import shutil
import tempfile
import time
from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
)
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO

from bloop.platform.content.media import sniff
from bloop.platform.content.media.model import (
    LinkReach,
    MediaInfo,
    MediaLink,
    MediaUsage,
    clean_filename,
    new_media_id,
    signed_media_path,
)
from bloop.platform.content.media.ports import MediaExists, MediaMissing, MediaStore, Swept
from bloop.platform.content.media.settings import MediaSettings
from bloop.platform.content.model import now
from bloop.platform.kit.auth import STAFF, Forbidden, Principal
from bloop.platform.kit.errors import NotFound, Problem
from bloop.platform.kit.every import Every
from bloop.platform.kit.pagination import Slice
from bloop.platform.kit.ranges import ByteRange
from bloop.platform.kit.signing import LinkSigner

log = logging.getLogger("bloop.content.media")
FLUSH_BYTES = 1024 * 1024
# A slow upload's spool is written at least this often, so its age says how long ago its last
# bytes arrived (the sweep removes spool files by age).
FLUSH_S = 60.0
UPLOAD_PREFIX, UPLOAD_SUFFIX = "upload-", ".part"
IMPORT_PREFIX = "import-"
FILE_READ_BYTES = 1024 * 1024


def reach_of(reader: Principal) -> LinkReach:
    """The reach of what `reader` may read in their tenant: staff read every media file."""
    return "staff" if reader.has_any(STAFF) else "published"


PublishedMedia = Callable[[str], Awaitable[set[str]]]
"""The media ids a tenant's published lessons reference."""


class TooLarge(Problem):
    status, code = 413, "too_large"


class QuotaExceeded(Problem):
    status, code = 413, "quota_exceeded"


class UnsupportedType(Problem):
    status, code = 415, "unsupported_media_type"


def _mib(n: int) -> str:
    return f"{n / 1024 / 1024:.1f} MiB" if n >= 1024 * 1024 else f"{n} bytes"


def _sizes(a: int, b: int) -> tuple[str, str]:
    """`a` and `b` as `_mib` shows them, or in bytes where it would show the two as equal."""
    shown = _mib(a), _mib(b)
    return shown if shown[0] != shown[1] or a == b else (f"{a} bytes", f"{b} bytes")


@dataclass(frozen=True)
class Stored:
    info: MediaInfo
    created: bool
    """False when the tenant already had these bytes and `info` is that media."""


@dataclass(frozen=True)
class Digest:
    """Bytes about to be stored, as the quota counts them."""

    sha256: str
    content_type: str
    size: int


class _Spool:
    """A temporary file that hashes and counts what is written to it."""

    def __init__(self, folder: Path) -> None:
        fd, name = tempfile.mkstemp(dir=folder, prefix=UPLOAD_PREFIX, suffix=UPLOAD_SUFFIX)
        self.path = Path(name)
        self.handle: IO[bytes] = os.fdopen(fd, "wb")
        self.sha256 = hashlib.sha256()
        self.size = 0
        self.written_at = time.monotonic()

    def write(self, data: bytes) -> None:
        self.handle.write(data)
        self.handle.flush()
        self.sha256.update(data)
        self.size += len(data)
        self.written_at = time.monotonic()

    def discard(self) -> None:
        with contextlib.suppress(OSError):
            self.handle.close()
        self.path.unlink(missing_ok=True)


async def file_chunks(path: Path) -> AsyncIterator[bytes]:
    """The bytes of a local file, in chunks."""
    handle = await asyncio.to_thread(path.open, "rb")
    try:
        while chunk := await asyncio.to_thread(handle.read, FILE_READ_BYTES):
            yield chunk
    finally:
        handle.close()  # not awaited: a client's disconnect cancels what this awaits


class MediaService:
    def __init__(self, store: MediaStore, settings: MediaSettings, spool: Path,
                 published_media: PublishedMedia) -> None:
        self.store = store
        self.settings = settings
        self.spool = spool
        self._published_media = published_media
        self._published: dict[str, tuple[float, set[str]]] = {}
        self._reading: dict[str, asyncio.Future[set[str]]] = {}
        self.sweeper = Every("media:sweeper", self._sweep, self.settings.sweep_interval_s,
                             log=log, failed="could not sweep the leftovers of unfinished uploads")
        secret = settings.link_secret.get_secret_value().encode() if settings.link_secret else None
        self.links = LinkSigner(secret, settings.link_ttl_s)

    async def setup(self) -> None:
        await asyncio.to_thread(self.spool.mkdir, parents=True, exist_ok=True)
        await self.store.setup()

    # uploads

    async def usage(self, tenant: str) -> MediaUsage:
        return MediaUsage(tenant=tenant, used_bytes=await self.store.usage(tenant),
                          quota_bytes=self.settings.tenant_quota_bytes)

    def _quota_problem(self, usage: MediaUsage, size: int, at_least: bool = False) -> QuotaExceeded:
        more = "at least " if at_least else ""
        used, quota = _sizes(usage.used_bytes, usage.quota_bytes)
        return QuotaExceeded(
            f"the tenant's media quota is exceeded: {used} of {quota} are used, and this upload "
            f"adds {more}{_mib(size)}; delete media or ask for a larger quota",
            extra={"used_bytes": usage.used_bytes, "quota_bytes": usage.quota_bytes,
                   "upload_bytes": size})

    async def check_room(self, tenant: str, files: Iterable[Digest]) -> None:
        """Raises `QuotaExceeded` when storing `files` would not fit the tenant's quota: the
        same bytes count once, and bytes the tenant already keeps not at all (`upload` finds
        them kept)."""
        new = {(f.sha256, f.content_type): f.size for f in files}
        size = 0
        for (sha256, content_type), n in new.items():
            existing = await self.store.find_by_checksum(tenant, sha256)
            if existing is None or existing.content_type != content_type:
                size += n
        usage = await self.usage(tenant)
        if size and usage.used_bytes + size > usage.quota_bytes:
            raise self._quota_problem(usage, size)

    def _too_large(self, found: sniff.Sniffed, size: int, at_least: bool = False) -> TooLarge:
        limit = self.settings.max_bytes(found.kind)
        more = "at least " if at_least else ""
        most, this = _sizes(limit, size)
        return TooLarge(f"{found.label} may hold at most {most}; this one has {more}{this}",
                        extra={"kind": found.kind, "limit_bytes": limit, "upload_bytes": size})

    def check_size(self, found: sniff.Sniffed, size: int, *, at_least: bool = False) -> None:
        """Raises 413 when `size` bytes (`at_least` that many: a file still arriving) are more
        than `found`'s kind may hold."""
        if size > self.settings.max_bytes(found.kind):
            raise self._too_large(found, size, at_least=at_least)

    async def upload(self, tenant: str, body: AsyncIterable[bytes], *, filename: str | None,
                     claimed: str | None = None, declared_size: int | None = None,
                     by: str | None = None, media_id: str | None = None) -> Stored:
        """Stores the bytes of `body` as media of the tenant; identical bytes of the same type
        that the tenant already has are not stored twice (and take none of its quota). Raises
        415 when the bytes are not an accepted type or not the claimed one, 413 above the size
        limit of their kind or the tenant's quota, 422 for an empty file, an unsafe SVG or a
        broken image (truncated, damaged, or above 89 megapixels); nothing is kept then.
        `media_id` is the id a new media gets (a fresh one when None)."""
        largest = self.settings.largest
        if declared_size is not None and declared_size > largest:
            most, this = _sizes(largest, declared_size)
            raise TooLarge(f"media may hold at most {most}; this upload declares {this}",
                           extra={"limit_bytes": largest, "upload_bytes": declared_size})
        usage = await self.usage(tenant)
        room = max(0, usage.quota_bytes - usage.used_bytes)
        if declared_size is not None and declared_size > room \
                and await self.store.largest(tenant, at_most=declared_size) != declared_size:
            raise self._quota_problem(usage, declared_size)
        spool = await asyncio.to_thread(_Spool, self.spool)
        try:
            chunks = aiter(body)
            head = bytearray()
            ended = False
            while len(head) < sniff.SNIFF_BYTES:
                try:
                    head += await anext(chunks)
                except StopAsyncIteration:
                    ended = True
                    break
            found = self.identify(bytes(head), filename=filename, claimed=claimed,
                                  complete=ended)
            if declared_size is not None:
                self.check_size(found, declared_size)
            copies: int | None = None

            async def check(size: int, at_least: bool) -> None:
                """`size` bytes read so far held to the kind's limit and to the room: past the
                room, only while they may still be a copy of a file the tenant keeps (which
                adds nothing to its media)."""
                nonlocal copies
                self.check_size(found, size, at_least=at_least)
                if size > room:
                    if copies is None:
                        copies = await self.store.largest(
                            tenant, content_type=found.content_type, at_most=declared_size)
                    if size > copies:
                        raise self._quota_problem(usage, size, at_least=at_least)

            pending = head
            async for chunk in chunks:
                pending += chunk
                await check(spool.size + len(pending), at_least=True)
                if len(pending) >= FLUSH_BYTES or time.monotonic() - spool.written_at >= FLUSH_S:
                    await asyncio.to_thread(spool.write, bytes(pending))
                    pending = bytearray()
            await check(spool.size + len(pending), at_least=False)
            await asyncio.to_thread(spool.write, bytes(pending))
            await asyncio.to_thread(spool.handle.close)
            if found.kind == "text" or found is sniff.SVG:
                await asyncio.to_thread(self._check_whole_text, spool.path, found)
            elif found in sniff.RASTER:
                await asyncio.to_thread(self._check_whole_image, spool.path, found)
            kept = await self._kept(tenant, spool, found)
            if kept is not None:
                return Stored(kept, created=False)
            if spool.size > room:
                raise self._quota_problem(usage, spool.size)
            return await self._keep(tenant, spool, found, filename, by, media_id)
        finally:
            await asyncio.to_thread(spool.discard)

    def identify(self, head: bytes, *, filename: str | None, claimed: str | None,
                 complete: bool) -> sniff.Sniffed:
        """What a file is from its first bytes (`sniff.SNIFF_BYTES` of them, unless `complete`
        says `head` is all of it): 415 when they are not an accepted type or not the one its
        name or claimed type says, 422 when it is empty."""
        if not head:
            raise Problem("the file is empty", status=422, code="empty_file")
        try:
            found = sniff.sniff(head, filename, claimed, complete=complete)
            sniff.check_claim(found, claimed, filename)
        except sniff.Mismatch as exc:
            raise UnsupportedType(str(exc), code="type_mismatch") from None
        except sniff.Unrecognised as exc:
            raise UnsupportedType(str(exc)) from None
        return found

    @staticmethod
    def _check_whole_text(path: Path, found: sniff.Sniffed) -> None:
        data = path.read_bytes()
        try:
            sniff.check_text(data)
            if found is sniff.SVG:
                sniff.check_svg(data)
        except sniff.Unrecognised as exc:
            raise UnsupportedType(str(exc)) from None
        except sniff.UnsafeSvg as exc:
            raise Problem(str(exc), status=422, code="unsafe_svg") from None

    @staticmethod
    def _check_whole_image(path: Path, found: sniff.Sniffed) -> None:
        try:
            sniff.check_image(path, found)
        except sniff.BrokenImage as exc:
            raise Problem(str(exc), status=422, code="broken_image") from None

    async def _kept(self, tenant: str, spool: _Spool, found: sniff.Sniffed) -> MediaInfo | None:
        """The media of the tenant that already holds the spooled bytes, claimed so that the
        upload that stored it cannot take it back (a failed import's undo) from under this one;
        None when there is none."""
        existing = await self.store.find_by_checksum(tenant, spool.sha256.hexdigest())
        if existing is not None and existing.content_type == found.content_type \
                and await self.store.claim(tenant, existing.id):
            return existing
        return None

    async def _keep(self, tenant: str, spool: _Spool, found: sniff.Sniffed,
                    filename: str | None, by: str | None, media_id: str | None = None) -> Stored:
        checksum = spool.sha256.hexdigest()
        info = MediaInfo(id=media_id or new_media_id(), tenant=tenant,
                         filename=clean_filename(filename, found.kind + found.ext),
                         content_type=found.content_type, kind=found.kind, size=spool.size,
                         sha256=checksum, created_by=by, created_at=now())
        try:
            kept = await self.store.put(info, spool.path)
        except MediaExists:  # a fresh random id taken: try once more with another
            if media_id is not None:
                raise
            info = info.model_copy(update={"id": new_media_id()})
            kept = await self.store.put(info, spool.path)
        if kept.id != info.id:  # an upload of the same bytes side by side stored them first
            return Stored(kept, created=False)
        await asyncio.shield(self._within_quota(info))
        return Stored(info, created=True)

    async def _within_quota(self, info: MediaInfo) -> None:
        """The quota checked again once the file is stored, for uploads that ran side by side
        (each saw room for itself at the start): a file that left the tenant over quota is
        removed. Of two that only fit one at a time, the second to finish goes, or both when
        they finish together; the tenant never stays over quota, unless an upload of the same
        bytes has claimed the file meanwhile (it stays for that one)."""
        used = await self.store.usage(info.tenant)
        quota = self.settings.tenant_quota_bytes
        if used <= quota:
            return
        await self.store.delete(info.tenant, info.id, unless_claimed=True)
        raise self._quota_problem(
            MediaUsage(tenant=info.tenant, used_bytes=used - info.size, quota_bytes=quota),
            info.size)

    async def inspect(self, path: Path, *, filename: str | None,
                      claimed: str | None = None) -> sniff.Sniffed:
        """What the local file at `path` is, under the same checks as `upload` (bar the quota),
        without storing it."""
        def check() -> sniff.Sniffed:
            size = path.stat().st_size
            with path.open("rb") as handle:
                head = handle.read(sniff.SNIFF_BYTES)
            found = self.identify(head, filename=filename, claimed=claimed,
                                  complete=size <= len(head))
            self.check_size(found, size)
            if found.kind == "text" or found is sniff.SVG:
                self._check_whole_text(path, found)
            return found

        return await asyncio.to_thread(check)

    async def upload_file(self, tenant: str, path: Path, *, filename: str,
                          by: str | None = None, media_id: str | None = None) -> Stored:
        """`upload` of a local file (a part of an import)."""
        size = (await asyncio.to_thread(path.stat)).st_size
        return await self.upload(tenant, file_chunks(path), filename=filename,
                                 declared_size=size, by=by, media_id=media_id)

    # reads

    async def info(self, tenant: str, media_id: str) -> MediaInfo:
        info = await self.store.get(tenant, media_id)
        if info is None:
            raise NotFound(f"no media {media_id!r} in tenant {tenant!r}")
        return info

    async def content_type(self, tenant: str, media_id: str) -> str | None:
        """The type of the tenant's media `media_id`; None when the tenant has none."""
        info = await self.store.get(tenant, media_id)
        return None if info is None else info.content_type

    async def uploaded_by(self, tenant: str, user_id: str) -> list[MediaInfo]:
        return await self.store.uploaded_by(tenant, user_id)

    async def forget_uploader(self, tenant: str, user_id: str) -> int:
        """A deleted person is no longer named as anyone's uploader (only admins may then
        delete what they uploaded)."""
        return await self.store.forget_uploader(tenant, user_id)

    async def media(self, tenant: str, *, after: str | None = None,
                    limit: int = 100) -> Slice[MediaInfo]:
        return await self.store.list_media(tenant, after=after, limit=limit)

    async def readable(self, reader: Principal, tenant: str, media_id: str) -> MediaInfo:
        """The media, when `reader` may read it: the tenant's staff read all its media, other
        members what the tenant's published lessons reference. Others get 404, as for media
        that does not exist."""
        return await self._reached(reach_of(reader), tenant, media_id)

    async def link(self, reader: Principal, tenant: str, media_id: str) -> MediaLink:
        """A link to the media's bytes that needs no credentials, for whoever may read the
        media now (`readable`). It works until it expires, and a learner's only while the
        media stays readable to learners."""
        info = await self.readable(reader, tenant, media_id)
        return self.signed(info.tenant, info.id, reach_of(reader))

    def signed(self, tenant: str, media_id: str, reach: LinkReach) -> MediaLink:
        """The link of `link`, for a caller that has made sure the reader may read the media."""
        link = self.links.signed(signed_media_path(tenant, media_id, reach),
                                 "media", tenant, media_id, reach)
        return MediaLink(url=link.url, expires_at=datetime.fromtimestamp(link.expires, UTC))

    async def linked(self, tenant: str, media_id: str, reach: LinkReach | None, expires: int,
                     signature: str) -> MediaInfo:
        """The media a signed link names: 403 for a forged or expired link, 404 when the media
        is gone or, for a learner's link, no published lesson references it any more."""
        if reach is None:  # a link made before links said their reach: a learner's
            self.links.check(("media", tenant, media_id), expires, signature)
            reach = "published"
        else:
            self.links.check(("media", tenant, media_id, reach), expires, signature)
        return await self._reached(reach, tenant, media_id)

    async def _reached(self, reach: LinkReach, tenant: str, media_id: str) -> MediaInfo:
        if reach != "staff" and not await self._published_reference(tenant, media_id):
            raise NotFound(f"no media {media_id!r} in tenant {tenant!r}")
        return await self.info(tenant, media_id)

    async def _published_reference(self, tenant: str, media_id: str) -> bool:
        at, ids = self._published.get(tenant, (0.0, set()))
        age = time.monotonic() - at
        if media_id in ids and age < self.settings.published_cache_s:
            return True
        if media_id not in ids and age < min(1.0, self.settings.published_cache_s):
            return False
        return media_id in await self._read_published(tenant)

    async def _read_published(self, tenant: str) -> set[str]:
        """The media the tenant's publications show, read again (every published lesson): one
        read at a time per tenant, which the requests asking meanwhile share."""
        reading = self._reading.get(tenant)
        if reading is None:
            reading = self._reading[tenant] = asyncio.ensure_future(self._published_media(tenant))
            reading.add_done_callback(lambda done: self._read(tenant, done))
        return await asyncio.shield(reading)

    def _read(self, tenant: str, done: asyncio.Future[set[str]]) -> None:
        del self._reading[tenant]
        if not done.cancelled() and done.exception() is None:
            self._published[tenant] = (time.monotonic(), done.result())

    async def read(self, info: MediaInfo, wanted: ByteRange) -> AsyncGenerator[bytes, None]:
        """The bytes of `wanted`; fewer when the media is deleted while they are read."""
        try:
            async for chunk in self.store.read(info.tenant, info.id, wanted.start, wanted.end):
                yield chunk
        except MediaMissing:
            return  # deleted while being read: the response ends short

    # removal

    async def delete(self, tenant: str, media_id: str, *, unless_claimed: bool = False,
                     by: Principal | None = None) -> None:
        """`by`, when given, must have uploaded the file first (an upload of the same bytes
        gets the file already kept) or be one of the tenant's admins: other lessons than the
        caller's may show it."""
        if by is not None and not by.has_any({"tenant_admin"}) \
                and (await self.info(tenant, media_id)).created_by != by.user_id:
            raise Forbidden("only whoever uploaded a media file first, and the tenant's admins, "
                            "remove it (other lessons may show it); take it out of your lesson "
                            "instead", code="not_the_uploader")
        if not await self.store.delete(tenant, media_id, unless_claimed=unless_claimed):
            raise NotFound(f"no media {media_id!r} in tenant {tenant!r}")

    # the sweep of what killed processes left

    async def sweep(self) -> Swept:
        """Removes what uploads and imports of killed processes left that nothing has written
        to for `sweep_age_s`: files and import folders in the spool, and stored bytes no record
        names (`MediaStore.sweep_orphans`). Younger ones stay: another process on the same
        data directory or GridFS may be writing them now."""
        age = self.settings.sweep_age_s
        spooled = await asyncio.to_thread(_sweep_spool, self.spool, time.time() - age)
        if spooled.files:
            log.info("removed spool files of uploads and imports that ended unfinished",
                     extra={"files": spooled.files, "bytes": spooled.bytes})
        orphans = await self.store.sweep_orphans(datetime.now(UTC) - timedelta(seconds=age))
        if orphans.files:
            log.info("removed stored media bytes that no record names",
                     extra={"files": orphans.files, "bytes": orphans.bytes})
        return spooled + orphans

    async def _sweep(self) -> None:
        await self.sweep()



def _sweep_spool(spool: Path, before: float) -> Swept:
    """Removes the upload files and import folders of `spool` where nothing changed since
    `before`."""
    swept = Swept()
    try:
        entries = list(spool.iterdir())
    except FileNotFoundError:
        return swept
    for entry in entries:
        if entry.is_symlink():
            continue
        if entry.name.startswith(UPLOAD_PREFIX) and entry.name.endswith(UPLOAD_SUFFIX) \
                and entry.is_file():
            with contextlib.suppress(FileNotFoundError):
                stat = entry.stat()
                if stat.st_mtime < before:
                    entry.unlink()
                    swept += Swept(files=1, bytes=stat.st_size)
        elif entry.name.startswith(IMPORT_PREFIX) and entry.is_dir():
            swept += _sweep_folder(entry, before)
    return swept


def _sweep_folder(folder: Path, before: float) -> Swept:
    """Removes `folder` when nothing in it changed since `before`; what it held."""
    files, size, newest = 0, 0, 0.0
    try:
        newest = folder.lstat().st_mtime
        for parent, dirs, names in os.walk(folder):
            for name in dirs:
                newest = max(newest, os.lstat(os.path.join(parent, name)).st_mtime)
            for name in names:
                stat = os.lstat(os.path.join(parent, name))
                newest = max(newest, stat.st_mtime)
                files, size = files + 1, size + stat.st_size
    except FileNotFoundError:
        return Swept()
    if newest >= before:
        return Swept()
    shutil.rmtree(folder, ignore_errors=True)
    return Swept(files=files, bytes=size)
