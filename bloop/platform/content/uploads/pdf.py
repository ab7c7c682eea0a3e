"""A PDF's text, page by page, as Markdown (pypdf: pure Python, no system library, run in a
child process by `pdf_reader`)."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import signal
import sys
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bloop.platform.content.uploads.markdown import escape
from bloop.platform.content.uploads.settings import MB, UploadSettings
from bloop.platform.content.uploads.shares import Queue
from bloop.platform.kit import processes
from bloop.platform.kit.errors import Problem
from bloop.platform.kit.text import BIDI, CONTROLS, NONCHARACTERS, visible

log = logging.getLogger("bloop.content.uploads")
READER = "bloop.platform.content.uploads.pdf_reader"
RETRY = {"Retry-After": "30"}


class UnreadablePdf(Problem):
    status, code = 422, "unreadable_pdf"


class PdfTooComplex(Problem):
    status, code = 422, "pdf_too_complex"


class PdfReaderUnavailable(Problem):
    status, code = 503, "pdf_reader_unavailable"


@dataclass(frozen=True)
class PdfText:
    title: str | None
    pages: list[str]
    """Each page's text as Markdown paragraphs; empty for a page without text."""
    page_count: int


# Letter shapes a PDF may draw instead of letters: Latin ligatures (ﬁ), Arabic letters in their
# joined forms (ﻣﺎ for ما), Hebrew with points; NFKC gives the letters back, so search finds them.
_PRESENTATION_FORMS = re.compile("[\uFB00-\uFDFF\uFE70-\uFEFE]+")
# Chinese and Japanese are written without spaces: a line break inside their text is no space.
_UNSPACED = re.compile("[\u3000-\u30FF\u3400-\u4DBF\u4E00-\u9FFF\uF900-\uFAFF\uFF00-\uFFEF]")


# A line shorter than this share of a page's full lines ends its paragraph.
SHORT_LINE = 0.75
# A list item's mark: a bullet, or a number or letter with a dot or parenthesis, then a space.
_ITEM = re.compile(r"(?:[\u2022\u2023\u25e6\u25aa\u25cf\u2043\u2219\u00b7*\u2013-]"
                   r"|[0-9]{1,3}[.)]|[a-z][.)]) ")


