"""The events the AI service publishes.

`ai.jobs` is a command topic: `bloop.ai.job.requested.v1` carries a job's id to the workers (one
consumer group); the job itself lives in the `ai` database. `video.events` tells everyone else how
jobs go: progressed, completed (with the outputs content attaches to the lesson), failed,
cancelled, and the flashcards a job made for the learning service's reviews. All are keyed by the
job id, so one job's events stay in order.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from bloop.platform.kit.events.types import event_type
from bloop.platform.kit.times import EventTime

JOBS_TOPIC = "ai.jobs"
TOPIC = "video.events"


@event_type("bloop.ai.job.requested", 1, JOBS_TOPIC)
class JobRequested(BaseModel):
    job_id: str
    kind: str
    lesson_id: str
    attempt: int


@event_type("bloop.ai.job.progressed", 1, TOPIC)
class JobProgressed(BaseModel):
    job_id: str
    kind: str
    lesson_id: str
    status: str
    progress: int
    step: str
    attempt: int


class OutputRef(BaseModel):
    name: str
    kind: str
    content_type: str
    url: str
    file_id: str
    bytes: int
    duration_s: float | None


@event_type("bloop.ai.job.completed", 1, TOPIC)
class JobCompleted(BaseModel):
    job_id: str
    kind: str
    lesson_id: str
    lesson_version: int
    course_id: str
    requested_by: str
    outputs: list[OutputRef]
    result_url: str
    cost_usd: float
    finished_at: EventTime
    language: str | None = Field(default=None, description=(
        "the BCP 47 tag of the language the job wrote and spoke in (its captions'); absent "
        "from events of older workers"))
    made_from: str | None = Field(default=None, description=(
        "the SHA-256 (hex) of the lesson's title, text and language the job read (content's "
        "`made_from`): content attaches its media only to a draft that still reads so; absent "
        "for a job with no lesson, and from events of older workers"))


@event_type("bloop.ai.job.failed", 1, TOPIC)
class JobFailed(BaseModel):
    job_id: str
    kind: str
    lesson_id: str
    requested_by: str
    code: str
    message: str
    attempts: int
    finished_at: EventTime


@event_type("bloop.ai.job.cancelled", 1, TOPIC)
class JobCancelled(BaseModel):
    job_id: str
    kind: str
    lesson_id: str
    requested_by: str
    finished_at: EventTime
    reason: str | None = Field(default=None, description=(
        "why it was cancelled: requested (by a user), lesson_deleted (its lesson or course was "
        "deleted); absent from events of older workers"))


class Card(BaseModel):
    front: str
    back: str
    concept_id: str | None


@event_type("bloop.ai.flashcards.generated", 1, TOPIC)
class FlashcardsGenerated(BaseModel):
    job_id: str
    lesson_id: str
    lesson_version: int
    course_id: str
    concept_ids: list[str]
    source: str
    cards: list[Card]
