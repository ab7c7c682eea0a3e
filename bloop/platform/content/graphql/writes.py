"""content's GraphQL writes: a learner's quiz attempts, and an educator's writes of courses,
lessons and concepts, each taking the body its HTTP twin takes (a lesson's blocks as JSON, as
that body spells them) under its twin's roles and scopes. Co-authors, media uploads and file
imports are written through the HTTP API only."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated

import strawberry
from strawberry.scalars import JSON

from bloop.graphql.fields import field, sized
from bloop.graphql.inputs import Loc, at_least, in_argument, validated
from bloop.graphql.scalars import Slug
from bloop.platform.content import model, quiz
from bloop.platform.content.api import LessonId, LessonOrder
from bloop.platform.content.attempts.model import AnswerValue as AnswerValueModel
from bloop.platform.content.attempts.model import Attempt, AttemptSubmission
from bloop.platform.content.attempts.service import AttemptService
from bloop.platform.content.graphql.reads import (
    LEVELS,
    TAGS,
    Concept,
    Course,
    Info,
    Lesson,
    _courses_loader,
    _drafts_loader,
    _published_loader,
    _service,
)
from bloop.platform.kit.auth import Principal, a_person
from bloop.platform.kit.errors import Invalid, InvalidBody


@strawberry.input(one_of=True, description="an answer, in the form its question takes: exactly "
                                           "one of these")
class AnswerValueInput:
    text: str | None = strawberry.field(default=strawberry.UNSET, description=(
        "the id of the option picked (single choice), or the text typed (short text)"))
    ids: list[str] | None = strawberry.field(default=strawberry.UNSET, description=(
        "the ids of the options picked (multiple choice), or every item's id in order "
        "(ordering)"))
    truth: bool | None = strawberry.field(default=strawberry.UNSET,
                                          description="true or false (true/false)")
    number: float | None = strawberry.field(default=strawberry.UNSET,
                                            description="the number (numeric)")
    pairs: list[PairInput] | None = strawberry.field(default=strawberry.UNSET, description=(
        "each left id with the right id matched to it (matching)"))


@strawberry.input(description="a left side matched to a right side")
class PairInput:
    left: str = strawberry.field(description="the left side's id")
    right: str = strawberry.field(description="the right side's id")


@strawberry.input(description="the answer to one question of a quiz")
class QuizAnswerInput:
    question_id: str = strawberry.field(description="the question's id")
    answer: AnswerValueInput = strawberry.field(description="what the learner answered")


@strawberry.type(description="how one question of an attempt was graded")
class GradedQuestion:
    question_id: str = strawberry.field(description="the question's id")
    outcome: str = strawberry.field(description=(
        "`correct`, `partial`, `incorrect` or `unanswered`"))
    correct: bool = strawberry.field(description="true when it scored its points in full")
    score: float = strawberry.field(description="what it scored")
    max_score: float = strawberry.field(description="the most it could score")
    feedback: str = strawberry.field(description="its author's feedback; empty when none, and "
                                                 "when it was left unanswered")
    option_feedback: list[OptionFeedback] = strawberry.field(description=(
        "the feedback of each option the learner picked that has some"))


@strawberry.type(description="an option's feedback")
class OptionFeedback:
    option: str = strawberry.field(description="the option's id")
    feedback: str = strawberry.field(description="its feedback")


@strawberry.type(description="an answer, in the form its question takes: exactly one of these "
                             "is set")
class AnswerValue:
    text: str | None = strawberry.field(default=None, description=(
        "the id of the option picked (single choice), or the text typed (short text)"))
    ids: list[str] | None = strawberry.field(default=None, description=(
        "the ids of the options picked (multiple choice), or every item's id in order "
        "(ordering)"))
    truth: bool | None = strawberry.field(default=None, description="true or false (true/false)")
    number: float | None = strawberry.field(default=None, description="the number (numeric)")
    pairs: list[Pair] | None = strawberry.field(default=None, description=(
        "each left id with the right id matched to it (matching)"))

    @classmethod
    def of(cls, value: AnswerValueModel) -> AnswerValue:
        match value:
            case bool():
                return cls(truth=value)
            case int() | float():
                return cls(number=value)
            case str():
                return cls(text=value)
            case list():
                return cls(ids=list(value))
        return cls(pairs=[Pair(left=left, right=right) for left, right in value.items()])


@strawberry.type(description="a left side matched to a right side")
class Pair:
    left: str = strawberry.field(description="the left side's id")
    right: str = strawberry.field(description="the right side's id")


@strawberry.type(description="the learner's answer to one question of a quiz")
class QuizAnswer:
    question_id: str = strawberry.field(description="the question's id")
    answer: AnswerValue = strawberry.field(description="what the learner answered")


@strawberry.type(description="a learner's graded attempt at a quiz")
class QuizAttempt:
    id: str = strawberry.field(description="its id")
    lesson_id: str = strawberry.field(description="the id of the quiz's lesson")
    lesson_version: int = strawberry.field(description="the version of the lesson graded against")
    quiz_id: str = strawberry.field(description="the quiz's id")
    number: int = strawberry.field(description="1 for the learner's first attempt at this quiz")
    score: float = strawberry.field(description="what it scored")
    max_score: float = strawberry.field(description="the most it could score")
    answers: list[QuizAnswer] = strawberry.field(description=(
        "what the learner answered, each question once, in the order sent (the HTTP API's "
        "`answers`, an object by question id); questions left out are not here"))
    questions: list[GradedQuestion] = strawberry.field(description="each question, in the "
                                                                   "quiz's order")
    graded_at: datetime = strawberry.field(description="when it was graded")

    @classmethod
    def of(cls, a: Attempt) -> QuizAttempt:
        return cls(id=a.id, lesson_id=a.lesson_id, lesson_version=a.lesson_version,
                   quiz_id=a.quiz_id, number=a.number, score=a.score, max_score=a.max_score,
                   graded_at=a.graded_at,
                   answers=[QuizAnswer(question_id=q, answer=AnswerValue.of(v))
                            for q, v in a.answers.items()],
                   questions=[GradedQuestion(
                       question_id=q.question_id, outcome=q.outcome, correct=q.correct,
                       score=q.score, max_score=q.max_score, feedback=q.feedback,
                       option_feedback=[OptionFeedback(option=o, feedback=f)
                                        for o, f in q.option_feedback.items()])
                       for q in a.questions])


def _answer(given: AnswerValueInput, at: int) -> object:
    """The answer as the HTTP API takes it (one of its fields is set: the schema sees to it)."""
    if isinstance(given.pairs, list):
        matched = {pair.left: pair.right for pair in given.pairs}
        if len(matched) < len(given.pairs):
            raise Invalid([{"loc": ("answers", at, "answer", "pairs"), "type": "value_error",
                            "msg": "a left side is matched twice"}])
        return matched
    return next(value for value in (given.text, given.ids, given.truth, given.number)
                if value is not None and value is not strawberry.UNSET)


def _answers(answers: list[QuizAnswerInput]) -> dict[str, object]:
    given: dict[str, object] = {}
    for i, answer in enumerate(answers):
        if answer.question_id in given:
            raise Invalid([{"loc": ("answers", i, "questionId"), "type": "value_error",
                            "msg": f"the question {answer.question_id!r} is answered twice"}])
        given[answer.question_id] = _answer(answer.answer, i)
    return given


ANSWER_FIELDS = {"bool": "truth", "number": "number", "text": "text", "ids": "ids",
                 "pairs": "pairs"}
"""The field of `AnswerValueInput` holding each kind of the HTTP API's answers."""


