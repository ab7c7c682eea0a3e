"""learning's GraphQL fields: the tenant's prerequisite graph, and the signed-in learner's paths,
next item, mastery and due reviews; the educators' writes: concepts, their BKT parameters and
cards, and prerequisite edges; and the learner's writes: enrolments, progress, placements, their
deck and its reviews.

Under the HTTP API's rules: the tenant's educators and admins read the whole graph (as
`GET …/learning/graph`), with `learning:read`; a learner's own fields need `learning:write`
like their HTTP twins under `/learning/me`; the educators' writes need the educator or
tenant_admin role and `learning:write`, as theirs do; each write takes the body its twin takes.
"""

from __future__ import annotations

from collections.abc import Awaitable
from datetime import datetime
from enum import Enum

import strawberry

from bloop.graphql.context import Context
from bloop.graphql.fields import Page, field, invalid, page_size, sized
from bloop.graphql.inputs import at_least, validated
from bloop.graphql.scalars import Slug
from bloop.platform.kit.auth import a_person
from bloop.platform.kit.errors import Invalid, NotFound
from bloop.platform.kit.pagination import After, Slice
from bloop.platform.kit.times import in_utc
from bloop.platform.learning import model
from bloop.platform.learning.api import EDITORS, RecordId
from bloop.platform.learning.service import PATHS_A_PAGE, LearningService

Info = strawberry.Info[Context, None]

MAX_GRAPH_ITEMS = 20_000
"""Concepts and edges one request may get from `prerequisiteGraph` (each alias counting its
own), about 0.3 s of work; past it, the fields asking for more fail with `query_too_large`."""
MAX_PATHS = 200
"""Paths one request may ask `myPaths` to work out (each is a graph query): the page sizes of
the pages its aliases ask for, an alias asking for a page another asked for counting nothing."""


def _service(info: Info) -> LearningService:
    return info.context.service("learning", LearningService)


def _me(info: Info, tenant: str) -> str:
    return a_person(info.context.authorise(tenant, scopes=["learning:write"])).user_id


GOAL = "`course:<course id>` or `concept:<concept id>`"


@strawberry.type(description="an edge of the prerequisite graph: `concept` needs `requires` "
                             "first")
class Prerequisite:
    concept: str = strawberry.field(description="the id of the concept that needs the other")
    requires: str = strawberry.field(description="the id of the concept needed first")
    kind: str = strawberry.field(description=(
        "`required` or `recommended`: a path lesson reached only through recommended edges is "
        "not `required`, and placement spreads answers along required edges only"))

    @classmethod
    def of(cls, edge: model.Edge) -> Prerequisite:
        return cls(concept=edge.concept, requires=edge.requires, kind=edge.kind)


@strawberry.type(description=(
    "a concept's Bayesian Knowledge Tracing parameters: the chances a learner knows it before "
    "any practice, learns it at each practice, answers right without knowing it and answers "
    "wrong although knowing it"))
class BktParameters:
    prior: float = strawberry.field(description="the chance a learner knows it before any "
                                                "practice, 0.001 to 0.999")
    learn: float = strawberry.field(description="the chance a learner learns it at each "
                                                "practice, 0.001 to 0.999")
    guess: float = strawberry.field(description="the chance of a right answer without knowing "
                                                "it, 0.01 to 0.5")
    slip: float = strawberry.field(description="the chance of a wrong answer although knowing "
                                               "it, 0.01 to 0.5")
    fitted_on: int = strawberry.field(description=(
        "the observations the last fit used; 0 for the defaults or parameters set by hand"))

    @classmethod
    def of(cls, bkt: model.BktParams) -> BktParameters:
        return cls(prior=bkt.prior, learn=bkt.learn, guess=bkt.guess, slip=bkt.slip,
                   fitted_on=bkt.fitted_on)


@strawberry.type(description="a concept of the tenant's prerequisite graph")
class LearningConcept:
    id: str = strawberry.field(description="its id")
    name: str = strawberry.field(description=(
        "its name; one first met in a lesson is named after its id until someone names it"))
    description: str = strawberry.field(description="plain text; empty when none")
    version: int = strawberry.field(description=(
        "raised by each change of its name or description: what an edit's `If-Match` names "
        "(`PATCH …/learning/concepts/{concept}`) and `editLearningConcept`'s `version`"))
    bkt: BktParameters = strawberry.field(description=(
        "its Bayesian Knowledge Tracing parameters, by which graded quiz attempts move a "
        "learner's mastery of it"))

    @classmethod
    def of(cls, concept: model.Concept) -> LearningConcept:
        return cls(id=concept.id, name=concept.name, description=concept.description,
                   version=concept.version, bkt=BktParameters.of(concept.bkt))


