"""The import route: educators send files (multipart field `files`, one or many) and get the
lessons and media made from them, or a problem and nothing changed."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Request
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException
from starlette.types import Message, Receive

from bloop.platform.content.api import Author, CourseId, TenantId
from bloop.platform.content.uploads.service import ImportResult, Incoming, UploadService
from bloop.platform.kit.errors import BodyRefused, Problem

COPY_BYTES = 1024 * 1024


async def get_uploads(request: Request) -> UploadService:
    service: UploadService = request.app.state.content.state["uploads"]
    return service


Svc = Annotated[UploadService, Depends(get_uploads)]

router = APIRouter(prefix="/v1/tenants/{tenant}/courses/{course}", tags=["uploads"])


class RequestTooLarge(Problem):
    status, code = 413, "too_large"


def _limited(receive: Receive, limit: int) -> Receive:
    received = 0

    async def read() -> Message:
        nonlocal received
        message = await receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > limit:
                raise RequestTooLarge(f"the upload is larger than {limit} bytes in all",
                                      extra={"limit_bytes": limit})
        return message

    return read


def _copy(upload: UploadFile, to: Path) -> None:
    upload.file.seek(0)
    with to.open("wb") as out:
        shutil.copyfileobj(upload.file, out, COPY_BYTES)


def _unreadable(why: str) -> Problem:
    return Problem(f"the multipart body cannot be read: {why}", status=422,
                   code="invalid_multipart")


@router.post("/uploads", status_code=201, openapi_extra={"requestBody": {"content": {
    "multipart/form-data": {"schema": {"type": "object", "properties": {"files": {
        "type": "array", "items": {"type": "string", "format": "binary"}}}}}}}})
async def import_files(
    tenant: TenantId, course: CourseId, request: Request, service: Svc, me: Author,
    content_length: Annotated[int | None, Header(ge=0)] = None,
) -> ImportResult:
    """Imports the files into the course: Markdown with YAML front matter (a lesson), a zip of
    Markdown and images (a lesson per Markdown file, its images stored as media, an image alone
    in its paragraph an image block, and its links rewritten to them), a PDF (a lesson of its
    text, the file kept), images, audio and video (media). All or nothing: 413, 415 or 422
    naming the file and what is wrong, and nothing stored."""
    limit = service.settings.max_request_bytes
    if content_length is not None and content_length > limit:
        raise RequestTooLarge(f"the upload is larger than {limit} bytes in all",
                              extra={"limit_bytes": limit})
    limited = Request(request.scope, _limited(request.receive, limit))
    try:
        form = await limited.form(max_files=service.settings.max_files, max_fields=20)
    except MultiPartException as exc:
        raise _unreadable(exc.message) from None
    except HTTPException as exc:  # Starlette's own wrapping of a MultiPartException
        if exc.status_code != 400 or isinstance(exc, BodyRefused):
            raise
        raise _unreadable(exc.detail) from None
    work = await asyncio.to_thread(service.workdir)
    try:
        files: list[Incoming] = []
        for n, part in enumerate(form.getlist("files")):
            if not isinstance(part, UploadFile):
                raise Problem("the field `files` must hold files, not text", status=422,
                              code="invalid_multipart")
            path = work / f"part-{n:04d}"
            await asyncio.to_thread(_copy, part, path)
            files.append(Incoming(name=part.filename or f"file-{n + 1}", path=path,
                                  claimed=part.content_type))
        return await service.import_files(tenant, course, files, by=me, work=work)
    finally:
        await form.close()
        await asyncio.to_thread(shutil.rmtree, work, True)