def _placed(loc: Loc, answers: list[QuizAnswerInput]) -> Loc:
    """A `loc` in the HTTP body's answers (an object of them by question id, each of a kind)
    as in the argument `answers` (a list, each in its kind's field)."""
    if loc[:1] != ("answers",) or len(loc) < 2:
        return loc
    at = next(i for i, a in enumerate(answers) if a.question_id == loc[1])
    pairs = answers[at].answer.pairs
    match loc[2:]:
        case ("[key]", *_):
            return ("answers", at, "questionId")
        case ("pairs", str() as left) if isinstance(pairs, list):
            paired = next(i for i, p in enumerate(pairs) if p.left == left)
            return ("answers", at, "answer", "pairs", paired, "right")
        case (str() as kind, *rest) if kind in ANSWER_FIELDS:
            return ("answers", at, "answer", ANSWER_FIELDS[kind], *rest)
    return ("answers", at, "answer", *loc[2:])


BLOCKS = ("its content in order, each block a JSON object exactly as the HTTP API's `blocks` "
          "takes it (snake_case fields; a quiz with its answers and feedback), e.g. "
          "`{type: \"markdown\", markdown: \"…\"}`: the block types are too many for inputs of "
          "their own; a refusal's `loc` inside it is spelt as the HTTP body's")
