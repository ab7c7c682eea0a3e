"""A quiz attempt: what a learner answered, and how it was graded. No I/O here."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated

from pydantic import (
    ConfigDict,
    Discriminator,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StringConstraints,
    Tag,
)

from bloop.platform.content.model import now
from bloop.platform.content.quiz import (
    MAX_CHOICES,
    MAX_QUESTIONS,
    Grade,
    ItemId,
    QuestionResult,
    QuizBlock,
)
from bloop.platform.kit.read_back import Tolerant
from bloop.platform.kit.text import RawLines

AnswerText = RawLines[Annotated[str, StringConstraints(max_length=500)]]
"""Text as typed: a line break or tab pasted with it is whitespace, which grading folds."""


def _answer_kind(value: object) -> str | None:
    match value:
        case bool():
            return "bool"
        case int() | float():
            return "number"
        case str():
            return "text"
        case list():
            return "ids"
        case dict():
            return "pairs"
    return None


AnswerValue = Annotated[
    Annotated[StrictBool, Tag("bool")]
    | Annotated[StrictInt | StrictFloat, Tag("number")]
    | Annotated[AnswerText, Tag("text")]
    | Annotated[list[Annotated[str, StringConstraints(max_length=64)]],
                Field(max_length=MAX_CHOICES), Tag("ids")]
    | Annotated[dict[str, Annotated[str, StringConstraints(max_length=64)]],
                Field(max_length=MAX_CHOICES), Tag("pairs")],
    # Checked as the kind of JSON value sent, so a refusal names what is wrong with it, not
    # with the first kind tried (a long text was refused as "not a valid boolean").
    Discriminator(_answer_kind, custom_error_type="invalid_answer", custom_error_message=(
        "an answer is true or false, a number, text, a list of ids or an object of ids"))]
"""One answer: an option id or text (str), option or item ids (list), true/false (bool), a
number, or left ids mapped to right ids (matching)."""
# pydantic documents the key pattern as `patternProperties`, which leaves other keys free.
Answers = Annotated[dict[ItemId, AnswerValue], Field(
    max_length=MAX_QUESTIONS, json_schema_extra={"additionalProperties": False})]


class _Frozen(Tolerant):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AttemptSubmission(_Frozen):
    """A learner's answers, by question id. Questions left out score nothing."""

    answers: Answers
    lesson_version: StrictInt | None = Field(
        default=None, ge=1, description="the lesson version the learner read (or `If-Match`): "
        "when given, the attempt is graded only while it is the one published")


class PublishedQuiz(_Frozen):
    """A quiz of a published lesson, with its answers (for grading only), and what the lesson
    teaches."""

    tenant: str
    lesson_id: str
    lesson_version: int
    lesson_etag: str | None = Field(default=None, description="the ETag learners get with "
                                                              "the lesson")
    course_id: str
    teaches: list[str]
    quiz: QuizBlock


class Attempt(_Frozen):
    id: str
    tenant: str
    learner: str = Field(description="the user id of the learner who answered")
    lesson_id: str
    lesson_version: int
    quiz_id: str
    number: int = Field(ge=1, description="1 for the learner's first attempt at this quiz")
    answers: Answers
    score: float
    max_score: float
    questions: list[QuestionResult]
    graded_at: datetime

    @classmethod
    def graded(cls, quiz: PublishedQuiz, learner: str, answers: dict[str, AnswerValue],
               grade: Grade, number: int, at: datetime | None = None) -> Attempt:
        return cls(id=uuid.uuid4().hex, tenant=quiz.tenant, learner=learner,
                   lesson_id=quiz.lesson_id, lesson_version=quiz.lesson_version,
                   quiz_id=quiz.quiz.id, number=number, answers=answers, score=grade.score,
                   max_score=grade.max_score, questions=grade.questions, graded_at=at or now())

    @property
    def answered(self) -> int:
        """How many questions the learner answered: an attempt answering none (sent blank) is
        no attempt at the quiz for the retry rule."""
        return sum(q.outcome != "unanswered" for q in self.questions)

    @property
    def sort_key(self) -> str:
        """Orders attempts by the time they were graded, then by number (a learner's attempts
        at one quiz within one millisecond stay in order), then by id, as plain text."""
        graded = self.graded_at.astimezone(UTC).isoformat(timespec="microseconds")
        return f"{graded}|{self.number:09d}|{self.id}"
