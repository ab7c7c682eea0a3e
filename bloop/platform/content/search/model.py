"""What the search index holds and what a search returns. No I/O here.

Only what learners see is indexed: a course's current publication (its title, summary,
language, level and tags as published) and the lesson snapshots it names, each quiz as a learner
is shown it before answering (`quiz.learner_quiz`). A lesson takes its course's language and
level unless it has its own, and both its own and its course's tags. Language tags are kept in
their canonical case (`pt-BR`), and a filter names one in any case.
Each document carries the versions it was built from, `(publication version, lesson version)`;
a document is replaced only by one built from later versions, so a late or repeated event never
puts older text back.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import ConfigDict, Field, field_validator

from bloop.platform.content.model import (
    Course,
    Lesson,
    Level,
    Publication,
    canonical_tag,
    learner_blocks,
)
from bloop.platform.kit.read_back import Tolerant

Kind = Literal["course", "lesson"]
Versions = tuple[int, int]

# Block fields whose text a learner reads, in the learner's view of the blocks: a quiz there has
# no correct flags, answers, accepted responses or feedback, and its ordering items and the right
# sides of its matching pairs come shuffled, so a search (its snippets, its phrase matches) cannot
# give a quiz away. A code block's source is read too: code is what many lessons teach.
TEXT_KEYS = frozenset({"markdown", "title", "caption", "alt", "transcript", "prompt", "text",
                       "source"})
_LINK = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")
_FENCE = re.compile(r"^[ \t]{0,3}(`{3,}|~{3,})[^\n]*$", re.MULTILINE)  # with its info string
_MARKUP = re.compile(r"(^|\s)#{1,6}\s|[*_`>|~]+|^\s*[-+]\s", re.MULTILINE)
_SPACE = re.compile(r"\s+")


class _Frozen(Tolerant):
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

    @field_validator("tags")
    @classmethod
    def _canonical_tags(cls, value: list[str]) -> list[str]:
        """As a filter names them: a tag stored before tags were kept in NFC matches too."""
        return list(dict.fromkeys(canonical_tag(t) for t in value))

    @property
    def key(self) -> str:
        return doc_key(self.tenant, self.kind, self.id)

    @property
    def versions(self) -> Versions:
        return (self.course_version, self.lesson_version)


def doc_key(tenant: str, kind: Kind, record_id: str) -> str:
    return f"{tenant}/{kind}/{record_id}"


def tenant_of(key: str) -> str:
    """The tenant a `doc_key` names (a tenant id is a slug: it has no `/`)."""
    return key.partition("/")[0]


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
    """The readable text of a lesson's blocks, whatever their kind, as a learner is shown them
    (each quiz through `quiz.learner_view`)."""
    return " ".join(shown for block in learner_blocks(lesson.blocks)
                    for t in _texts(block) if (shown := plain(t)))


def language_tag(tag: str) -> str:
    """A BCP 47 language tag in its canonical case (RFC 5646, 2.1.1): `EN` is `en`, `pt-br`
    `pt-BR`, `zh-hant-tw` `zh-Hant-TW`; the case of a tag carries no meaning."""
    parts = tag.strip().lower().split("-")
    out = parts[:1]
    for i, part in enumerate(parts[1:], start=1):
        after_singleton = any(len(p) == 1 for p in parts[:i])
        if not after_singleton and len(part) == 2 and part.isalpha():
            part = part.upper()  # a region
        elif not after_singleton and len(part) == 4 and part.isalpha():
            part = part.title()  # a script
        out.append(part)
    return "-".join(out)


def _publication(course: Course) -> Publication:
    if course.publication is None:
        raise ValueError(f"the course {course.id!r} is not published")
    return course.publication


def course_doc(course: Course) -> SearchDoc:
    """The course as its current publication shows it."""
    pub = _publication(course)
    return SearchDoc(tenant=course.tenant, kind="course", id=course.id, course_id=course.id,
                     title=pub.title, body=plain(pub.summary), tags=list(pub.tags),
                     language=language_tag(pub.language), level=pub.level,
                     course_version=pub.version)


def lesson_doc(course: Course, lesson: Lesson) -> SearchDoc:
    """`lesson` (a snapshot its course's current publication names) as learners see it."""
    pub = _publication(course)
    return SearchDoc(tenant=lesson.tenant, kind="lesson", id=lesson.id, course_id=course.id,
                     title=lesson.title, body=lesson_text(lesson),
                     tags=list(dict.fromkeys([*lesson.tags, *pub.tags])),
                     language=language_tag(lesson.language or pub.language),
                     level=lesson.level or pub.level,
                     course_version=pub.version, lesson_version=lesson.version)


class Filters(_Frozen):
    language: str | None = None
    level: Level | None = None
    tag: str | None = None

    @field_validator("language")
    @classmethod
    def _canonical(cls, value: str | None) -> str | None:
        """The tag as the index holds it: `EN` finds what the facets call `en`."""
        return None if value is None else language_tag(value)

    @field_validator("tag")
    @classmethod
    def _tag(cls, value: str | None) -> str | None:
        """The tag as the index holds it, whatever its case or normal form."""
        return None if value is None else canonical_tag(value.strip())


class Hit(_Frozen):
    kind: Kind
    id: str
    course_id: str
    title: str
    snippet: str = Field(description="a passage of the text, around the words that matched")
    highlights: list[tuple[int, int]] = Field(
        default_factory=list, description="[start, end) character ranges of `snippet` to mark")
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


Position = tuple[float, str]
"""A hit's place in a ranking: its score, then its key (ties in order of key)."""


@dataclass(frozen=True)
class Ranked:
    """A page as an index ranked it, and the place of its last hit when a page follows."""

    found: Found
    next: Position | None


class SearchResults(Found):
    next: Annotated[str | None, Field(description="the cursor of the next page; null on the last")] = None
