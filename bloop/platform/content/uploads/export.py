"""A course's lessons as a zip an import takes back: a Markdown file a lesson, in order
(`0001-<title>.md`, `lesson_file.py`), the course and its concepts (`course.yaml`,
`course_file.py`), and the media they name under `media/<id>/<file name>`,
each once. The zip is written to an unnamed file of the spool (removed when closed), so a big
course is never held in memory: its lessons are read and written a page (50) at a time, its
media a chunk at a time. A draft's pages are one state of it, built again when an author
changed it meanwhile. A process builds `BLOOP_UPLOAD_EXPORTS_AT_ONCE` at once; a built zip
waits in the spool for its client to read it, holding none of those places, but one of the
`BLOOP_UPLOAD_EXPORTS_WAITING` zips (`BLOOP_UPLOAD_EXPORTS_WAITING_BYTES`) the process keeps
there. One user (principal) builds at most half of the builds and keeps a quarter of the zips,
one tenant all but one of each (each at least one), so that no one shuts the others out; the
tenant's share is kept only while another tenant holds one of those places or asked for an
export within the last `RECENT_S` (60) seconds, so a deployment of one tenant uses them all.

An entry is dated by its lesson's last edit (its media's upload), so a course exported twice
unchanged gives the same bytes."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import tempfile
import unicodedata
import zipfile
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import IO, Any, Literal
from urllib.parse import unquote

from bloop.platform.content.media.model import MediaInfo, media_url
from bloop.platform.content.media.ports import MediaMissing
from bloop.platform.content.media.refs import is_media_id
from bloop.platform.content.media.service import MediaService
from bloop.platform.content.model import Course, Lesson
from bloop.platform.content.service import ContentService, CourseChanged
from bloop.platform.content.uploads import course_file, lesson_file, markdown
from bloop.platform.content.uploads.settings import UploadSettings
from bloop.platform.content.uploads.shares import Recent, Shares, tenant_share
from bloop.platform.kit.auth import Forbidden, Principal
from bloop.platform.kit.errors import Conflict, NotFound, Problem

ExportVersion = Literal["draft", "published"]
Block = dict[str, Any]
Checkpoint = Callable[[], Awaitable[None]]
MAX_RATIO = 100
"""An entry compressing better than this is stored, not deflated: an import refuses entries
expanding more than `BLOOP_UPLOAD_ZIP_MAX_RATIO` (200) times."""
TRIES = 3
"""Builds of a draft before 409 `course_changed`, each started again when the course changed
while it was read."""
RETRY_AFTER_S = 10
_OLDEST = datetime(1980, 1, 1, tzinfo=UTC)  # a zip's dates start there


class TooManyExports(Problem):
    status, code = 503, "too_many_exports"


async def _go_on() -> None:
    return None


def _nothing() -> None:
    return None


def _too_many(detail: str) -> TooManyExports:
    return TooManyExports(f"{detail}; try again shortly",
                          headers={"Retry-After": str(RETRY_AFTER_S)})


@dataclass
class CourseArchive:
    file: IO[bytes]
    """The zip, at its start; `close` removes it."""
    size: int
    filename: str
    lessons: int
    media: int
    missing: list[str]
    """The ids of media the lessons name that the store no longer has."""
    release: Callable[[], None] = field(default=_nothing, repr=False)

    async def close(self) -> None:
        """Removes the zip and frees its place in the spool; once is enough."""
        try:
            await asyncio.to_thread(self.file.close)
        finally:
            release, self.release = self.release, _nothing
            release()


class Slots:
    """How many exports a process builds at once (the store reads, CPU and memory a build
    takes); sending a built zip holds no place. One user builds at most half of them, one
    tenant all but one (each at least one) while another tenant competes (`Shares.contended`)."""

    def __init__(self, size: int, recent: Recent | None = None) -> None:
        self.shares = Shares(size, max(1, size // 2), tenant_share(size), recent)

    @property
    def size(self) -> int:
        return self.shares.size

    @property
    def taken(self) -> int:
        return self.shares.taken

    def take(self, user: str, tenant: str) -> Callable[[], None]:
        """A place (503 `too_many_exports` when none is free, or `user` or `tenant` holds its
        share), and what gives it back."""
        shares = self.shares
        why = shares.refusal(user, tenant, shares.contended(tenant))
        if why == "all":
            raise _too_many(f"{shares.size} course exports are being built in this process")
        if why == "user":
            raise _too_many(f"you are building {shares.per_user} course exports in this "
                            "process, as many as one user may at once")
        if why == "tenant":
            raise _too_many(f"the tenant's course exports take {shares.per_tenant} of the "
                            f"{shares.size} builds of this process, as many as one tenant may")
        return shares.take(user, tenant)


class Waiting:
    """The zips a process keeps in its spool at once, being built or built and waiting for
    their clients (disk, and while sent a connection each), and the bytes of the built ones.
    One user keeps at most a quarter of the zips, one tenant all but one (each at least one)
    while another tenant competes (`Shares.contended`)."""

    def __init__(self, size: int, max_bytes: int, recent: Recent | None = None) -> None:
        self.shares = Shares(size, max(1, size // 4), tenant_share(size), recent)
        self.size, self.max_bytes = size, max_bytes
        self.bytes = 0

    @property
    def zips(self) -> int:
        return self.shares.taken

    def take(self, user: str, tenant: str) -> Kept:
        """A place for a zip (503 `too_many_exports` when the spool holds as many, or as many
        bytes, as it may, or `user` or `tenant` keeps its share of the zips)."""
        why = self.shares.refusal(user, tenant, self.shares.contended(tenant))
        if why == "all":
            raise _too_many(f"{self.size} course exports' zips are kept in this process for "
                            "their clients")
        if self.bytes >= self.max_bytes:
            raise _too_many(f"the course exports' zips kept in this process for their clients "
                            f"hold {self.bytes} bytes")
        if why == "user":
            raise _too_many(f"{self.shares.per_user} of your course exports' zips are kept in "
                            "this process, as many as one user's may be")
        if why == "tenant":
            raise _too_many(f"{self.shares.per_tenant} of the tenant's course exports' zips are "
                            "kept in this process, as many as one tenant's may be")
        return Kept(self, self.shares.take(user, tenant))


@dataclass
class Kept:
    """A zip's place in the spool: `hold` counts its bytes once built, `give` frees it."""

    waiting: Waiting
    release: Callable[[], None]
    size: int = 0
    given: bool = False

    def hold(self, size: int) -> None:
        self.size = size
        self.waiting.bytes += size

    def give(self) -> None:
        if not self.given:
            self.given = True
            self.waiting.bytes -= self.size
            self.release()