@strawberry.type(description="the tenant's concepts and the prerequisite edges between them, "
                             "which form no cycle")
class PrerequisiteGraph:
    concepts: list[LearningConcept] = strawberry.field(description="every concept, by id")
    edges: list[Prerequisite] = strawberry.field(description="every edge, by `concept` then "
                                                             "`requires`")


async def _graph(service: LearningService, tenant: str) -> PrerequisiteGraph:
    concepts, edges = await service.concepts(tenant), await service.edges(tenant)
    return PrerequisiteGraph(concepts=[LearningConcept.of(c) for c in concepts],
                             edges=[Prerequisite.of(e) for e in edges])


@strawberry.type(description="a lesson on a learner's path")
class PathStep:
    lesson_id: str = strawberry.field(description="the lesson's id")
    title: str = strawberry.field(description="its title as last published")
    course_id: str = strawberry.field(description="the id of its course")
    estimated_minutes: int = strawberry.field(description="the minutes its author expects it to "
                                                          "take")
    concepts: list[str] = strawberry.field(description=(
        "the ids of the concepts on the path it teaches that the learner has not mastered, "
        "sorted; empty for a course's lesson teaching no concept (an introduction, a recap)"))
    required: bool = strawberry.field(description=(
        "false when only recommended prerequisite edges lead to it from the goal"))
    status: str = strawberry.field(description=(
        "`todo` (not started), `started` or `completed` (read, but what it teaches is not "
        "mastered yet: its quiz or reviews will show it; `myNext` never gives it)"))
    blocked_by: list[str] = strawberry.field(description=(
        "the ids of the unmastered prerequisites of its concepts that other steps teach, "
        "completed ones included, sorted; empty when no other step teaches what it needs"))

    @classmethod
    def of(cls, step: model.PathStep) -> PathStep:
        return cls(lesson_id=step.lesson_id, title=step.title, course_id=step.course_id,
                   estimated_minutes=step.estimated_minutes, concepts=list(step.concepts),
                   required=step.required, status=step.status, blocked_by=list(step.blocked_by))


@strawberry.type(description=(
    "a learner's way to a goal they enrolled in: lessons teaching the goal's prerequisites they "
    "have not mastered, prerequisites first"))
class LearningPath:
    goal: str = strawberry.field(description=GOAL)
    steps: list[PathStep] = strawberry.field(description=(
        "the lessons to take, in order: each after those teaching what it needs, a course's "
        "lessons teaching no concept at their place in the course; a completed lesson stays "
        "while what it teaches is not mastered"))
    uncovered: list[str] = strawberry.field(description=(
        "the ids of the unmastered concepts on the way that no lesson teaches yet, sorted"))
    concepts: int = strawberry.field(description=(
        "how many concepts the goal needs: its own and all their prerequisites"))
    mastered: int = strawberry.field(description="how many of those the learner has mastered")

    @classmethod
    def of(cls, path: model.LearningPath) -> LearningPath:
        return cls(goal=path.goal, steps=[PathStep.of(s) for s in path.steps],
                   uncovered=list(path.uncovered), concepts=path.concepts, mastered=path.mastered)


@strawberry.type(description="a flashcard in the learner's deck, with their FSRS schedule of it")
class ReviewCard:
    card_id: str = strawberry.field(description="the card's id: what a review "
                                                "(`POST …/me/reviews`) names")
    concept: str = strawberry.field(description="the id of the concept it practises")
    front: str = strawberry.field(description="the side to show first: a question or a cue")
    back: str = strawberry.field(description="the answer, to show once the learner has tried")
    due: datetime = strawberry.field(description="when it is next due")
    reps: int = strawberry.field(description="how many times the learner has reviewed it")
    version: int = strawberry.field(description="the schedule's version, to send with the "
                                                "review so that a double tap counts once")

    @classmethod
    def of(cls, card: model.CardView) -> ReviewCard:
        return cls(card_id=card.card_id, concept=card.concept, front=card.front, back=card.back,
                   due=card.due, reps=card.reps, version=card.version)


