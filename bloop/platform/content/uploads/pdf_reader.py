"""Reads a PDF's text in a process of its own, under limits of CPU time and memory:
`python -m bloop.platform.content.uploads.pdf_reader PATH MAX_PAGES CPU_S MEMORY_BYTES` writes
one JSON object to stdout. A small PDF can make pypdf work for minutes (pages that share one
content stream, forms drawn thousands of times), holding the GIL; in a child it holds neither
the server's event loop nor more than its limits. Imports nothing of Bloop (so starts fast)."""

from __future__ import annotations

import json
import logging
import resource
import sys
from pathlib import Path
from typing import Any


def limit(which: int, soft: int, hard: int) -> None:
    """Lowers a limit to `soft` (and `hard`), never raising one already lower."""
    _, old_hard = resource.getrlimit(which)
    if old_hard != resource.RLIM_INFINITY:
        hard = min(hard, old_hard)
    resource.setrlimit(which, (min(soft, hard), hard))


def read(path: Path, max_pages: int) -> dict[str, Any]:
    """`{"title", "pages", "page_count"}`, each page's text as pypdf gives it, or `{"error":
    "encrypted" | "too_long" (with "pages") | "unreadable" or "limit" (with "reason") |
    "memory"}` ("limit": past one of pypdf's own limits)."""
    from pypdf import PdfReader  # once the limits hold
    from pypdf.errors import LimitReachedError

    logging.getLogger("pypdf").setLevel(logging.ERROR)
    try:
        reader = PdfReader(path, strict=False)
        if reader.is_encrypted and not reader.decrypt(""):
            return {"error": "encrypted"}
        count = len(reader.pages)
        if count > max_pages:
            return {"error": "too_long", "pages": count}
        pages = [page.extract_text() or "" for page in reader.pages]
        meta = reader.metadata
        title = str(meta.title) if meta is not None and meta.title else None
    except MemoryError:
        return {"error": "memory"}
    except LimitReachedError as exc:
        return {"error": "limit", "reason": str(exc)}
    except Exception as exc:  # pypdf raises many kinds of error on a broken file
        return {"error": "unreadable", "reason": f"{type(exc).__name__}: {exc}"}
    return {"title": title, "pages": pages, "page_count": count}


def main(argv: list[str]) -> int:
    path, max_pages, cpu_s, memory_bytes = argv
    # past the soft limit the kernel sends SIGXCPU, which ends the process; a second later SIGKILL
    limit(resource.RLIMIT_CPU, int(cpu_s), int(cpu_s) + 1)
    limit(resource.RLIMIT_AS, int(memory_bytes), int(memory_bytes))
    found = read(Path(path), int(max_pages))
    try:
        out = json.dumps(found)
    except MemoryError:
        out = json.dumps({"error": "memory"})
    sys.stdout.write(out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
