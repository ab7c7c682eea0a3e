"""A stored media file's record. No I/O here."""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from bloop.platform.content.model import Slug
from bloop.platform.kit.read_back import Tolerant

MediaKind = Literal["image", "audio", "video", "pdf", "archive", "text"]
MEDIA_ID_PATTERN = r"^[0-9a-f]{32}$"
MediaId = Annotated[str, StringConstraints(pattern=MEDIA_ID_PATTERN)]
# Control characters, and the bidirectional formatting ones that make a name read as another
# (`photo\u202egpj.exe` shows as "photoexe.jpg")
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f/\\\\\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def new_media_id() -> str:
    return uuid.uuid4().hex


def clean_filename(name: str | None, fallback: str = "file") -> str:
    """The last path segment of `name` without control or bidirectional formatting
    characters, at most 200 characters."""
    base = re.split(r"[/\\]", name or "")[-1]
    base = _UNSAFE.sub("", base).strip().lstrip(".")
    return base[-200:] or fallback


class MediaInfo(Tolerant):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: MediaId
    tenant: Slug
    filename: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    content_type: str = Field(description="sniffed from the bytes, never taken from the client")
    kind: MediaKind
    size: int = Field(ge=1, description="bytes")
    sha256: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
    created_by: str | None = None
    created_at: datetime

    @property
    def etag(self) -> str:
        return f'"{self.sha256}"'


def media_url(tenant: str, media_id: str) -> str:
    """Where a media file's bytes are served (the API route)."""
    return f"/v1/tenants/{tenant}/media/{media_id}/content"


LinkReach = Literal["staff", "published"]
"""What a signed link lets its holder read: a staff member's, the media as long as it exists;
anyone else's, only while a published lesson of the tenant references it."""


def signed_media_path(tenant: str, media_id: str, reach: LinkReach) -> str:
    """Where a media file's bytes are served to a signed link, without credentials."""
    return f"/v1/tenants/{tenant}/media/{media_id}/signed?reach={reach}"


class MediaLink(BaseModel):
    """A link to a media file's bytes that is its own credential, for `<img>`, `<audio>` and
    `<video>` (which cannot send a token): whoever holds it may read the file until it expires,
    or, when a learner got it, until no published lesson references the file any more."""

    url: str = Field(description="path and query; works until `expires_at`, and a learner's only "
                                 "while a published lesson references the media")
    expires_at: datetime


class LessonMediaLinks(BaseModel):
    """Links that are their own credential to the media a lesson references, by media id."""

    lesson: str
    version: int = Field(description="the lesson's version these are the media of: its draft's "
                                     "to its course's authors, else its publication's")
    links: dict[str, MediaLink] = Field(description=(
        "by media id: each media block's and its captions', and each media URL's "
        "(`…/media/{id}/…`) in any block's text (Markdown, captions, quizzes) but code's"))


class Media(MediaInfo):
    """A media record as the API shows it, with the URL of its bytes."""

    url: str

    @classmethod
    def of(cls, info: MediaInfo) -> Media:
        return cls(**info.model_dump(), url=media_url(info.tenant, info.id))


class MediaUsage(BaseModel):
    tenant: Slug
    used_bytes: int
    quota_bytes: int