@strawberry.type(description="how well the learner knows a concept, by Bayesian Knowledge "
                             "Tracing")
class ConceptMastery:
    concept: str = strawberry.field(description="the concept's id")
    p_known: float = strawberry.field(description=(
        "the probability, 0 to 1, that the learner knows the concept, updated by each graded "
        "quiz attempt on it"))
    mastered: bool = strawberry.field(description="true when `pKnown` is 0.95 or more")
    source: str = strawberry.field(description=(
        "what set it last: `bkt` (a graded quiz attempt) or `placement` (the placement "
        "diagnostic found the concept known)"))
    updated_at: datetime = strawberry.field(description="when it last changed")

    @classmethod
    def of(cls, m: model.Mastery) -> ConceptMastery:
        return cls(concept=m.concept, p_known=m.p_known, mastered=m.mastered, source=m.source,
                   updated_at=m.updated_at)


@strawberry.type(description="what the learner should do next")
class NextItem:
    kind: str = strawberry.field(description=(
        "`review` (a card is due: `card`), `lesson` (`lesson`, on the path to `goal`) or "
        "`nothing` (no card due and no lesson left to take on any path)"))
    goal: str | None = strawberry.field(description=(
        f"the goal of the path `lesson` is on, {GOAL}; null when `kind` is not `lesson`"))
    lesson: PathStep | None = strawberry.field(description=(
        "the first lesson not completed and waiting for no other not completed on the "
        "learner's paths, in the order they enrolled (when every lesson left waits, the first "
        "of them); null when `kind` is not `lesson`"))
    card: ReviewCard | None = strawberry.field(description=(
        "the most overdue card; null when `kind` is not `review`"))


def _moment(at: datetime | None) -> datetime:
    """`at` in UTC, refused as `…/me/reviews/due` refuses it; now when None."""
    if at is None:
        return model.now()
    if at.utcoffset() is None:
        raise invalid("at must carry its zone offset, such as 2026-12-04T09:00:00+05:00", "at",
                      kind="timezone_aware")
    try:
        return in_utc(at)
    except ValueError as exc:
        raise invalid(str(exc), "at") from None


@strawberry.type
class Query:
    @field(f"the tenant's whole prerequisite graph, its concepts and edges, for its educators "
           f"and admins (as `GET …/learning/graph`); a request gets at most {MAX_GRAPH_ITEMS} "
           "concepts and edges in all (`query_too_large` past it): the HTTP API pages them "
           "(`GET …/learning/concepts` and `…/learning/edges`)")
    async def prerequisite_graph(self, info: Info, tenant: Slug) -> PrerequisiteGraph | None:
        info.context.authorise(tenant, *EDITORS, scopes=["learning:read"])
        graph = await info.context.once(f"learning.graph:{tenant}",
                                        lambda: _graph(_service(info), tenant))
        # Counted by every alias: each one's answer is written out again.
        info.context.count("concepts and edges", len(graph.concepts) + len(graph.edges),
                           MAX_GRAPH_ITEMS)
        return graph

    @field("the signed-in learner's path to each goal they enrolled in, in the order they "
           "enrolled, `first` of them after the cursor `after` (each is worked out from the "
           "graph: ask for the page you show)")
    async def my_paths(self, info: Info, tenant: Slug, first: int = PATHS_A_PAGE,
                       after: str | None = None) -> Page[LearningPath] | None:
        me = _me(info, tenant)
        size, after = page_size(first), sized(after, "after", After)

        def work() -> Awaitable[Slice[model.LearningPath]]:
            # Each path is a graph query: counted as a page is first asked for (aliases asking
            # for that page again share its answer), before it is worked out.
            info.context.count("paths", size, MAX_PATHS)
            return _service(info).path_page(tenant, me, after, size)

        return Page.of(await info.context.once(f"learning.paths:{tenant}:{me}:{size}:{after}",
                                               work), LearningPath.of)

    @field("the signed-in learner's path to a course or a concept (exactly one); null when "
           "there is none")
    async def my_path(self, info: Info, tenant: Slug, course: Slug | None = None,
                      concept: Slug | None = None) -> LearningPath | None:
        me = _me(info, tenant)
        if (course is None) == (concept is None):
            raise Invalid([{"loc": [name], "msg": "give either `course` or `concept`",
                            "type": "value_error"} for name in ("course", "concept")])
        try:
            return LearningPath.of(await info.context.once(
                f"learning.path:{tenant}:{me}:{course}:{concept}",
                lambda: _service(info).path(tenant, me, course_id=course, concept=concept)))
        except NotFound:
            return None

    @field("what the signed-in learner should do next: a due review or a lesson")
    async def my_next(self, info: Info, tenant: Slug) -> NextItem | None:
        me = _me(info, tenant)
        item = await info.context.once(f"learning.next:{tenant}:{me}",
                                       lambda: _service(info).next_item(tenant, me))
        return NextItem(kind=item.kind, goal=item.goal,
                        lesson=PathStep.of(item.lesson) if item.lesson else None,
                        card=ReviewCard.of(item.card) if item.card else None)

    @field("the signed-in learner's mastery of each concept they were assessed on, by concept "
           "id, `first` of them after the cursor `after`")
    async def my_mastery(self, info: Info, tenant: Slug, first: int = 100,
                         after: str | None = None) -> Page[ConceptMastery] | None:
        me = _me(info, tenant)
        return Page.of(await _service(info).mastery_page(
            tenant, me, sized(after, "after", After), page_size(first)), ConceptMastery.of)

    @field("the signed-in learner's review cards due at `at` (now when left out), most overdue "
           "first, `first` of them after the cursor `after` (send the same `at` with it)")
    async def my_due_reviews(self, info: Info, tenant: Slug, first: int = 50,
                             after: str | None = None,
                             at: datetime | None = None) -> Page[ReviewCard] | None:
        me = _me(info, tenant)
        return Page.of(await _service(info).due_page(
            tenant, me, _moment(at), page_size(first), sized(after, "after", After)),
            ReviewCard.of)