def lesson_filename(n: int, width: int, title: str) -> str:
    """`0001-loops.md`: the lesson's place first, so an import keeps the order."""
    ascii_title = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_title.lower()).strip("-")[:60].strip("-")
    return f"{n:0{width}d}-{slug or 'lesson'}.md"


def _deflates(data: bytes) -> bool:
    return not data or len(data) <= MAX_RATIO * len(zlib.compress(data, 6))


def _entry(name: str, at: datetime, kind: int) -> zipfile.ZipInfo:
    entry = zipfile.ZipInfo(name, date_time=max(at.astimezone(UTC), _OLDEST).timetuple()[:6])
    entry.compress_type = kind
    entry.external_attr = 0o644 << 16
    return entry


def _named_blocks(tenant: str, blocks: list[Block],
                  path: Callable[[str], str | None]) -> list[Block]:
    """`blocks` (a lesson's, as JSON) with the media they name swapped for `path(id)` (kept
    when None): the ids of their `media` fields, and the targets of the Markdown links to the
    tenant's `…/media/{id}/content` outside code. Media URLs anywhere else (code, bare, in
    HTML, another tenant's, with a fragment) are text, kept as written. A relative link an
    import would take for a media of the archive (`media/<id>/<name>`) is written `./media/…`,
    which it keeps as written."""
    url = re.compile(rf"^<?{re.escape(media_url(tenant, '@'))}>?$".replace(
        "@", "([0-9a-f]{32})"))

    def swap(target: str) -> str | None:
        if m := url.match(target):
            new = path(m.group(1))
            return None if new is None else lesson_file.bracketed(target, new)
        if lesson_file.names_media(target):
            return lesson_file.bracketed(target, "./" + target.strip("<>"))
        return None

    def media(value: str) -> str:
        return (path(value) if is_media_id(value) else None) or value

    return [lesson_file.map_block(
        b, media, lambda v: markdown.rewrite_links(v, swap, local_only=False)) for b in blocks]


