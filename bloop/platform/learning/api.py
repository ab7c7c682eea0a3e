"""learning's HTTP API: the tenant's prerequisite graph (every member reads it a page at a time;
educators and admins read it whole, with `learning:read`, and edit and import it), and the
signed-in learner's own enrolments, progress, mastery, paths, placement and review cards under
`/learning/me`."""

from __future__ import annotations

from typing import Annotated, TypeVar

from fastapi import APIRouter, Depends, Header, Path, Query, Request, Response
from pydantic import AfterValidator, AwareDatetime, BeforeValidator

from bloop.platform.kit.auth import Principal, Role, a_person, require
from bloop.platform.kit.errors import Invalid
from bloop.platform.kit.pagination import After, Page
from bloop.platform.kit.personal_data import PERSONAL_ANSWER
from bloop.platform.kit.preconditions import version_named
from bloop.platform.kit.times import in_utc, iso_only, plus_restored
from bloop.platform.learning.model import (
    SLUG_PATTERN,
    BktParams,
    Card,
    CardEdit,
    CardView,
    Concept,
    ConceptDetail,
    ConceptEdit,
    Edge,
    Enrolment,
    GraphDocument,
    LearningPath,
    Mastery,
    NewCard,
    NewConcept,
    NewEnrolment,
    NewPlacement,
    NewReview,
    NextItem,
    PlacementAnswer,
    PlacementView,
    Progress,
    ProgressReport,
    ProgressUpdate,
    ReviewResult,
    SchedulerParams,
    now,
)
from bloop.platform.learning.service import PATHS_A_PAGE, LearningService

TenantId = Annotated[str, Path(pattern=SLUG_PATTERN, description="the tenant's slug")]
ConceptId = Annotated[str, Path(pattern=SLUG_PATTERN)]
RecordId = Annotated[str, Path(min_length=1, max_length=64)]
CardIfMatch = Annotated[str | None, Header(description='the card version, e.g. "3"')]
GoalId = Annotated[str | None, Query(pattern=SLUG_PATTERN)]
Limit = Annotated[int, Query(ge=1, le=200)]
C = TypeVar("C", bound=Concept)


UtcTime = Annotated[AwareDatetime, BeforeValidator(iso_only), BeforeValidator(plus_restored),
                    AfterValidator(in_utc)]


async def get_service(request: Request) -> LearningService:
    service: LearningService = request.app.state.learning.state["service"]
    return service


Svc = Annotated[LearningService, Depends(get_service)]
EDITORS: tuple[Role, ...] = ("educator", "tenant_admin")
Editor = Annotated[Principal, Depends(require(*EDITORS, scopes=["learning:write"]))]
GraphReader = Annotated[Principal, Depends(require(*EDITORS, scopes=["learning:read"]))]
Reader = Annotated[Principal, Depends(require(scopes=["learning:read"]))]
LearningScope = Annotated[Principal, Depends(require(scopes=["learning:write"]))]


async def learner(me: LearningScope) -> Principal:
    return a_person(me)


Learner = Annotated[Principal, Depends(learner)]

router = APIRouter(prefix="/v1/tenants/{tenant}/learning", tags=["learning"])

# the graph


@router.get("/concepts")
async def list_concepts(tenant: TenantId, service: Svc, _: Reader, after: After = None,
                        limit: Limit = 100) -> Page[Concept]:
    """The tenant's concepts by id, a page at a time: `next` is the cursor (`after`) of the
    following page, null on the last."""
    found = await service.concept_page(tenant, after, limit)
    return Page(items=found.items, next=found.next)


def _tagged(response: Response, concept: C) -> C:
    """The concept, its version the answer's `ETag`."""
    response.headers["ETag"] = f'"{concept.version}"'
    return concept


@router.post("/concepts", status_code=201)
async def add_concept(tenant: TenantId, body: NewConcept, service: Svc, _: Editor,
                      response: Response) -> Concept:
    return _tagged(response, await service.add_concept(tenant, body))


@router.get("/concepts/{concept}")
async def get_concept(tenant: TenantId, concept: ConceptId, service: Svc, _: Reader,
                      response: Response) -> ConceptDetail:
    """The concept with its edges; the `ETag` is its version, for an edit's `If-Match`."""
    return _tagged(response, await service.concept(tenant, concept))