@strawberry.input(description="a course to follow or a concept to reach: exactly one of them")
class GoalInput:
    course_id: str | None = strawberry.field(default=None, description="the course's id")
    goal_concept: str | None = strawberry.field(default=None, description="the concept's id")


@strawberry.type(description="a course the learner follows, or a concept they set out to reach")
class Enrolment:
    course_id: str | None = strawberry.field(description="the course's id; null for a concept")
    goal_concept: str | None = strawberry.field(description="the concept's id; null for a "
                                                            "course")
    goal: str = strawberry.field(description=GOAL)
    enrolled_at: datetime = strawberry.field(description="when the learner enrolled")


@strawberry.type(description="what `enrol` did")
class Enrolled:
    enrolment: Enrolment = strawberry.field(description="the enrolment")
    created: bool = strawberry.field(description="false when the learner was already enrolled "
                                                 "(the HTTP API's 200 rather than 201)")


@strawberry.enum(description="how far the learner is through a lesson")
class ProgressStatus(Enum):
    STARTED = strawberry.enum_value("started", description="opened, not finished")
    COMPLETED = strawberry.enum_value("completed", description="read to its end")


@strawberry.input(description="progress through a lesson since the last update")
class ProgressInput:
    status: ProgressStatus = strawberry.field(description=(
        "`COMPLETED` sticks: a lesson once completed stays completed"))
    seconds: int = strawberry.field(default=0, description=(
        "time spent since the last update, 0 to 86,400, added to the total: the first "
        f"update's all of it, a later one's up to the time since the update before and "
        f"{model.PROGRESS_SLACK_S} s"))


@strawberry.type(description="the learner's progress through a lesson")
class LessonProgress:
    lesson_id: str = strawberry.field(description="the lesson's id")
    status: ProgressStatus = strawberry.field(description="started or completed")
    seconds: int = strawberry.field(description="time spent on it in all")
    started_at: datetime = strawberry.field(description="when the learner started it")
    completed_at: datetime | None = strawberry.field(description="when they completed it; null "
                                                                 "until then")
    updated_at: datetime | None = strawberry.field(description=(
        "when the last update was recorded; null for progress kept before that was"))
    version: int = strawberry.field(description="one more at each update")

    @classmethod
    def of(cls, p: model.Progress) -> LessonProgress:
        return cls(lesson_id=p.lesson_id, status=ProgressStatus(p.status), seconds=p.seconds,
                   started_at=p.started_at, completed_at=p.completed_at,
                   updated_at=p.updated_at, version=p.version)


