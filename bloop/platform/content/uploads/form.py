"""An import's multipart form, read as its bytes arrive. Each file of the field `files` is written
into the import's folder (in the data directory's spool) as it comes, and refused, before the
rest of the body is read, once its first bytes show it is not an accepted type or it passes its
type's size limit, as the import's checks would refuse it; the form is held to `max_files` files
as each starts. Its other parts are read and dropped: files of other fields (counted among
`max_files`), and up to `MAX_FIELDS` fields of `FIELD_BYTES` each."""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import time
from collections.abc import AsyncIterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Protocol

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import parse_options_header

from bloop.platform.content.media import sniff
from bloop.platform.content.media.form import PartParser
from bloop.platform.content.media.service import FLUSH_BYTES, FLUSH_S
from bloop.platform.content.uploads.service import Incoming, SizeCheck
from bloop.platform.kit.errors import Problem

FIELD = "files"
MAX_FIELDS = 20
FIELD_BYTES = 1024 * 1024


class SizeChecks(Protocol):
    """`UploadService.size_check`: a file's size limit, from its first bytes."""

    def __call__(self, name: str, claimed: str | None, head: bytes, *,
                 complete: bool) -> SizeCheck: ...


def _unreadable(why: str) -> Problem:
    return Problem(f"the multipart body cannot be read: {why}", status=422,
                   code="invalid_multipart")


@dataclass(eq=False)
class _File:
    """A file of the form, its bytes written to `incoming.path` a batch at a time."""

    incoming: Incoming
    head: bytearray = field(default_factory=bytearray)
    """Its first bytes, up to one more than `sniff.SNIFF_BYTES`, until its type is told."""
    check: SizeCheck | None = None
    size: int = 0
    pending: bytearray = field(default_factory=bytearray)
    handle: IO[bytes] | None = None
    written_at: float = field(default_factory=time.monotonic)
    ended: bool = False
    closed: bool = False

    def due(self) -> bool:
        # A slow upload's folder is written at least every FLUSH_S: the sweep goes by its age.
        if self.closed:
            return False
        if self.ended or len(self.pending) >= FLUSH_BYTES:
            return True
        return bool(self.pending) and time.monotonic() - self.written_at >= FLUSH_S

    def write(self) -> None:
        """Writes the pending bytes (creating the file first), and closes it once ended."""
        data, self.pending = bytes(self.pending), bytearray()
        if self.handle is None:
            self.handle = self.incoming.path.open("wb")
        self.handle.write(data)
        self.handle.flush()
        self.written_at = time.monotonic()
        if self.ended:
            self.close()

    def close(self) -> None:
        self.closed = True
        if self.handle is not None:
            with contextlib.suppress(OSError):
                self.handle.close()


class _Reader(PartParser):
    """Feeds the body to a push parser; its callbacks check and collect, `_flush` writes."""

    def __init__(self, boundary: bytes, charset: str, into: Path, max_files: int,
                 checks: SizeChecks) -> None:
        super().__init__(boundary)
        self._charset, self._into, self._max_files, self._checks = charset, into, max_files, checks
        self.files: list[_File] = []
        self._file: _File | None = None
        self._field_bytes: int | None = None
        """The bytes of the text field being read; None in a file's part."""
        self._file_parts = self._fields = 0

    async def read(self, body: AsyncIterable[bytes]) -> None:
        async for chunk in body:
            try:
                self._parser.write(chunk)
            except FormParserError as exc:
                raise _unreadable(str(exc)) from None
            await self._flush()
        if not self._ended:
            raise _unreadable("it ends before its closing boundary")

    async def _flush(self) -> None:
        for file in self.files:
            if file.due():
                await asyncio.to_thread(file.write)

    def close(self) -> None:
        for file in self.files:
            file.close()

    def _decode(self, value: bytes) -> str:
        try:
            return value.decode(self._charset)
        except (UnicodeDecodeError, LookupError):
            return value.decode("latin-1")

    # -- the parser's callbacks ------------------------------------------------------------
    def _headers_finished(self) -> None:
        _, options = parse_options_header(self._headers.get(b"content-disposition"))
        if b"name" not in options:
            raise _unreadable('The Content-Disposition header field "name" must be provided.')
        name = self._decode(options[b"name"])
        self._file, self._field_bytes = None, None
        if b"filename" not in options:
            self._fields += 1
            if self._fields > MAX_FIELDS:
                raise _unreadable(f"Too many fields. Maximum number of fields is {MAX_FIELDS}.")
            if name == FIELD:
                raise Problem(f"the field `{FIELD}` must hold files, not text", status=422,
                              code="invalid_multipart")
            self._field_bytes = 0
            return
        self._file_parts += 1
        if self._file_parts > self._max_files:
            raise _unreadable(f"Too many files. Maximum number of files is {self._max_files}.")
        if name != FIELD:
            return
        n = len(self.files)
        claimed = self._headers.get(b"content-type")
        self._file = _File(Incoming(
            name=self._decode(options[b"filename"]) or f"file-{n + 1}",
            path=self._into / f"part-{n:04d}",
            claimed=None if claimed is None else claimed.decode("latin-1")))
        self.files.append(self._file)

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self._field_bytes is not None:
            self._field_bytes += end - start
            if self._field_bytes > FIELD_BYTES:
                raise _unreadable(f"Part exceeded maximum size of {FIELD_BYTES // 1024}KB.")
            return
        file = self._file
        if file is None:
            return  # a file of another field
        piece = data[start:end]
        file.size += len(piece)
        file.pending += piece
        if file.check is None:
            file.head += piece[:sniff.SNIFF_BYTES + 1 - len(file.head)]
            if len(file.head) > sniff.SNIFF_BYTES:
                self._tell(file, complete=False)
        if file.check is not None:
            file.check(file.size, False)

    def _part_end(self) -> None:
        file = self._file
        if file is None:
            return
        file.ended = True
        if file.check is None:
            self._tell(file, complete=True)
        if file.check is not None:
            file.check(file.size, True)
        self._file = None

    def _tell(self, file: _File, *, complete: bool) -> None:
        head = bytes(file.head[:sniff.SNIFF_BYTES])
        file.check = self._checks(file.incoming.name, file.incoming.claimed, head,
                                  complete=complete)
        file.head = bytearray()


def _charset(params: dict[bytes, bytes]) -> str:
    try:
        return codecs.lookup(params.get(b"charset", b"utf-8").decode("latin-1")).name
    except LookupError:
        return "latin-1"


async def read_files(body: AsyncIterable[bytes], content_type: str, into: Path, *,
                     max_files: int, checks: SizeChecks) -> list[Incoming]:
    """The files of the form's field `files`, written into the folder `into` (`part-0000`, …)
    as they arrive; 413, 415 or 422 naming the file (and nothing left open) as soon as one is
    too large for its kind or not an accepted type, 422 `invalid_multipart` for a form that
    cannot be read or holds more than `max_files` files."""
    _, params = parse_options_header(content_type)
    boundary = params.get(b"boundary")
    if not boundary:
        raise _unreadable("its Content-Type names no boundary")
    reader = _Reader(boundary, _charset(params), into, max_files, checks)
    try:
        await reader.read(body)
    finally:
        reader.close()
    return [f.incoming for f in reader.files]