def _full_line(widths: list[int]) -> int:
    """The width of full lines (most lines of a paragraph reach it) among lines `widths` wide;
    0 when too few to tell."""
    if len(widths) < 5:
        return 0
    return sorted(widths)[len(widths) * 4 // 5]


def _lines(text: str) -> list[str]:
    return [_line(line) for line in _letters(text).splitlines()]


def _document(pages: list[str]) -> list[str]:
    """Each page's paragraphs, where a full line is as wide as the document's (a slide of a
    heading and two lines tells none of its own)."""
    full = _full_line([_width(line) for page in pages for line in _lines(page) if line])
    return [_paragraphs(page, full) for page in pages]


def _width(line: str) -> int:
    """A line's width in columns: a Chinese or Japanese character takes two."""
    return len(line) + sum(unicodedata.east_asian_width(c) in "WF" for c in line)


def _letters(text: str) -> str:
    return _PRESENTATION_FORMS.sub(lambda m: unicodedata.normalize("NFKC", m[0]), text)


def _joined(lines: list[str]) -> str:
    text = lines[0]
    for line in lines[1:]:
        unspaced = _UNSPACED.match(text[-1]) and _UNSPACED.match(line[0])
        text += line if unspaced else " " + line
    return text


def _line(text: str) -> str:
    # a PDF's text may hold control characters (drawn as nothing), which lessons refuse
    return re.sub(rf"[ {CONTROLS}]+", " ", text).strip()


def _title(found: str | None) -> str | None:
    """The title a PDF's metadata gives, as a line a lesson's title may be (no bidirectional
    overrides nor noncharacters either); None when nothing visible is left of it."""
    title = _line(re.sub(f"[{BIDI}{NONCHARACTERS}]", "", _letters(found or "")))
    return title if visible(title) else None


def _paragraphs(text: str, full: int | None = None) -> str:
    """A page's text as paragraphs. A PDF draws lines, not paragraphs, and seldom a blank line
    between them: a paragraph also ends at a line well short of the page's full lines (a
    heading, a paragraph's last line, a line of code) and before a line that starts a list item.
    `full` is the document's full line width, else the page's."""
    lines = _lines(text)
    if full is None:
        full = _full_line([_width(line) for line in lines if line])
    paras: list[str] = []
    current: list[str] = []

    def end() -> None:
        if current:
            paras.append(_joined(current))
            current.clear()

    for line in lines:
        if _ITEM.match(line):
            end()
        if line:
            current.append(line)
        if not line or _width(line) < SHORT_LINE * full:
            end()
    end()
    return "\n\n".join(escape(p) for p in paras)


async def read_pdf(path: Path, source: str, settings: UploadSettings,
                   readers: Queue | None = None, tenant: str = "") -> PdfText:
    """The text of the PDF at `path`, read in a child process (`pdf_reader`) held to
    `settings`' CPU time and memory. 422 `unreadable_pdf` when it cannot be parsed, is encrypted,
    or has too many pages (`pdf_too_long`), or `pdf_too_complex` past the limits (or pypdf's
    own); 503 when the
    reader cannot run or does not finish in time. With `readers`, a read waits for one of them
    (within the same time), in turn, after another tenant's read when `tenant` holds all of
    them but one (see `shares.Queue`)."""
    try:
        async with asyncio.timeout(settings.pdf_timeout_s):
            release = await readers.take(None, tenant) if readers else (lambda: None)
            try:
                found = await _run(path, source, settings)
            finally:
                release()
    except TimeoutError:
        raise PdfReaderUnavailable(
            f"{source}: reading the PDF took more than {settings.pdf_timeout_s:g} s "
            "(BLOOP_UPLOAD_PDF_TIMEOUT_S); try again later", extra={"file": source},
            headers=RETRY) from None
    error = found.get("error")
    extra = {"file": source}
    if error == "encrypted":
        raise UnreadablePdf(f"{source}: the PDF is encrypted; upload it unprotected", extra=extra)
    if error == "too_long":
        raise UnreadablePdf(f"{source}: the PDF has {found['pages']} pages, more than "
                            f"{settings.pdf_max_pages}", code="pdf_too_long", extra=extra)
    if error == "memory":
        raise PdfTooComplex(f"{source}: reading the PDF's text needs more than "
                            f"{settings.pdf_max_memory_bytes // MB} MB of memory "
                            "(BLOOP_UPLOAD_PDF_MAX_MEMORY_BYTES)", extra=extra)
    if error == "limit":
        raise PdfTooComplex(f"{source}: the PDF is too complex to read ({found.get('reason')})",
                            extra=extra)
    if error is not None:
        raise UnreadablePdf(f"{source}: the PDF cannot be read ({found.get('reason')})",
                            extra=extra)
    return PdfText(title=_title(found["title"]), pages=_document(found["pages"]),
                   page_count=found["page_count"])


async def _run(path: Path, source: str, settings: UploadSettings) -> dict[str, Any]:
    args = [str(path), str(settings.pdf_max_pages), str(settings.pdf_max_cpu_s),
            str(settings.pdf_max_memory_bytes)]
    try:
        proc = await processes.start(sys.executable, "-m", READER, *args,
                                     stdout=processes.PIPE, stderr=processes.PIPE)
    except OSError as exc:
        log.error("the PDF reader cannot start: %s", exc)
        raise PdfReaderUnavailable(f"{source}: the PDF reader cannot start; try again later",
                                   extra={"file": source}, headers=RETRY) from None
    out, err = await proc.communicate()  # timed out or cancelled, it kills the reader
    if proc.returncode in (-signal.SIGXCPU, -signal.SIGKILL):
        raise PdfTooComplex(f"{source}: reading the PDF's text takes more than "
                            f"{settings.pdf_max_cpu_s} s of CPU (BLOOP_UPLOAD_PDF_MAX_CPU_S)",
                            extra={"file": source})
    try:
        found: dict[str, Any] = json.loads(out)
    except ValueError:
        log.error("the PDF reader failed (exit status %s): %s", proc.returncode,
                  err.decode(errors="replace")[-2000:])
        raise PdfReaderUnavailable(f"{source}: the PDF reader failed; try again later",
                                   extra={"file": source}, headers=RETRY) from None
    return found