@strawberry.type(description="a placement diagnostic: it asks about the goal's prerequisites "
                             "the learner has not mastered, one concept at a time")
class Placement:
    id: str = strawberry.field(description="its id, which an answer names")
    goal: str = strawberry.field(description=GOAL)
    question: str | None = strawberry.field(description="the id of the concept asked about "
                                                        "next; null when done")
    question_name: str | None = strawberry.field(description="that concept's name")
    card_front: str | None = strawberry.field(description="a review card of the concept to ask "
                                                          "with, when it has one")
    card_back: str | None = strawberry.field(description=(
        "that card's answer, to show once the learner has answered, before they say whether "
        "they knew"))
    asked: int = strawberry.field(description="how many questions it asked")
    max_questions: int = strawberry.field(description="the most it will ask")
    done: bool = strawberry.field(description="true once it has nothing left to ask; what it "
                                              "found known is then mastered")
    known: list[str] = strawberry.field(description="the ids of the concepts found known")
    unknown: list[str] = strawberry.field(description="the ids of the concepts found unknown")

    @classmethod
    def of(cls, p: model.PlacementView) -> Placement:
        return cls(id=p.id, goal=p.goal, question=p.question, question_name=p.question_name,
                   card_front=p.card_front, card_back=p.card_back, asked=p.asked,
                   max_questions=p.max_questions, done=p.done, known=list(p.known),
                   unknown=list(p.unknown))


@strawberry.input(description="whether the learner knew the concept a placement asked about")
class PlacementAnswerInput:
    concept: str = strawberry.field(description="the concept asked (`question`)")
    correct: bool = strawberry.field(description="true when they knew it")


@strawberry.input(description="a learner's rating of a card of their deck")
class ReviewInput:
    card_id: str = strawberry.field(description="the card's id")
    rating: int = strawberry.field(description="1 again, 2 hard, 3 good, 4 easy")
    duration_ms: int | None = strawberry.field(default=None, description=(
        "how long the learner took, 0 to 3,600,000 ms"))
    version: int | None = strawberry.field(default=None, description=(
        "the schedule's version the card was shown at (`ReviewCard.version`): a card reviewed "
        "since is refused (409 `already_reviewed`), so a double tap counts once; without it "
        "the rating always applies"))


@strawberry.type(description="what a review did to the card's schedule")
class ReviewOutcome:
    card_id: str = strawberry.field(description="the card's id")
    rating: int = strawberry.field(description="the rating given")
    was_due: bool = strawberry.field(description="false when it was reviewed before it was due")
    next_due: datetime = strawberry.field(description="when it is due next")
    interval_days: float = strawberry.field(description="the days from now until then")
    version: int = strawberry.field(description="the schedule's version after this review")


@strawberry.type(description="a fit of the learner's own scheduling parameters to their "
                             "review history")
class SchedulerFit:
    parameters: list[float] = strawberry.field(description="the FSRS parameters fitted")
    fitted_on: int = strawberry.field(description="the reviews fitted on")
    loss_before: float = strawberry.field(description=(
        "the loss of the parameters in use on the reviews left out of the fit"))
    loss_after: float = strawberry.field(description="the fit's loss on them")
    checked_on: int = strawberry.field(description="the reviews left out to check the fit on")
    better: bool = strawberry.field(description=(
        "true when the fit predicts those better by more than chance: it is kept"))


@strawberry.input(description="a new concept of the tenant's prerequisite graph")
class NewLearningConceptInput:
    id: str = strawberry.field(description=(
        "its id, a slug: lower-case letters, digits and inner hyphens, at most 63"))
    name: str = strawberry.field(description="its name, 1 to 200 characters, not blank")
    description: str = strawberry.field(default="", description="plain text; empty when left "
                                                                "out")


@strawberry.input(description="a concept's new name, description, or both (at least one)")
class LearningConceptEditInput:
    name: str | None = strawberry.field(default=None, description="its new name; left out or "
                                                                  "null, it stays")
    description: str | None = strawberry.field(default=None, description=(
        "its new description; left out or null, it stays"))


_BKT = model.BktParams()


