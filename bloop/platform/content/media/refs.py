"""Which media a lesson references: the media id of any block field named for media
(`media`, `media_id`, `poster_media`, …) and every media URL in its blocks' text (Markdown,
captions, quiz prompts, choices and feedback), but for code blocks, whose source is shown as
written. No I/O here."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel

from bloop.platform.content.media.model import media_url
from bloop.platform.content.model import LearnerLesson, Lesson

__all__ = ["is_media_id", "lesson_media", "media_url", "referenced_media", "urls_media"]

_ID = re.compile(r"^[0-9a-f]{32}$")
_URL = re.compile(r"/media/([0-9a-f]{32})(?![0-9a-f])")


def _walk(value: Any, key: str, found: set[str]) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            _walk(v, str(k), found)
    elif isinstance(value, list | tuple):
        for v in value:
            _walk(v, key, found)
    elif isinstance(value, str):
        if "media" in key.lower() and is_media_id(value):
            found.add(value)
        found.update(_URL.findall(value))


def is_media_id(value: str) -> bool:
    """Whether `value` could be a media id (one `referenced_media` would name)."""
    return _ID.match(value) is not None


def referenced_media(lessons: Iterable[BaseModel]) -> set[str]:
    """The media ids the blocks of `lessons` reference."""
    found: set[str] = set()
    for lesson in lessons:
        for block in lesson.model_dump(mode="json").get("blocks", []):
            if block.get("type") != "code":
                _walk(block, "", found)
    return found


def lesson_media(lesson: Lesson, *, draft: bool) -> list[str]:
    """The media ids `lesson` references, sorted, as its reader reads it: a draft whole, a
    publication as learners do (quizzes without their answers)."""
    return sorted(referenced_media([lesson if draft else LearnerLesson.of(lesson)]))


def urls_media(text: str) -> list[str]:
    """The media ids of the media URLs in `text` (Markdown's), each once, in the order they
    come."""
    return list(dict.fromkeys(_URL.findall(text)))
