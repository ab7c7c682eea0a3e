"""The events content publishes on `content.events`.

Publishing a course emits `course.published` (keyed by the course) and one `lesson.published`
per lesson (keyed by the lesson). Lesson text stays in content: the events carry what other
services need to build paths (which concepts a lesson teaches and requires) and to show them.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel

from bloop.platform.content.model import Level
from bloop.platform.kit.events.types import event_type

TOPIC = "content.events"


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
    published_at: datetime


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
    published_at: datetime