REVISION = ("the course's `revision` the write was made against (the HTTP API's `If-Match`): "
            "409 `stale_version` when the course changed since; without it, the write applies")
LESSON_VERSION = ("the lesson's `version` the write was made against (the HTTP API's "
                  "`If-Match`): 409 `stale_version` when it was edited since")


@strawberry.input(description="a named part of a course")
class ModuleInput:
    id: str = strawberry.field(description="its id, a slug unique in its course")
    title: str = strawberry.field(description="its title")
    summary: str | None = strawberry.field(default=strawberry.UNSET,
                                           description="plain text; empty when left out")


@strawberry.input(description="a new course, as `POST …/courses` takes it")
class CourseInput:
    id: str | None = strawberry.field(default=strawberry.UNSET,
                                      description="a slug; generated when left out")
    title: str = strawberry.field(description="its title")
    summary: str | None = strawberry.field(default=strawberry.UNSET,
                                           description="plain text; empty when left out")
    language: str | None = strawberry.field(default=strawberry.UNSET, description=(
        "the language it is taught in, a BCP 47 tag; `en` when left out"))
    level: str | None = strawberry.field(default=strawberry.UNSET,
                                         description=f"{LEVELS}; `beginner` when left out")
    tags: list[str] | None = strawberry.field(default=strawberry.UNSET, description=TAGS)
    modules: list[ModuleInput] | None = strawberry.field(default=strawberry.UNSET,
                                                         description="its modules, in order")


@strawberry.input(description="a change to a course's draft head (as `PATCH …/courses/{course}` "
                             "takes it): fields left out stay as they are")
class CourseEditInput:
    title: str | None = strawberry.field(default=strawberry.UNSET, description="its title")
    summary: str | None = strawberry.field(default=strawberry.UNSET, description="plain text")
    language: str | None = strawberry.field(default=strawberry.UNSET,
                                            description="a BCP 47 tag such as `en`")
    level: str | None = strawberry.field(default=strawberry.UNSET, description=LEVELS)
    tags: list[str] | None = strawberry.field(default=strawberry.UNSET, description=TAGS)


@strawberry.input(description="a new lesson, as `POST …/courses/{course}/lessons` takes it")
class LessonInput:
    title: str = strawberry.field(description="its title")
    estimated_minutes: int | None = strawberry.field(default=strawberry.UNSET, description=(
        "the minutes it should take, 1 to 600; 10 when left out"))
    blocks: list[JSON] | None = strawberry.field(default=strawberry.UNSET, description=BLOCKS)
    teaches: list[str] | None = strawberry.field(default=strawberry.UNSET, description=(
        "the ids of the tenant's concepts it teaches"))
    requires: list[str] | None = strawberry.field(default=strawberry.UNSET, description=(
        "the ids of the tenant's concepts it needs first"))
    tags: list[str] | None = strawberry.field(default=strawberry.UNSET, description=TAGS)
    language: str | None = strawberry.field(default=strawberry.UNSET,
                                            description="a BCP 47 tag; null: its course's")
    level: str | None = strawberry.field(default=strawberry.UNSET,
                                         description=f"{LEVELS}; null: its course's")
    module: str | None = strawberry.field(default=strawberry.UNSET, description=(
        "the id of one of the course's modules; null: in none"))


@strawberry.input(description="an edit of a lesson's draft (as `PATCH …/lessons/{lesson}` takes "
                             "it): fields left out stay as they are")
