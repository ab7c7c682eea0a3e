"""Lesson blocks for imported text and media, in whatever block shapes the lesson model accepts:
a media block (`image`, `audio`, `video`, `file`) naming the media id where the model has one,
else a Markdown block that links the media."""

from __future__ import annotations

from functools import cache
from typing import Any

from pydantic import ValidationError

from bloop.platform.content.media.model import MediaKind
from bloop.platform.content.media.refs import media_url
from bloop.platform.content.model import NewLesson
from bloop.platform.content.uploads.markdown import escape

Block = dict[str, Any]
_PROBE_ID = "0" * 32
_BLOCK_TYPE: dict[MediaKind, str] = {"image": "image", "audio": "audio", "video": "video",
                                     "pdf": "file", "archive": "file", "text": "file"}


def markdown_block(text: str) -> Block:
    return {"type": "markdown", "markdown": text}


@cache
def _media_field(block_type: str) -> str | None:
    """The field naming the media id in the lesson model's `block_type` blocks (None when the
    model has no such block)."""
    for name in ("media", "media_id"):
        try:
            NewLesson.model_validate({"title": "probe", "blocks": [
                {"type": block_type, name: _PROBE_ID}]})
        except ValidationError:
            continue
        return name
    return None


def image_block(media_id: str, alt: str, title: str) -> Block | None:
    """An image block showing the media with its alt text and title, when the lesson model
    accepts one (None when not: the image then stays in the Markdown)."""
    name = _media_field("image")
    if name is None:
        return None
    block: Block = {"type": "image", name: media_id, "alt": alt, "title": title}
    try:
        NewLesson.model_validate({"title": "probe", "blocks": [block]})
    except ValidationError:
        return None
    return block


def media_block(tenant: str, kind: MediaKind, media_id: str, filename: str) -> Block:
    block_type = _BLOCK_TYPE[kind]
    name = _media_field(block_type)
    if name is not None:
        return {"type": block_type, name: media_id}
    url = media_url(tenant, media_id)
    label = escape(filename)
    return markdown_block(f"![{label}]({url})" if kind == "image" else f"[{label}]({url})")
