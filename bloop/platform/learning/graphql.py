"""learning's GraphQL fields: the tenant's prerequisite graph, and the signed-in learner's paths,
next item, mastery and due reviews.

Reads only, under the HTTP API's rules: the tenant's educators and admins read the whole graph
(as `GET …/learning/graph`), with `learning:read`; a learner's own fields need `learning:write`
like their HTTP twins under `/learning/me`.
"""

from __future__ import annotations

from collections.abc import Awaitable
from datetime import datetime

import strawberry

from bloop.graphql.context import Context
from bloop.graphql.fields import Page, field, page_size, sized
from bloop.graphql.scalars import Slug
from bloop.platform.kit.auth import a_person
from bloop.platform.kit.errors import Invalid, NotFound
from bloop.platform.kit.pagination import After, Slice
from bloop.platform.learning import model
from bloop.platform.learning.service import PATHS_A_PAGE, LearningService

Info = strawberry.Info[Context, None]

EDITORS = ("educator", "tenant_admin")
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


@strawberry.type(description="a concept of the tenant's prerequisite graph")
class LearningConcept:
    id: str = strawberry.field(description="its id")
    name: str = strawberry.field(description=(
        "its name; one first met in a lesson is named after its id until someone names it"))
    description: str = strawberry.field(description="plain text; empty when none")
    version: int = strawberry.field(description=(
        "raised by each change of its name or description: what an edit's `If-Match` names "
        "(`PATCH …/learning/concepts/{concept}`)"))

    @classmethod
    def of(cls, concept: model.Concept) -> LearningConcept:
        return cls(id=concept.id, name=concept.name, description=concept.description,
                   version=concept.version)


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

    @field("the signed-in learner's mastery of each concept they were assessed on, by concept "
           "id, `first` of them after the cursor `after`")
    async def my_mastery(self, info: Info, tenant: Slug, first: int = 100,
                         after: str | None = None) -> Page[ConceptMastery] | None:
        me = _me(info, tenant)
        return Page.of(await _service(info).mastery_page(
            tenant, me, sized(after, "after", After), page_size(first)), ConceptMastery.of)

    @field("the signed-in learner's review cards due now, most overdue first, `first` of them "
           "after the cursor `after`")
    async def my_due_reviews(self, info: Info, tenant: Slug, first: int = 50,
                             after: str | None = None) -> Page[ReviewCard] | None:
        me = _me(info, tenant)
        return Page.of(await _service(info).due_page(
            tenant, me, model.now(), page_size(first), sized(after, "after", After)),
            ReviewCard.of)
