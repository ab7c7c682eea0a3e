"""The events learning publishes on `learning.events`, each keyed by the learner, so one
learner's events stay in order. They carry ids, not content: names and texts stay where they
live."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

from bloop.platform.kit.events.types import event_type
from bloop.platform.kit.times import EventTime

TOPIC = "learning.events"


@event_type("bloop.learning.enrolled", 1, TOPIC)
class Enrolled(BaseModel):
    learner_id: str
    course_id: str | None
    goal_concept: str | None
    enrolled_at: EventTime


@event_type("bloop.learning.unenrolled", 1, TOPIC)
class Unenrolled(BaseModel):
    learner_id: str
    course_id: str | None
    goal_concept: str | None
    unenrolled_at: EventTime


@event_type("bloop.learning.lesson.completed", 1, TOPIC)
class LessonCompleted(BaseModel):
    learner_id: str
    lesson_id: str
    course_id: str
    seconds_spent: int
    completed_at: EventTime


@event_type("bloop.learning.concept.mastered", 1, TOPIC)
class ConceptMastered(BaseModel):
    learner_id: str
    concept_id: str
    p_known: float
    source: Literal["bkt", "placement"]
    mastered_at: EventTime


@event_type("bloop.learning.concept.unmastered", 1, TOPIC)
class ConceptUnmastered(BaseModel):
    """A concept the learner had mastered falls below mastery: once each time it does, not at
    every answer while it stays below (`concept.mastered` tells when it is reached again)."""
    learner_id: str
    concept_id: str
    p_known: float
    # the graded attempt whose answers took it below (one graded before others, arriving
    # late, takes its place among them)
    attempt_id: str
    unmastered_at: EventTime


@event_type("bloop.learning.path.changed", 1, TOPIC)
class PathChanged(BaseModel):
    learner_id: str
    goal: str
    # the path's lessons the learner has still to take, in order: its completed steps (read, what
    # they teach not mastered yet) are left out, so that completing a lesson changes the path
    lesson_ids: list[str]
    previous_lesson_ids: list[str]
    changed_at: EventTime


@event_type("bloop.learning.review.done", 1, TOPIC)
class ReviewDone(BaseModel):
    learner_id: str
    card_id: str
    concept_id: str
    rating: int
    was_due: bool
    next_due: EventTime
    reviewed_at: EventTime