@router.patch("/concepts/{concept}")
async def edit_concept(tenant: TenantId, concept: ConceptId, body: ConceptEdit, service: Svc,
                       _: Editor, response: Response,
                       if_match: Annotated[str | None, Header(
                           description='the concept version, e.g. "3"')] = None
                       ) -> ConceptDetail:
    """A new name or description for the concept (its id stays). With `If-Match` naming the
    concept's version, the edit is refused (409 stale_version) when the concept changed since
    (an edit, or a lesson's publication renaming it); without it, the last edit of a field
    wins."""
    edited = await service.edit_concept(tenant, concept, body,
                                        version=version_named(if_match, "concept"))
    return _tagged(response, edited)


@router.put("/concepts/{concept}/bkt")
async def set_bkt(tenant: TenantId, concept: ConceptId, body: BktParams, service: Svc,
                  _: Editor, response: Response) -> ConceptDetail:
    """Sets the concept's BKT parameters by hand (a later fit replaces them)."""
    return _tagged(response, await service.set_bkt(tenant, concept, body))


@router.post("/concepts/{concept}/bkt/fit")
async def fit_bkt(tenant: TenantId, concept: ConceptId, service: Svc, _: Editor,
                  response: Response) -> ConceptDetail:
    """Fits the concept's BKT parameters to each learner's first graded answers on it (422
    `too_few_answers` below the automatic refit's minimums, `degenerate_fit` when one right
    answer would master it)."""
    return _tagged(response, await service.fit_bkt(tenant, concept))


@router.get("/concepts/{concept}/cards")
async def list_cards(tenant: TenantId, concept: ConceptId, service: Svc, me: Reader,
                     after: After = None, limit: Limit = 100) -> Page[Card]:
    """The concept's cards, oldest first, a page at a time: `next` is the cursor (`after`) of
    the following page, null on the last. The tenant's admins also see the cards held until a
    lesson's publication (`held_until`): they may read every draft, which others may not."""
    found = await service.card_page(tenant, concept, after, limit,
                                    held=me.has_any({"tenant_admin"}))
    return Page(items=found.items, next=found.next)


@router.post("/concepts/{concept}/cards", status_code=201)
async def add_card(tenant: TenantId, concept: ConceptId, body: NewCard, service: Svc,
                   _: Editor) -> Card:
    """A review card of the concept, written by an educator or generated (`source: ai`)."""
    return await service.add_card(tenant, concept, body)


@router.patch("/concepts/{concept}/cards/{card}")
async def edit_card(tenant: TenantId, concept: ConceptId, card: RecordId, body: CardEdit,
                    service: Svc, _: Editor, response: Response,
                    if_match: CardIfMatch = None) -> Card:
    """New text for the card's front or back; learners keep their schedules of it. With
    `If-Match` naming the card's version, the edit is refused (409 stale_version) when someone
    changed the card since; without it, the last edit of a field wins."""
    edited = await service.edit_card(tenant, concept, card, body,
                                     version=version_named(if_match, "card"))
    response.headers["ETag"] = f'"{edited.version}"'
    return edited


@router.delete("/concepts/{concept}/cards/{card}", status_code=204)
async def retire_card(tenant: TenantId, concept: ConceptId, card: RecordId, service: Svc,
                      _: Editor) -> None:
    """Retires the card: it leaves every learner's deck (their review history stays), and the
    AI lesson that generated it does not bring it back."""
    await service.retire_card(tenant, concept, card)


@router.get("/edges")
async def list_edges(tenant: TenantId, service: Svc, _: Reader, after: After = None,
                     limit: Limit = 100) -> Page[Edge]:
    """The tenant's edges by concept then prerequisite, a page at a time: `next` is the cursor
    (`after`) of the following page, null on the last."""
    found = await service.edge_page(tenant, after, limit)
    return Page(items=found.items, next=found.next)


@router.post("/edges", status_code=201, responses={200: {"description": "the edge existed",
                                                           "model": Edge}})
