"""The import route: educators send files (multipart field `files`, one or many) and get the
lessons and media made from them, or a problem and nothing changed."""

from __future__ import annotations

import asyncio
import logging
import shutil
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from fastapi.responses import StreamingResponse
from starlette.requests import ClientDisconnect
from starlette.types import Message, Receive, Scope, Send

from bloop.platform.content.api import Author, CourseId, TenantId
from bloop.platform.content.media.form import is_form
from bloop.platform.content.media.sniff import media_type
from bloop.platform.content.uploads.export import CourseArchive, ExportService, ExportVersion
from bloop.platform.content.uploads.form import read_files
from bloop.platform.content.uploads.service import ImportResult, UploadService
from bloop.platform.kit.errors import CLIENT_CLOSED, Problem
from bloop.platform.kit.middleware import count_as
from bloop.platform.kit.problem_docs import RETRY_AFTER, documented_problem
from bloop.platform.kit.threads import each_in_thread


async def get_uploads(request: Request) -> UploadService:
    service: UploadService = request.app.state.content.state["uploads"]
    return service


Svc = Annotated[UploadService, Depends(get_uploads)]


async def get_exports(request: Request) -> ExportService:
    service: ExportService = request.app.state.content.state["exports"]
    return service


Exports = Annotated[ExportService, Depends(get_exports)]
log = logging.getLogger("bloop.content.uploads")
MISSING_LISTED = 100
READ_BYTES = 256 * 1024

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


async def result_json(result: ImportResult) -> bytes:
    """`result` as FastAPI would answer it, each lesson written out in a worker thread: the
    lessons of a big import are tens of MB of JSON, which one call would write holding the event
    loop for a tenth of a second."""
    rest = result.model_copy(update={"lessons": []}).model_dump_json(by_alias=True).encode()
    head = b'{"lessons":[]'
    if not rest.startswith(head):
        raise AssertionError("an import's result starts with its lessons")
    parts = [b'{"lessons":[']
    for n, lesson in enumerate(await each_in_thread(
            lambda x: x.model_dump_json(by_alias=True).encode(), result.lessons)):
        parts += [b",", lesson] if n else [lesson]
    parts += [b"]", rest[len(head):]]
    return await asyncio.to_thread(b"".join, parts)  # copying MB off the loop too


@router.post("/uploads", status_code=201, response_model=ImportResult, openapi_extra={
    "requestBody": {"content": {"multipart/form-data": {"schema": {
        "type": "object", "properties": {"files": {
            "type": "array", "items": {"type": "string", "format": "binary"}}}}}}}})
async def import_files(
    tenant: TenantId, course: CourseId, request: Request, service: Svc, me: Author,
    content_length: Annotated[int | None, Header(ge=0)] = None,
) -> Response:
    """Imports the files into the course: Markdown with YAML front matter (a lesson), a zip of
    Markdown and images (a lesson per Markdown file, its images stored as media, an image alone
    in its paragraph an image block, and its links rewritten to them), a PDF (a lesson of its
    text, the file kept), images, audio and video (media). All or nothing: 413, 415 or 422
    naming the file and what is wrong, and nothing stored. Each file is written to the data
    directory as it arrives, and refused as soon as it passes its kind's size limit."""
    limit = service.settings.max_request_bytes
    if content_length is not None and content_length > limit:
        raise RequestTooLarge(f"the upload is larger than {limit} bytes in all",
                              extra={"limit_bytes": limit})
    await service.check_author(tenant, course, me)
    content_type = request.headers.get("content-type", "")
    if not is_form(content_type):
        if media_type(content_type) == "application/x-www-form-urlencoded":
            raise Problem("send the files as multipart/form-data (field `files`), not as a "
                          "URL-encoded form", status=422, code="invalid_multipart")
        result = await service.import_files(tenant, course, [], by=me)  # 422 no_files
    else:
        body = Request(request.scope, _limited(request.receive, limit)).stream()
        work = await asyncio.to_thread(service.workdir)
        try:
            files = await read_files(body, content_type, work,
                                     max_files=service.settings.max_files,
                                     checks=service.size_check)
            result = await service.import_files(tenant, course, files, by=me, work=work)
        finally:
            await asyncio.to_thread(shutil.rmtree, work, True)
    return Response(await result_json(result), status_code=201, media_type="application/json")


