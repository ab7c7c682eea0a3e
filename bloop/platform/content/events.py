"""The events content publishes on `content.events`.

Publishing a course emits `course.published` (keyed by the course) and one `lesson.published`
per lesson (keyed by the lesson); a rollback is a publication too (`rollback_of` names the
version it restored). Archiving a published course emits `course.archived`, and putting it
back `course.unarchived` (both keyed by the course, naming its published lessons). An edit of
a lesson's draft emits `lesson.updated`, its deletion `lesson.deleted` (both keyed by the
lesson). When content does not add a finished AI job's narration or video to the lesson's draft
(refused as media, or the lesson is gone), it says why in `ai_media.not_attached` (keyed by the
lesson), which the AI service records on the job. Lesson text stays in content: the events
carry what other services need to build paths (which concepts a lesson teaches and requires)
and to show them.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from bloop.platform.content.model import Level
from bloop.platform.kit.events.types import event_type
from bloop.platform.kit.times import EventTime

TOPIC = "content.events"


class PublishedModule(BaseModel):
    """A module of the course as published, with its lessons in the course's order."""

    id: str
    title: str
    lesson_ids: list[str]


@event_type("bloop.content.course.published", 1, TOPIC)
class CoursePublished(BaseModel):
    course_id: str
    version: int
    title: str
    summary: str
    language: str
    level: Level
    tags: list[str]
    lesson_ids: list[str]
    published_at: EventTime
    rollback_of: int | None = Field(default=None, description="the version this one restored")
    modules: list[PublishedModule] = Field(default_factory=list, description=(
        "the course's modules in its order, each with the lessons of `lesson_ids` it holds"))


@event_type("bloop.content.lesson.published", 1, TOPIC)
class LessonPublished(BaseModel):
    lesson_id: str
    course_id: str
    course_version: int
    lesson_version: int
    position: int
    title: str
    estimated_minutes: int
    teaches: list[str]
    requires: list[str]
    published_at: EventTime
    module: str | None = Field(default=None, description="the id of the lesson's module")
    concept_names: dict[str, str] = Field(default_factory=dict, description=(
        "the names of the concepts it teaches and requires, as content named them when it "
        "was published"))


@event_type("bloop.content.lesson.updated", 1, TOPIC)
class LessonUpdated(BaseModel):
    """The draft of a lesson changed; learners see it at the course's next publication."""

    lesson_id: str
    course_id: str
    lesson_version: int
    title: str
    estimated_minutes: int
    teaches: list[str]
    requires: list[str]
    updated_at: EventTime


@event_type("bloop.content.lesson.deleted", 1, TOPIC)
class LessonDeleted(BaseModel):
    """The lesson is gone from its course: from the draft, and from what learners see."""

    lesson_id: str
    course_id: str
    lesson_version: int
    deleted_at: EventTime


class UnattachedOutput(BaseModel):
    name: str = Field(description="the output's name on the AI job")
    kind: str
    code: str = Field(description=(
        "why content did not keep it: the problem code its media answered (quota_exceeded, "
        "too_large, unsupported_media_type, …) or the lesson edit did, kind_mismatch when the "
        "file is not the kind the job said, lesson_gone when the lesson was deleted"))
    detail: str


@event_type("bloop.content.ai_media.not_attached", 1, TOPIC)
class AiMediaNotAttached(BaseModel):
    """Outputs of a finished AI job that content did not add to its lesson's draft."""

    job_id: str
    lesson_id: str
    outputs: list[UnattachedOutput]
    refused_at: EventTime


@event_type("bloop.content.course.archived", 1, TOPIC)
class CourseArchived(BaseModel):
    """The course left the catalogue and search, and takes no new enrolments; learners already
    enrolled keep it, its lessons and their progress."""

    course_id: str
    revision: int = Field(description="the course head's revision this change made")
    lesson_ids: list[str] = Field(description="the lessons of its current publication")
    archived_at: EventTime


@event_type("bloop.content.course.unarchived", 1, TOPIC)
class CourseUnarchived(BaseModel):
    """The archived course is back in the catalogue and search, open to enrolments."""

    course_id: str
    revision: int = Field(description="the course head's revision this change made")
    lesson_ids: list[str] = Field(description="the lessons of its current publication")
    unarchived_at: EventTime