class LessonEditInput:
    title: str | None = strawberry.field(default=strawberry.UNSET, description="its title")
    estimated_minutes: int | None = strawberry.field(default=strawberry.UNSET,
                                                     description="1 to 600")
    blocks: list[JSON] | None = strawberry.field(default=strawberry.UNSET, description=BLOCKS)
    teaches: list[str] | None = strawberry.field(default=strawberry.UNSET, description=(
        "the ids of the tenant's concepts it teaches"))
    requires: list[str] | None = strawberry.field(default=strawberry.UNSET, description=(
        "the ids of the tenant's concepts it needs first"))
    tags: list[str] | None = strawberry.field(default=strawberry.UNSET, description=TAGS)
    language: str | None = strawberry.field(default=strawberry.UNSET,
                                            description="a BCP 47 tag; null: its course's")
    level: str | None = strawberry.field(default=strawberry.UNSET,
                                         description=f"{LEVELS}; null: its course's")
    module: str | None = strawberry.field(default=strawberry.UNSET, description=(
        "the id of one of the course's modules; null: in none"))


@strawberry.input(description="a new concept of the tenant, as `POST …/concepts` takes it")
class ConceptInput:
    id: str = strawberry.field(description="its id, a slug: what lessons name")
    name: str = strawberry.field(description="its name")
    description: str | None = strawberry.field(default=strawberry.UNSET,
                                               description="plain text; empty when left out")


@strawberry.input(description="a concept's new name, description or both (as "
                             "`PATCH …/concepts/{concept}` takes it); its id stays")
class ConceptEditInput:
    name: str | None = strawberry.field(default=strawberry.UNSET, description="its name")
    description: str | None = strawberry.field(default=strawberry.UNSET,
                                               description="plain text")


def _author(info: Info, tenant: str) -> Principal:
    """Authorises a content write in `tenant`, as the HTTP API's `Author` does."""
    return info.context.authorise(tenant, "educator", "tenant_admin", scopes=["content:write"])


def _written_lessons(info: Info) -> None:
    """Forgets the lessons and courses this request's loaders read: a write changed them, and
    a field after it reads them afresh."""
    _drafts_loader(info).clear_all()
    _published_loader(info).clear_all()
    _courses_loader(info).clear_all()


def _written(info: Info, course: model.Course) -> Course:
    """`course` as a write left it: its draft."""
    _written_lessons(info)
    return Course.of(model.CourseView.draft(course), draft=True)