async def add_edge(tenant: TenantId, body: Edge, service: Svc, response: Response,
                   _: Editor) -> Edge:
    """`concept` requires `requires`. 409 `cycle` (naming it) when that would close a cycle,
    422 for a self-edge or an unknown concept; 200 when the edge existed (it takes the kind)."""
    edge, created = await service.add_edge(tenant, body)
    if not created:
        response.status_code = 200
    return edge


@router.delete("/edges/{concept}/{requires}", status_code=204)
async def remove_edge(tenant: TenantId, concept: ConceptId, requires: ConceptId, service: Svc,
                      _: Editor) -> None:
    await service.remove_edge(tenant, concept, requires)


@router.get("/graph")
async def export_graph(tenant: TenantId, service: Svc, _: GraphReader) -> GraphDocument:
    """The tenant's concepts and edges as one JSON document (what `PUT /graph` reads)."""
    return await service.export_graph(tenant)


@router.put("/graph")
async def import_graph(tenant: TenantId, body: GraphDocument, service: Svc,
                       _: Editor) -> GraphDocument:
    """Adds the document's concepts and edges, all or nothing; answers the whole graph. A
    concept or an edge listed twice is refused (422)."""
    if repeats := body.repeats():
        raise Invalid({**e, "loc": ("body", *e["loc"])} for e in repeats)
    return await service.import_graph(tenant, body)


# the signed-in learner


@router.post("/me/enrolments", status_code=201, responses={
    200: {"description": "the learner was already enrolled", "model": Enrolment}})
async def enrol(tenant: TenantId, body: NewEnrolment, service: Svc, response: Response,
                me: Learner) -> Enrolment:
    enrolment, created = await service.enrol(tenant, me.user_id, body)
    if not created:
        response.status_code = 200
    return enrolment


@router.get("/me/enrolments", dependencies=[PERSONAL_ANSWER])
async def my_enrolments(tenant: TenantId, service: Svc, me: Learner, after: After = None,
                        limit: Limit = 100) -> Page[Enrolment]:
    """The learner's enrolments, oldest first, a page at a time: `next` is the cursor
    (`after`) of the following page, null on the last."""
    found = await service.enrolment_page(tenant, me.user_id, after, limit)
    return Page(items=found.items, next=found.next)


@router.delete("/me/enrolments", status_code=204)
async def unenrol(tenant: TenantId, service: Svc, me: Learner,
                  course_id: GoalId = None, goal_concept: GoalId = None) -> None:
    """Leaves a course (`course_id`) or a goal concept (`goal_concept`): it leaves the caller's
    paths, while their progress, mastery and review cards stay. 404 `not_enrolled`."""
    if (course_id is None) == (goal_concept is None):
        raise Invalid.of("give either course_id or goal_concept", "query")
    await service.unenrol(tenant, me.user_id,
                          NewEnrolment(course_id=course_id, goal_concept=goal_concept))


@router.post("/me/lessons/{lesson}/progress")
async def record_progress(tenant: TenantId, lesson: RecordId, body: ProgressUpdate,
                          service: Svc, me: Learner) -> Progress:
    """Started or completed, with the seconds spent since the last update."""
    return await service.record_progress(tenant, me.user_id, lesson, body)


@router.get("/me/progress", dependencies=[PERSONAL_ANSWER])
async def my_progress(tenant: TenantId, service: Svc, me: Learner) -> ProgressReport:
    """Each lesson's progress, and completion per enrolled course and its modules."""
    return await service.progress_report(tenant, me.user_id)


@router.get("/me/mastery", dependencies=[PERSONAL_ANSWER])
async def my_mastery(tenant: TenantId, service: Svc, me: Learner, after: After = None,
                     limit: Limit = 100) -> Page[Mastery]:
    """The learner's mastery by concept, a page at a time: `next` is the cursor (`after`) of
    the following page, null on the last."""
    found = await service.mastery_page(tenant, me.user_id, after, limit)
    return Page(items=found.items, next=found.next)


@router.get("/me/paths", dependencies=[PERSONAL_ANSWER])
async def my_paths(tenant: TenantId, service: Svc, me: Learner, after: After = None,
                   limit: Limit = PATHS_A_PAGE) -> Page[LearningPath]:
    """The path to each goal the learner enrolled in, in the order they enrolled, a page at a
    time: `next` is the cursor (`after`) of the following page, null on the last. Each path is
    worked out from the graph: ask for the page you show."""
    found = await service.path_page(tenant, me.user_id, after, limit)
    return Page(items=found.items, next=found.next)


