"""A PDF's text, page by page, as Markdown (pypdf: pure Python, no system library)."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

from pypdf import PdfReader

from bloop.platform.content.uploads.markdown import escape
from bloop.platform.kit.errors import Problem
from bloop.platform.kit.text import CONTROLS

logging.getLogger("pypdf").setLevel(logging.ERROR)


class UnreadablePdf(Problem):
    status, code = 422, "unreadable_pdf"


@dataclass(frozen=True)
class PdfText:
    title: str | None
    pages: list[str]
    """Each page's text as Markdown paragraphs; empty for a page without text."""
    page_count: int


def _paragraphs(text: str) -> str:
    # a PDF's text may hold control characters (drawn as nothing), which lessons refuse
    lines = [re.sub(rf"[ {CONTROLS}]+", " ", line).strip() for line in text.splitlines()]
    paras: list[str] = []
    current: list[str] = []
    for line in lines:
        if line:
            current.append(line)
        elif current:
            paras.append(" ".join(current))
            current = []
    if current:
        paras.append(" ".join(current))
    return "\n\n".join(escape(p) for p in paras)


def read_pdf(path: Path, source: str, max_pages: int) -> PdfText:
    """The text of the PDF at `path`; `UnreadablePdf` (422) when it cannot be parsed, is
    encrypted, or has more than `max_pages` pages."""
    try:
        reader = PdfReader(path, strict=False)
        if reader.is_encrypted and not reader.decrypt(""):
            raise UnreadablePdf(f"{source}: the PDF is encrypted; upload it unprotected",
                                extra={"file": source})
        count = len(reader.pages)
        if count > max_pages:
            raise UnreadablePdf(f"{source}: the PDF has {count} pages, more than {max_pages}",
                                code="pdf_too_long", extra={"file": source})
        pages = [_paragraphs(page.extract_text() or "") for page in reader.pages]
        meta = reader.metadata
        title = str(meta.title).strip() if meta is not None and meta.title else None
    except UnreadablePdf:
        raise
    except Exception as exc:  # pypdf raises many kinds of error on a broken file
        raise UnreadablePdf(f"{source}: the PDF cannot be read ({type(exc).__name__}: {exc})",
                            extra={"file": source}) from None
    return PdfText(title=title or None, pages=pages, page_count=count)
