"""A course's lessons as a zip an import takes back: a Markdown file a lesson, in order
(`0001-<title>.md`, `lesson_file.py`), and the media they show under `media/<id>/<file name>`,
each once. The zip is written to an unnamed file of the spool (removed when closed), so a big
course is never held in memory: its lessons are read and written a page (50) at a time, its
media a chunk at a time."""

from __future__ import annotations

import asyncio
import os
import re
import tempfile
import unicodedata
import zipfile
import zlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import IO, Any, Literal
from urllib.parse import unquote

from bloop.platform.content.media.model import MediaInfo, media_url
from bloop.platform.content.media.ports import MediaMissing
from bloop.platform.content.media.refs import referenced_media
from bloop.platform.content.media.service import MediaService
from bloop.platform.content.model import Lesson
from bloop.platform.content.service import ContentService
from bloop.platform.content.uploads import lesson_file, markdown
from bloop.platform.kit.auth import Forbidden, Principal
from bloop.platform.kit.errors import Conflict, NotFound

ExportVersion = Literal["draft", "published"]
MAX_RATIO = 100
"""An entry compressing better than this is stored, not deflated: an import refuses entries
expanding more than `BLOOP_UPLOAD_ZIP_MAX_RATIO` (200) times."""


@dataclass
class CourseArchive:
    file: IO[bytes]
    """The zip, at its start; closing it removes it."""
    size: int
    filename: str
    lessons: int
    media: int
    missing: list[str]
    """The ids of media the lessons show that the store no longer has."""


def lesson_filename(n: int, width: int, title: str) -> str:
    """`0001-loops.md`: the lesson's place first, so an import keeps the order."""
    ascii_title = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_title.lower()).strip("-")[:60].strip("-")
    return f"{n:0{width}d}-{slug or 'lesson'}.md"


def _deflates(data: bytes) -> bool:
    return not data or len(data) <= MAX_RATIO * len(zlib.compress(data, 6))


class ExportService:
    def __init__(self, content: ContentService, media: MediaService) -> None:
        self.content = content
        self.media = media

    async def export(self, tenant: str, course_id: str, *, by: Principal,
                     version: ExportVersion = "draft") -> CourseArchive:
        """The course's draft (or last publication) as a zip; 404 as a read answers to those
        who may not change the course and never read it, 403 `not_an_author` to the others."""
        course = await self.content.course(tenant, course_id)
        if not self.content.may_edit(course, by):
            if course.publication is None:
                raise NotFound(f"no course {course_id!r} in tenant {tenant!r}")
            raise Forbidden("only the course's owner, its co-authors and the tenant's admins "
                            "may export it", code="not_an_author")
        if version == "published" and course.publication is None:
            raise NotFound(f"the course {course_id!r} was never published",
                           code="not_published")
        count, pages = await self.content.lesson_pages(course, drafts=version == "draft")
        self.media.spool.mkdir(parents=True, exist_ok=True)
        file = tempfile.TemporaryFile(dir=self.media.spool)  # noqa: SIM115  (handed out)
        try:
            lessons, missing, media = await self._write(tenant, count, pages, file)
            size = file.seek(0, os.SEEK_END)
            file.seek(0)
        except BaseException:
            file.close()
            raise
        suffix = "" if version == "draft" else f"-v{course.version}"
        return CourseArchive(file=file, size=size, filename=f"{course_id}{suffix}.zip",
                             lessons=lessons, media=media, missing=missing)

    async def _write(self, tenant: str, count: int, pages: AsyncIterator[list[Lesson]],
                     file: IO[bytes]) -> tuple[int, list[str], int]:
        """Writes the lessons (`count` of them, or fewer when some were deleted meanwhile) and
        their media into `file`: how many lessons it wrote, the media missing, those kept."""
        zf = zipfile.ZipFile(file, "w", allowZip64=True)
        names: dict[str, str] = {}
        infos: dict[str, MediaInfo | None] = {}
        width = max(4, len(str(count)))
        n = kept = 0
        try:
            async for page in pages:
                for lesson in page:
                    n += 1
                    await self._media_of(tenant, lesson, infos)
                    data = lesson_file.write_lesson(
                        lesson, self._blocks(tenant, lesson, infos, names)).encode()
                    kind = zipfile.ZIP_DEFLATED if _deflates(data) else zipfile.ZIP_STORED
                    name = lesson_filename(n, width, lesson.title)
                    await asyncio.to_thread(zf.writestr, name, data, kind)
            for media_id, info in infos.items():
                if info is not None:
                    await self._copy(zf, info, names[media_id])
                    kept += 1
        finally:
            await asyncio.to_thread(zf.close)
        return n, sorted(m for m, i in infos.items() if i is None), kept

    async def _media_of(self, tenant: str, lesson: Lesson,
                        infos: dict[str, MediaInfo | None]) -> None:
        for media_id in sorted(referenced_media([lesson]) - infos.keys()):
            infos[media_id] = await self.media.store.get(tenant, media_id)

    @staticmethod
    def _blocks(tenant: str, lesson: Lesson, infos: dict[str, MediaInfo | None],
                names: dict[str, str]) -> list[dict[str, Any]]:
        url = re.compile(rf"^<?{re.escape(media_url(tenant, '@'))}>?$".replace(
            "@", "([0-9a-f]{32})"))

        def path(media_id: str) -> str:
            info = infos.get(media_id)
            if info is None:  # missing: a path the archive does not hold
                return lesson_file.media_path(media_id, "missing")
            return names.setdefault(media_id, lesson_file.media_path(media_id, info.filename))

        def text(value: str) -> str:
            def swap(target: str) -> str | None:
                m = url.match(target)
                return lesson_file.bracketed(target, path(m.group(1))) \
                    if m and m.group(1) in infos else None
            return markdown.rewrite_links(value, swap, local_only=False)

        return [lesson_file.map_block(b, lambda v: path(v) if v in infos else v, text)
                for b in lesson.model_dump(mode="json")["blocks"]]

    async def _copy(self, zf: zipfile.ZipFile, info: MediaInfo, name: str) -> None:
        entry = zipfile.ZipInfo(unquote(name))  # the link's path, percent-decoded
        entry.compress_type = zipfile.ZIP_STORED
        out = await asyncio.to_thread(zf.open, entry, "w", force_zip64=info.size > 2**31)
        try:
            async for chunk in self.media.store.read(info.tenant, info.id, 0, info.size):
                await asyncio.to_thread(out.write, chunk)
        except MediaMissing:
            raise Conflict(f"the media {info.id!r} was deleted while the course was exported; "
                           "export it again", code="media_deleted") from None
        finally:
            await asyncio.to_thread(out.close)
