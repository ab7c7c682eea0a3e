"""Importing uploaded files into a course, all or nothing.

First every file is checked and read without writing anything: its type sniffed (and held to
what it claims and to its kind's size limit), Markdown front matter validated, zips unpacked
safely, PDFs parsed, links to files checked, each lesson validated as the content service would,
and the tenant's quota checked for the media in all (bytes the tenant already keeps add
nothing). Only then is a hold written (the ids its new media and its lessons will get), the
media stored, the concepts and modules an archive's `course.yaml` brings and the tenant and
course lack created (through the content service), and the lessons created all in one write, in
that order, and the hold released. When any of that fails, the lessons are removed, the modules
and concepts it made taken back (unless a lesson names them since, or a concept was edited
since), and the media stored so far deleted, so a failed import leaves nothing behind. A process
killed part-way cannot: its lessons are stored all or none, and once its hold expires a sweep
(`sweep`, at start-up and every `BLOOP_UPLOAD_SWEEP_INTERVAL_S`) deletes its media unless its
lessons were stored; concepts and modules it made stay (definitions an import again reuses).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import re
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from pydantic import BaseModel, ValidationError

from bloop.platform.content.media import sniff
from bloop.platform.content.media.model import Media, MediaInfo, MediaKind, new_media_id
from bloop.platform.content.media.refs import media_url, referenced_media
from bloop.platform.content.media.service import IMPORT_PREFIX, Digest, MediaService, Stored
from bloop.platform.content.model import (
    MAX_BLOCKS,
    MAX_MODULES,
    Concept,
    Course,
    Lesson,
    Module,
    NewConcept,
    NewLesson,
    now,
)
from bloop.platform.content.uploads import archive, blocks, course_file, lesson_file, markdown, pdf
from bloop.platform.content.uploads.holds import ImportHold, ImportHolds
from bloop.platform.content.uploads.settings import UploadSettings
from bloop.platform.content.uploads.shares import Queue, Shares, tenant_share
from bloop.platform.kit.auth import Forbidden, Principal
from bloop.platform.kit.errors import Conflict, NotFound, Problem
from bloop.platform.kit.every import Every
from bloop.platform.kit.threads import each_in_thread

log = logging.getLogger("bloop.content.uploads")
WORDS_PER_MINUTE = 200
_STAND_IN_ID = "0" * 32


class Lessons(Protocol):
    """What an import needs from the content service."""

    async def course(self, tenant: str, course_id: str) -> Course: ...

    def may_edit(self, course: Course, by: Principal | None) -> bool: ...

    async def concepts(self, tenant: str) -> list[Concept]: ...

    async def add_concept(self, tenant: str, new: NewConcept) -> Concept: ...

    async def add_modules(self, tenant: str, course_id: str, modules: Sequence[Module], *,
                          by: Principal | None = None) -> list[Module]: ...

    async def take_back_modules(self, tenant: str, course_id: str,
                                ids: Sequence[str]) -> None: ...

    async def add_lessons(self, tenant: str, course_id: str, new: Sequence[NewLesson], *,
                          ids: Sequence[str], by: Principal | None = None) -> list[Lesson]: ...

    async def stored_any(self, tenant: str, lesson_ids: Sequence[str]) -> bool: ...

    async def delete_lesson(self, tenant: str, lesson_id: str, *, version: int | None = None,
                            by: Principal | None = None) -> None: ...


@dataclass(frozen=True)
class Incoming:
    """One uploaded file, spooled to `path`."""

    name: str
    path: Path
    claimed: str | None = None


@dataclass(frozen=True)
class Asset:
    key: str
    """Its path inside the upload (`pack.zip/images/a.png` for a zip's entry)."""
    filename: str
    path: Path
    kind: MediaKind
    digest: Digest


@dataclass
class Draft:
    """A lesson to create once its media are stored."""

    source: str
    front: markdown.FrontMatter
    title: str
    body: str = ""
    links: dict[str, str] = field(default_factory=dict)
    """Each local link target of `body` and the asset key it names."""
    pages: list[str] = field(default_factory=list)
    file_key: str | None = None
    """The asset shown as a file block first (a PDF the lesson was read from)."""
    parts: list[lesson_file.Part] | None = None
    """An exported lesson's blocks, block for block (`lesson_file.read_parts`)."""
    module: str | None = None
    """The course's module it goes in (its front matter's, when the course has it)."""
    lesson: NewLesson | None = None
    """The lesson it makes, checked when planned, when that names no file of the upload (the
    lesson of one that does is made again once its media are stored)."""


@dataclass
class Carried:
    """What the archives' `course.yaml` bring that the course and its tenant lack (or, once
    applied, what the import made of it)."""

    modules: list[Module] = field(default_factory=list)
    concepts: list[NewConcept] = field(default_factory=list)


SizeCheck = Callable[[int, bool], None]
"""Raises 413 naming a file arriving once the bytes it has so far (all of them when the second
argument is True) pass its kind's limit."""


class ImportResult(BaseModel):
    lessons: list[Lesson]
    media: list[Media]
    notes: list[str]


def _words(text: str) -> int:
    return len(re.findall(r"\w+", text))


@contextlib.contextmanager
def _naming(key: str, **where: str) -> Iterator[None]:
    """Problems raised within name the file `key` names in the upload (`where` says which file,
    and which entry of an archive)."""
    try:
        yield
    except Problem as exc:
        raise Problem(f"{key}: {exc.detail}", status=exc.status, code=exc.code,
                      extra={**exc.extra, **where}, headers=exc.headers) from None


class UploadService:
    def __init__(self, media: MediaService, lessons: Lessons, holds: ImportHolds,
                 settings: UploadSettings | None = None,
                 clock: Callable[[], datetime] = now) -> None:
        self.media = media
        self.lessons = lessons
        self.holds = holds
        self.settings = settings or UploadSettings()
        self.clock = clock
        readers = self.settings.pdf_readers
        self._pdf_readers = Queue(Shares(readers, readers, tenant_share(readers)))
        self.sweeper = Every("uploads:sweeper", self.sweep, self.settings.sweep_interval_s,
                             log=log, failed="could not sweep the holds of unfinished imports")

    def workdir(self) -> Path:
        """A fresh folder for one import's files, beside media's spool (same file system; the
        media sweep removes one a killed process left)."""
        self.media.spool.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(dir=self.media.spool, prefix=IMPORT_PREFIX))

    async def import_files(self, tenant: str, course_id: str, files: Sequence[Incoming], *,
                           by: Principal | None = None, work: Path | None = None) -> ImportResult:
        """Imports `files` into the course (see the module's doc); `work` is a folder the
        import may write in (made and removed here when not given)."""
        if not files:
            raise Problem("send at least one file (multipart field `files`)", status=422,
                          code="no_files")
        own = work is None
        folder = await asyncio.to_thread(self.workdir) if work is None else work
        try:
            await self.check_author(tenant, course_id, by)
            assets, drafts, notes, carried = await self._plan(tenant, course_id, files, folder)
            return await self._apply(tenant, course_id, assets, drafts, notes, carried, by)
        finally:
            if own:
                await asyncio.to_thread(shutil.rmtree, folder, True)

    async def check_author(self, tenant: str, course_id: str, by: Principal | None) -> None:
        """404 when the course does not exist, or `by` may neither add lessons to it nor
        read it (it was never published), as a read answers; else 403 unless they may add
        lessons to it."""
        course = await self.lessons.course(tenant, course_id)
        if not self.lessons.may_edit(course, by):
            if course.publication is None:
                raise NotFound(f"no course {course_id!r} in tenant {tenant!r}")
            raise Forbidden("only the course's owner, its co-authors and the tenant's admins "
                            "may add lessons to it", code="not_an_author")

    def size_check(self, name: str, claimed: str | None, head: bytes, *,
                   complete: bool) -> SizeCheck:
        """For the file `name` still arriving, told from `head` (its first `sniff.SNIFF_BYTES`
        bytes, or all of them when `complete`) as `_plan` tells it: raises now what `_plan`
        would raise for its type, and returns the check of its kind's size limit."""
        with _naming(name, file=name):
            found = self.media.identify(head, filename=name, claimed=claimed, complete=complete)

        def check(size: int, ended: bool) -> None:
            with _naming(name, file=name):
                self.media.check_size(found, size, at_least=not ended)

        return check

    # planning: reads and checks only

    async def _plan(self, tenant: str, course_id: str, files: Sequence[Incoming],
                    folder: Path) -> tuple[list[Asset], list[Draft], list[str], Carried]:
        assets: list[Asset] = []
        drafts: list[Draft] = []
        courses: list[tuple[str, course_file.CourseFile]] = []
        names = [f.name for f in files]
        if len(set(names)) != len(names):
            dup = next(n for n in names if names.count(n) > 1)
            raise Problem(f"two files are named {dup!r}", status=422, code="duplicate_file")
        texts: list[Incoming] = []
        for n, item in enumerate(files):
            found = await self._inspect(item.path, item.name, item.claimed, file=item.name)
            if found.kind == "text":
                texts.append(item)
            elif found.kind == "archive":
                unpacked = await self._archive(item, folder / f"zip-{n}")
                assets += unpacked[0]
                drafts += unpacked[1]
                courses += unpacked[2]
            elif found.kind == "pdf":
                assets.append(await self._asset(item.name, item.path, found))
                drafts.append(await self._pdf(tenant, item))
            else:
                assets.append(await self._asset(item.name, item.path, found))
        beside = {a.key: a.path for a in assets}
        drafts += await each_in_thread(lambda t: self._markdown(t.path, t.name, beside), texts)
        if not assets and not drafts:
            raise Problem(f"{', '.join(names)}: nothing to import (an archive with no files in "
                          "it)", status=422, code="nothing_to_import",
                          extra={"file": names[0]} if len(names) == 1 else None)
        known = {c.id for c in await self.lessons.concepts(tenant)}
        course = await self.lessons.course(tenant, course_id)
        modules = course.module_ids()
        notes: list[str] = []
        carried = Carried()
        for source, given in courses:
            carried.modules += [m for m in given.modules if m.id not in modules]
            carried.concepts += [c for c in given.concepts if c.id not in known]
            modules += [m.id for m in given.modules if m.id not in modules]
            known |= {c.id for c in given.concepts}
            if len(modules) > MAX_MODULES:
                raise markdown.InvalidLessonFile(
                    f"{source}: the course would have {len(modules)} modules with those of the "
                    f"archive, more than {MAX_MODULES}", code="too_many_modules",
                    extra={"file": source, "field": "modules"})
            differ = [k for k in ("title", "summary", "language", "level", "tags")
                      if getattr(given, k) != getattr(course, k)]
            if differ:
                notes.append(f"{source}: the course keeps its own {', '.join(differ)} (the "
                             f"archive's course is {given.title!r})")
        stand_ins = {a.key: _stand_in(a) for a in assets}
        for said in await each_in_thread(
                lambda d: self._check(tenant, d, known, modules, stand_ins), drafts):
            notes += said
        await self.media.check_room(tenant, [a.digest for a in assets])
        return assets, drafts, notes, carried

    def _check(self, tenant: str, draft: Draft, known: set[str], modules: list[str],
               stand_ins: dict[str, MediaInfo]) -> list[str]:
        """Checks the lesson `draft` makes against the tenant's `known` concepts, the course's
        `modules` and the upload's assets as `stand_ins`; the notes it calls for."""
        notes: list[str] = []
        unknown = sorted({*draft.front.teaches, *draft.front.requires} - known)
        if unknown:
            raise Problem(f"{draft.source}: unknown concepts: {', '.join(unknown)}; add "
                          "them first", status=422, code="unknown_concepts",
                          extra={"file": draft.source, "concepts": unknown})
        if draft.front.module is not None and draft.front.module not in modules:
            draft.module = None
            notes.append(f"{draft.source}: the course has no module "
                         f"{draft.front.module!r}; the lesson is in none")
        lesson = self._new_lesson(tenant, draft, stand_ins)
        if draft.file_key is None and not draft.links:  # the same once media are stored
            draft.lesson = lesson
        unused = [k for k in ("summary", "tags", "language", "level")
                  if k in draft.front.model_fields_set and k not in NewLesson.model_fields]
        if unused:
            notes.append(f"{draft.source}: {', '.join(unused)} describe a course, not a "
                         "lesson, and were not kept")
        return notes

    async def _inspect(self, path: Path, key: str, claimed: str | None = None,
                       **where: str) -> sniff.Sniffed:
        """`media.inspect` of the file `key` names in the upload, its problems naming it."""
        with _naming(key, **where):
            return await self.media.inspect(path, filename=key, claimed=claimed)

    async def _asset(self, key: str, path: Path, found: sniff.Sniffed) -> Asset:
        def digest() -> Digest:
            with path.open("rb") as handle:
                sha256 = hashlib.file_digest(handle, "sha256").hexdigest()
            return Digest(sha256=sha256, content_type=found.content_type,
                          size=path.stat().st_size)

        filename = key.rsplit("/", 1)[-1]
        return Asset(key=key, filename=filename, path=path, kind=found.kind,
                     digest=await asyncio.to_thread(digest))

    def _markdown(self, path: Path, source: str, entries: dict[str, Path],
                  prefix: str = "") -> Draft:
        """The lesson file at `path` read and parsed (in a worker thread: `each_in_thread`)."""
        raw = path.read_bytes()
        text = raw.decode("utf-8-sig").replace("\f", "\n")  # a page break: a line's end
        parsed = markdown.parse_markdown(text, source,
                                         max_front_matter=self.settings.front_matter_max_bytes)
        links: dict[str, str] = {}
        inside = source[len(prefix):] if prefix else source
        parts = None if parsed.front.format is None else lesson_file.read_parts(
            parsed.body, source, parsed.body_line)
        html = markdown.html_links(parsed.body) if parts is None else set()
        for target, named in _local_targets(parsed.body, parts, inside).items():
            if named is not None and named in entries:
                links[target] = prefix + named
                continue
            if named is not None and named.lower().endswith((".md", ".markdown")):
                continue  # a link to another lesson file: left as written
            if target in html:
                continue  # a page of a site the lesson was written for: left as written
            where = "the upload" if not prefix else f"the archive {prefix.rstrip('/')}"
            raise markdown.InvalidLessonFile(
                f"{source}: the link {target!r} names a file that {where} does not hold",
                code="missing_file", extra={"file": source, "link": target})
        return Draft(source=source, front=parsed.front, title=parsed.title, body=parsed.body,
                     links=links, parts=parts, module=parsed.front.module)

    async def _archive(self, item: Incoming, into: Path) -> tuple[
            list[Asset], list[Draft], list[tuple[str, course_file.CourseFile]]]:
        limits = archive.Limits(max_entries=self.settings.zip_max_entries,
                                max_unpacked_bytes=self.settings.zip_max_unpacked_bytes,
                                max_ratio=self.settings.zip_max_ratio)
        entries = await asyncio.to_thread(archive.unpack, item.path, into, limits, item.name)
        prefix = f"{item.name}/"
        by_name = {e.name: e.path for e in entries}
        assets: list[Asset] = []
        texts: list[archive.Entry] = []
        courses: list[tuple[str, course_file.CourseFile]] = []
        for entry in entries:
            key = prefix + entry.name
            if entry.name == course_file.NAME:
                raw = await asyncio.to_thread(entry.path.read_bytes)  # parsed off the loop
                courses.append((key, await asyncio.to_thread(course_file.read_course, raw, key)))
                continue
            found = await self._inspect(entry.path, key, file=item.name, entry=entry.name)
            if found.kind == "archive":
                raise archive.UnsafeArchive(f"{key}: an archive inside an archive is not "
                                            "accepted", extra={"file": item.name, "entry": entry.name})
            if found.kind == "text" and key.lower().endswith((".md", ".markdown")):
                texts.append(entry)
            else:
                assets.append(await self._asset(key, entry.path, found))
        media_names = {a.key[len(prefix):]: by_name[a.key[len(prefix):]] for a in assets}
        drafts = await each_in_thread(
            lambda e: self._markdown(e.path, prefix + e.name, media_names, prefix),
            sorted(texts, key=lambda e: e.name))
        return assets, drafts, courses

    async def _pdf(self, tenant: str, item: Incoming) -> Draft:
        text = await pdf.read_pdf(item.path, item.name, self.settings, self._pdf_readers,
                                  tenant=tenant)
        title = text.title or markdown.parse_markdown("", item.name).title
        return Draft(source=item.name, front=markdown.FrontMatter(),
                     title=title[:markdown.MAX_TITLE_CHARS],
                     pages=[p for p in text.pages if p.strip()], file_key=item.name)

    def _new_lesson(self, tenant: str, draft: Draft, stored: dict[str, MediaInfo]) -> NewLesson:
        """The lesson `draft` makes once its media are `stored` (asset key → media); 422 naming
        the file and field when the lesson model refuses it."""
        found: list[dict[str, Any]] = []
        if draft.file_key is not None:
            info = stored[draft.file_key]
            found.append(blocks.media_block(tenant, info.kind, info.id, info.filename))
        if draft.parts is not None:
            found += [self._exported(tenant, p, draft, stored) for p in draft.parts]
        else:
            found += self._body_blocks(tenant, draft, stored, MAX_BLOCKS - len(found))
        if draft.pages:
            found += [blocks.markdown_block(p) for p in markdown.page_blocks(
                draft.pages, draft.source, MAX_BLOCKS - len(found))]
        words = _words(draft.body) + sum(_words(p) for p in draft.pages)
        fields: dict[str, Any] = {
            "title": draft.title, "blocks": found, "teaches": draft.front.teaches,
            "requires": draft.front.requires, "module": draft.module,
            "estimated_minutes": draft.front.estimated_minutes or max(
                1, min(600, round(words / WORDS_PER_MINUTE)))}
        for extra in ("summary", "tags", "language", "level"):
            if extra in NewLesson.model_fields and extra in draft.front.model_fields_set:
                fields[extra] = getattr(draft.front, extra)
        try:
            return NewLesson.model_validate(fields)
        except ValidationError as exc:
            err = exc.errors()[0]
            name = ".".join(str(p) for p in err["loc"]) or "lesson"
            raise markdown.InvalidLessonFile(f"{draft.source}: {name}: {err['msg']}",
                                             code="invalid_lesson",
                                             extra={"file": draft.source, "field": name}) from None

    def _body_blocks(self, tenant: str, draft: Draft, stored: dict[str, MediaInfo],
                     room: int) -> list[dict[str, Any]]:
        """The blocks of `draft`'s body: each image of the upload that stands alone in its
        paragraph an image block, the text around them Markdown blocks linking the stored
        media. Images stay in the Markdown when that would take more than `room` blocks, or
        when the body defines reference links (a reference reaches its definition only
        within one block)."""
        if markdown.has_link_definitions(draft.body):
            return self._markdown_blocks(tenant, draft.body, draft, stored)
        found: list[dict[str, Any]] = []
        text = ""
        for piece in markdown.figures(draft.body):
            block = self._figure(piece, draft, stored) if isinstance(piece, markdown.Figure) \
                else None
            if block is None:
                text += piece if isinstance(piece, str) else piece.text
                continue
            found += self._markdown_blocks(tenant, text, draft, stored)
            found.append(block)
            text = ""
        found += self._markdown_blocks(tenant, text, draft, stored)
        if len(found) > room:
            return self._markdown_blocks(tenant, draft.body, draft, stored)
        return found

    @staticmethod
    def _exported(tenant: str, part: lesson_file.Part, draft: Draft,
                  stored: dict[str, MediaInfo]) -> dict[str, Any]:
        """A block of an exported lesson, naming the media stored for the files it names."""
        def text(value: str) -> str:
            return markdown.rewrite_links(value, lambda t: lesson_file.bracketed(
                t, media_url(tenant, stored[draft.links[t]].id)) if t in draft.links else None)

        if isinstance(part, str):
            return blocks.markdown_block(text(part))
        return lesson_file.map_block(part, lambda v: (
            stored[draft.links[v]].id if v in draft.links else v), text)

    @staticmethod
    def _figure(figure: markdown.Figure, draft: Draft,
                stored: dict[str, MediaInfo]) -> dict[str, Any] | None:
        key = draft.links.get(figure.target)
        if key is None or stored[key].kind != "image":
            return None
        return blocks.image_block(stored[key].id, figure.alt, figure.title)

    @staticmethod
    def _markdown_blocks(tenant: str, text: str, draft: Draft,
                         stored: dict[str, MediaInfo]) -> list[dict[str, Any]]:
        if not text.strip():
            return []
        if draft.links:
            text = markdown.rewrite_links(text, lambda t: (
                media_url(tenant, stored[draft.links[t]].id) if t in draft.links else None))
        return [blocks.markdown_block(p) for p in markdown.to_blocks(text, draft.source)]

    # applying: writes, undone on failure

    async def _apply(self, tenant: str, course_id: str, assets: list[Asset], drafts: list[Draft],
                     notes: list[str], carried: Carried, by: Principal | None) -> ImportResult:
        hold = ImportHold(tenant=tenant, id=uuid.uuid4().hex, course=course_id,
                          lessons=[uuid.uuid4().hex for _ in drafts],
                          media=[new_media_id() for _ in assets],
                          expires_at=self.clock() + timedelta(seconds=self.settings.hold_s))
        await self.holds.add(hold)
        stored: dict[str, MediaInfo] = {}
        created: list[MediaInfo] = []
        lessons: list[Lesson] = []
        made = Carried()
        try:
            for asset, media_id in zip(assets, hold.media, strict=True):
                kept: Stored = await self.media.upload_file(
                    tenant, asset.path, filename=asset.filename,
                    by=by.user_id if by is not None else None, media_id=media_id)
                stored[asset.key] = kept.info
                if kept.created:
                    created.append(kept.info)
            await self._carry(tenant, course_id, carried, made, by)
            if drafts:
                new = await each_in_thread(
                    lambda d: d.lesson or self._new_lesson(tenant, d, stored), drafts)
                lessons = await self.lessons.add_lessons(tenant, course_id, new,
                                                         ids=hold.lessons, by=by)
            if not await self.holds.release(tenant, hold.id):
                raise RuntimeError(f"the hold of import {hold.id} expired before it ended; "
                                   f"raise BLOOP_UPLOAD_HOLD_S above {self.settings.hold_s} s")
        except BaseException:
            await asyncio.shield(self._undo(hold, created, lessons, made))
            raise
        media = [Media.of(m) for m in {m.id: m for m in stored.values()}.values()]
        return ImportResult(lessons=lessons, media=media, notes=notes)

    async def _carry(self, tenant: str, course_id: str, carried: Carried, made: Carried,
                     by: Principal | None) -> None:
        """Creates the concepts and modules `carried` (through the content service), recording
        in `made` the modules this import added, for `_undo` to take back. The concepts stay
        whatever follows: another author may name one as soon as it is made (and a retry
        reuses them)."""
        for new in carried.concepts:
            try:
                await self.lessons.add_concept(tenant, new)
            except Conflict as exc:
                if exc.code != "concept_exists":  # made meanwhile by another: theirs
                    raise
        if carried.modules:
            made.modules = await self.lessons.add_modules(tenant, course_id, carried.modules,
                                                          by=by)

    async def _undo(self, hold: ImportHold, media: list[MediaInfo], lessons: list[Lesson],
                    made: Carried | None = None) -> None:
        """Removes what a failed import wrote, and then its hold. Lessons the content service
        cannot take back stay (logged), and so do the media and modules they show or name, so
        no lesson is left pointing at nothing; the concepts it made stay (`_carry`). A media
        that cannot be deleted keeps the hold, for the sweep to delete once it expires."""
        tenant = hold.tenant
        kept: list[Lesson] = []
        for lesson in reversed(lessons):
            try:
                await self.lessons.delete_lesson(tenant, lesson.id, version=lesson.version)
            except Exception:
                kept.append(lesson)
                log.exception("a lesson of a failed import could not be removed",
                              extra={"tenant": tenant, "lesson": lesson.id})
        if made is not None:
            await self._take_back(hold, made)
        shown = referenced_media(kept)
        left = False
        for info in media:
            if info.id in shown:
                continue
            try:  # one another upload deduplicated onto meanwhile stays, for it
                await self.media.store.delete(tenant, info.id, unless_claimed=True)
            except Exception:
                left = True
                log.exception("could not delete a media of a failed import",
                              extra={"tenant": tenant, "media": info.id})
        if left:
            return
        try:
            await self.holds.drop(tenant, hold.id)
        except Exception:
            log.exception("could not drop the hold of a failed import; the sweep will once it "
                          "expires", extra={"tenant": tenant, "import": hold.id})


    async def _take_back(self, hold: ImportHold, made: Carried) -> None:
        tenant = hold.tenant
        if made.modules:
            try:
                await self.lessons.take_back_modules(tenant, hold.course,
                                                     [m.id for m in made.modules])
            except Exception:
                log.exception("the modules a failed import added could not be removed",
                              extra={"tenant": tenant, "course": hold.course})

    # the sweep of imports that died part-way

    async def sweep(self) -> int:
        """Deletes the media of imports whose holds expired and whose lessons were never stored
        (a process killed part-way), unless another upload claimed them; how many holds it
        swept. Holds of imports still running are not expired (see `hold_s`)."""
        at = self.clock()
        holds = await self.holds.take_expired(at, at + timedelta(seconds=self.settings.hold_s))
        for hold in holds:
            if not (hold.lessons and await self.lessons.stored_any(hold.tenant, hold.lessons)):
                for media_id in hold.media:
                    await self.media.store.delete(hold.tenant, media_id, unless_claimed=True)
                log.info("deleted the media of an import that ended unfinished",
                         extra={"tenant": hold.tenant, "import": hold.id, "course": hold.course})
            await self.holds.drop(hold.tenant, hold.id)
        return len(holds)



def _local_targets(body: str, parts: list[lesson_file.Part] | None,
                   base: str) -> dict[str, str | None]:
    """Each local link target of `body` (of its `parts`, for an exported lesson: the media
    paths their Markdown links and the files their blocks name), with the path it names
    inside the upload."""
    if parts is None:
        return markdown.local_links(body, base)
    found: dict[str, str | None] = {}

    def text(value: str) -> str:
        found.update((target, path) for target, path in markdown.local_links(value, base).items()
                     if lesson_file.names_media(target))
        return value

    def media(value: str) -> str:
        if markdown.is_local(value):
            found[value] = markdown.local_path(value, base)
        return value

    for part in parts:
        if isinstance(part, str):
            text(part)
        else:
            lesson_file.map_block(part, media, text)
    return found


def _stand_in(asset: Asset) -> MediaInfo:
    """The asset as a stand-in media: the lessons that use it are checked against it before
    anything is stored, and get the real media once the whole import is known to be valid."""
    return MediaInfo(id=_STAND_IN_ID, tenant="stand-in", filename=asset.filename or "file",
                     content_type="application/octet-stream", kind=asset.kind, size=asset.digest.size,
                     sha256="0" * 64, created_at=now())
