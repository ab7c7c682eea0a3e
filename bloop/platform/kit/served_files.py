"""Stored files served inline (media, AI outputs): one byte range as 206 (RFC 9110 §14),
`If-None-Match` and `If-Range` against the file's entity tag, `HEAD` without the body, and
headers by which browsers take a file as the type it is sent as, never as one sniffed from its
bytes, an SVG neither running script nor loading anything."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Header, Request, Response
from fastapi.responses import StreamingResponse

from bloop.platform.kit.errors import Problem
from bloop.platform.kit.preconditions import entity_tags
from bloop.platform.kit.ranges import ByteRange, Unsatisfiable, parse_range

SVG_POLICY = "default-src 'none'; style-src 'unsafe-inline'; sandbox"


class RangeNotSatisfiable(Problem):
    status, code = 416, "range_not_satisfiable"


def safety_headers(content_type: str) -> dict[str, str]:
    headers = {"X-Content-Type-Options": "nosniff"}
    if content_type.split(";", 1)[0].strip().lower() == "image/svg+xml":
        headers["Content-Security-Policy"] = SVG_POLICY
    return headers


@dataclass(frozen=True)
class ServedFile:
    etag: str  # strong: the bytes never change under it
    content_type: str
    size: int
    disposition: str


@dataclass(frozen=True)
class Conditions:
    """What a request asks of a file: `Range`, `If-Range`, `If-None-Match`."""

    range: str | None = None
    if_range: str | None = None
    if_none_match: str | None = None


def _conditions(range_: Annotated[str | None, Header(alias="range")] = None,
                if_range: Annotated[str | None, Header()] = None,
                if_none_match: Annotated[str | None, Header()] = None) -> Conditions:
    return Conditions(range_, if_range, if_none_match)


Asked = Annotated[Conditions, Depends(_conditions)]


def serve_file(file: ServedFile, request: Request, asked: Conditions,
               read: Callable[[ByteRange], AsyncIterator[bytes]]) -> Response:
    """The file, or the one range asked for (416 past its end), as `asked` has it; `read`
    gives the bytes of a range and is called only when they are sent."""
    headers = {"Accept-Ranges": "bytes", "ETag": file.etag, "Cache-Control": "private, max-age=3600",
               "Content-Disposition": file.disposition, **safety_headers(file.content_type)}
    tags = entity_tags(asked.if_none_match)
    if file.etag in tags or "*" in tags:
        return Response(status_code=304, headers=headers)
    wanted = asked.range
    if asked.if_range is not None and asked.if_range.strip() != file.etag:
        wanted = None  # a weak tag or a date never matches: the whole file
    try:
        part = parse_range(wanted, file.size)
    except Unsatisfiable as exc:
        raise RangeNotSatisfiable(str(exc), headers={"Content-Range": f"bytes */{exc.size}"}) \
            from None
    headers["Content-Length"] = str(part.length)
    status = 200
    if part.partial:
        status = 206
        headers["Content-Range"] = part.content_range
    if request.method == "HEAD":
        return Response(status_code=status, headers=headers, media_type=file.content_type)
    return StreamingResponse(read(part), status_code=status, headers=headers,
                             media_type=file.content_type)