@strawberry.input(description="a concept's Bayesian Knowledge Tracing parameters, set by hand")
class BktInput:
    prior: float = strawberry.field(default=_BKT.prior, description=(
        f"the chance a learner knows it before any practice, 0.001 to 0.999 ({_BKT.prior} "
        "when left out)"))
    learn: float = strawberry.field(default=_BKT.learn, description=(
        f"the chance a learner learns it at each practice, 0.001 to 0.999 ({_BKT.learn} when "
        "left out)"))
    guess: float = strawberry.field(default=_BKT.guess, description=(
        f"the chance of a right answer without knowing it, {model.MIN_NOISE} to 0.5 "
        f"({_BKT.guess} when left out)"))
    slip: float = strawberry.field(default=_BKT.slip, description=(
        f"the chance of a wrong answer although knowing it, {model.MIN_NOISE} to 0.5 "
        f"({_BKT.slip} when left out)"))


@strawberry.type(description="a review card of a concept")
class Card:
    id: str = strawberry.field(description="its id")
    concept: str = strawberry.field(description="the id of the concept it practises")
    front: str = strawberry.field(description="the side to show first: a question or a cue")
    back: str = strawberry.field(description="the answer")
    source: str = strawberry.field(description="`authored` (an educator's) or `ai` "
                                               "(generated)")
    created_at: datetime = strawberry.field(description="when it was made")
    updated_at: datetime | None = strawberry.field(description="when it was last edited; null "
                                                               "until then")
    version: int = strawberry.field(description=(
        "raised by each edit: what `editCard`'s `version` (the HTTP API's `If-Match`) names"))
    lesson_id: str | None = strawberry.field(description=(
        "the lesson an AI card was made from; null for an educator's card"))
    lesson_version: int | None = strawberry.field(description=(
        "the version of that lesson the card was made from"))
    held_until_version: int | None = strawberry.field(description=(
        "set on a card made from a draft of its lesson: the version of the lesson whose "
        "publication lets it join decks; null when it is not held"))

    @classmethod
    def of(cls, card: model.Card) -> Card:
        return cls(id=card.id, concept=card.concept, front=card.front, back=card.back,
                   source=card.source, created_at=card.created_at, updated_at=card.updated_at,
                   version=card.version, lesson_id=card.lesson_id,
                   lesson_version=card.lesson_version,
                   held_until_version=card.held_until.lesson_version if card.held_until
                   else None)


@strawberry.input(description="a new review card of a concept")
class NewCardInput:
    front: str = strawberry.field(description="the side to show first, 1 to 1,000 characters, "
                                              "not blank")
    back: str = strawberry.field(description="the answer, 1 to 1,000 characters, not blank")
    source: str = strawberry.field(default="authored", description=(
        "`authored` (the default) or `ai` for a card generated elsewhere"))


@strawberry.input(description="a card's new front, back, or both (at least one)")
class CardEditInput:
    front: str | None = strawberry.field(default=None, description="its new front; left out or "
                                                                   "null, it stays")
    back: str | None = strawberry.field(default=None, description="its new back; left out or "
                                                                  "null, it stays")


@strawberry.input(description="a prerequisite edge: `concept` needs `requires` first")
class PrerequisiteInput:
    concept: str = strawberry.field(description="the id of the concept that needs the other")
    requires: str = strawberry.field(description="the id of the concept needed first")
    kind: str = strawberry.field(default="required", description=(
        "`required` (the default) or `recommended`"))


@strawberry.type(description="what `addPrerequisite` did")
class PrerequisiteAdded:
    edge: Prerequisite = strawberry.field(description="the edge")
    created: bool = strawberry.field(description=(
        "false when the edge existed, which takes the kind given (the HTTP API's 200 rather "
        "than 201)"))


def _editor(info: Info, tenant: str) -> None:
    info.context.authorise(tenant, *EDITORS, scopes=["learning:write"])


def _goal(goal: GoalInput) -> model.NewEnrolment:
    return validated(model.NewEnrolment, goal, "goal")


