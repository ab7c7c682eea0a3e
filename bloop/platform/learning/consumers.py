"""What learning consumes: content's lessons and courses as published (projected into the graph,
so learning never reads content's store, with whether each course is archived), graded quiz
attempts (mastery), the flashcards the AI service generates (review cards, retired with their
lesson's deletion), users' time zones (the start of a learner's day for reviews; UTC until one
comes; in `ZONES_GROUP`) and deleted users (erased). Edits of a lesson's draft (`lesson.updated`)
are not read: learners' paths change at the course's next publication, as content promises its
authors.

Events are chosen by type name and read tolerantly: fields this service does not know are
ignored, and fields it needs but an older event lacks take a default. Every handler can run twice
for one event without harm: projections keep the latest version they saw (older or repeated
events change nothing), archiving keeps the latest course revision, attempts are applied once
per attempt id (a retry soon after the previous attempt at its quiz is skipped, as often as it
comes), erasure of nothing is nothing, a deleted lesson's cards are retired once, a time zone is kept
unless one changed later is (and never for an erased learner).
"""

from __future__ import annotations

import logging
from datetime import UTC
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

# These register the types consumed here (an unregistered type would be dead-lettered).
from bloop.ai.jobs import events as _ai_events  # noqa: F401
from bloop.platform.content import events as _content_events  # noqa: F401
from bloop.platform.content.attempts import events as _attempt_events  # noqa: F401
from bloop.platform.identity import events as _user_events  # noqa: F401
from bloop.platform.kit.events.bus.port import Subscription
from bloop.platform.kit.events.envelope import Envelope
from bloop.platform.kit.times import EventTime
from bloop.platform.learning.model import CourseNode, LessonNode, ModuleRef
from bloop.platform.learning.service import LearningService

log = logging.getLogger("bloop.learning")

GROUP = "learning"
ZONES_GROUP = "learning.time-zones"
"""Users' time zones, read in a group of their own: a member of `learning` of a version before
the event passes it by and commits past it, losing it for good (this group, new, has no such
member and starts at the earliest event kept). It erases the user too, after any zone of theirs
it read: the two groups run apart."""
CONTENT_EVENTS = "content.events"
USER_EVENTS = "user.events"
AI_EVENTS = "video.events"

LESSON_PUBLISHED = "bloop.content.lesson.published.v1"
LESSON_DELETED = "bloop.content.lesson.deleted.v1"
COURSE_PUBLISHED = "bloop.content.course.published.v1"
COURSE_ARCHIVED = "bloop.content.course.archived.v1"
COURSE_UNARCHIVED = "bloop.content.course.unarchived.v1"
ATTEMPT_GRADED = "bloop.content.quiz.attempt.graded.v1"
USER_DELETED = "bloop.identity.user.deleted.v1"
TIME_ZONE_CHANGED = "bloop.identity.user.time_zone_changed.v1"
FLASHCARDS_GENERATED = "bloop.ai.flashcards.generated.v1"


class _Tolerant(BaseModel):
    model_config = ConfigDict(extra="ignore")


class LessonData(_Tolerant):
    lesson_id: str
    course_id: str = ""
    module: str | None = None
    module_id: str | None = None  # what `module` was called in early events
    lesson_version: int = 0
    version: int | None = None
    position: int = 0
    title: str = ""
    estimated_minutes: int = 10
    teaches: list[str] = Field(default_factory=list)
    requires: list[str] = Field(default_factory=list)
    concept_names: dict[str, str] = Field(default_factory=dict)

    @property
    def effective_version(self) -> int:
        return self.lesson_version or self.version or 0


class CourseData(_Tolerant):
    course_id: str
    version: int = 0
    title: str = ""
    lesson_ids: list[str] = Field(default_factory=list)
    modules: list[dict[str, Any]] = Field(default_factory=list)


class ArchivingData(_Tolerant):
    course_id: str
    revision: int = 0


class QuestionData(_Tolerant):
    correct: bool = False
    outcome: str = ""


class AttemptData(_Tolerant):
    attempt_id: str | None = None
    user_id: str
    lesson_id: str = ""
    concepts: list[str] = Field(default_factory=list)
    score: float = 0.0
    max_score: float = 0.0
    questions: list[QuestionData] = Field(default_factory=list)
    graded_at: EventTime | None = None
    previous_graded_at: EventTime | None = None


class UserDeletedData(_Tolerant):
    user_id: str


class TimeZoneData(_Tolerant):
    user_id: str
    time_zone: str
    changed_at: EventTime | None = None


class GeneratedCard(_Tolerant):
    front: str
    back: str
    concept_id: str | None = None


class FlashcardsData(_Tolerant):
    job_id: str
    lesson_id: str = ""
    lesson_version: int = 0
    cards: list[GeneratedCard] = Field(default_factory=list)


def _module(raw: dict[str, Any]) -> ModuleRef | None:
    module_id = raw.get("id") or raw.get("module_id")
    if not isinstance(module_id, str):
        return None
    lessons = raw.get("lesson_ids") or []
    return ModuleRef(id=module_id, lesson_ids=[x for x in lessons if isinstance(x, str)])


