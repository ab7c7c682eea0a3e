"""What the search index holds and what a search returns. No I/O here.

Only what learners see is indexed: a course's current publication (its title, summary,
language, level and tags as published) and the lesson snapshots it names. A lesson takes its
course's language and level unless it has its own, and both its own and its course's tags.
Each document carries the versions it was built from, `(publication version, lesson version)`;
a document is replaced only by one built from later versions, so a late or repeated event never
puts older text back.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from bloop.platform.content.model import Course, Lesson, Level, Publication

Kind = Literal["course", "lesson"]
Versions = tuple[int, int]

# Block fields whose text a learner reads. Answers, accepted responses and feedback are left out:
# a search must not give a quiz away.
TEXT_KEYS = frozenset({"markdown", "title", "caption", "alt", "transcript", "prompt", "text"})
_LINK = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")
_FENCE = re.compile(r"^[ \t]{0,3}(`{3,}|~{3,})[^\n]*$", re.MULTILINE)  # with its info string
_MARKUP = re.compile(r"(^|\s)#{1,6}\s|[*_`>|~]+|^\s*[-+]\s", re.MULTILINE)
_SPACE = re.compile(r"\s+")


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SearchDoc(_Frozen):
    tenant: str
    kind: Kind
    id: str
    course_id: str
    title: str
    body: str
    tags: list[str]
    language: str
    level: str
    course_version: int
    lesson_version: int = 0

    @property
    def key(self) -> str:
        return doc_key(self.tenant, self.kind, self.id)

    @property
    def versions(self) -> Versions:
        return (self.course_version, self.lesson_version)


def doc_key(tenant: str, kind: Kind, record_id: str) -> str:
    return f"{tenant}/{kind}/{record_id}"


def newer(doc: Versions, indexed: Versions | None) -> bool:
    """True when a document built from `doc` versions should replace the indexed one. A later
    publication wins whatever lesson version it names (a rollback may name an older one)."""
    return indexed is None or doc > indexed


def plain(markdown: str) -> str:
    """Markdown as the words a reader sees, on one line (for snippets)."""
    shown = _LINK.sub(r"\1", _FENCE.sub(" ", markdown))
    return _SPACE.sub(" ", _MARKUP.sub(" ", shown)).strip()


def _texts(value: object, key: str = "") -> Iterable[str]:
    if isinstance(value, str):
        if key in TEXT_KEYS:
            yield value
    elif isinstance(value, Mapping):
        for k, v in value.items():
            yield from _texts(v, str(k))
    elif isinstance(value, list | tuple):
        for v in value:
            yield from _texts(v, key)


def lesson_text(lesson: Lesson) -> str:
    """The readable text of a lesson's blocks, whatever their kind."""
    return " ".join(shown for block in lesson.blocks
                    for t in _texts(block.model_dump(mode="json")) if (shown := plain(t)))


def _publication(course: Course) -> Publication:
    if course.publication is None:
        raise ValueError(f"the course {course.id!r} is not published")
    return course.publication


def course_doc(course: Course) -> SearchDoc:
    """The course as its current publication shows it."""
    pub = _publication(course)
    return SearchDoc(tenant=course.tenant, kind="course", id=course.id, course_id=course.id,
                     title=pub.title, body=plain(pub.summary), tags=list(pub.tags),
                     language=pub.language, level=pub.level, course_version=pub.version)


def lesson_doc(course: Course, lesson: Lesson) -> SearchDoc:
    """`lesson` (a snapshot its course's current publication names) as learners see it."""
    pub = _publication(course)
    return SearchDoc(tenant=lesson.tenant, kind="lesson", id=lesson.id, course_id=course.id,
                     title=lesson.title, body=lesson_text(lesson),
                     tags=list(dict.fromkeys([*lesson.tags, *pub.tags])),
                     language=lesson.language or pub.language, level=lesson.level or pub.level,
                     course_version=pub.version, lesson_version=lesson.version)


class Filters(_Frozen):
    language: str | None = None
    level: Level | None = None
    tag: str | None = None


class Hit(_Frozen):
    kind: Kind
    id: str
    course_id: str
    title: str
    snippet: str = Field(description="a passage of the text, around the words that matched")
    highlights: list[tuple[int, int]] = Field(
        default_factory=list, description="[start, end) character ranges of `snippet` to mark")
    score: float = Field(description="BM25 relevance; higher is better")
    language: str
    level: str
    tags: list[str]


class FacetCount(_Frozen):
    value: str
    count: int


class Facets(_Frozen):
    """How many of the matching documents have each language, level and tag."""

    language: list[FacetCount] = Field(default_factory=list)
    level: list[FacetCount] = Field(default_factory=list)
    tag: list[FacetCount] = Field(default_factory=list)


class Found(_Frozen):
    """One page of what an index found."""

    hits: list[Hit]
    total: int
    facets: Facets


class SearchResults(Found):
    next: Annotated[str | None, Field(description="the cursor of the next page; null on the last")] = None