@strawberry.type
class Mutation:
    @field("adds a concept to the tenant's prerequisite graph (as "
           "`POST …/learning/concepts`); 409 `concept_exists` when its id is taken")
    async def add_learning_concept(self, info: Info, tenant: Slug,
                          concept: NewLearningConceptInput) -> LearningConcept | None:
        _editor(info, tenant)
        new = validated(model.NewConcept, concept, "concept")
        return LearningConcept.of(await _service(info).add_concept(tenant, new))

    @field("gives a concept a new name or description, its id staying (as "
           "`PATCH …/learning/concepts/{concept}`); given `version` (the HTTP API's "
           "`If-Match`), 409 `stale_version` when the concept changed since, without it the "
           "last edit of a field wins")
    async def edit_learning_concept(self, info: Info, tenant: Slug, id: Slug,
                           edit: LearningConceptEditInput,
                           version: int | None = None) -> LearningConcept | None:
        _editor(info, tenant)
        change = validated(model.ConceptEdit, edit, "edit")
        return LearningConcept.of(await _service(info).edit_concept(
            tenant, id, change, version=at_least(version, 0, "version")))

    @field("sets a concept's BKT parameters by hand (as "
           "`PUT …/learning/concepts/{concept}/bkt`); a later fit replaces them")
    async def set_bkt(self, info: Info, tenant: Slug, concept_id: Slug,
                      bkt: BktInput) -> LearningConcept | None:
        _editor(info, tenant)
        params = validated(model.BktParams, bkt, "bkt")
        return LearningConcept.of(await _service(info).set_bkt(tenant, concept_id, params))

    @field("fits a concept's BKT parameters to each learner's first graded answers on it (as "
           "`POST …/learning/concepts/{concept}/bkt/fit`): `too_few_answers` below the "
           "automatic refit's minimums, `degenerate_fit` when one right answer would master it")
    async def fit_bkt(self, info: Info, tenant: Slug, concept_id: Slug) -> LearningConcept | None:
        _editor(info, tenant)
        return LearningConcept.of(await _service(info).fit_bkt(tenant, concept_id))

    @field("adds a review card to a concept (as `POST …/learning/concepts/{concept}/cards`); "
           "it joins the decks of the learners who completed a lesson teaching the concept")
    async def add_card(self, info: Info, tenant: Slug, concept_id: Slug,
                       card: NewCardInput) -> Card | None:
        _editor(info, tenant)
        new = validated(model.NewCard, card, "card")
        return Card.of(await _service(info).add_card(tenant, concept_id, new))

    @field("gives a card a new front or back, learners keeping their schedules of it (as "
           "`PATCH …/learning/concepts/{concept}/cards/{card}`); given `version` (the HTTP "
           "API's `If-Match`), 409 `stale_version` when the card changed since")
    async def edit_card(self, info: Info, tenant: Slug, concept_id: Slug, id: str,
                        edit: CardEditInput, version: int | None = None) -> Card | None:
        _editor(info, tenant)
        card = sized(id, "id", RecordId)
        change = validated(model.CardEdit, edit, "edit")
        return Card.of(await _service(info).edit_card(
            tenant, concept_id, card, change, version=at_least(version, 0, "version")))

    @field("retires a card (as `DELETE …/learning/concepts/{concept}/cards/{card}`): it "
           "leaves every learner's deck, their review history staying, and the AI lesson that "
           "made it does not bring it back; true when done")
    async def retire_card(self, info: Info, tenant: Slug, concept_id: Slug,
                          id: str) -> bool | None:
        _editor(info, tenant)
        await _service(info).retire_card(tenant, concept_id, sized(id, "id", RecordId))
        return True

    @field("adds a prerequisite edge (as `POST …/learning/edges`): 409 `cycle` (naming it) "
           "when it would close a cycle, 422 for a self-edge or an unknown concept; an edge "
           "that existed takes the kind given")
    async def add_prerequisite(self, info: Info, tenant: Slug,
                               edge: PrerequisiteInput) -> PrerequisiteAdded | None:
        _editor(info, tenant)
        added, created = await _service(info).add_edge(tenant, validated(model.Edge, edge,
                                                                         "edge"))
        return PrerequisiteAdded(edge=Prerequisite.of(added), created=created)

    @field("removes the prerequisite edge from `concept` to `requires` (as "
           "`DELETE …/learning/edges/{concept}/{requires}`): `not_found` when there is none; "
           "true when done")
    async def remove_prerequisite(self, info: Info, tenant: Slug, concept: Slug,
                                  requires: Slug) -> bool | None:
        _editor(info, tenant)
        await _service(info).remove_edge(tenant, concept, requires)
        return True

    @field("enrols the signed-in learner in a course or towards a concept (as "
           "`POST …/learning/me/enrolments`); an archived course takes no new learners")
    async def enrol(self, info: Info, tenant: Slug, goal: GoalInput) -> Enrolled | None:
        me = _me(info, tenant)
        enrolment, created = await _service(info).enrol(tenant, me, _goal(goal))
        return Enrolled(enrolment=Enrolment(
            course_id=enrolment.course_id, goal_concept=enrolment.goal_concept,
            goal=enrolment.goal, enrolled_at=enrolment.enrolled_at), created=created)

    @field("takes the signed-in learner off a course or a goal concept (as "
           "`DELETE …/learning/me/enrolments`): it leaves their paths, while their progress, "
           "mastery and review cards stay; `not_enrolled` when they were not; true when done")
    async def unenrol(self, info: Info, tenant: Slug, goal: GoalInput) -> bool | None:
        me = _me(info, tenant)
        await _service(info).unenrol(tenant, me, _goal(goal))
        return True

    @field("records the signed-in learner's progress through a lesson (as "
           "`POST …/learning/me/lessons/{lesson}/progress`)")
    async def record_progress(self, info: Info, tenant: Slug, lesson_id: str,
                              progress: ProgressInput) -> LessonProgress | None:
        me = _me(info, tenant)
        update = validated(model.ProgressUpdate, progress, "progress")
        return LessonProgress.of(await _service(info).record_progress(
            tenant, me, sized(lesson_id, "lessonId", RecordId), update))

    @field("starts a placement diagnostic towards a course or a goal concept (as "
           "`POST …/learning/me/placements`)")
    async def start_placement(self, info: Info, tenant: Slug,
                              goal: GoalInput) -> Placement | None:
        me = _me(info, tenant)
        new = validated(model.NewPlacement, goal, "goal")
        return Placement.of(await _service(info).start_placement(tenant, me, new))

    @field("answers a placement's current question (as "
           "`POST …/learning/me/placements/{placement}/answers`): `wrong_question` when "
           "`concept` is not the one asked")
    async def answer_placement(self, info: Info, tenant: Slug, id: str,
                               answer: PlacementAnswerInput) -> Placement | None:
        me = _me(info, tenant)
        given = validated(model.PlacementAnswer, answer, "answer")
        return Placement.of(await _service(info).answer_placement(
            tenant, me, sized(id, "id", RecordId), given))

    @field("adds a card to the signed-in learner's deck, due now (as "
           "`POST …/learning/me/cards/{card}`); one there or taken out before keeps its "
           "schedule")
    async def study_card(self, info: Info, tenant: Slug, id: str) -> ReviewCard | None:
        me = _me(info, tenant)
        return ReviewCard.of(await _service(info).study(
            tenant, me, sized(id, "id", RecordId)))

    @field("takes a card out of the signed-in learner's deck (as "
           "`DELETE …/learning/me/cards/{card}`): `not_in_deck` when it is not there; true "
           "when done")
    async def drop_card(self, info: Info, tenant: Slug, id: str) -> bool | None:
        me = _me(info, tenant)
        await _service(info).drop_card(tenant, me, sized(id, "id", RecordId))
        return True

    @field("rates a card of the signed-in learner's deck (as `POST …/learning/me/reviews`): "
           "`not_in_deck` for a card not in it, `bad_rating` outside 1 to 4")
    async def review_card(self, info: Info, tenant: Slug,
                          review: ReviewInput) -> ReviewOutcome | None:
        me = _me(info, tenant)
        done = await _service(info).review(tenant, me, validated(model.NewReview, review,
                                                                 "review"))
        return ReviewOutcome(card_id=done.card_id, rating=done.rating, was_due=done.was_due,
                             next_due=done.next_due, interval_days=done.interval_days,
                             version=done.version)

    @field("fits the signed-in learner's own scheduling parameters to their review history "
           "(as `POST …/learning/me/reviews/optimise`)")
    async def optimise_schedule(self, info: Info, tenant: Slug) -> SchedulerFit | None:
        me = _me(info, tenant)
        fit = await _service(info).optimise(tenant, me)
        return SchedulerFit(parameters=list(fit.parameters), fitted_on=fit.fitted_on,
                            loss_before=fit.loss_before, loss_after=fit.loss_after,
                            checked_on=fit.checked_on, better=fit.better)
