"""Media's HTTP API. Educators upload a file as the raw request body or as the one file of a
multipart form (its type is sniffed from the bytes; the claimed type and the file's name are
checked against them); members read media with
`Range` requests, so a video player can seek. Staff read every media of their tenant, other
members what the tenant's published lessons reference. A member who may read a file can also
get a link to its bytes that needs no credentials, for `<img>`, `<audio>` and `<video>`: one
file's, or those of every file a lesson references at once."""

from __future__ import annotations

from collections.abc import AsyncIterable
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Header, Path, Query, Request, Response
from fastapi.responses import StreamingResponse

from bloop.platform.content.api import Author, LessonId, TenantId, get_service
from bloop.platform.content.media.form import FILENAME_CHARS, form_file, is_form
from bloop.platform.content.media.model import (
    MEDIA_ID_PATTERN,
    LessonMediaLinks,
    LinkReach,
    Media,
    MediaInfo,
    MediaLink,
    MediaUsage,
)
from bloop.platform.content.media.refs import lesson_media
from bloop.platform.content.media.service import MediaService, reach_of
from bloop.platform.content.service import ContentService
from bloop.platform.kit.auth import Principal, require
from bloop.platform.kit.pagination import After, Page
from bloop.platform.kit.problem_docs import documented_problem
from bloop.platform.kit.ranges import Unsatisfiable
from bloop.platform.kit.served_files import (
    Asked,
    Conditions,
    RangeNotSatisfiable,
    ServedFile,
    serve_file,
)

MediaId = Annotated[str, Path(pattern=MEDIA_ID_PATTERN, description="a media id (32 hex digits)")]
Reader = Annotated[Principal, Depends(require(scopes=["content:read"]))]
Staff = Annotated[Principal, Depends(require("educator", "teaching_assistant", "tenant_admin",
                                             scopes=["content:read"]))]
UPLOAD_PATH = "/v1/tenants/{tenant}/media"


async def get_media(request: Request) -> MediaService:
    service: MediaService = request.app.state.content.state["media"]
    return service


Svc = Annotated[MediaService, Depends(get_media)]
Content = Annotated[ContentService, Depends(get_service)]


router = APIRouter(prefix="/v1/tenants/{tenant}/media", tags=["media"])


@router.post("", status_code=201, responses={200: {"description": "the tenant already had "
                                                   "these bytes: that media", "model": Media}},
             openapi_extra={"requestBody": {"required": True, "content": {
                 "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
                 "multipart/form-data": {"schema": {"type": "object", "properties": {
                     "file": {"type": "string", "format": "binary"}}}}}}})
async def upload(
    tenant: TenantId, request: Request, response: Response, service: Svc, me: Author,
    filename: Annotated[str | None, Query(max_length=FILENAME_CHARS,
                                          description="the file's name")] = None,
    content_type: Annotated[str | None, Header()] = None,
    content_length: Annotated[int | None, Header(ge=0)] = None,
) -> Media:
    """Stores the request body, or the one file of a multipart form, as media (up to the size
    limit of its kind; 413 above it or above the tenant's quota, 415 when the bytes are not an
    accepted type or not the claimed one, 422 for a malformed form or one with no file or
    more than one)."""
    body: AsyncIterable[bytes] = request.stream()
    if is_form(content_type):
        form = await form_file(body, content_type or "")
        body, filename, content_type = form.chunks, filename or form.filename, form.content_type
        content_length = None  # the form's, not the file's
    stored = await service.upload(tenant, body, filename=filename, claimed=content_type,
                                  declared_size=content_length, by=me.user_id)
    if not stored.created:
        response.status_code = 200
    return Media.of(stored.info)


@router.get("")
async def list_media(tenant: TenantId, service: Svc, _: Staff,
                     after: After = None,
                     limit: Annotated[int, Query(ge=1, le=500)] = 100) -> Page[Media]:
    """The tenant's media, newest first, a page at a time: `next` is the cursor (`after`) of
    the following page, null on the last."""
    listed = await service.media(tenant, after=after, limit=limit)
    return Page(items=[Media.of(m) for m in listed.items], next=listed.next)


@router.get("/usage")
async def usage(tenant: TenantId, service: Svc, _: Staff) -> MediaUsage:
    return await service.usage(tenant)


