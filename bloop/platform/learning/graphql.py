"""learning's GraphQL fields: the tenant's prerequisite graph, and the signed-in learner's paths,
next item, mastery and due reviews.

Reads only, under the HTTP API's rules: any member with `learning:read` reads the graph; a
learner's own fields need `learning:write` like their HTTP twins under `/learning/me`.
"""

from __future__ import annotations

from datetime import datetime

import strawberry

from bloop.graphql.context import Context
from bloop.graphql.fields import Page, field, page_size
from bloop.graphql.scalars import Slug
from bloop.platform.kit.errors import Invalid, NotFound
from bloop.platform.learning import model
from bloop.platform.learning.service import LearningService

Info = strawberry.Info[Context, None]


def _service(info: Info) -> LearningService:
    return info.context.service("learning", LearningService)


def _me(info: Info, tenant: str) -> str:
    return info.context.authorise(tenant, scopes=["learning:write"]).user_id


@strawberry.type
class Prerequisite:
    concept: str
    requires: str
    kind: str

    @classmethod
    def of(cls, edge: model.Edge) -> Prerequisite:
        return cls(concept=edge.concept, requires=edge.requires, kind=edge.kind)


@strawberry.type
class LearningConcept:
    id: str
    name: str
    description: str

    @classmethod
    def of(cls, concept: model.Concept) -> LearningConcept:
        return cls(id=concept.id, name=concept.name, description=concept.description)


@strawberry.type
class PrerequisiteGraph:
    concepts: list[LearningConcept]
    edges: list[Prerequisite]


@strawberry.type
class PathStep:
    lesson_id: str
    title: str
    course_id: str
    estimated_minutes: int
    concepts: list[str]
    required: bool
    status: str
    blocked_by: list[str]

    @classmethod
    def of(cls, step: model.PathStep) -> PathStep:
        return cls(lesson_id=step.lesson_id, title=step.title, course_id=step.course_id,
                   estimated_minutes=step.estimated_minutes, concepts=list(step.concepts),
                   required=step.required, status=step.status, blocked_by=list(step.blocked_by))


@strawberry.type
class LearningPath:
    goal: str
    steps: list[PathStep]
    uncovered: list[str]
    concepts: int
    mastered: int

    @classmethod
    def of(cls, path: model.LearningPath) -> LearningPath:
        return cls(goal=path.goal, steps=[PathStep.of(s) for s in path.steps],
                   uncovered=list(path.uncovered), concepts=path.concepts, mastered=path.mastered)


@strawberry.type
class ReviewCard:
    card_id: str
    concept: str
    front: str
    back: str
    due: datetime
    reps: int
    version: int = strawberry.field(description="the schedule's version, to send with the "
                                                "review so that a double tap counts once")

    @classmethod
    def of(cls, card: model.CardView) -> ReviewCard:
        return cls(card_id=card.card_id, concept=card.concept, front=card.front, back=card.back,
                   due=card.due, reps=card.reps, version=card.version)


@strawberry.type
class ConceptMastery:
    concept: str
    p_known: float
    mastered: bool
    source: str
    updated_at: datetime

    @classmethod
    def of(cls, m: model.Mastery) -> ConceptMastery:
        return cls(concept=m.concept, p_known=m.p_known, mastered=m.mastered, source=m.source,
                   updated_at=m.updated_at)


@strawberry.type
class NextItem:
    kind: str
    goal: str | None
    lesson: PathStep | None
    card: ReviewCard | None


@strawberry.type
class Query:
    @field("the tenant's prerequisite graph: its concepts and edges")
    async def prerequisite_graph(self, info: Info, tenant: Slug) -> PrerequisiteGraph | None:
        info.context.authorise(tenant, scopes=["learning:read"])
        doc = await _service(info).concepts(tenant), await _service(info).edges(tenant)
        return PrerequisiteGraph(concepts=[LearningConcept.of(c) for c in doc[0]],
                                 edges=[Prerequisite.of(e) for e in doc[1]])

    @field("the signed-in learner's path to each goal they enrolled in, in the order they "
           "enrolled, `first` of them after the cursor `after`")
    async def my_paths(self, info: Info, tenant: Slug, first: int = 100,
                       after: str | None = None) -> Page[LearningPath] | None:
        me = _me(info, tenant)
        size = page_size(first)
        # Each path is a graph query: aliases asking for the same page share one answer.
        return Page.of(await info.context.once(
            f"learning.paths:{tenant}:{me}:{size}:{after}",
            lambda: _service(info).path_page(tenant, me, after, size)), LearningPath.of)

    @field("the signed-in learner's path to a course or a concept (exactly one); null when "
           "there is none")
    async def my_path(self, info: Info, tenant: Slug, course: Slug | None = None,
                      concept: Slug | None = None) -> LearningPath | None:
        me = _me(info, tenant)
        if (course is None) == (concept is None):
            raise Invalid.of("give either `course` or `concept`")
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

    @field("the signed-in learner's mastery of each concept they were assessed on, `first` of "
           "them after the cursor `after`")
    async def my_mastery(self, info: Info, tenant: Slug, first: int = 100,
                         after: str | None = None) -> Page[ConceptMastery] | None:
        me = _me(info, tenant)
        return Page.of(await _service(info).mastery_page(tenant, me, after, page_size(first)),
                       ConceptMastery.of)

    @field("the signed-in learner's review cards due now, most overdue first, `first` of them "
           "after the cursor `after`")
    async def my_due_reviews(self, info: Info, tenant: Slug, first: int = 50,
                             after: str | None = None) -> Page[ReviewCard] | None:
        me = _me(info, tenant)
        return Page.of(await _service(info).due_page(tenant, me, model.now(), page_size(first),
                                                     after), ReviewCard.of)