class ExportService:
    def __init__(self, content: ContentService, media: MediaService,
                 settings: UploadSettings | None = None) -> None:
        self.content = content
        self.media = media
        settings = settings or UploadSettings()
        recent = Recent()  # a tenant asking for an export competes for both
        self.slots = Slots(settings.exports_at_once, recent)
        self.waiting = Waiting(settings.exports_waiting, settings.exports_waiting_bytes, recent)
        self.send_idle_s = settings.export_send_idle_s

    async def export(self, tenant: str, course_id: str, *, by: Principal,
                     version: ExportVersion = "draft",
                     checkpoint: Checkpoint = _go_on) -> CourseArchive:
        """The course's draft (or last publication) as a zip; 404 as a read answers to those
        who may not change the course and never read it, 403 `not_an_author` to the others.
        `checkpoint` is awaited between pages of lessons and chunks of media: what it raises
        stops the build. 409 `course_changed` when the draft changed during each of the
        `TRIES` builds. 503 `too_many_exports` when the process builds, or keeps in its
        spool, as many as it may, or as many as its share for `by` or for `tenant`. The
        export's place is freed once the zip is built: the caller sends it and closes it,
        which frees its place in the spool."""
        course = await self._course(tenant, course_id, by, version)
        user = f"{by.tenant}/{by.user_id}"
        kept = self.waiting.take(user, tenant)
        try:
            release = self.slots.take(user, tenant)
            try:
                made = await self._built(tenant, course_id, by, version, course, checkpoint)
            finally:
                release()
        except BaseException:
            kept.give()
            raise
        kept.hold(made.size)
        made.release = kept.give
        return made

    async def _built(self, tenant: str, course_id: str, by: Principal, version: ExportVersion,
                     course: Course, checkpoint: Checkpoint) -> CourseArchive:
        for _ in range(TRIES - 1):
            with contextlib.suppress(CourseChanged):
                return await self._build(course, version, checkpoint)
            course = await self._course(tenant, course_id, by, version)
        try:
            return await self._build(course, version, checkpoint)
        except CourseChanged:
            raise CourseChanged("the course changed while it was exported; export it "
                                "again") from None

    async def _course(self, tenant: str, course_id: str, by: Principal,
                      version: ExportVersion) -> Course:
        course = await self.content.course(tenant, course_id)
        if not self.content.may_edit(course, by):
            if course.publication is None:
                raise NotFound(f"no course {course_id!r} in tenant {tenant!r}")
            raise Forbidden("only the course's owner, its co-authors and the tenant's admins "
                            "may export it", code="not_an_author")
        if version == "published" and course.publication is None:
            raise NotFound(f"the course {course_id!r} was never published",
                           code="not_published")
        return course

    async def _build(self, course: Course, version: ExportVersion,
                     checkpoint: Checkpoint) -> CourseArchive:
        count, pages = await self.content.lesson_pages(course, drafts=version == "draft")
        self.media.spool.mkdir(parents=True, exist_ok=True)
        file = tempfile.TemporaryFile(dir=self.media.spool)  # noqa: SIM115  (handed out)
        try:
            lessons, missing, media = await self._write(course.tenant, count, pages, file,
                                                        checkpoint, course,
                                                        version == "published")
            size = file.seek(0, os.SEEK_END)
            file.seek(0)
        except BaseException:
            file.close()
            raise
        suffix = "" if version == "draft" else f"-v{course.version}"
        return CourseArchive(file=file, size=size, filename=f"{course.id}{suffix}.zip",
                             lessons=lessons, media=media, missing=missing)

    async def _write(self, tenant: str, count: int, pages: AsyncIterator[list[Lesson]],
                     file: IO[bytes], checkpoint: Checkpoint, course: Course,
                     published: bool) -> tuple[int, list[str], int]:
        """Writes the lessons (`count` of them), `course.yaml` and the media they name into
        `file`: how many lessons it wrote, the media missing, those kept."""
        zf = zipfile.ZipFile(file, "w", allowZip64=True)
        names: dict[str, str] = {}
        infos: dict[str, MediaInfo | None] = {}
        width = max(4, len(str(count)))
        n = 0
        concepts: set[str] = set()
        try:
            async for page in pages:
                for lesson in page:
                    n += 1
                    concepts.update((*lesson.teaches, *lesson.requires))
                    blocks = await self._blocks(tenant, lesson, infos, names)
                    data = lesson_file.write_lesson(lesson, blocks).encode()
                    kind = zipfile.ZIP_DEFLATED if _deflates(data) else zipfile.ZIP_STORED
                    entry = _entry(lesson_filename(n, width, lesson.title), lesson.updated_at,
                                   kind)
                    await asyncio.to_thread(zf.writestr, entry, data)
                await checkpoint()
            await self._course_file(zf, course, concepts, published)
            for media_id, name in names.items():
                info = infos[media_id]
                assert info is not None  # named only when found
                await self._copy(zf, info, name, checkpoint)
        finally:
            await asyncio.to_thread(zf.close)
        return n, sorted(m for m, i in infos.items() if i is None), len(names)

    async def _course_file(self, zf: zipfile.ZipFile, course: Course, concept_ids: set[str],
                           published: bool) -> None:
        concepts = await self.content.concepts_named(course.tenant, sorted(concept_ids))
        data = course_file.write_course(course, concepts, published=published).encode()
        kind = zipfile.ZIP_DEFLATED if _deflates(data) else zipfile.ZIP_STORED
        at = course.publication.published_at if published and course.publication else \
            course.updated_at
        await asyncio.to_thread(zf.writestr, _entry(course_file.NAME, at, kind), data)

    async def _blocks(self, tenant: str, lesson: Lesson, infos: dict[str, MediaInfo | None],
                      names: dict[str, str]) -> list[Block]:
        """The lesson's blocks, the media they name by their path in the archive (`names`
        gains those found; a missing one is a path the archive does not hold)."""
        blocks: list[Block] = lesson.model_dump(mode="json")["blocks"]
        named: set[str] = set()
        _named_blocks(tenant, blocks, lambda media_id: named.add(media_id))
        for media_id in sorted(named - infos.keys()):
            infos[media_id] = await self.media.store.get(tenant, media_id)

        def path(media_id: str) -> str:
            info = infos[media_id]
            if info is None:
                return lesson_file.media_path(media_id, "missing")
            return names.setdefault(media_id, lesson_file.media_path(media_id, info.filename))

        return _named_blocks(tenant, blocks, path)

    async def _copy(self, zf: zipfile.ZipFile, info: MediaInfo, name: str,
                    checkpoint: Checkpoint) -> None:
        entry = _entry(unquote(name), info.created_at, zipfile.ZIP_STORED)  # the link's path
        out = await asyncio.to_thread(zf.open, entry, "w", force_zip64=info.size > 2**31)
        try:
            async for chunk in self.media.store.read(info.tenant, info.id, 0, info.size):
                await asyncio.to_thread(out.write, chunk)
                await checkpoint()
        except MediaMissing:
            raise Conflict(f"the media {info.id!r} was deleted while the course was exported; "
                           "export it again", code="media_deleted") from None
        finally:
            await asyncio.to_thread(out.close)