@router.get("/me/path", dependencies=[PERSONAL_ANSWER])
async def my_path(tenant: TenantId, service: Svc, me: Learner,
                  course: Annotated[str | None, Query(pattern=SLUG_PATTERN)] = None,
                  concept: Annotated[str | None, Query(pattern=SLUG_PATTERN)] = None,
                  ) -> LearningPath:
    """The path to a course or a concept (exactly one), enrolled or not."""
    if (course is None) == (concept is None):
        raise Invalid.of("give either `course` or `concept`", "query")
    return await service.path(tenant, me.user_id, course_id=course, concept=concept)


@router.get("/me/next", dependencies=[PERSONAL_ANSWER])
async def my_next(tenant: TenantId, service: Svc, me: Learner) -> NextItem:
    """A due review, else the first unblocked lesson on the learner's paths not yet completed."""
    return await service.next_item(tenant, me.user_id)


@router.post("/me/placements", status_code=201)
async def start_placement(tenant: TenantId, body: NewPlacement, service: Svc,
                          me: Learner) -> PlacementView:
    """Starts a short diagnostic towards a course or a goal concept: it asks about the goal's
    prerequisites the learner has not mastered, one concept at a time (`question`, with a
    review card to show when the concept has one); done at once when there is nothing to ask."""
    return await service.start_placement(tenant, me.user_id, body)


@router.post("/me/placements/{placement}/answers")
async def answer_placement(tenant: TenantId, placement: RecordId, body: PlacementAnswer,
                           service: Svc, me: Learner) -> PlacementView:
    """Whether the learner knew the concept asked (`concept` must be the current `question`:
    409 `wrong_question` otherwise). A known concept counts its prerequisites known, an unknown
    one what requires it unknown; once done, what was found known is mastered."""
    return await service.answer_placement(tenant, me.user_id, placement, body)


@router.post("/me/cards/{card}", status_code=201)
async def study_card(tenant: TenantId, card: RecordId, service: Svc, me: Learner) -> CardView:
    """Adds a card to the learner's deck (cards of a lesson join when it is completed, and
    those added to its concepts later join the decks of the learners who completed it)."""
    return await service.study(tenant, me.user_id, card)


@router.delete("/me/cards/{card}", status_code=204)
async def drop_card(tenant: TenantId, card: RecordId, service: Svc, me: Learner) -> None:
    """Takes a card out of the learner's deck: it is no longer due, and completing its lesson
    again does not bring it back; `POST` puts it back with its schedule. 404 `not_in_deck`."""
    await service.drop_card(tenant, me.user_id, card)


@router.get("/me/reviews/due", dependencies=[PERSONAL_ANSWER])
async def due_reviews(tenant: TenantId, service: Svc, me: Learner,
                      limit: Limit = 50,
                      at: Annotated[UtcTime | None, Query(
                          description="when to look from (now when left out), with its zone "
                                      "offset, such as 2026-12-04T09:00:00+05:00 (its `+` "
                                      "sent as %2B or as it is); a time UTC has, from "
                                      "0001-01-01T00:00:00Z to 9999-12-31T23:59:59.999999Z")] = None,
                      after: After = None) -> Page[CardView]:
    """The learner's cards due, most overdue first, a page at a time: `next` is the cursor
    (`after`) of the following page, null on the last (send the same `at` with it)."""
    due = await service.due_page(tenant, me.user_id, at or now(), limit, after)
    return Page(items=due.items, next=due.next)


@router.post("/me/reviews")
async def review(tenant: TenantId, body: NewReview, service: Svc, me: Learner) -> ReviewResult:
    """Rates a card 1 (again) to 4 (easy); answers when it is due next. 404 `not_in_deck` for
    a card not in the learner's deck (never added, taken out, or retired)."""
    return await service.review(tenant, me.user_id, body)


@router.post("/me/reviews/optimise")
async def optimise(tenant: TenantId, service: Svc, me: Learner) -> SchedulerParams:
    """Fits the learner's own scheduling parameters to their review history."""
    return await service.optimise(tenant, me.user_id)
