"""A file sent as a multipart form (an HTML form, `curl -F file=@notes.pdf`), read as its bytes
arrive, so the size limits and the quota hold for it as they hold for a raw body. The form holds
one file; its other fields are ignored, up to `FIELD_BYTES` in all."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header

from bloop.platform.kit.errors import Problem

FIELD_BYTES = 64 * 1024
FILENAME_CHARS = 255


class InvalidForm(Problem):
    status, code = 422, "invalid_multipart"


def is_form(content_type: str | None) -> bool:
    return parse_options_header(content_type)[0] == b"multipart/form-data"


@dataclass(slots=True)
class FormFile:
    filename: str | None
    content_type: str | None
    chunks: AsyncIterator[bytes]


class PartParser(ABC):
    """A push parser of a multipart body whose parts' headers are collected here; subclasses
    handle each part from its headers (`_headers_finished`) on."""

    def __init__(self, boundary: bytes) -> None:
        self._parser = MultipartParser(boundary, {
            "on_part_begin": self._part_begin, "on_header_field": self._header_field,
            "on_header_value": self._header_value, "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished, "on_part_data": self._part_data,
            "on_part_end": self._part_end, "on_end": self._end})
        self._name, self._value = b"", b""
        self._headers: dict[bytes, bytes] = {}
        self._ended = False

    def _part_begin(self) -> None:
        self._headers = {}

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._name += data[start:end]

    def _header_value(self, data: bytes, start: int, end: int) -> None:
        self._value += data[start:end]

    def _header_end(self) -> None:
        self._headers[self._name.lower()] = self._value
        self._name, self._value = b"", b""

    @abstractmethod
    def _headers_finished(self) -> None:
        """A part's headers are in `_headers`: what the part is."""

    @abstractmethod
    def _part_data(self, data: bytes, start: int, end: int) -> None:
        """The part's bytes `data[start:end]`, as they arrive."""

    @abstractmethod
    def _part_end(self) -> None:
        """The part has ended."""

    def _end(self) -> None:
        self._ended = True


class _Reader(PartParser):
    """Feeds the body to a push parser and keeps the file part's bytes for `chunks`."""

    def __init__(self, body: AsyncIterable[bytes], boundary: bytes) -> None:
        super().__init__(boundary)
        self._body = aiter(body)
        self.file: FormFile | None = None
        self._in_file = self._file_ended = False
        self._field_bytes = 0
        self._out: list[bytes] = []

    async def _feed(self) -> bool:
        """Parses the next piece of the body; False once the body has ended."""
        try:
            chunk = await anext(self._body)
        except StopAsyncIteration:
            self._parser.finalize()
            if not self._ended:
                raise InvalidForm("the multipart body ends before its closing boundary") from None
            return False
        try:
            self._parser.write(chunk)
        except FormParserError as exc:
            raise InvalidForm(f"the multipart body cannot be read: {exc}") from None
        return True

    async def open(self) -> FormFile:
        while self.file is None:
            if not await self._feed():
                raise InvalidForm("the form holds no file (a part with a filename)")
        return self.file

    async def chunks(self) -> AsyncIterator[bytes]:
        while True:
            while self._out:
                yield self._out.pop(0)
            if self._file_ended:
                break
            if not await self._feed():
                return
        while await self._feed():  # the rest must still be a well-formed form with no other file
            pass

    # -- the parser's callbacks ------------------------------------------------------------
    def _headers_finished(self) -> None:
        _, options = parse_options_header(self._headers.get(b"content-disposition"))
        if b"filename" not in options:
            return
        if self.file is not None:
            raise InvalidForm("send one file at a time; this form holds more",
                              code="one_file_only")
        filename = options[b"filename"].decode("utf-8", "replace").rsplit("/", 1)[-1].strip()
        if len(filename) > FILENAME_CHARS:
            raise InvalidForm(f"the file's name is longer than {FILENAME_CHARS} characters",
                              code="filename_too_long")
        claimed = self._headers.get(b"content-type", b"").decode("latin-1").strip()
        self.file = FormFile(filename or None, claimed or None, self.chunks())
        self._in_file = True

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self._in_file:
            self._out.append(data[start:end])
            return
        self._field_bytes += end - start
        if self._field_bytes > FIELD_BYTES:
            raise InvalidForm(f"the form's fields other than the file hold more than "
                              f"{FIELD_BYTES} bytes", code="form_too_large", status=413)

    def _part_end(self) -> None:
        if self._in_file:
            self._in_file, self._file_ended = False, True


async def form_file(body: AsyncIterable[bytes], content_type: str) -> FormFile:
    """The form's file, its name and claimed type read from its part's headers; its `chunks`
    raise `InvalidForm` when the rest of the form is malformed or holds another file."""
    _, params = parse_options_header(content_type)
    boundary = params.get(b"boundary")
    if not boundary:
        raise InvalidForm("a multipart/form-data body needs a boundary in its Content-Type")
    return await _Reader(body, boundary).open()