@strawberry.type
class Mutation:
    @field("grades the signed-in learner's answers to a published lesson's quiz and stores the "
           "attempt (as `POST …/lessons/{lesson}/quizzes/{quiz}/attempts`): questions left out "
           "score nothing; `invalid_answer` naming the question when an answer does not fit "
           "it; given `lessonVersion` (the lesson's `version` read), 409 `stale_version` when "
           "another version was published since, and nothing is stored")
    async def submit_quiz_attempt(self, info: Info, tenant: Slug, lesson_id: str, quiz_id: str,
                                  answers: list[QuizAnswerInput],
                                  lesson_version: int | None = None) -> QuizAttempt | None:
        me = a_person(info.context.authorise(tenant, "learner", scopes=["learning:write"]))
        lesson_id = sized(lesson_id, "lessonId", LessonId)
        if not re.fullmatch(quiz.QUIZ_ID_PATTERN, quiz_id):
            raise Invalid.of("not a quiz id: letters, digits, _ and -, at most 64", "quizId")
        submission = validated(AttemptSubmission, {"answers": _answers(answers),
                                                   "lesson_version": lesson_version},
                               placed=lambda loc: _placed(loc, answers))
        attempts = info.context.service("content.attempts", AttemptService)
        return QuizAttempt.of(await attempts.submit(
            tenant, me.user_id, lesson_id, quiz_id, dict(submission.answers),
            lesson_version=submission.lesson_version))

    # An educator's writes, each as its HTTP twin under `/v1/tenants/{tenant}` does it.

    @field("creates a draft course, which its creator owns (as `POST …/courses`); "
           "`course_exists` when its id is taken")
    async def create_course(self, info: Info, tenant: Slug,
                            course: CourseInput) -> Course | None:
        me = _author(info, tenant)
        new = validated(model.NewCourse, course, "course")
        return _written(info, await _service(info).create_course(tenant, new, by=me))

    @field("changes a course's draft head (as `PATCH …/courses/{course}`)")
    async def edit_course(self, info: Info, tenant: Slug, id: Slug, edit: CourseEditInput,
                          revision: Annotated[int | None, strawberry.argument(
                              description=REVISION)] = None) -> Course | None:
        me = _author(info, tenant)
        body = validated(model.CourseEdit, edit, "edit").model_copy(
            update={"revision": at_least(revision, 0, "revision")})
        try:
            edited = await _service(info).edit_course(tenant, id, body, by=me)
        except InvalidBody as exc:
            raise in_argument(exc, "edit") from None
        return _written(info, edited)

    @field("deletes a course never published, with its lessons (as `DELETE …/courses/{course}`; "
           "its owner or the tenant's admins): `course_published` when it was published; true "
           "when done")
    async def delete_course(self, info: Info, tenant: Slug, id: Slug,
                            revision: Annotated[int | None, strawberry.argument(
                                description=REVISION)] = None) -> bool | None:
        me = _author(info, tenant)
        await _service(info).delete_course(tenant, id, revision=at_least(
            revision, 0, "revision"), by=me)
        _written_lessons(info)
        return True

    @field("adds a module to a course's draft (as `POST …/courses/{course}/modules`): "
           "`module_exists` when its id is taken")
    async def add_module(self, info: Info, tenant: Slug, course_id: Slug,
                         module: ModuleInput) -> Course | None:
        me = _author(info, tenant)
        new = validated(model.Module, module, "module")
        return _written(info, await _service(info).add_module(tenant, course_id, new, by=me))

    @field("puts a course draft's lessons in this order (as `PUT …/courses/{course}/"
           "lesson-order`): `lesson_order_mismatch` unless it names each of them once; "
           "learners see it from the next publication. The lessons, in their new order")
    async def set_lesson_order(self, info: Info, tenant: Slug, course_id: Slug,
                               lessons: list[str]) -> list[Lesson] | None:
        me = _author(info, tenant)
        order = validated(LessonOrder, {"lessons": lessons})
        ordered = await _service(info).reorder_lessons(tenant, course_id, order.lessons, by=me)
        _written_lessons(info)
        return [Lesson.of(x, draft=True) for x in ordered]

    @field("publishes a course's draft as its next version (as `POST …/courses/{course}/"
           "publish`): a draft unchanged since makes none; `draft_changed` when a lesson "
           "changed while it was published, `course_archived` while it is archived")
    async def publish_course(self, info: Info, tenant: Slug, id: Slug,
                             revision: Annotated[int | None, strawberry.argument(
                                 description=REVISION)] = None) -> Course | None:
        me = _author(info, tenant)
        return _written(info, await _service(info).publish(
            tenant, id, revision=at_least(revision, 0, "revision"), by=me))

    @field("takes a published course out of the catalogue, closed to new enrolments (as "
           "`POST …/courses/{course}/archive`; its owner or the tenant's admins): "
           "`course_not_published` for one never published")
    async def archive_course(self, info: Info, tenant: Slug, id: Slug,
                             revision: Annotated[int | None, strawberry.argument(
                                 description=REVISION)] = None) -> Course | None:
        me = _author(info, tenant)
        return _written(info, await _service(info).archive(
            tenant, id, revision=at_least(revision, 0, "revision"), by=me))

    @field("puts an archived course back in the catalogue (as `POST …/courses/{course}/"
           "unarchive`)")
    async def unarchive_course(self, info: Info, tenant: Slug, id: Slug,
                               revision: Annotated[int | None, strawberry.argument(
                                   description=REVISION)] = None) -> Course | None:
        me = _author(info, tenant)
        return _written(info, await _service(info).archive(
            tenant, id, False, revision=at_least(revision, 0, "revision"), by=me))

    @field("makes a course's draft equal to published version `version` and publishes it as a "
           "new version (as `POST …/courses/{course}/rollback`): a draft holding changes not "
           "published yet is refused (409 `unpublished_changes`) unless `discardDraft`")
    async def rollback_course(
            self, info: Info, tenant: Slug, id: Slug,
            version: Annotated[int, strawberry.argument(
                description="the published version to restore")],
            discard_draft: Annotated[bool, strawberry.argument(description=(
                "roll back even though the draft holds changes not published yet, which are "
                "lost"))] = False,
            revision: Annotated[int | None, strawberry.argument(
                description=REVISION)] = None) -> Course | None:
        me = _author(info, tenant)
        body = validated(model.Rollback, {"version": version, "discard_draft": discard_draft})
        return _written(info, await _service(info).rollback(
            tenant, id, body.version, revision=at_least(revision, 0, "revision"),
            discard_draft=body.discard_draft, by=me))

    @field("adds a lesson to a course's draft (as `POST …/courses/{course}/lessons`); "
           "`unknown_concepts`, `unknown_module`, `unknown_media` when it names what the "
           "tenant lacks")
    async def add_lesson(self, info: Info, tenant: Slug, course_id: Slug,
                         lesson: LessonInput) -> Lesson | None:
        me = _author(info, tenant)
        new = validated(model.NewLesson, lesson, "lesson", as_written=("blocks",))
        added = await _service(info).add_lesson(tenant, course_id, new, by=me)
        _written_lessons(info)
        return Lesson.of(added, draft=True)

    @field("edits a lesson's draft (as `PATCH …/lessons/{lesson}`), against `version`: 409 "
           "`stale_version` when it is stale, 428 `version_required` when left out")
    async def edit_lesson(self, info: Info, tenant: Slug, id: str, edit: LessonEditInput,
                          version: Annotated[int | None, strawberry.argument(
                              description=LESSON_VERSION)] = None) -> Lesson | None:
        me = _author(info, tenant)
        lesson_id = sized(id, "id", LessonId)
        body = validated(model.LessonEdit, edit, "edit", as_written=("blocks",)).model_copy(
            update={"version": at_least(version, 1, "version")})
        try:
            edited = await _service(info).edit_lesson(tenant, lesson_id, body, by=me)
        except InvalidBody as exc:
            raise in_argument(exc, "edit", as_written=("blocks",)) from None
        _written_lessons(info)
        return Lesson.of(edited, draft=True)

    @field("deletes a lesson from its course's draft and from what learners see (as "
           "`DELETE …/lessons/{lesson}`); true when done")
    async def delete_lesson(self, info: Info, tenant: Slug, id: str,
                            version: Annotated[int | None, strawberry.argument(
                                description=LESSON_VERSION)] = None) -> bool | None:
        me = _author(info, tenant)
        lesson_id = sized(id, "id", LessonId)
        await _service(info).delete_lesson(tenant, lesson_id, version=at_least(
            version, 1, "version"), by=me)
        _written_lessons(info)
        return True

    @field("adds a concept to the tenant (as `POST …/concepts`): `concept_exists` when its id "
           "is taken")
    async def create_concept(self, info: Info, tenant: Slug,
                             concept: ConceptInput) -> Concept | None:
        _author(info, tenant)
        new = validated(model.NewConcept, concept, "concept")
        return Concept.of(await _service(info).add_concept(tenant, new))

    @field("renames a concept or changes its description (as `PATCH …/concepts/{concept}`); "
           "its id, which lessons name, stays")
    async def edit_concept(self, info: Info, tenant: Slug, id: Slug, edit: ConceptEditInput,
                           version: Annotated[int | None, strawberry.argument(description=(
                               "the concept's `version` the edit was made against (the HTTP "
                               "API's `If-Match`): 409 `stale_version` when it changed since; "
                               "without it, the last edit of a field wins"))] = None
                           ) -> Concept | None:
        _author(info, tenant)
        body = validated(model.ConceptEdit, edit, "edit")
        return Concept.of(await _service(info).edit_concept(
            tenant, id, body, version=at_least(version, 0, "version")))
