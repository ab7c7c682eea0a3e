"""The learning graph, a learner's progress, mastery and review cards, and the rules they keep.
No I/O here.

Concepts are joined by prerequisite edges (`concept` requires `requires`, `required` or only
`recommended`). Lessons and courses are projections of content's events: learning never reads
content's store. Everything a learner does hangs off their id within a tenant.
"""

from __future__ import annotations

import math
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StringConstraints,
    ValidationInfo,
    field_validator,
    model_validator,
)

from bloop.platform.kit.edits import Edit
from bloop.platform.kit.read_back import Tolerant, read_back
from bloop.platform.kit.text import Lines, NonBlankLine, NonBlankLines

SLUG_PATTERN = r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$"
Slug = Annotated[str, StringConstraints(pattern=SLUG_PATTERN)]
Name = NonBlankLine[Annotated[str, StringConstraints(strip_whitespace=True, min_length=1,
                                                      max_length=200)]]
Text = Lines[Annotated[str, StringConstraints(strip_whitespace=True, max_length=2000)]]
CardText = NonBlankLines[Annotated[str, StringConstraints(strip_whitespace=True, min_length=1,
                                                          max_length=4000)]]
EdgeKind = Literal["required", "recommended"]
Probability = Annotated[float, Field(ge=0.0, le=1.0)]

MASTERED = 0.95
"""A learner whose probability of knowing a concept reaches this has mastered it."""