@router.get("/{media}")
async def get_media_info(tenant: TenantId, media: MediaId, service: Svc, me: Reader) -> Media:
    return Media.of(await service.readable(me, tenant, media))


def _disposition(info: MediaInfo) -> str:
    how = "attachment" if info.kind in ("archive", "text") \
        and info.content_type != "text/vtt" else "inline"
    ascii_name = info.filename.encode("ascii", "replace").decode().replace('"', "'")
    return f"{how}; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(info.filename)}"


CONTENT_RESPONSES: dict[int | str, dict[str, Any]] = {
    206: {"description": "the requested byte range"},
    304: {"description": "the caller's copy is current"},
    416: documented_problem("the range lies outside the file (`Content-Range` gives its size)",
                            416, RangeNotSatisfiable.code, str(Unsatisfiable(800)),
                            instance="/v1/tenants/demo/media/8d0c44b1/content")}


@router.head("/{media}/content", response_class=StreamingResponse, responses=CONTENT_RESPONSES,
             operation_id="media_content_head")
@router.get("/{media}/content", response_class=StreamingResponse, responses=CONTENT_RESPONSES)
async def content(
    tenant: TenantId, media: MediaId, request: Request, service: Svc, me: Reader, asked: Asked,
) -> Response:
    """The media's bytes. `Range: bytes=a-b`, `bytes=a-` and `bytes=-n` get 206 with
    `Content-Range`; the `ETag` is the SHA-256 of the bytes."""
    info = await service.readable(me, tenant, media)
    return _serve(info, request, service, asked)


@router.get("/{media}/link")
async def media_link(tenant: TenantId, media: MediaId, service: Svc, me: Reader) -> MediaLink:
    """A link to the media's bytes that is its own credential (`BLOOP_MEDIA_LINK_TTL_S`, 4 hours
    by default), for pages that show the media in `<img>`, `<audio>` or `<video>`. A learner's
    link stops working once no published lesson references the media."""
    return await service.link(me, tenant, media)


lessons = APIRouter(prefix="/v1/tenants/{tenant}/lessons", tags=["media"])


@lessons.get("/{lesson}/media-links")
async def lesson_media_links(tenant: TenantId, lesson: LessonId, service: Svc, content: Content,
                             me: Reader, response: Response) -> LessonMediaLinks:
    """A link that is its own credential (as `…/media/{id}/link` gives) to each media file the
    lesson references, as the caller reads it (`GET …/lessons/{lesson}`): what a page needs to
    show its images and players, in one call. Never cached, since the links expire (the lesson
    itself is revalidated with its ETag)."""
    read, draft = await content.lesson_for(tenant, lesson, me)
    reach = reach_of(me)
    response.headers["Cache-Control"] = "no-store"
    return LessonMediaLinks(lesson=read.id, version=read.version, links={
        m: service.signed(tenant, m, reach) for m in lesson_media(read, draft=draft)})


@router.head("/{media}/signed", response_class=StreamingResponse, responses=CONTENT_RESPONSES,
             operation_id="media_signed_head")
@router.get("/{media}/signed", response_class=StreamingResponse, responses=CONTENT_RESPONSES)
async def signed_content(
    tenant: TenantId, media: MediaId, request: Request, service: Svc,
    expires: Annotated[int, Query(ge=0)],
    signature: Annotated[str, Query(pattern=r"^[0-9a-f]{64}$")],
    asked: Asked,
    reach: Annotated[LinkReach | None, Query(description="whom the link was made for")] = None,
) -> Response:
    """The media's bytes through a link from `…/link`, as `…/content` serves them, with no
    credentials (the signature is one): 403 when it does not match or has expired, 404 when the
    media is gone or, for a learner's link, no published lesson references it any more."""
    info = await service.linked(tenant, media, reach, expires, signature)
    return _serve(info, request, service, asked)


def _serve(info: MediaInfo, request: Request, service: MediaService, asked: Conditions) -> Response:
    file = ServedFile(info.etag, info.content_type, info.size, _disposition(info))
    return serve_file(file, request, asked, lambda part: service.read(info, part))


@router.delete("/{media}", status_code=204)
async def delete_media(tenant: TenantId, media: MediaId, service: Svc, me: Author) -> None:
    """Removes the media; lessons that still reference it then show it as missing. Whoever
    uploaded it first and the tenant's admins may (403 `not_the_uploader` for anyone else)."""
    await service.delete(tenant, media, by=me)