@router.get("/export", response_class=StreamingResponse, responses={
    200: {"content": {"application/zip": {}},
          "description": "the zip; `X-Missing-Media` names media the store no longer has"},
    409: documented_problem("the draft changed during each build", 409, "course_changed",
                            "the course changed while it was exported; export it again"),
    503: {**documented_problem("as many exports as the process builds at once are being built, "
                               "or it keeps as many zips (or bytes of them) in its spool for "
                               "their clients as it may (or a store it reads is down: "
                               "`store_unavailable`)", 503,
                               "too_many_exports", "4 course exports are being built in this "
                               "process; try again shortly"), "headers": RETRY_AFTER}})
async def export_course(
    tenant: TenantId, course: CourseId, request: Request, exports: Exports, me: Author,
    version: Annotated[ExportVersion, Query(description=(
        "the draft (its authors' latest) or the last publication"))] = "draft",
) -> StreamingResponse:
    """The course's lessons as a zip `POST …/uploads` takes back, block for block: a Markdown
    file a lesson in order, and the media they name. Its owner, co-authors and the tenant's
    admins only. Media the store no longer has are left out and named in
    `X-Missing-Media` (the first 100; `X-Missing-Media-Count` counts them): an import
    of the zip refuses the lessons that show them (422 `missing_file`). A draft edited while
    it is written is written again, 409 `course_changed` after 3 tries; a process builds
    `BLOOP_UPLOAD_EXPORTS_AT_ONCE` exports at once (503 `too_many_exports` beyond; a built zip
    being sent is not counted), and stops building one whose client left. It keeps
    `BLOOP_UPLOAD_EXPORTS_WAITING` zips in its spool at once, built or being built, and
    `BLOOP_UPLOAD_EXPORTS_WAITING_BYTES` of built ones (503 `too_many_exports` beyond). A
    client that takes no chunk of its zip for `BLOOP_UPLOAD_EXPORT_SEND_IDLE_S` is cut off."""

    async def checkpoint() -> None:
        if await request.is_disconnected():
            raise ClientDisconnect

    made = await exports.export(tenant, course, by=me, version=version, checkpoint=checkpoint)
    headers = {"Content-Disposition": f'attachment; filename="{made.filename}"',
               "Content-Length": str(made.size), "Cache-Control": "no-store",
               "X-Lesson-Count": str(made.lessons)}
    if made.missing:
        headers["X-Missing-Media"] = ", ".join(made.missing[:MISSING_LISTED])
        headers["X-Missing-Media-Count"] = str(len(made.missing))
    return _ArchiveResponse(made, headers, exports.send_idle_s)


class _Stalled(Exception):
    """The client took nothing of the answer for the idle time a send may wait."""


class _ArchiveResponse(StreamingResponse):
    """The zip, sent a chunk at a time with its length; removed once sent, or once sending it
    failed: the client left, or took no chunk for `idle_s` (the connection is then closed).
    One not wholly sent is counted 499."""

    def __init__(self, made: CourseArchive, headers: dict[str, str], idle_s: float) -> None:
        super().__init__(_chunks(made), media_type="application/zip", headers=headers)
        self.made, self.idle_s = made, idle_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        sent, done, stalled = 0, False, False

        async def timed_send(message: Message) -> None:
            nonlocal sent, done
            try:
                async with asyncio.timeout(self.idle_s):
                    await send(message)  # waits while the client's connection is full
            except TimeoutError:
                raise _Stalled from None
            if message["type"] == "http.response.body":
                sent += len(message.get("body", b""))
                done = not message.get("more_body", False)

        try:
            await super().__call__(scope, receive, timed_send)
        except _Stalled:
            stalled = True  # returning unfinished makes the server close the connection
        except ClientDisconnect:
            pass  # a server of ASGI 2.4 sending to a connection closed
        finally:
            await self.made.close()
        if not done:
            count_as(scope, CLIENT_CLOSED)
            log.info("an export's zip was not wholly sent: its client "
                     + (f"took no chunk of it for {self.idle_s:g} s" if stalled else "left"),
                     extra={"path": scope.get("path"), "sent_bytes": sent,
                            "size_bytes": self.made.size})


async def _chunks(made: CourseArchive) -> AsyncIterator[bytes]:
    while chunk := await asyncio.to_thread(made.file.read, READ_BYTES):
        yield chunk
