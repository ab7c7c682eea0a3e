"""Courses, lessons and concepts, and the rules they keep. No I/O here.

A course is a draft until it is published. Each publication bumps its `version` (0 = never
published). A lesson keeps its own `version`, bumped by each edit; an edit names the version it
was made against, and loses to any edit stored since (optimistic concurrency).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, model_validator

SLUG_PATTERN = r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$"
Slug = Annotated[str, StringConstraints(pattern=SLUG_PATTERN)]
Title = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Summary = Annotated[str, StringConstraints(strip_whitespace=True, max_length=2000)]
Language = Annotated[str, StringConstraints(pattern=r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$")]
Level = Literal["beginner", "intermediate", "advanced"]
CourseStatus = Literal["draft", "published"]
Tag = Annotated[str, StringConstraints(strip_whitespace=True, to_lower=True, min_length=1,
                                       max_length=40)]


def _unique(values: list[str]) -> list[str]:
    """Each value once, first occurrence kept."""
    return list(dict.fromkeys(values))


Tags = Annotated[list[Tag], Field(max_length=20), AfterValidator(_unique)]
ConceptIds = Annotated[list[Slug], Field(max_length=50), AfterValidator(_unique)]


def now() -> datetime:
    """The current time, to the millisecond (what every store keeps)."""
    t = datetime.now(UTC)
    return t.replace(microsecond=t.microsecond // 1000 * 1000)


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MarkdownBlock(_Frozen):
    """A block of CommonMark text. Other block kinds (media, quiz) join later beside it."""

    type: Literal["markdown"] = "markdown"
    markdown: Annotated[str, StringConstraints(min_length=1, max_length=50_000)]


Block = MarkdownBlock
Blocks = Annotated[list[Block], Field(max_length=200)]
Minutes = Annotated[int, Field(ge=1, le=600)]


class NewConcept(_Frozen):
    id: Slug
    name: Title
    description: Summary = ""


class Concept(_Frozen):
    id: Slug
    tenant: Slug
    name: Title
    description: Summary = ""

    @classmethod
    def create(cls, tenant: str, new: NewConcept) -> Concept:
        return cls(tenant=tenant, **new.model_dump())


class NewCourse(_Frozen):
    id: Slug | None = Field(default=None, description="a slug; generated when left out")
    title: Title
    summary: Summary = ""
    language: Language = "en"
    level: Level = "beginner"
    tags: Tags = Field(default_factory=list)


class Course(_Frozen):
    id: Slug
    tenant: Slug
    title: Title
    summary: Summary
    language: Language
    level: Level
    tags: Tags
    status: CourseStatus = "draft"
    version: int = Field(default=0, ge=0, description="bumped by each publication")
    lesson_count: int = Field(default=0, ge=0)
    created_at: datetime
    updated_at: datetime
    published_at: datetime | None = None

    @classmethod
    def create(cls, tenant: str, new: NewCourse, at: datetime | None = None) -> Course:
        at = at or now()
        fields = new.model_dump(exclude={"id"})
        return cls(id=new.id or uuid.uuid4().hex[:12], tenant=tenant, created_at=at,
                   updated_at=at, **fields)

    def published(self, at: datetime | None = None) -> Course:
        """This course as a new publication."""
        at = at or now()
        return self.model_copy(update={"status": "published", "version": self.version + 1,
                                       "published_at": at, "updated_at": at})


class _LessonRules(_Frozen):
    @model_validator(mode="after")
    def _teaches_what_it_does_not_require(self) -> _LessonRules:
        teaches: list[str] = getattr(self, "teaches", None) or []
        requires: list[str] = getattr(self, "requires", None) or []
        both = sorted(set(teaches) & set(requires))
        if both:
            raise ValueError(f"a lesson cannot both teach and require {', '.join(both)}")
        return self


class NewLesson(_LessonRules):
    title: Title
    estimated_minutes: Minutes = 10
    blocks: Blocks = Field(default_factory=list)
    teaches: ConceptIds = Field(default_factory=list)
    requires: ConceptIds = Field(default_factory=list)


class LessonEdit(_Frozen):
    """An edit of a lesson, made against `version`; fields left out stay as they are."""

    version: int = Field(ge=1, description="the lesson version this edit was made against")
    title: Title | None = None
    estimated_minutes: Minutes | None = None
    blocks: Blocks | None = None
    teaches: ConceptIds | None = None
    requires: ConceptIds | None = None


class Lesson(_LessonRules):
    id: str
    tenant: Slug
    course: Slug
    position: int = Field(default=0, ge=0, description="the lesson's place in its course")
    title: Title
    estimated_minutes: Minutes
    blocks: Blocks
    teaches: ConceptIds
    requires: ConceptIds
    version: int = Field(default=1, ge=1, description="bumped by each edit")
    created_at: datetime
    updated_at: datetime

    @classmethod
    def create(cls, tenant: str, course: str, new: NewLesson, at: datetime | None = None) -> Lesson:
        at = at or now()
        return cls(id=uuid.uuid4().hex, tenant=tenant, course=course, created_at=at,
                   updated_at=at, **new.model_dump())

    def edited(self, edit: LessonEdit, at: datetime | None = None) -> Lesson:
        """This lesson with `edit` applied, one version on. Raises `ValueError` when the result
        breaks a rule (checked again on the whole lesson)."""
        changes = edit.model_dump(exclude={"version"}, exclude_none=True)
        merged = self.model_dump() | changes | {
            "version": self.version + 1, "updated_at": at or now()}
        return Lesson.model_validate(merged)


class CourseDetail(Course):
    """A course with its lessons in order."""

    lessons: list[Lesson]