def now() -> datetime:
    """The current time, to the millisecond (what every store keeps)."""
    t = datetime.now(UTC)
    return t.replace(microsecond=t.microsecond // 1000 * 1000)


class _Frozen(Tolerant):
    model_config = ConfigDict(extra="forbid", frozen=True)


# the graph


MIN_NOISE = 0.01
"""The least guess and slip: with none, one answer settles mastery for good."""


class BktParams(_Frozen):
    """Bayesian Knowledge Tracing parameters of one concept: the chance a learner knows it
    before any practice (`prior`), learns it at each practice (`learn`), answers right without
    knowing it (`guess`) and answers wrong although knowing it (`slip`)."""

    prior: Annotated[StrictFloat, Field(ge=0.001, le=0.999)] = 0.2
    learn: Annotated[StrictFloat, Field(ge=0.001, le=0.999)] = 0.15
    guess: Annotated[StrictFloat, Field(ge=0.0, le=0.5)] = 0.2
    slip: Annotated[StrictFloat, Field(ge=0.0, le=0.5)] = 0.1
    fitted_on: StrictInt = Field(default=0, ge=0, description="observations the last fit used; 0: defaults")

    @field_validator("guess", "slip")
    @classmethod
    def _some_noise(cls, value: float, info: ValidationInfo) -> float:
        if value >= MIN_NOISE:
            return value
        if read_back(info):
            return MIN_NOISE  # set before the floor: read as the floor, not kept
        raise ValueError(f"must be at least {MIN_NOISE}: with none, one right (or wrong) "
                         "answer would settle mastery for good")


class NewConcept(_Frozen):
    id: Slug
    name: Name
    description: Text = ""


class ConceptEdit(Edit):
    """A concept's new name, description, or both."""

    name: Name | None = None
    description: Text | None = None


class Concept(_Frozen):
    id: Slug
    tenant: Slug
    name: Name
    description: Text = ""
    bkt: BktParams = Field(default_factory=BktParams)
    version: int = Field(default=1, ge=1, description=(
        "raised by each change of its name or description (an educator's, or a lesson's "
        "publication naming it); an edit naming it in `If-Match` is refused (409) when the "
        "concept changed since"))

    @classmethod
    def create(cls, tenant: str, new: NewConcept) -> Concept:
        return cls(tenant=tenant, **new.model_dump())

    @classmethod
    def placeholder(cls, tenant: str, concept_id: str) -> Concept:
        """A concept first met in a content event: named after its id until someone names it."""
        return cls(tenant=tenant, id=concept_id, name=concept_id.replace("-", " ").capitalize())

    def described(self, edit: ConceptEdit) -> Concept:
        return self.model_copy(update=edit.changes() | {"version": self.version + 1})


class Edge(_Frozen):
    """`concept` needs `requires` first."""

    concept: Slug
    requires: Slug
    kind: EdgeKind = "required"

    @model_validator(mode="after")
    def _not_a_self_edge(self) -> Edge:
        if self.concept == self.requires:
            raise ValueError(f"a concept cannot require itself ({self.concept})")
        return self


class GraphDocument(_Frozen):
    """A tenant's graph as JSON: import adds these concepts (new ones; existing names are kept)
    and edges (an existing edge takes the given kind)."""

    concepts: Annotated[list[NewConcept], Field(max_length=20_000)] = Field(default_factory=list)
    edges: Annotated[list[Edge], Field(max_length=100_000)] = Field(default_factory=list)

    def repeats(self) -> list[dict[str, Any]]:
        """A validation error for each concept id, or edge (concept, requires), listed again,
        at its place in the document (which of two would win is no rule to rely on)."""
        found: list[dict[str, Any]] = []
        concepts: dict[str, int] = {}
        for i, c in enumerate(self.concepts):
            if (first := concepts.setdefault(c.id, i)) != i:
                found.append({"loc": ("concepts", i, "id"), "type": "value_error",
                              "msg": f"the concept {c.id!r} is listed twice (first at {first})"})
        edges: dict[tuple[str, str], int] = {}
        for i, e in enumerate(self.edges):
            if (first := edges.setdefault((e.concept, e.requires), i)) != i:
                found.append({"loc": ("edges", i), "type": "value_error",
                              "msg": f"the edge {e.concept} → {e.requires} is listed twice "
                                     f"(first at {first})"})
        return found


class ConceptDetail(Concept):
    requires: list[Edge]
    required_by: list[Edge]


# projections of content


class LessonNode(_Frozen):
    id: str
    tenant: Slug
    course_id: str
    module_id: str | None = None
    position: int = 0
    title: str
    estimated_minutes: int = Field(ge=0)
    teaches: list[str]
    requires: list[str]
    version: int = 0


class ModuleRef(_Frozen):
    id: str
    lesson_ids: list[str]


class CourseNode(_Frozen):
    id: str
    tenant: Slug
    title: str
    version: int
    lesson_ids: list[str]
    modules: list[ModuleRef] = Field(default_factory=list)
    archived: bool = Field(default=False, description="closed to new enrolments")
    archived_revision: int = Field(default=0, description="the course head's revision at its "
                                                          "last archiving or putting back")


# a learner


class NewEnrolment(_Frozen):
    """A course to follow, or a concept to reach: exactly one of them."""

    course_id: Slug | None = None
    goal_concept: Slug | None = None

    @model_validator(mode="after")
    def _one_goal(self) -> NewEnrolment:
        if (self.course_id is None) == (self.goal_concept is None):
            raise ValueError("give either course_id or goal_concept")
        return self

    @property
    def goal(self) -> str:
        return goal_of(self.course_id, self.goal_concept)


class Enrolment(_Frozen):
    learner: str
    course_id: str | None = None
    goal_concept: str | None = None
    enrolled_at: datetime

    @property
    def goal(self) -> str:
        return goal_of(self.course_id, self.goal_concept)


def goal_of(course_id: str | None, goal_concept: str | None) -> str:
    """How a goal is named where it is stored: `course:<id>` or `concept:<id>`."""
    return f"course:{course_id}" if course_id else f"concept:{goal_concept}"


ProgressStatus = Literal["started", "completed"]


PROGRESS_SLACK_S = 60
"""How far an update's seconds may pass the time since the previous update (clocks, latency)."""


class ProgressUpdate(_Frozen):
    status: ProgressStatus
    seconds: Annotated[StrictInt, Field(ge=0, le=86_400)] = Field(
        default=0, description=(
            "time spent since the last update, added to the total: the first update's all of "
            "it, a later one's up to the time since the update before plus "
            f"{PROGRESS_SLACK_S} s"))


class Progress(_Frozen):
    lesson_id: str
    status: ProgressStatus
    seconds: int = 0
    started_at: datetime
    completed_at: datetime | None = None
    updated_at: datetime | None = Field(
        default=None, description="when the last update was recorded (null if kept before)")
    version: int = Field(default=1, ge=0, description="one more at each update; 0 before any")

    def updated(self, update: ProgressUpdate, at: datetime) -> Progress:
        """Completion sticks: a lesson once completed stays completed. The first update's
        seconds count whole (the learner may have opened the lesson long before); a later
        one's only up to the time since the update before, and `PROGRESS_SLACK_S`."""
        completed = self.status == "completed" or update.status == "completed"
        seconds = update.seconds
        if self.version:
            last = self.updated_at or self.completed_at or self.started_at
            seconds = min(seconds, max(0, math.ceil((at - last).total_seconds()))
                          + PROGRESS_SLACK_S)
        return self.model_copy(update={
            "status": "completed" if completed else "started",
            "seconds": self.seconds + seconds,
            "updated_at": at,
            "completed_at": self.completed_at or (at if update.status == "completed" else None),
            "version": self.version + 1})


class Completion(_Frozen):
    id: str
    lessons: int
    completed: int

    @property
    def ratio(self) -> float:
        return self.completed / self.lessons if self.lessons else 0.0


class CourseCompletion(Completion):
    modules: list[Completion]


class ProgressReport(_Frozen):
    lessons: list[Progress]
    courses: list[CourseCompletion]


Observation = tuple[str, int]
"""One graded answer on a concept: (ISO time it was graded at, 1 right / 0 wrong)."""


class Mastery(_Frozen):
    concept: str
    p_known: Probability
    mastered: bool
    source: Literal["bkt", "placement"] = "bkt"
    baseline: Probability | None = Field(
        default=None, description="where answers are replayed from, when placement set it")
    baseline_at: str | None = Field(
        default=None, description="when placement set the baseline: answers graded before it "
                                  "are not replayed (placement judged them)")
    observations: list[Observation] = Field(default_factory=list)
    attempt_ids: list[str] = Field(default_factory=list)
    version: int = 0
    updated_at: datetime


# paths


class PathStep(_Frozen):
    lesson_id: str
    title: str
    course_id: str
    estimated_minutes: int
    concepts: list[str] = Field(description="the concepts of the path this lesson teaches")
    required: bool = Field(description="false when only recommended prerequisites lead here")
    status: Literal["todo", "started", "completed"] = Field(
        default="todo", description="completed: read, but what it teaches is not mastered yet: "
                                    "its quiz or reviews will show it")
    blocked_by: list[str] = Field(default_factory=list,
                                  description="unmastered prerequisites taught by other steps of "
                                              "the path, completed ones included")


class LearningPath(_Frozen):
    goal: str
    steps: list[PathStep]
    uncovered: list[str] = Field(description="concepts on the way that no lesson teaches yet")
    concepts: int = Field(description="concepts in the goal's prerequisite closure")
    mastered: int


class NextItem(_Frozen):
    kind: Literal["lesson", "review", "nothing"]
    goal: str | None = None
    lesson: PathStep | None = None
    card: CardView | None = None


# placement


class NewPlacement(_Frozen):
    course_id: Slug | None = None
    goal_concept: Slug | None = None

    @model_validator(mode="after")
    def _one_goal(self) -> NewPlacement:
        if (self.course_id is None) == (self.goal_concept is None):
            raise ValueError("give either course_id or goal_concept")
        return self


class PlacementAnswer(_Frozen):
    concept: Slug
    correct: StrictBool


class Placement(_Frozen):
    id: str
    learner: str
    goal: str
    order: list[str] = Field(description="the goal's closure, prerequisites first")
    prerequisites: dict[str, list[str]] = Field(description="each concept's direct prerequisites")
    known: list[str] = Field(default_factory=list)
    unknown: list[str] = Field(default_factory=list)
    answers: list[PlacementAnswer] = Field(default_factory=list)
    max_questions: int
    question: str | None = None
    done: bool = False
    created_at: datetime

    @classmethod
    def new_id(cls) -> str:
        return uuid.uuid4().hex


class PlacementView(_Frozen):
    id: str
    goal: str
    question: str | None = Field(description="the concept asked about next; null when done")
    question_name: str | None = None
    card_front: str | None = Field(default=None, description="a review card of the concept to "
                                   "ask with, when it has one")
    card_back: str | None = Field(default=None, description="that card's answer, to show once "
                                  "the learner has answered, before they say whether they knew")
    asked: int
    max_questions: int
    done: bool
    known: list[str]
    unknown: list[str]


# spaced review

CardSource = Literal["authored", "ai"]


class NewCard(_Frozen):
    front: CardText
    back: CardText
    source: CardSource = "authored"


class CardEdit(Edit):
    """New text for a card's front, its back, or both."""

    front: CardText | None = None
    back: CardText | None = None


class LessonVersion(_Frozen):
    lesson_id: str
    lesson_version: int


class HeldUntil(LessonVersion):
    """The publication a card generated from an unpublished lesson version waits for."""


class Card(_Frozen):
    id: str
    tenant: Slug
    concept: str
    front: str
    back: str
    source: CardSource
    created_at: datetime
    updated_at: datetime | None = None
    version: int = Field(default=1, ge=1, description="raised by each edit; an edit naming it "
                         "in `If-Match` is refused (409) when the card changed since")
    held_until: HeldUntil | None = Field(default=None, description=(
        "set on a card generated from a version of a lesson learners cannot read (a draft): "
        "until that version of the lesson or a later one is published, the card joins no deck "
        "and only staff see it"))
    lesson_id: str | None = Field(default=None, description=(
        "the lesson an AI card was made from: when it is deleted, the card is retired; null "
        "for an educator's card, and for AI cards stored before cards kept their lesson"))
    lesson_version: int | None = Field(default=None, description=(
        "the version of that lesson the card was made from"))

    @classmethod
    def create(cls, tenant: str, concept: str, new: NewCard, at: datetime | None = None,
               card_id: str | None = None, held_until: HeldUntil | None = None,
               made_from: LessonVersion | None = None) -> Card:
        """`made_from`: the lesson version an AI card was made from."""
        return cls(id=card_id or uuid.uuid4().hex, tenant=tenant, concept=concept,
                   created_at=at or now(), held_until=held_until,
                   lesson_id=made_from and made_from.lesson_id,
                   lesson_version=made_from and made_from.lesson_version, **new.model_dump())

    def released(self) -> Card:
        return self.model_copy(update={"held_until": None})

    def edited(self, edit: CardEdit, at: datetime) -> Card:
        return self.model_copy(update=edit.changes() | {"updated_at": at,
                                                        "version": self.version + 1})


class CardState(_Frozen):
    """A learner's schedule for one card: the FSRS card, as `fsrs.Card.to_dict()`."""

    card_id: str
    concept: str
    fsrs: dict[str, object]
    due: datetime
    reps: int = 0
    version: int = 0


class CardView(_Frozen):
    card_id: str
    concept: str
    front: str
    back: str
    due: datetime
    reps: int
    version: int = Field(description="the schedule's version: one more at each review")


class NewReview(_Frozen):
    card_id: str = Field(min_length=1, max_length=64)
    # The range is documented here and checked by the service first, which answers 422 bad_rating.
    rating: StrictInt = Field(description="1 again, 2 hard, 3 good, 4 easy",
                              json_schema_extra={"minimum": 1, "maximum": 4})
    duration_ms: Annotated[StrictInt, Field(ge=0, le=3_600_000)] | None = None
    version: Annotated[StrictInt, Field(ge=0)] | None = Field(default=None, description=(
        "the schedule's version the card was shown at (from the due list): a card reviewed "
        "since is refused with 409 already_reviewed, so a double tap counts once; without it "
        "the rating always applies"))


class ReviewLog(_Frozen):
    id: str
    card_id: str
    concept: str
    rating: int
    reviewed_at: datetime
    was_due: datetime
    next_due: datetime
    duration_ms: int | None = None


class ReviewResult(_Frozen):
    card_id: str
    rating: int
    was_due: bool
    next_due: datetime
    interval_days: float
    version: int = Field(description="the schedule's version after this review")


class LearnerSettings(_Frozen):
    """What a learner's reviews are scheduled with: their own FSRS parameters (None: the
    defaults) and the IANA time zone identity last told (None: none yet)."""

    parameters: list[float] | None = None
    time_zone: str | None = None


ZoneSaved = Literal["stored", "again", "refused"]
"""What `save_time_zone` did with news of a learner's zone: stored it; found it stored already
(the same zone as of the same time: the news told again); refused it (older than the zone
stored, or the learner was erased)."""


class SchedulerParams(_Frozen):
    """A fit of a learner's FSRS parameters: the losses are those of the parameters in use and
    of the fit on the `checked_on` reviews of the cards the fit left out; `better` when the
    fit predicts them better by more than chance, and is kept."""

    parameters: list[float]
    fitted_on: int
    loss_before: float
    loss_after: float
    checked_on: int = 0
    better: bool = False


NextItem.model_rebuild()
