"""Learning's use cases. They take a repository (ports.py) and never a driver."""

from __future__ import annotations

import asyncio
import bisect
import hashlib
import logging
from collections import defaultdict
from collections.abc import Callable, Collection, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import ValidationError

from bloop.platform.kit import backlog
from bloop.platform.kit.backlog import Backlog
from bloop.platform.kit.errors import Conflict, NotFound, Problem
from bloop.platform.kit.events.envelope import Envelope
from bloop.platform.kit.events.types import type_of
from bloop.platform.kit.pagination import BadCursor, Slice, key_of
from bloop.platform.kit.read_back import STORED
from bloop.platform.kit.times import json_time, utc, utc_iso
from bloop.platform.kit.turns import Turns, back_off
from bloop.platform.learning import bkt, placement
from bloop.platform.learning import review as fsrs_review
from bloop.platform.learning.events import (
    ConceptMastered,
    ConceptUnmastered,
    Enrolled,
    LessonCompleted,
    PathChanged,
    ReviewDone,
    Unenrolled,
)
from bloop.platform.learning.model import (
    MASTERED,
    BktParams,
    Card,
    CardEdit,
    CardState,
    CardView,
    Completion,
    Concept,
    ConceptDetail,
    ConceptEdit,
    CourseCompletion,
    CourseNode,
    Edge,
    Enrolment,
    GraphDocument,
    HeldUntil,
    LearningPath,
    LessonNode,
    LessonVersion,
    Mastery,
    NewCard,
    NewConcept,
    NewEnrolment,
    NewPlacement,
    NewReview,
    NextItem,
    PathStep,
    Placement,
    PlacementAnswer,
    PlacementView,
    Progress,
    ProgressReport,
    ProgressUpdate,
    ReviewResult,
    SchedulerParams,
    now,
)
from bloop.platform.learning.paths import concept_order, to_path
from bloop.platform.learning.ports import (
    CycleFound,
    Duplicate,
    LearningRepository,
    Missing,
    StaleVersion,
    UnknownConcepts,
)

log = logging.getLogger("bloop.learning")

MIN_FIT_OBSERVATIONS = 100
"""Answers on a concept, across learners (each counted up to `FIT_ANSWERS_PER_LEARNER`),
before its BKT parameters are fitted to them."""
MIN_FIT_LEARNERS = 10
"""Learners with answers on a concept before its BKT parameters are fitted to them."""
FIT_ANSWERS_PER_LEARNER = 20
"""A learner's first answers on a concept that a fit uses: one retaking a quiz again and
again weighs as one learner."""
RETRY_GAP = timedelta(hours=12)
"""An attempt at a quiz counts as evidence of mastery only when the learner's previous attempt
at it was graded at least this long before: answers given right after the feedback on the last
one show the feedback, not what the learner knows."""
RETRIES = 5
REVIEW_ATTEMPTS = 10
"""Reviews of one card sent at once take turns in one process; between processes, each
read-and-write that loses to another is tried again, after a random pause, this many times."""
NEXT_PAGE = 20  # enrolments read at a time while looking for the next lesson
PATHS_A_PAGE = 20  # a page of paths when none is asked for: each is a graph query
LEARNERS_A_PAGE = 500  # a course's learners read at a time when content reshapes its paths
DEAL_ROWS = 5000
"""About as many schedules as one write of new cards to learners' decks makes at most."""
RETIRE_CARDS = 50
"""The cards of a deleted lesson retired in one write (each leaves every deck in it)."""
RESCHEDULE_ROWS = 500
"""The cards of a learner who moved to another time zone moved in one write."""
PROGRESS_ATTEMPTS = 10
"""A lesson's progress updates sent at once (heartbeats, a completion, a double click) take
turns in one process; between processes, each read-and-write that loses to another is tried
again, so up to this many processes at once all land."""


def _unknown(exc: UnknownConcepts) -> Problem:
    return Problem(f"unknown concepts: {', '.join(exc.ids)}; add them first", status=422,
                   code="unknown_concepts", extra={"concepts": exc.ids})


def _cycle(exc: CycleFound) -> Conflict:
    return Conflict(f"that edge would close the cycle {' → '.join(exc.cycle)}",
                    code="cycle", extra={"cycle": exc.cycle})


def goal_key(course_id: str | None, concept: str | None) -> str:
    return f"course:{course_id}" if course_id else f"concept:{concept}"


OPTIMISE_REVIEWS = 1000


