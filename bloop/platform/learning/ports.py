"""What learning needs from a store. Every read and write names its tenant; there is no way to
reach another tenant's graph or learners through this port."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Protocol

from bloop.platform.kit.events.envelope import Envelope
from bloop.platform.kit.events.outbox import OutboxStore
from bloop.platform.kit.pagination import Slice
from bloop.platform.learning.model import (
    BktParams,
    Card,
    CardEdit,
    CardState,
    Concept,
    ConceptDetail,
    ConceptEdit,
    CourseNode,
    Edge,
    Enrolment,
    LearnerSettings,
    LessonNode,
    Mastery,
    Placement,
    Progress,
    ReviewLog,
    ZoneSaved,
)
from bloop.platform.learning.paths import PathPlan, Subgraph


class Duplicate(Exception):
    """A record with this id already exists in the tenant."""


class Missing(Exception):
    """The record a write depends on does not exist in the tenant."""


class StaleVersion(Exception):
    """The record changed since the version the write was made against."""


def edited_card(card: Card, edit: CardEdit, at: datetime, expected: int | None) -> Card:
    """The card after the edit; StaleVersion when `expected` names another version."""
    if expected is not None and card.version != expected:
        raise StaleVersion(card.id)
    return card.edited(edit, at)


def described_concept(concept: Concept, edit: ConceptEdit, expected: int | None) -> Concept:
    """The concept after the edit; StaleVersion when `expected` names another version."""
    if expected is not None and concept.version != expected:
        raise StaleVersion(concept.id)
    return concept.described(edit)


class UnknownConcepts(Exception):
    def __init__(self, ids: Sequence[str]) -> None:
        super().__init__(", ".join(ids))
        self.ids = sorted(set(ids))


class CycleFound(Exception):
    """The edge would close a cycle: `cycle` names it, `[a, b, …, a]` (a requires b …)."""

    def __init__(self, cycle: Sequence[str]) -> None:
        super().__init__(" → ".join(cycle))
        self.cycle = list(cycle)


class LearningRepository(Protocol):
    @property
    def outbox(self) -> OutboxStore:
        """Where the events written beside each change wait for the relay."""

    async def setup(self) -> None:
        """Creates tables, constraints and indexes; safe to call on every start."""

    # the graph

    async def add_concept(self, concept: Concept) -> None:
        """`Duplicate` when the tenant has a concept with this id."""

    async def ensure_concepts(self, tenant: str, ids: Sequence[str]) -> None:
        """Adds a placeholder for each of `ids` the tenant lacks; keeps the others as they are."""

    async def get_concept(self, tenant: str, concept_id: str) -> ConceptDetail | None: ...

    async def list_concepts(self, tenant: str) -> list[Concept]:
        """The tenant's concepts, ordered by id."""

    async def page_concepts(self, tenant: str, *, after: str | None = None,
                            limit: int = 100) -> Slice[Concept]:
        """`list_concepts` `limit` at a time from the cursor `after` on, in one read.
        `BadCursor` for a cursor of no such list."""

    async def get_concepts(self, tenant: str, ids: Sequence[str]) -> list[Concept]:
        """Those of `ids` the tenant has, ordered by id."""

    async def describe_concept(self, tenant: str, concept_id: str, edit: ConceptEdit, *,
                               expected: int | None = None) -> Concept:
        """Stores the fields the edit gives and raises the version, in one write that leaves the
        others as they are then; the concept written. `Missing` when there is no such concept;
        with `expected`, `StaleVersion` (and nothing written) when its version is another."""

    async def set_bkt(self, tenant: str, concept_id: str, params: BktParams) -> None:
        """`Missing` when the tenant has no such concept."""

    async def add_edge(self, tenant: str, edge: Edge) -> bool:
        """Adds the edge (or gives an existing one `edge.kind`); True when it is new.
        `UnknownConcepts` when an end is not the tenant's, `CycleFound` when it would close a
        cycle. The check and the write are one atomic step, whatever runs beside it."""

    async def remove_edge(self, tenant: str, concept: str, requires: str) -> None:
        """`Missing` when there is no such edge."""

    async def list_edges(self, tenant: str) -> list[Edge]:
        """Every edge of the tenant, ordered by concept then prerequisite."""

    async def page_edges(self, tenant: str, *, after: str | None = None,
                         limit: int = 100) -> Slice[Edge]:
        """`list_edges` `limit` at a time from the cursor `after` on, in one read. `BadCursor`
        for a cursor of no such list."""

    async def import_graph(self, tenant: str, concepts: Sequence[Concept],
                           edges: Sequence[Edge]) -> None:
        """Adds the concepts the tenant lacks and the edges, all or nothing: `UnknownConcepts`
        when an edge names a concept in neither, `CycleFound` when the result has a cycle."""

    # projections of content (written by the consumers; older versions are ignored)

    async def upsert_lesson(self, lesson: LessonNode,
                            concept_names: Mapping[str, str] | None = None) -> bool:
        """Stores the lesson unless the store holds a later version (or has deleted it at this
        version or a later one); its concepts get placeholders when missing, and the names in
        `concept_names` (in the same write; a concept renamed so moves one version on). True
        when stored."""

    async def delete_lesson(self, tenant: str, lesson_id: str, version: int) -> bool:
        """Forgets the lesson unless the store holds a later version; True when deleted."""

    async def upsert_course(self, course: CourseNode) -> bool:
        """Stores the course unless the store holds a later version; True when stored. Whether
        it is archived stays as stored."""

    async def archive_course(self, tenant: str, course_id: str, archived: bool,
                             revision: int) -> bool:
        """Marks the stored course archived or not, unless a change of a later `revision` was
        applied; True when applied (False too when there is no such course)."""

    async def get_course(self, tenant: str, course_id: str) -> CourseNode | None: ...

    async def get_lesson(self, tenant: str, lesson_id: str) -> LessonNode | None:
        """The lesson, unless it was deleted."""

    async def lessons_of_course(self, tenant: str, course_id: str) -> list[LessonNode]:
        """The course's known lessons, in the course's order."""

    async def courses_with_lessons(self, tenant: str, course_ids: Sequence[str]
                                   ) -> dict[str, tuple[CourseNode, list[LessonNode]]]:
        """In one read, each of `course_ids` the tenant has, by id, with its known lessons in
        the course's order (those of `lessons_of_course`)."""

    # a learner

    async def enrol(self, tenant: str, enrolment: Enrolment, events: Sequence[Envelope]) -> bool:
        """Stores the enrolment and its events; False (and nothing written) when the learner
        already has this goal."""

    async def enrolments(self, tenant: str, learner: str) -> list[Enrolment]:
        """Oldest first (by the time stored, then goal)."""

    async def page_enrolments(self, tenant: str, learner: str, *, after: str | None = None,
                              limit: int = 100) -> Slice[Enrolment]:
        """`enrolments` `limit` at a time from the cursor `after` on, in one read. `BadCursor`
        for a cursor of no such list."""

    async def unenrol(self, tenant: str, learner: str, goal: str,
                      events: Sequence[Envelope]) -> bool:
        """Removes the enrolment and the path kept for its goal, storing `events`; False (and
        nothing written) when the learner has no such goal. Progress and mastery stay."""

    async def save_progress(self, tenant: str, learner: str, progress: Progress,
                            events: Sequence[Envelope]) -> None:
        """Stores the progress if the stored one is still at the version it was read at
        (`version` one less; 0 = none stored), else `StaleVersion` and nothing is written."""

    async def get_progress(self, tenant: str, learner: str,
                           lessons: Sequence[str] | None = None) -> list[Progress]:
        """The learner's progress in `lessons` (every lesson they started when None), by
        lesson id."""

    async def get_mastery(self, tenant: str, learner: str,
                          concepts: Sequence[str] | None = None) -> list[Mastery]:
        """The learner's mastery of `concepts` (all they have one of when None), by concept."""

    async def page_mastery(self, tenant: str, learner: str, *, after: str | None = None,
                           limit: int = 100) -> Slice[Mastery]:
        """All the learner's mastery, by concept, `limit` at a time from the cursor `after` on,
        in one read. `BadCursor` for a cursor of no such list."""

    async def save_mastery(self, tenant: str, learner: str, changes: Sequence[Mastery],
                           events: Sequence[Envelope]) -> None:
        """Stores each change if the stored one is still at the version it was read at
        (`version` one less; 0 = none stored), else `StaleVersion` and nothing is written."""

    async def mastery_sequences(self, tenant: str, concept: str) -> list[list[int]]:
        """Every learner's answers on the concept, each in time order (for fitting BKT)."""

    async def path_subgraph(self, tenant: str, learner: str, concepts: Sequence[str],
                            course: str | None = None) -> Subgraph:
        """In one round trip (placement walks it): the prerequisite closure of `concepts` and of
        the concepts the lessons of `course` teach, each with its prerequisites, the lessons
        teaching it and the learner's mastery and progress. Goals the tenant lacks are left out."""

    async def learning_path(self, tenant: str, learner: str, concepts: Sequence[str],
                            course: str | None = None) -> PathPlan:
        """In one query: the lessons the learner has to take towards `concepts` and the
        concepts the lessons of `course` teach. The prerequisite closure of those goals minus
        what the learner mastered; for each concept left, the shortest lesson teaching it that
        the learner has not completed (then by place in its course, then id), a completed one
        only when the learner completed all, one of an archived course other than `course` only
        when no other lesson teaches it (each with the learner's `status`); the lessons
        ordered by the highest rank among the concepts each teaches, required before only
        recommended, shorter first, then by place and id. Goals the tenant lacks are left out.
        With `course`, also the course's live lessons that teach no concept and the learner has
        not completed, by place in the course then id (`PathPlan.loose`)."""

    async def learners_reaching(self, tenant: str, concepts: Sequence[str]) -> list[str]:
        """The learners enrolled in a goal whose prerequisite closure holds one of `concepts`
        (a goal concept, or a course teaching one), by id."""

    async def learners_enrolled(self, tenant: str, goal: str, *, after: str | None = None,
                                limit: int = 500) -> list[str]:
        """The learners enrolled in `goal` (`Enrolment.goal`), by id, `limit` at a time from
        the one after `after` on."""

    async def goals_reaching(self, tenant: str, learner: str, concepts: Sequence[str]
                             ) -> list[str]:
        """The goals (`Enrolment.goal`) of the learner's enrolments whose prerequisite closure
        holds one of `concepts`, as `learners_reaching` finds them, sorted."""

    async def path_snapshot(self, tenant: str, learner: str, goal: str) -> list[str] | None:
        """The lesson ids of the learner's path to `goal` when it was last announced."""

    async def path_snapshots(self, tenant: str, learner: str,
                             goals: Sequence[str] | None = None) -> dict[str, list[str]]:
        """`path_snapshot` of each of the learner's goals (those of `goals` when given), by
        goal, in one read; a goal whose path was never announced is left out."""

    async def save_path_snapshot(self, tenant: str, learner: str, goal: str,
                                 lesson_ids: Sequence[str], events: Sequence[Envelope], *,
                                 previous: Sequence[str] | None = None) -> bool:
        """Stores the lesson ids of the path to `goal` just announced, with `events`, if the
        learner is still enrolled in `goal` and the stored ids are still `previous` (None:
        none stored); else False, and nothing written."""

    async def save_placement(self, tenant: str, placement: Placement) -> None:
        """Stores the placement: one without answers if none is stored under its id, one with
        answers over the one stored with an answer fewer; else `StaleVersion` (two answers to
        one question at once: the second is refused)."""

    async def get_placement(self, tenant: str, learner: str,
                            placement_id: str) -> Placement | None: ...

    async def placements(self, tenant: str, learner: str) -> list[Placement]:
        """Every placement of the learner, by id (their export)."""

    # review cards
    #
    # A held card (`Card.held_until`) waits for its lesson's publication: no read that feeds a
    # learner finds it (`get_card` and `page_cards` only when asked for held ones, for staff),
    # and no write puts it in a deck, until `release_cards` makes it live.

    async def add_card(self, card: Card) -> bool:
        """Stores the card; True when stored. A live `card` with the id of a held one (the same
        card made from the version published since) releases that one instead, in the same
        write, and answers False. `Missing` when the tenant has no concept `card.concept`,
        `Duplicate` when it has any other card with this id (live, retired, or held while
        `card` is held too)."""

    async def get_card(self, tenant: str, card_id: str, *, held: bool = False) -> Card | None:
        """The card, unless it was retired, or is held and `held` is False."""

    async def get_cards(self, tenant: str, card_ids: Sequence[str]) -> list[Card]:
        """Those of the cards neither retired nor held, in one read, in no particular order."""

    async def edit_card(self, tenant: str, card_id: str, edit: CardEdit, at: datetime, *,
                        expected: int | None = None) -> Card | None:
        """Applies the edit to the card as stored (held or not), in one atomic step (an edit
        racing it keeps its own fields); None when there is no such card (or it was retired).
        With `expected`, StaleVersion when the card's version is another."""

    async def retire_card(self, tenant: str, card_id: str) -> bool:
        """Retires the card: no read finds it, its id is never used again, and it leaves
        every learner's deck (their review logs stay). False when there was no such card."""

    async def retire_lesson_cards(self, tenant: str, lesson_id: str, limit: int) -> int:
        """Retires, as `retire_card` does, up to `limit` of the cards made from the lesson
        (`Card.lesson_id`, or held until a version of it) not retired yet, live or held, in one
        write; how many it retired (fewer than `limit` when none are left)."""

    async def release_cards(self, tenant: str, lesson_id: str, version: int) -> list[str]:
        """Makes live the cards held until the publication of exactly `version` of the lesson
        (the text they were made from), in one write; the ids of those not retired, in no
        particular order."""

    async def cards_of(self, tenant: str, concepts: Sequence[str]) -> list[Card]:
        """The live cards of `concepts` (neither retired nor held), oldest first (by the time
        stored, then id)."""

    async def page_cards(self, tenant: str, concept: str, *, held: bool = False,
                         after: str | None = None, limit: int = 100) -> Slice[Card]:
        """The cards of `concept` as `cards_of` orders them (with the held ones too when
        `held`), `limit` at a time from the cursor `after` on, in one read. `BadCursor` for a
        cursor of no such list."""

    async def card_states(self, tenant: str, learner: str,
                          card_ids: Sequence[str] | None = None) -> list[CardState]:
        """The learner's schedule of `card_ids` (all of their deck when None)."""

    async def taken_out_cards(self, tenant: str, learner: str) -> list[CardState]:
        """The schedules of the cards the learner took out of their deck, kept to bring back."""

    async def add_card_states(self, tenant: str, learner: str, states: Sequence[CardState]) -> None:
        """Adds cards to the learner's deck; cards already in it, or taken out of it by the
        learner, keep their schedule and stay where they are. A card retired, held (or unknown)
        is left out in the same write, so one retired meanwhile leaves no schedule behind."""

    async def learners_who_studied(self, tenant: str,
                                   concepts: Sequence[str]) -> dict[str, list[str]]:
        """In one read, for each of `concepts`, the learners who completed a lesson teaching
        it now, by id; a concept no learner studied is left out."""

    async def add_to_decks(self, tenant: str, learners: Sequence[str],
                           states: Sequence[CardState]) -> None:
        """Adds the cards to the deck of each of `learners` in one write, as `add_card_states`
        does (cards already in a deck or taken out of it stay as they are; a retired, held or
        unknown card is left out); a learner who was erased gets nothing."""

    async def keep_in_deck(self, tenant: str, learner: str, card_id: str, kept: bool) -> bool:
        """Takes the card out of the learner's deck (`kept` False: no read of their deck finds
        it, and adding it does not bring it back) or puts it back with its schedule. False when
        nothing moved: the learner never had it, or it already was out (or in)."""

    async def due(self, tenant: str, learner: str, at: datetime, limit: int,
                  after: tuple[datetime, str] | None = None) -> list[CardState]:
        """The learner's cards due at `at`, most overdue first (by due time, then card id);
        with `after`, those past that (due time, card id)."""

    async def save_review(self, tenant: str, learner: str, state: CardState, log: ReviewLog,
                          events: Sequence[Envelope], zone: str | None) -> None:
        """Stores the card's new schedule, its log and events if the stored schedule is still
        at `state.version - 1` and the learner's stored time zone is still `zone` (the one
        the schedule was computed in), else `StaleVersion`; atomically with `save_time_zone`
        (a move of the cards to a zone stored since reads the schedule after this write)."""

    async def reschedule_cards(self, tenant: str, learner: str, states: Sequence[CardState],
                               zone: str, zone_at: datetime) -> int:
        """Stores `states` (a new due, the same version) over the learner's schedules of their
        cards, in their deck or taken out of it, in one write, if the learner's stored time zone
        is still `zone` as of `zone_at` (the one the dues were computed in; none is stored
        otherwise); a schedule no longer at `state.version` (reviewed since), or not there, is
        left as it is. How many it stored."""

    async def review_logs(self, tenant: str, learner: str) -> list[ReviewLog]:
        """Oldest first."""

    async def save_scheduler_params(self, tenant: str, learner: str,
                                    parameters: Sequence[float]) -> None: ...

    async def save_time_zone(self, tenant: str, learner: str, zone: str,
                             at: datetime) -> ZoneSaved:
        """Stores the learner's IANA time zone as identity had it at `at`, unless one as of
        `at` or later is stored or the learner was erased."""

    async def learner_settings(self, tenant: str, learner: str) -> LearnerSettings:
        """The parameters `save_scheduler_params` and the time zone `save_time_zone` stored,
        in one read; None for each not stored."""

    async def erase_learner(self, tenant: str, learner: str) -> None:
        """Forgets everything about the learner (their time zone too), and remembers the
        learner as erased (by id alone); nothing happens when there is nothing."""

    async def is_erased(self, tenant: str, learner: str) -> bool:
        """True once `erase_learner` ran for the learner."""
