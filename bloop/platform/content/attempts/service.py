"""Quiz attempts' use cases: grade a learner's answers against the published quiz, store the
attempt with its event, list attempts, export and erase a learner's attempts."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from bloop.platform.content.attempts.events import QuestionGraded, QuizAttemptGraded
from bloop.platform.content.attempts.model import AnswerValue, Attempt, PublishedQuiz
from bloop.platform.content.attempts.ports import AttemptStore, QuizSource
from bloop.platform.content.quiz import AnswerError, LearnerQuiz, find_quiz, grade, learner_quiz
from bloop.platform.content.service import ContentService, learner_json
from bloop.platform.kit.errors import Conflict, NotFound, Problem
from bloop.platform.kit.events.envelope import Envelope
from bloop.platform.kit.events.types import type_of
from bloop.platform.kit.pagination import Slice


class ContentQuizzes:
    """The published quizzes, read through content's own service."""

    def __init__(self, content: ContentService) -> None:
        self.content = content

    async def published_quiz(self, tenant: str, lesson_id: str, quiz_id: str) -> PublishedQuiz:
        lesson = await self.content.lesson(tenant, lesson_id, drafts=False)
        quiz = find_quiz(lesson.blocks, quiz_id)
        if quiz is None:
            raise NotFound(f"no quiz {quiz_id!r} in lesson {lesson_id!r}")
        return PublishedQuiz(tenant=tenant, lesson_id=lesson.id, lesson_version=lesson.version,
                             lesson_etag=learner_json(lesson).etag, course_id=lesson.course,
                             teaches=lesson.teaches, quiz=quiz)

    async def lesson_stored(self, tenant: str, lesson_id: str) -> bool:
        return await self.content.stored_any(tenant, [lesson_id])


def check_read(quiz: PublishedQuiz, version: int | None, etag: str | None) -> None:
    """That the lesson the learner read, named by its `version` or its `etag`, is the one
    published: 409 `stale_version` naming the current version when it is not, 422
    `version_mismatch` when the two name different versions."""
    current = quiz.lesson_version
    if etag is not None and etag == quiz.lesson_etag:
        if version is not None and version != current:
            raise Problem(f"If-Match names lesson_version {current} and the body "
                          f"lesson_version {version}", status=422, code="version_mismatch")
        return
    # An ETag that is not the published lesson's is that of an older version (or rendering).
    if etag is None and version in (None, current):
        return
    raise Conflict(f"the lesson {quiz.lesson_id!r} was published anew since that version; "
                   "read it again and answer its quiz again", code="stale_version",
                   extra={"current_version": current})


def graded_event(attempt: Attempt, quiz: PublishedQuiz,
                 previous_graded_at: datetime | None = None) -> Envelope:
    return type_of(QuizAttemptGraded).envelope(QuizAttemptGraded(
        attempt_id=attempt.id, user_id=attempt.learner, lesson_id=attempt.lesson_id,
        lesson_version=attempt.lesson_version, course_id=quiz.course_id, quiz_id=attempt.quiz_id,
        concepts=quiz.teaches, attempt_number=attempt.number, score=attempt.score,
        max_score=attempt.max_score,
        questions=[QuestionGraded(question_id=q.question_id, correct=q.correct,
                                  outcome=q.outcome, score=q.score, max_score=q.max_score)
                   for q in attempt.questions],
        graded_at=attempt.graded_at, previous_graded_at=previous_graded_at,
    ), tenant=attempt.tenant, subject=attempt.lesson_id, time=attempt.graded_at)


class AttemptService:
    def __init__(self, store: AttemptStore, quizzes: QuizSource,
                 on_write: Callable[[], None] = lambda: None) -> None:
        """`on_write` runs after each stored attempt (the outbox relay's `wake`)."""
        self.store = store
        self.quizzes = quizzes
        self._on_write = on_write

    async def quiz(self, tenant: str, lesson_id: str, quiz_id: str) -> LearnerQuiz:
        """The published quiz as a learner sees it: without its answers."""
        return learner_quiz((await self.quizzes.published_quiz(tenant, lesson_id, quiz_id)).quiz)

    async def submit(self, tenant: str, learner: str, lesson_id: str, quiz_id: str,
                     answers: dict[str, AnswerValue], *, lesson_version: int | None = None,
                     lesson_etag: str | None = None) -> Attempt:
        """Grades `answers` against the published quiz and stores the attempt, numbered by the
        store after the learner's earlier ones, with its `quiz.attempt.graded` event (which says
        when the learner's previous attempt at the quiz was graded). 404 when
        the lesson is not published or has no such quiz, 422 (naming the question) when an
        answer does not fit its question. The lesson the learner read, when named by its
        `lesson_version` or `lesson_etag`, must be the one published (`check_read`); nothing
        is stored otherwise."""
        quiz = await self.quizzes.published_quiz(tenant, lesson_id, quiz_id)
        check_read(quiz, lesson_version, lesson_etag)
        try:
            result = grade(quiz.quiz, answers)
        except AnswerError as exc:
            raise Problem(str(exc), status=422, code="invalid_answer",
                          extra={"question": exc.question}) from None

        def numbered(number: int, previous: datetime | None) -> tuple[Attempt, list[Envelope]]:
            attempt = Attempt.graded(quiz, learner, answers, result, number)
            return attempt, [graded_event(attempt, quiz, previous)]

        attempt = await self.store.add(quiz.tenant, learner, quiz.lesson_id, quiz.quiz.id,
                                       numbered)
        self._on_write()
        return attempt

    async def of_learner(self, tenant: str, learner: str, lesson_id: str,
                         quiz_id: str | None = None, *, after: str | None = None,
                         limit: int = 100) -> Slice[Attempt]:
        """The learner's attempts at the lesson (or one quiz of it); 404 when the tenant never
        had the lesson, as for its staff."""
        if not await self.quizzes.lesson_stored(tenant, lesson_id):
            raise NotFound(f"no lesson {lesson_id!r} in tenant {tenant!r}")
        return await self.store.of_learner(tenant, learner, lesson_id=lesson_id, quiz_id=quiz_id,
                                           after=after, limit=limit)

    async def of_lesson(self, tenant: str, lesson_id: str, *, quiz_id: str | None = None,
                        learner: str | None = None, after: str | None = None,
                        limit: int = 100) -> Slice[Attempt]:
        """Every learner's attempts at the lesson; 404 when the tenant never had it (a lesson
        deleted since keeps its attempts, for its staff to read)."""
        if not await self.quizzes.lesson_stored(tenant, lesson_id):
            raise NotFound(f"no lesson {lesson_id!r} in tenant {tenant!r}")
        return await self.store.of_lesson(tenant, lesson_id, quiz_id=quiz_id, learner=learner,
                                          after=after, limit=limit)

    async def personal_data(self, tenant: str, user_id: str) -> dict[str, object]:
        """Every quiz attempt of the user, for their data export."""
        attempts = await self.store.of_learner(tenant, user_id, limit=None)
        return {"quiz_attempts": [a.model_dump(mode="json") for a in attempts.items]}

    async def erase_learner(self, tenant: str, user_id: str) -> int:
        """Deletes the user's attempts (idempotent); returns how many were deleted."""
        return await self.store.erase_learner(tenant, user_id)