class LearningService:
    def __init__(self, repo: LearningRepository,
                 on_write: Callable[[], None] = lambda: None) -> None:
        """`on_write` runs after each write that stored events (the outbox relay's `wake`)."""
        self.repo = repo
        self._on_write = on_write
        self._optimising: set[tuple[str, str]] = set()
        # The answers a dropped BKT fit of a concept was made of, in this process: the next
        # try waits for them to double, as after a kept fit.
        self._fits_dropped: dict[tuple[str, str], int] = {}
        self._progress_turns = Turns()
        self._review_turns = Turns()
        # After an edit's answer: the paths that changed for the learners whose goals reach
        # the concepts (0.1 s a learner: many of them would hold the edit for long); new cards
        # for the decks of the learners who studied their concepts.
        self._announcing = Backlog(
            "learning-paths", self._announce_reaching, log=log,
            failed="announcing the paths a graph edit changed failed; each learner's next read "
                   "announces theirs")
        self._dealing = Backlog(
            "learning-cards", self._deal_cards, log=log,
            failed="adding new cards to the learners' decks failed; each learner's next "
                   "completion of the lesson adds them")
        # After a learner's answer: the paths their completion, attempt or placement changed
        # (a path takes a graph query: a learner with a hundred goals reaching the concept
        # waited 15-20 s for a completion's answer). Items are `learner<TAB>goal`.
        self._refreshing = Backlog(
            "learning-learner-paths", self._refresh_goals, log=log,
            failed="announcing the paths a learner's progress changed failed; their next read "
                   "of their paths announces them")
        # After a content event is handled: the paths of the learners enrolled in the courses it
        # reshaped, or with a goal reaching the concepts it moved. Items are goal keys.
        self._reshaping = Backlog(
            "learning-content-paths", self._announce_reshaped, log=log,
            failed="announcing the paths a content change reshaped failed; each learner's next "
                   "read announces theirs")

    # the graph

    async def add_concept(self, tenant: str, new: NewConcept) -> Concept:
        concept = Concept.create(tenant, new)
        try:
            await self.repo.add_concept(concept)
        except Duplicate:
            raise Conflict(f"the concept {concept.id!r} already exists",
                           code="concept_exists") from None
        return concept

    async def concepts(self, tenant: str) -> list[Concept]:
        return await self.repo.list_concepts(tenant)

    async def concept_page(self, tenant: str, after: str | None = None,
                           limit: int = 100) -> Slice[Concept]:
        """The tenant's concepts by id, a page at a time."""
        return await self.repo.page_concepts(tenant, after=after, limit=limit)

    async def concept(self, tenant: str, concept_id: str) -> ConceptDetail:
        found = await self.repo.get_concept(tenant, concept_id)
        if found is None:
            raise NotFound(f"no concept {concept_id!r} in tenant {tenant!r}")
        return found

    async def edit_concept(self, tenant: str, concept_id: str, edit: ConceptEdit, *,
                           version: int | None = None) -> ConceptDetail:
        """A new name or description (a concept first met in a lesson is named after its id
        until an educator names it here). With `version`, only while the concept is at it
        (409 stale_version); without, the edit applies over any other, keeping its fields."""
        try:
            await self.repo.describe_concept(tenant, concept_id, edit, expected=version)
        except Missing:
            raise NotFound(f"no concept {concept_id!r} in tenant {tenant!r}") from None
        except StaleVersion:
            current = await self.repo.get_concepts(tenant, [concept_id])
            raise Conflict(f"the concept {concept_id!r} changed since that version; read it "
                           "again and retry", code="stale_version",
                           extra={"current_version": current[0].version if current else None}
                           ) from None
        return await self.concept(tenant, concept_id)

    async def add_edge(self, tenant: str, edge: Edge) -> tuple[Edge, bool]:
        """The edge, and True when it is new (an existing edge takes the new kind)."""
        try:
            created = await self.repo.add_edge(tenant, edge)
        except UnknownConcepts as exc:
            raise _unknown(exc) from None
        except CycleFound as exc:
            raise _cycle(exc) from None
        await self._graph_changed(tenant, [edge.concept])
        return edge, created

    async def remove_edge(self, tenant: str, concept: str, requires: str) -> None:
        try:
            await self.repo.remove_edge(tenant, concept, requires)
        except Missing:
            raise NotFound(f"no edge {concept} → {requires} in tenant {tenant!r}") from None
        await self._graph_changed(tenant, [concept])

    async def _graph_changed(self, tenant: str, concepts: Sequence[str]) -> None:
        """Announces, after the edit's answer, the paths that changed for the learners whose
        goals reach `concepts`. One that stops part-way (a failure, a shutdown) leaves the rest
        to each learner's next read, which announces a change too."""
        self._announcing.add(tenant, concepts)

    async def _announce_reaching(self, tenant: str, concepts: set[str]) -> None:
        for learner in await self.repo.learners_reaching(tenant, sorted(concepts)):
            await self.refresh_paths(tenant, learner)

    def _paths_changed(self, tenant: str, learner: str, goals: Collection[str]) -> None:
        """Announces, after the answer, the learner's paths to `goals` that changed."""
        self._refreshing.add(tenant, (f"{learner}\t{goal}" for goal in goals))

    async def _refresh_goals(self, tenant: str, items: set[str]) -> None:
        goals: dict[str, set[str]] = {}
        for item in sorted(items):
            learner, _, goal = item.partition("\t")
            goals.setdefault(learner, set()).add(goal)
        for learner, theirs in goals.items():
            await self.refresh_paths(tenant, learner, theirs)

    def _reshaped(self, tenant: str, *, courses: Collection[str] = (),
                  concepts: Collection[str] = ()) -> None:
        """Announces, after the content event is handled, the paths that changed for the
        learners enrolled in `courses` and those whose goals reach `concepts`."""
        self._reshaping.add(tenant, [*(goal_key(c, None) for c in courses),
                                     *(goal_key(None, c) for c in concepts)])

    async def _announce_reshaped(self, tenant: str, items: set[str]) -> None:
        concepts = sorted(k.removeprefix("concept:") for k in items if k.startswith("concept:"))
        done: set[tuple[str, str]] = set()
        for learner in await self.repo.learners_reaching(tenant, concepts) if concepts else []:
            goals = await self.repo.goals_reaching(tenant, learner, concepts)
            await self.refresh_paths(tenant, learner, goals)
            done.update((learner, g) for g in goals)
        for course in sorted(k for k in items if k.startswith("course:")):
            after: str | None = None
            while True:
                page = await self.repo.learners_enrolled(tenant, course, after=after,
                                                         limit=LEARNERS_A_PAGE)
                for learner in page:
                    if (learner, course) not in done:
                        await self.refresh_paths(tenant, learner, {course})
                if len(page) < LEARNERS_A_PAGE:
                    break
                after = page[-1]

    async def settled(self) -> None:
        """Waits until the paths graph edits, content changes and learners' progress changed
        are announced and new cards are dealt."""
        await backlog.settled(self._announcing, self._dealing, self._refreshing,
                              self._reshaping)

    async def close(self, wait_s: float = 5.0) -> None:
        """Gives the announcing and dealing under way `wait_s` to end, then stops them."""
        await backlog.close(self._announcing, self._dealing, self._refreshing, self._reshaping,
                            wait_s=wait_s)

    async def edges(self, tenant: str) -> list[Edge]:
        return await self.repo.list_edges(tenant)

    async def edge_page(self, tenant: str, after: str | None = None,
                        limit: int = 100) -> Slice[Edge]:
        """The tenant's edges by concept then prerequisite, a page at a time."""
        return await self.repo.page_edges(tenant, after=after, limit=limit)

    async def export_graph(self, tenant: str) -> GraphDocument:
        concepts = await self.repo.list_concepts(tenant)
        return GraphDocument(
            concepts=[NewConcept.model_validate(
                {"id": c.id, "name": c.name, "description": c.description}, context=STORED)
                for c in concepts],
            edges=await self.repo.list_edges(tenant))

    async def import_graph(self, tenant: str, doc: GraphDocument) -> GraphDocument:
        try:
            await self.repo.import_graph(tenant, [Concept.create(tenant, c) for c in doc.concepts],
                                         doc.edges)
        except UnknownConcepts as exc:
            raise _unknown(exc) from None
        except CycleFound as exc:
            raise Conflict(f"the graph would have the cycle {' → '.join(exc.cycle)}; nothing "
                           "was imported", code="cycle", extra={"cycle": exc.cycle}) from None
        await self._graph_changed(tenant, sorted({e.concept for e in doc.edges}))
        return await self.export_graph(tenant)

    async def set_bkt(self, tenant: str, concept_id: str, params: BktParams) -> ConceptDetail:
        try:
            await self.repo.set_bkt(tenant, concept_id, params.model_copy(update={"fitted_on": 0}))
        except Missing:
            raise NotFound(f"no concept {concept_id!r} in tenant {tenant!r}") from None
        return await self.concept(tenant, concept_id)

    async def fit_bkt(self, tenant: str, concept_id: str) -> ConceptDetail:
        """Fits the concept's BKT parameters to every learner's first answers on it, with the
        minimums of the automatic refit: an educator who knows better sets them by hand."""
        await self.concept(tenant, concept_id)
        sequences = await self._fit_data(tenant, concept_id)
        count = sum(len(s) for s in sequences)
        if count < MIN_FIT_OBSERVATIONS or len(sequences) < MIN_FIT_LEARNERS:
            raise Problem(
                f"the concept has {count} answers from {len(sequences)} learners; a fit needs "
                f"{MIN_FIT_OBSERVATIONS} from {MIN_FIT_LEARNERS}", status=422,
                code="too_few_answers", extra={
                    "answers": count, "needed": MIN_FIT_OBSERVATIONS,
                    "learners": len(sequences), "learners_needed": MIN_FIT_LEARNERS})
        fitted = await asyncio.to_thread(bkt.fit, sequences)
        if not bkt.sound(fitted.params):
            raise Problem("the fit would let one right answer master the concept, or make "
                          "right answers no likelier from a learner who knows it; its "
                          "parameters are kept", status=422, code="degenerate_fit",
                          extra={"fitted": fitted.params.model_dump()})
        await self.repo.set_bkt(tenant, concept_id, fitted.params)
        return await self.concept(tenant, concept_id)

    async def _fit_data(self, tenant: str, concept_id: str) -> list[list[int]]:
        """Each learner's first `FIT_ANSWERS_PER_LEARNER` answers on the concept."""
        return [s[:FIT_ANSWERS_PER_LEARNER]
                for s in await self.repo.mastery_sequences(tenant, concept_id)]

    # projections of content

    async def project_lesson(self, lesson: LessonNode,
                             concept_names: Mapping[str, str] | None = None) -> bool:
        """Stores the lesson; its concepts take the names content gave them at its publication
        (a name set here since is replaced). The cards generated from this version of it, held
        until now, become live; they and the cards of concepts it did not teach before join the
        decks of the learners who completed a lesson teaching their concept (after this
        answers); so are the paths it reshaped, its course's and those reaching what it teaches
        (a change of its place, length or concepts)."""
        before = await self.repo.get_lesson(lesson.tenant, lesson.id)
        if not await self.repo.upsert_lesson(lesson, concept_names or {}):
            return False
        if before is None or _placed(before) != _placed(lesson):
            self._lesson_moved(lesson, before)
        released = await self.repo.release_cards(lesson.tenant, lesson.id, lesson.version)
        taught = set(before.teaches) if before is not None else set()
        new = [c for c in lesson.teaches if c not in taught]
        if new:
            released += [c.id for c in await self.repo.cards_of(lesson.tenant, new)]
        if released:
            self._deal(lesson.tenant, released)
        return True

    async def forget_lesson(self, tenant: str, lesson_id: str, version: int) -> bool:
        """Deletes the lesson and retires the cards made from it (held ones too), which drill
        text that no longer exists (a run again, after a stop part-way, retires the rest);
        the paths it leaves are announced after this answers."""
        before = await self.repo.get_lesson(tenant, lesson_id)
        if not await self.repo.delete_lesson(tenant, lesson_id, version):
            return False
        if before is not None:
            self._lesson_moved(before, None)
        await self._retire_cards_of(tenant, lesson_id)
        return True

    async def _retire_cards_of(self, tenant: str, lesson_id: str) -> None:
        while await self.repo.retire_lesson_cards(tenant, lesson_id, RETIRE_CARDS) == RETIRE_CARDS:
            pass

    def _lesson_moved(self, lesson: LessonNode, other: LessonNode | None) -> None:
        """Announces the paths of the learners of the courses `lesson` and `other` (the same
        lesson before or after) sit in, and of those reaching what either teaches."""
        both = [lesson, *([other] if other is not None else [])]
        self._reshaped(lesson.tenant, courses={x.course_id for x in both if x.course_id},
                       concepts={c for x in both for c in x.teaches})

    async def project_course(self, course: CourseNode) -> bool:
        return await self.repo.upsert_course(course)

    async def project_archiving(self, tenant: str, course_id: str, archived: bool,
                                revision: int) -> bool:
        """Archives the course or brings it back. A path takes an archived course's lesson
        only when no other teaches its concept (its own course's path takes it as ever): the
        paths reaching what the course teaches are announced after this answers."""
        before = await self.repo.get_course(tenant, course_id)
        if not await self.repo.archive_course(tenant, course_id, archived, revision):
            return False
        if before is not None and before.archived != archived:
            lessons = await self.repo.lessons_of_course(tenant, course_id)
            self._reshaped(tenant, concepts={c for x in lessons for c in x.teaches})
        return True

    # enrolment and progress

    async def enrol(self, tenant: str, learner: str, new: NewEnrolment) -> tuple[Enrolment, bool]:
        """The enrolment, and True when it is new. An archived course takes no new ones."""
        if new.course_id is not None:
            course = await self.repo.get_course(tenant, new.course_id)
            if course is None:
                raise NotFound(f"no published course {new.course_id!r} in tenant {tenant!r}")
            if course.archived:
                held = await self._enrolment(tenant, learner, new.goal)
                if held is None:
                    raise Conflict(f"the course {new.course_id!r} is archived: it takes no new "
                                   "enrolments", code="course_archived")
                return held, False
        if new.goal_concept is not None and not await self.repo.get_concepts(tenant, [new.goal_concept]):
            raise NotFound(f"no concept {new.goal_concept!r} in tenant {tenant!r}")
        at = now()
        enrolment = Enrolment(learner=learner, course_id=new.course_id,
                              goal_concept=new.goal_concept, enrolled_at=at)
        event = type_of(Enrolled).envelope(Enrolled(
            learner_id=learner, course_id=new.course_id, goal_concept=new.goal_concept,
            enrolled_at=at), tenant=tenant, subject=learner, time=at)
        created = await self.repo.enrol(tenant, enrolment, [event])
        if not created:
            return (await self._enrolment(tenant, learner, enrolment.goal) or enrolment), False
        self._on_write()
        await self.refresh_paths(tenant, learner, {enrolment.goal})
        return enrolment, True

    async def enrolment_page(self, tenant: str, learner: str, after: str | None = None,
                             limit: int = 100) -> Slice[Enrolment]:
        """The learner's enrolments, oldest first, a page at a time."""
        return await self.repo.page_enrolments(tenant, learner, after=after, limit=limit)

    async def _enrolment(self, tenant: str, learner: str, goal: str) -> Enrolment | None:
        return next((e for e in await self.repo.enrolments(tenant, learner) if e.goal == goal),
                    None)

    async def unenrol(self, tenant: str, learner: str, goal: NewEnrolment) -> None:
        """Leaves a course or a goal concept; what the learner did and mastered stays."""
        at = now()
        event = type_of(Unenrolled).envelope(Unenrolled(
            learner_id=learner, course_id=goal.course_id, goal_concept=goal.goal_concept,
            unenrolled_at=at), tenant=tenant, subject=learner, time=at)
        if not await self.repo.unenrol(tenant, learner, goal.goal, [event]):
            raise NotFound(f"not enrolled in {goal.goal!r}", code="not_enrolled")
        self._on_write()

    async def record_progress(self, tenant: str, learner: str, lesson_id: str,
                              update: ProgressUpdate) -> Progress:
        """Adds the update to the lesson's progress. Updates at once all count (one read before
        another's write is applied again on top); a completion is announced once, and each
        completion, a retried one too, puts the lesson's cards in the deck."""
        lesson = await self._lesson(tenant, lesson_id)
        async with self._progress_turns.of((tenant, learner, lesson_id)):
            after, at, newly_completed = await self._store_progress(tenant, learner, lesson,
                                                                    update)
        if update.status == "completed":
            await self._add_to_deck(tenant, learner, lesson.teaches, at)
        if newly_completed:
            self._on_write()
            self._paths_changed(tenant, learner, await self._goals_holding(tenant, learner,
                                                                          lesson))
        return after

    async def _store_progress(self, tenant: str, learner: str, lesson: LessonNode,
                              update: ProgressUpdate) -> tuple[Progress, datetime, bool]:
        lesson_id = lesson.id
        for _ in range(PROGRESS_ATTEMPTS):
            at = now()
            found = await self.repo.get_progress(tenant, learner, [lesson_id])
            before = found[0] if found else None
            after = (before or Progress(lesson_id=lesson_id, status="started", started_at=at,
                                        version=0)).updated(update, at)
            newly_completed = after.status == "completed" and (
                before is None or before.status != "completed")
            events: list[Envelope] = []
            if newly_completed:
                events.append(type_of(LessonCompleted).envelope(LessonCompleted(
                    learner_id=learner, lesson_id=lesson_id, course_id=lesson.course_id,
                    seconds_spent=after.seconds, completed_at=at), tenant=tenant,
                    subject=learner, time=at))
            try:
                await self.repo.save_progress(tenant, learner, after, events)
            except StaleVersion:
                continue
            return after, at, newly_completed
        raise Conflict("the lesson's progress kept changing; try again", code="busy")

    async def _lesson(self, tenant: str, lesson_id: str) -> LessonNode:
        lesson = await self.repo.get_lesson(tenant, lesson_id)
        if lesson is None:
            raise NotFound(f"no lesson {lesson_id!r} in tenant {tenant!r}")
        return lesson

    async def progress_report(self, tenant: str, learner: str) -> ProgressReport:
        progress = await self.repo.get_progress(tenant, learner)
        done = {p.lesson_id for p in progress if p.status == "completed"}
        courses: list[CourseCompletion] = []
        enrolled = [e.course_id for e in await self.repo.enrolments(tenant, learner)
                    if e.course_id is not None]
        found = await self.repo.courses_with_lessons(tenant, enrolled) if enrolled else {}
        for course, lessons in (found[c] for c in enrolled if c in found):
            modules = _modules(course, lessons)
            live = {x.id for x in lessons}
            courses.append(CourseCompletion(
                id=course.id, lessons=len(lessons), completed=len(live & done),
                modules=[Completion(id=m, lessons=len(set(ids) & live),
                                    completed=len(set(ids) & live & done))
                         for m, ids in modules.items()]))
        return ProgressReport(lessons=progress, courses=courses)

    # mastery

    async def mastery(self, tenant: str, learner: str) -> list[Mastery]:
        return await self.repo.get_mastery(tenant, learner)

    async def mastery_page(self, tenant: str, learner: str, after: str | None = None,
                           limit: int = 100) -> Slice[Mastery]:
        """The learner's mastery by concept, a page at a time."""
        return await self.repo.page_mastery(tenant, learner, after=after, limit=limit)

    async def apply_attempt(self, tenant: str, learner: str, attempt_id: str,
                            concepts: Sequence[str], answers: Sequence[bool],
                            graded_at: datetime,
                            previous_graded_at: datetime | None = None) -> list[Mastery]:
        """Updates the learner's mastery of each concept from one graded attempt. Idempotent
        (an attempt already applied changes nothing), and order-free: answers are kept in the
        order they were graded and replayed, so an attempt that arrives late lands in its
        place. A retry graded within `RETRY_GAP` of the learner's previous attempt at the quiz
        (`previous_graded_at`, None for a first attempt or one from before content said it)
        changes nothing, and is no data for BKT fits."""
        wanted = sorted(set(concepts))
        if not wanted or not answers or (
                previous_graded_at is not None
                and utc(graded_at) - utc(previous_graded_at) < RETRY_GAP):
            return []
        if await self.repo.is_erased(tenant, learner):
            return []  # an attempt graded before its learner's erasure may arrive after it
        await self.repo.ensure_concepts(tenant, wanted)
        for _ in range(RETRIES):
            try:
                changed = await self._apply(tenant, learner, attempt_id, wanted, answers, graded_at)
                break
            except StaleVersion:
                continue
        else:
            raise Conflict("the learner's mastery kept changing; try again", code="busy")
        if changed:
            self._on_write()
            self._paths_changed(tenant, learner, await self.repo.goals_reaching(
                tenant, learner, [m.concept for m in changed]))
            await self._maybe_fit(tenant, changed, len(answers))
            if await self.repo.is_erased(tenant, learner):
                await self.repo.erase_learner(tenant, learner)  # erased meanwhile: this too
                return []
        return changed

    async def _apply(self, tenant: str, learner: str, attempt_id: str, concepts: list[str],
                     answers: Sequence[bool], graded_at: datetime) -> list[Mastery]:
        params = {c.id: c.bkt for c in await self.repo.get_concepts(tenant, concepts)}
        stored = {m.concept: m for m in await self.repo.get_mastery(tenant, learner, concepts)}
        at = now()
        stamp = _stamp(graded_at)
        changes: list[Mastery] = []
        events: list[Envelope] = []
        for concept in concepts:
            before = stored.get(concept)
            if before is not None and attempt_id in before.attempt_ids:
                continue
            observations = list(before.observations) if before else []
            position = bisect.bisect_right([t for t, _ in observations], stamp)
            observations[position:position] = [(stamp, int(a)) for a in answers]
            p = params.get(concept, BktParams())
            baseline = before.baseline if before else None
            since = before.baseline_at if before else None
            start = p if baseline is None else p.model_copy(update={"prior": max(baseline, 0.001)})
            p_known = bkt.replay((a for t, a in observations if since is None or t >= since), start)
            mastered = p_known >= MASTERED
            changes.append(Mastery(
                concept=concept, p_known=p_known, mastered=mastered, source="bkt",
                baseline=baseline, baseline_at=since, observations=observations,
                attempt_ids=[*(before.attempt_ids if before else []), attempt_id],
                version=(before.version if before else 0) + 1, updated_at=at))
            if mastered and not (before and before.mastered):
                events.append(self._mastered_event(tenant, learner, concept, p_known, "bkt", at))
            elif before is not None and before.mastered and not mastered:
                events.append(type_of(ConceptUnmastered).envelope(ConceptUnmastered(
                    learner_id=learner, concept_id=concept, p_known=round(p_known, 6),
                    attempt_id=attempt_id, unmastered_at=at), tenant=tenant,
                    subject=learner, time=at))
        if changes:
            await self.repo.save_mastery(tenant, learner, changes, events)
        return changes

    @staticmethod
    def _mastered_event(tenant: str, learner: str, concept: str, p: float, source: Any,
                        at: datetime) -> Envelope:
        return type_of(ConceptMastered).envelope(ConceptMastered(
            learner_id=learner, concept_id=concept, p_known=round(p, 6), source=source,
            mastered_at=at), tenant=tenant, subject=learner, time=at)

    async def _maybe_fit(self, tenant: str, changed: Sequence[Mastery], added: int) -> None:
        """Refits a concept once its answers, across learners (`_fit_data`), reach twice
        those of the last fit (and at least `MIN_FIT_OBSERVATIONS`, from `MIN_FIT_LEARNERS`);
        checked when a learner's own answers on it pass a multiple of ten, so the count is not
        read at every attempt. A fit that is not `bkt.sound` is dropped, and the next waits for
        its answers to double too."""
        for m in changed:
            n = len(m.observations)
            if n // 10 == (n - added) // 10:
                continue
            concept = await self.repo.get_concepts(tenant, [m.concept])
            sequences = await self._fit_data(tenant, m.concept)
            count = sum(len(s) for s in sequences)
            key = (tenant, m.concept)
            if not concept or len(sequences) < MIN_FIT_LEARNERS or count < max(
                    MIN_FIT_OBSERVATIONS, 2 * concept[0].bkt.fitted_on,
                    2 * self._fits_dropped.get(key, 0)):
                continue
            fitted = await asyncio.to_thread(bkt.fit, sequences)
            if bkt.sound(fitted.params):
                self._fits_dropped.pop(key, None)
                await self.repo.set_bkt(tenant, m.concept, fitted.params)
            else:
                self._fits_dropped[key] = count
                log.warning("BKT fit dropped: one right answer would master the concept, "
                            "or right answers would tell nothing",
                            extra={"tenant": tenant, "concept": m.concept,
                                   "fitted": fitted.params.model_dump()})

    # paths

    async def path(self, tenant: str, learner: str, *, course_id: str | None = None,
                   concept: str | None = None) -> LearningPath:
        goal = goal_key(course_id, concept)
        plan = await self.repo.learning_path(tenant, learner, [concept] if concept else [],
                                             course=course_id)
        if not plan.goals and not plan.loose:
            if course_id is not None and await self.repo.get_course(tenant, course_id) is not None:
                return LearningPath(goal=goal, steps=[], uncovered=[], concepts=0, mastered=0)
            raise NotFound(f"no {'course' if course_id else 'concept'} "
                           f"{course_id or concept!r} in tenant {tenant!r}")
        return to_path(goal, plan)

    async def paths(self, tenant: str, learner: str) -> list[LearningPath]:
        """The learner's path to each goal they enrolled in, announcing the ones that changed
        since they were last announced (graph edits announce theirs as they are made)."""
        return await self.refresh_paths(tenant, learner)

    async def path_page(self, tenant: str, learner: str, after: str | None = None,
                        limit: int = PATHS_A_PAGE) -> Slice[LearningPath]:
        """`paths` of a page of the learner's enrolments (`enrolment_page`): only those are
        worked out."""
        enrolments = await self.repo.page_enrolments(tenant, learner, after=after, limit=limit)
        return Slice(await self._refresh(tenant, learner, enrolments.items), enrolments.next)

    async def refresh_paths(self, tenant: str, learner: str,
                            goals: Collection[str] | None = None) -> list[LearningPath]:
        """The learner's paths to `goals` (all their goals when None), in enrolment order,
        announcing the ones that changed."""
        if goals is not None and not goals:
            return []
        return await self._refresh(tenant, learner, [
            e for e in await self.repo.enrolments(tenant, learner)
            if goals is None or e.goal in goals])

    async def _refresh(self, tenant: str, learner: str, enrolments: Sequence[Enrolment], *,
                       until: Callable[[LearningPath], object] | None = None
                       ) -> list[LearningPath]:
        """The paths to `enrolments`' goals, announcing the ones that changed; the first for
        which `until` is true is the last worked out."""
        out: list[LearningPath] = []
        announced = False
        snapshots = await self.repo.path_snapshots(
            tenant, learner, [e.goal for e in enrolments]) if enrolments else {}
        for e in enrolments:
            try:
                path = await self.path(tenant, learner, course_id=e.course_id,
                                       concept=e.goal_concept)
            except NotFound:
                continue
            out.append(path)
            announced = await self._announce(tenant, learner, e.goal, path,
                                             snapshots.get(e.goal)) or announced
            if until is not None and until(path):
                break
        if announced:
            self._on_write()
        return out

    async def _goals_holding(self, tenant: str, learner: str, lesson: LessonNode) -> set[str]:
        """The learner's goals whose path can hold `lesson`: those reaching a concept it
        teaches, and its course (whose path holds it too when it teaches nothing)."""
        goals = set(await self.repo.goals_reaching(tenant, learner, lesson.teaches)
                    if lesson.teaches else [])
        return goals | {goal_key(lesson.course_id, None)}

    async def _announce(self, tenant: str, learner: str, goal: str, path: LearningPath,
                        before: list[str] | None) -> bool:
        """Announces the path when its lessons left to take differ from `before`, the ones last
        announced as read before (a completed step is left out, so that completing a lesson
        announces the path as it did when completed lessons left it).
        Refreshes at once announce a change once: the snapshot is written only over the one
        read, and a refresh that lost compares again with what the other stored. A goal left
        meanwhile keeps none."""
        lesson_ids = [s.lesson_id for s in _to_take(path)]
        for attempt in range(RETRIES):
            if attempt:
                before = await self.repo.path_snapshot(tenant, learner, goal)
            if before == lesson_ids:
                return False
            at = now()
            event = type_of(PathChanged).envelope(PathChanged(
                learner_id=learner, goal=goal, lesson_ids=lesson_ids,
                previous_lesson_ids=before or [], changed_at=at), tenant=tenant,
                subject=learner, time=at)
            if await self.repo.save_path_snapshot(tenant, learner, goal, lesson_ids, [event],
                                                  previous=before):
                return True
        return False

    async def next_item(self, tenant: str, learner: str, at: datetime | None = None
                        ) -> NextItem:
        """A review that is due comes first (reviews are short and lose value when late);
        otherwise the first lesson of the learner's paths, in enrolment order, that they have
        not completed and that waits for no other they have not completed (paths are worked out
        until one has it). When every lesson left waits for another (lessons teaching several
        concepts can need each other), the first of them: some of what it teaches needs nothing
        else. A completed step is never the next lesson: its quiz or reviews tell mastery."""
        due = await self.due(tenant, learner, at or now(), limit=1)
        if due:
            return NextItem(kind="review", card=due[0])
        waiting: NextItem | None = None
        after: str | None = None
        while True:
            enrolments = await self.repo.page_enrolments(tenant, learner, after=after,
                                                         limit=NEXT_PAGE)
            for path in await self._refresh(tenant, learner, enrolments.items, until=_open_step):
                step = _open_step(path)
                if step is not None:
                    return NextItem(kind="lesson", goal=path.goal, lesson=step)
                if waiting is None and (steps := _to_take(path)):
                    waiting = NextItem(kind="lesson", goal=path.goal, lesson=steps[0])
            if enrolments.next is None:
                return waiting or NextItem(kind="nothing")
            after = enrolments.next

    # placement

    async def start_placement(self, tenant: str, learner: str, new: NewPlacement) -> PlacementView:
        """A placement over the goal's prerequisites the learner has not mastered; one with none
        (a course whose lessons teach no concept, say) is finished at once."""
        goal = goal_key(new.course_id, new.goal_concept)
        sub = await self.repo.path_subgraph(
            tenant, learner, [new.goal_concept] if new.goal_concept else [], course=new.course_id)
        if not sub.goals and (new.course_id is None
                              or await self.repo.get_course(tenant, new.course_id) is None):
            raise NotFound(f"no {'course' if new.course_id else 'concept'} "
                           f"{new.course_id or new.goal_concept!r} in tenant {tenant!r}")
        order = [c for c in concept_order(sub) if not sub.concepts[c].mastered]
        # Placement spreads an answer along required edges only: a recommended prerequisite
        # is neither known because what recommends it is, nor unknown because it is not.
        prereqs = {c: [p for p, kind in sub.concepts[c].prerequisites if kind == "required"]
                   for c in order}
        started = placement.start(Placement.new_id(), learner, goal, order, prereqs, now())
        await self.repo.save_placement(tenant, started)
        return await self._placement_view(tenant, started)

    async def answer_placement(self, tenant: str, learner: str, placement_id: str,
                               given: PlacementAnswer) -> PlacementView:
        current = await self.repo.get_placement(tenant, learner, placement_id)
        if current is None:
            raise NotFound(f"no placement {placement_id!r} of yours")
        if current.done:  # what it found reaches mastery though the request finishing it failed
            await self._place(tenant, learner, current.known)
        try:
            after = placement.answer(current, given)
        except placement.WrongQuestion as exc:
            raise Conflict(str(exc), code="wrong_question",
                           extra={"question": current.question}) from None
        try:
            await self.repo.save_placement(tenant, after)
        except StaleVersion:
            now_at = await self.repo.get_placement(tenant, learner, placement_id)
            raise Conflict("the question was answered at the same moment elsewhere",
                           code="wrong_question",
                           extra={"question": now_at.question if now_at else None}) from None
        if after.done:
            await self._place(tenant, learner, after.known)
        return await self._placement_view(tenant, after)

    async def _place(self, tenant: str, learner: str, known: Sequence[str]) -> None:
        """Marks what placement found known as mastered (answers later replay from there)."""
        if not known:
            return
        for _ in range(RETRIES):
            stored = {m.concept: m for m in await self.repo.get_mastery(tenant, learner, known)}
            at = now()
            changes, events = [], []
            for c in known:
                before = stored.get(c)
                if before is not None and before.mastered:
                    continue
                changes.append(Mastery(
                    concept=c, p_known=MASTERED, mastered=True, source="placement",
                    baseline=MASTERED, baseline_at=_stamp(at),
                    observations=before.observations if before else [],
                    attempt_ids=before.attempt_ids if before else [],
                    version=(before.version if before else 0) + 1, updated_at=at))
                events.append(self._mastered_event(tenant, learner, c, MASTERED, "placement", at))
            if not changes:
                return
            try:
                await self.repo.save_mastery(tenant, learner, changes, events)
                break
            except StaleVersion:
                continue
        else:
            raise Conflict("the learner's mastery kept changing; try again", code="busy")
        self._on_write()
        self._paths_changed(tenant, learner, await self.repo.goals_reaching(
            tenant, learner, [m.concept for m in changes]))

    async def _placement_view(self, tenant: str, p: Placement) -> PlacementView:
        name = card = None
        if p.question is not None:
            concepts = await self.repo.get_concepts(tenant, [p.question])
            name = concepts[0].name if concepts else p.question
            cards = await self.repo.cards_of(tenant, [p.question])
            card = cards[0] if cards else None
        return PlacementView(id=p.id, goal=p.goal, question=p.question, question_name=name,
                             card_front=card and card.front, card_back=card and card.back,
                             asked=len(p.answers), max_questions=p.max_questions,
                             done=p.done, known=p.known, unknown=p.unknown)

    # review cards

    async def add_card(self, tenant: str, concept: str, new: NewCard) -> Card:
        card = Card.create(tenant, concept, new)
        try:
            await self.repo.add_card(card)
        except Missing:
            raise NotFound(f"no concept {concept!r} in tenant {tenant!r}") from None
        self._deal(tenant, [card.id])
        return card

    async def add_generated_cards(self, tenant: str, job_id: str, lesson_id: str,
                                  lesson_version: int,
                                  cards: Sequence[tuple[str, str, str | None]]) -> int:
        """Stores the (front, back, concept) cards the AI service generated from a version of
        a lesson; a card without a concept drills the first concept the lesson teaches (skipped
        when the lesson is unknown). Idempotent: each card's id comes from its lesson (or job),
        concept and text, so a job run again, or another job making the same card, adds
        nothing, and a card an educator retired stays retired. Cards made from any version but
        the one published now (a draft, an older text) are held until that very version is
        published: text learners never read never reaches them. A card made from the version
        published that is held, made before from a draft with the same text, is released (a
        retired one stays retired). The others join the decks of
        the learners who completed a lesson teaching their concept (after this answers; those
        of a job run again too, which adds only what a stop left out). Each card keeps the
        lesson version it was made from: the lesson's deletion retires it, one deleted while
        these were stored too. Answers how many cards were new."""
        lesson = await self.repo.get_lesson(tenant, lesson_id)
        fallback = lesson.teaches[0] if lesson is not None and lesson.teaches else None
        held = None if lesson is not None and lesson.version == lesson_version else HeldUntil(
            lesson_id=lesson_id, lesson_version=lesson_version)
        wanted: list[tuple[int, str, str, str]] = []
        for i, (front, back, concept) in enumerate(cards):
            if concept or fallback:
                wanted.append((i, front, back, concept or fallback or ""))
        if not wanted:
            return 0
        await self.repo.ensure_concepts(tenant, sorted({c for *_, c in wanted}))
        made_from = (LessonVersion(lesson_id=lesson_id, lesson_version=lesson_version)
                     if lesson_id else None)
        added = 0
        stored: list[str] = []
        for i, front, back, concept in wanted:
            origin = lesson_id or job_id
            card_id = hashlib.sha256(f"{origin}\0{concept}\0{front}\0{back}".encode()).hexdigest()[:32]
            try:
                new = NewCard(front=front, back=back, source="ai")
                if await self.repo.add_card(Card.create(tenant, concept, new, card_id=card_id,
                                                        held_until=held, made_from=made_from)):
                    added += 1
            except Duplicate:
                pass
            except ValidationError:
                log.warning("generated card skipped: not a valid card",
                            extra={"job": job_id, "card": i})
                continue
            stored.append(card_id)
        if held is not None:  # its publication may have been projected since it was read
            published = await self.repo.get_lesson(tenant, lesson_id)
            if published is not None:
                stored += await self.repo.release_cards(tenant, lesson_id, published.version)
        elif await self.repo.get_lesson(tenant, lesson_id) is None:  # deleted since it was read
            await self._retire_cards_of(tenant, lesson_id)
            return added
        self._deal(tenant, stored)  # held cards are left out there
        return added

    async def cards(self, tenant: str, concept: str) -> list[Card]:
        await self.concept(tenant, concept)
        return await self.repo.cards_of(tenant, [concept])

    async def card_page(self, tenant: str, concept: str, after: str | None = None,
                        limit: int = 100, *, held: bool = False) -> Slice[Card]:
        """The concept's cards, oldest first, a page at a time (404 for no such concept); the
        held ones too when `held` (for staff)."""
        await self.concept(tenant, concept)
        return await self.repo.page_cards(tenant, concept, held=held, after=after, limit=limit)

    async def _card_of(self, tenant: str, concept: str, card_id: str) -> Card:
        card = await self.repo.get_card(tenant, card_id, held=True)
        if card is None or card.concept != concept:
            raise NotFound(f"the concept {concept!r} has no card {card_id!r}")
        return card

    async def edit_card(self, tenant: str, concept: str, card_id: str, edit: CardEdit, *,
                        version: int | None = None) -> Card:
        """New text for the card; learners' schedules of it stay. With `version`, only when the
        card is still at that version (409 stale_version)."""
        await self._card_of(tenant, concept, card_id)
        try:
            edited = await self.repo.edit_card(tenant, card_id, edit, now(), expected=version)
        except StaleVersion:
            current = await self.repo.get_card(tenant, card_id, held=True)
            raise Conflict(f"the card {card_id!r} changed since that version; read it again and "
                           "retry", code="stale_version",
                           extra={"current_version": current and current.version}) from None
        if edited is None:
            raise NotFound(f"the concept {concept!r} has no card {card_id!r}")
        return edited

    async def retire_card(self, tenant: str, concept: str, card_id: str) -> None:
        """Retires the card: it leaves every learner's deck and is never generated again."""
        await self._card_of(tenant, concept, card_id)
        await self.repo.retire_card(tenant, card_id)

    async def study(self, tenant: str, learner: str, card_id: str) -> CardView:
        """Adds the card to the learner's deck (due now); a card already there, or taken out
        of it before, keeps its schedule."""
        card = await self.repo.get_card(tenant, card_id)
        if card is None:
            raise NotFound(f"no card {card_id!r} in tenant {tenant!r}")
        await self.repo.add_card_states(tenant, learner,
                                        [fsrs_review.new_state(card.id, card.concept, now())])
        await self.repo.keep_in_deck(tenant, learner, card_id, True)
        states = await self.repo.card_states(tenant, learner, [card_id])
        if not states:  # retired since it was read
            raise NotFound(f"no card {card_id!r} in tenant {tenant!r}")
        return _view(card, states[0])

    async def drop_card(self, tenant: str, learner: str, card_id: str) -> None:
        """Takes the card out of the learner's deck: it is no longer due, and completing its
        lesson again does not bring it back (studying it does, with its schedule)."""
        if not await self.repo.keep_in_deck(tenant, learner, card_id, False):
            raise NotFound(f"the card {card_id!r} is not in your deck", code="not_in_deck")

    async def _add_to_deck(self, tenant: str, learner: str, concepts: Sequence[str],
                           at: datetime) -> None:
        cards = await self.repo.cards_of(tenant, concepts)
        if cards:
            await self.repo.add_card_states(tenant, learner, [
                fsrs_review.new_state(c.id, c.concept, at) for c in cards])

    def _deal(self, tenant: str, card_ids: Sequence[str]) -> None:
        """Adds the cards, after the change's answer, to the decks of the learners who completed
        a lesson teaching their concept (new, due at once; a card a learner has or dropped stays
        as it is). One that stops part-way (a failure, a shutdown) leaves the rest to each
        learner's next completion of the lesson."""
        self._dealing.add(tenant, card_ids)

    async def _deal_cards(self, tenant: str, card_ids: set[str]) -> None:
        by_concept: dict[str, list[Card]] = defaultdict(list)
        for card in await self.repo.get_cards(tenant, sorted(card_ids)):
            by_concept[card.concept].append(card)
        studied = await self.repo.learners_who_studied(tenant, sorted(by_concept))
        at = now()
        for concept, learners in studied.items():
            states = [fsrs_review.new_state(c.id, concept, at) for c in by_concept[concept]]
            step = max(1, DEAL_ROWS // len(states))
            for start in range(0, len(learners), step):
                await self.repo.add_to_decks(tenant, learners[start:start + step], states)

    async def due(self, tenant: str, learner: str, at: datetime, limit: int = 50) -> list[CardView]:
        """The learner's first `limit` cards due at `at`, most overdue first."""
        return (await self.due_page(tenant, learner, at, limit)).items

    async def due_page(self, tenant: str, learner: str, at: datetime, limit: int = 50,
                       after: str | None = None) -> Slice[CardView]:
        """The learner's cards due at `at`, most overdue first, a page at a time."""
        start = None
        if after is not None:
            due, card = key_of(after, str, str)
            try:
                start = (utc(datetime.fromisoformat(str(due))), str(card))
            except (ValueError, OverflowError):
                raise BadCursor("`after` is not a cursor of this list") from None
        states = Slice.of(await self.repo.due(tenant, learner, at, limit + 1, after=start),
                          limit, lambda s: (utc_iso(s.due), s.card_id))
        cards = {c.id: c for c in await self.repo.get_cards(
            tenant, [s.card_id for s in states.items])}
        return Slice([_view(cards[s.card_id], s) for s in states.items if s.card_id in cards],
                     states.next)

    async def review(self, tenant: str, learner: str, given: NewReview,
                     at: datetime | None = None) -> ReviewResult:
        """Schedules the card after the learner's rating, the time since its last review counted
        in the learner's days (`fsrs_review.in_learner_days`). A card reviewed before it is due is
        scheduled from the time that actually passed (FSRS handles the short interval). A review
        tried again after another's write (or a change of the learner's time zone) is timed and
        counted in days when it is tried again, after that one."""
        try:
            fsrs_review.check_rating(given.rating)
        except fsrs_review.BadRating as exc:
            raise Problem(str(exc), status=422, code="bad_rating") from None
        given_at = at
        async with self._review_turns.of((tenant, learner, given.card_id)):
            for attempt in range(REVIEW_ATTEMPTS):
                at = given_at or now()
                settings = await self.repo.learner_settings(tenant, learner)
                states = await self.repo.card_states(tenant, learner, [given.card_id])
                if not states:
                    raise NotFound(f"the card {given.card_id!r} is not in your deck",
                                   code="not_in_deck")
                if given.version is not None and states[0].version != given.version:
                    raise Conflict(f"the card is at version {states[0].version}, not "
                                   f"{given.version}", code="already_reviewed",
                                   extra={"current_version": states[0].version,
                                          "next_due": json_time(states[0].due)})
                after, log, result = fsrs_review.review(
                    states[0], given.rating, at, settings.parameters, given.duration_ms,
                    _zone(settings.time_zone))
                event = type_of(ReviewDone).envelope(ReviewDone(
                    learner_id=learner, card_id=given.card_id, concept_id=after.concept,
                    rating=given.rating, was_due=result.was_due, next_due=result.next_due,
                    reviewed_at=at), tenant=tenant, subject=learner, time=at)
                try:
                    await self.repo.save_review(tenant, learner, after, log, [event],
                                                settings.time_zone)
                except StaleVersion:  # reviewed, or the learner's zone changed, meanwhile
                    await back_off(attempt)
                    continue
                self._on_write()
                return result
        raise Conflict("the card was reviewed at the same moment elsewhere; try again",
                       code="busy")

    async def set_time_zone(self, tenant: str, learner: str, zone: str, at: datetime) -> bool:
        """Keeps the learner's IANA time zone, which identity owns, for their reviews' days
        (`fsrs_review.day_due`; a zone this process's time zone data lacks counts as UTC), and
        moves their cards to it (`_reschedule`: those already there stay), as when the news kept
        is told again (its handling failed part-way). Older news than what is kept, and news of
        an erased learner, change nothing. True when stored."""
        saved = await self.repo.save_time_zone(tenant, learner, zone, at)
        if saved != "refused":
            await self._reschedule(tenant, learner, zone, at)
        return saved == "stored"

    async def _reschedule(self, tenant: str, learner: str, zone: str, at: datetime) -> None:
        """Moves each of the learner's cards due a day or more after its last review (those
        taken out of their deck too) to as many learner's days after it in `zone`
        (`fsrs_review.rescheduled`), `RESCHEDULE_ROWS` a write; a card reviewed meanwhile keeps
        the schedule its review gave, and once a newer zone is stored nothing more is moved
        (its own move does)."""
        states = [*await self.repo.card_states(tenant, learner),
                  *await self.repo.taken_out_cards(tenant, learner)]
        moved = [m for s in states if (m := fsrs_review.rescheduled(s, _zone(zone))) is not s]
        for start in range(0, len(moved), RESCHEDULE_ROWS):
            await self.repo.reschedule_cards(tenant, learner, moved[start:start + RESCHEDULE_ROWS],
                                             zone, at)

    async def optimise(self, tenant: str, learner: str, *,
                       minimum: int = fsrs_review.MIN_REVIEWS_TO_OPTIMISE) -> SchedulerParams:
        """Fits the learner's own FSRS parameters to the whole histories of the cards they
        started last, `OPTIMISE_REVIEWS` reviews at most (the work grows with them, and a
        learner may review as often as they like); they are kept when, fitted to three cards in
        four, they predict the fourth better than the parameters in use by more than chance
        (`fsrs_review.fit_checked`, counting in the learner's days as reviews do). One fit at a
        time per learner in a process (409 busy for another meanwhile)."""
        logs = await self.repo.review_logs(tenant, learner)
        if len(logs) < minimum:
            raise Problem(f"you have {len(logs)} reviews; your own schedule needs {minimum}",
                          status=422, code="too_few_reviews",
                          extra={"reviews": len(logs), "needed": minimum})
        histories = fsrs_review.newest_histories(logs, OPTIMISE_REVIEWS)
        if (tenant, learner) in self._optimising:
            raise Conflict("your schedule is being fitted already; try again when it is done",
                           code="busy")
        self._optimising.add((tenant, learner))
        try:
            settings = await self.repo.learner_settings(tenant, learner)
            fitted = await asyncio.to_thread(fsrs_review.fit_checked, histories,
                                             settings.parameters, zone=_zone(settings.time_zone))
            if fitted.better:
                await self.repo.save_scheduler_params(tenant, learner, fitted.parameters)
        finally:
            self._optimising.discard((tenant, learner))
        return fitted

    # a learner's data

    async def personal_data(self, tenant: str, learner: str) -> dict[str, object]:
        states = await self.repo.card_states(tenant, learner)
        enrolments = await self.repo.enrolments(tenant, learner)
        snapshots = await self.repo.path_snapshots(tenant, learner)
        settings = await self.repo.learner_settings(tenant, learner)
        return {
            "enrolments": [e.model_dump(mode="json") for e in enrolments],
            "paths_last_announced": {e.goal: snapshots.get(e.goal) for e in enrolments},
            "placements": [p.model_dump(mode="json")
                           for p in await self.repo.placements(tenant, learner)],
            "progress": [p.model_dump(mode="json") for p in await self.repo.get_progress(tenant, learner)],
            "mastery": [m.model_dump(mode="json") for m in await self.repo.get_mastery(tenant, learner)],
            "cards": [s.model_dump(mode="json") for s in states],
            "cards_taken_out": [s.model_dump(mode="json")
                                for s in await self.repo.taken_out_cards(tenant, learner)],
            "review_logs": [r.model_dump(mode="json")
                            for r in await self.repo.review_logs(tenant, learner)],
            "scheduler_parameters": settings.parameters,
            "time_zone": settings.time_zone,
        }

    async def erase(self, tenant: str, learner: str) -> None:
        await self.repo.erase_learner(tenant, learner)


def _zone(name: str | None) -> ZoneInfo:
    """The learner's time zone as identity last told it; UTC until it has, or when this
    process's time zone data lacks it."""
    try:
        return ZoneInfo(name) if name else fsrs_review.UTC_ZONE
    except (ZoneInfoNotFoundError, ValueError):
        return fsrs_review.UTC_ZONE


def _placed(lesson: LessonNode) -> tuple[object, ...]:
    """What of a lesson its learners' paths read: a change of any reshapes them."""
    return (lesson.course_id, sorted(lesson.teaches), lesson.position,
            lesson.estimated_minutes)


def _view(card: Card, state: CardState) -> CardView:
    return CardView(card_id=card.id, concept=card.concept, front=card.front, back=card.back,
                    due=state.due, reps=state.reps, version=state.version)


def _to_take(path: LearningPath) -> list[PathStep]:
    """The path's steps the learner has not completed."""
    return [s for s in path.steps if s.status != "completed"]


def _open_step(path: LearningPath) -> PathStep | None:
    """The path's first lesson not completed and waiting for no other: none of its blockers is
    taught by a step not completed (a completed step blocks nothing: what it teaches is shown by
    its quiz or reviews, not by reading it again)."""
    steps = _to_take(path)
    open_concepts = {c for s in steps for c in s.concepts}
    return next((s for s in steps if not open_concepts.intersection(s.blocked_by)), None)


def _stamp(at: datetime) -> str:
    """A time as answers are ordered by (ISO text in UTC, so that text order is time order;
    a time without a zone is UTC)."""
    return utc_iso(at)


def _modules(course: CourseNode, lessons: Sequence[LessonNode]) -> dict[str, list[str]]:
    """The course's lessons by module, the modules in the course's order (those it lists, with
    no lesson too; then any only a lesson names, in lesson order). A lesson counts in the module
    its own record names, else in the one the course lists it in."""
    listed = {x: m.id for m in course.modules for x in m.lesson_ids}
    modules: dict[str, list[str]] = {m.id: [] for m in course.modules}
    for lesson in lessons:
        module = lesson.module_id or listed.get(lesson.id)
        if module:
            modules.setdefault(module, []).append(lesson.id)
    return modules