class Consumers:
    def __init__(self, service: LearningService) -> None:
        self.service = service

    async def handle(self, envelope: Envelope) -> None:
        handler = {
            LESSON_PUBLISHED: self.lesson,
            LESSON_DELETED: self.lesson_deleted,
            COURSE_PUBLISHED: self.course,
            COURSE_ARCHIVED: self.archiving,
            COURSE_UNARCHIVED: self.archiving,
            ATTEMPT_GRADED: self.attempt,
            USER_DELETED: self.user_deleted,
            FLASHCARDS_GENERATED: self.flashcards,
        }.get(envelope.type)
        if handler is not None:
            await handler(envelope)

    async def handle_zones(self, envelope: Envelope) -> None:
        handler = {TIME_ZONE_CHANGED: self.time_zone, USER_DELETED: self.user_deleted}.get(
            envelope.type)
        if handler is not None:
            await handler(envelope)

    async def lesson(self, envelope: Envelope) -> None:
        data = LessonData.model_validate(envelope.data)
        stored = await self.service.repo.get_lesson(envelope.tenant, data.lesson_id)
        present = set(envelope.data.keys())
        if "module" in present:
            present.add("module_id")
        # An older event may lack fields: those come from what is stored.
        base: dict[str, Any] = stored.model_dump() if stored is not None else {}

        def pick(name: str, value: Any) -> Any:
            return value if name in present or name not in base else base[name]

        lesson = LessonNode(
            id=data.lesson_id, tenant=envelope.tenant,
            course_id=pick("course_id", data.course_id),
            module_id=pick("module_id", data.module or data.module_id),
            position=pick("position", data.position), title=pick("title", data.title),
            estimated_minutes=pick("estimated_minutes", data.estimated_minutes),
            teaches=pick("teaches", data.teaches), requires=pick("requires", data.requires),
            version=data.effective_version)
        if not await self.service.project_lesson(lesson, data.concept_names):
            log.debug("older lesson event ignored", extra={"lesson": data.lesson_id})

    async def lesson_deleted(self, envelope: Envelope) -> None:
        data = LessonData.model_validate(envelope.data)
        version = data.effective_version or 2**31 - 1
        await self.service.forget_lesson(envelope.tenant, data.lesson_id, version)

    async def course(self, envelope: Envelope) -> None:
        data = CourseData.model_validate(envelope.data)
        modules = [m for m in (_module(raw) for raw in data.modules) if m is not None]
        await self.service.project_course(CourseNode(
            id=data.course_id, tenant=envelope.tenant, title=data.title, version=data.version,
            lesson_ids=data.lesson_ids, modules=modules))

    async def archiving(self, envelope: Envelope) -> None:
        data = ArchivingData.model_validate(envelope.data)
        await self.service.project_archiving(envelope.tenant, data.course_id,
                                             envelope.type == COURSE_ARCHIVED, data.revision)

    async def attempt(self, envelope: Envelope) -> None:
        data = AttemptData.model_validate(envelope.data)
        # A question left unanswered says nothing of what the learner knows.
        answers = [q.correct for q in data.questions if q.outcome != "unanswered"]
        if not data.questions and data.max_score > 0:
            answers = [data.score / data.max_score >= 0.6]
        await self.service.apply_attempt(
            envelope.tenant, data.user_id, data.attempt_id or str(envelope.id), data.concepts,
            answers, data.graded_at or envelope.time.astimezone(UTC), data.previous_graded_at)

    async def flashcards(self, envelope: Envelope) -> None:
        data = FlashcardsData.model_validate(envelope.data)
        await self.service.add_generated_cards(
            envelope.tenant, data.job_id, data.lesson_id, data.lesson_version,
            [(c.front, c.back, c.concept_id) for c in data.cards])

    async def time_zone(self, envelope: Envelope) -> None:
        data = TimeZoneData.model_validate(envelope.data)
        await self.service.set_time_zone(envelope.tenant, data.user_id, data.time_zone,
                                         data.changed_at or envelope.time.astimezone(UTC))

    async def user_deleted(self, envelope: Envelope) -> None:
        data = UserDeletedData.model_validate(envelope.data)
        await self.service.erase(envelope.tenant, data.user_id)


def subscriptions(service: LearningService) -> list[Subscription]:
    consumers = Consumers(service)
    return [Subscription(GROUP, (CONTENT_EVENTS, USER_EVENTS, AI_EVENTS), consumers.handle,
                         types=frozenset({LESSON_PUBLISHED, LESSON_DELETED,
                                          COURSE_PUBLISHED, COURSE_ARCHIVED, COURSE_UNARCHIVED,
                                          ATTEMPT_GRADED, USER_DELETED,
                                          FLASHCARDS_GENERATED})),
            Subscription(ZONES_GROUP, (USER_EVENTS,), consumers.handle_zones,
                         types=frozenset({TIME_ZONE_CHANGED, USER_DELETED}))]
