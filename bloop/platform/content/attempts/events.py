"""The event a graded quiz attempt publishes on `content.events`, keyed by the lesson.

It carries what learning needs to update the learner's mastery of each concept the lesson
teaches, and what analytics needs to chart scores; the answers themselves stay in content.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from bloop.platform.content.events import TOPIC
from bloop.platform.content.quiz import Outcome
from bloop.platform.kit.events.types import event_type
from bloop.platform.kit.times import EventTime


class QuestionGraded(BaseModel):
    question_id: str
    correct: bool
    outcome: Outcome
    score: float
    max_score: float


@event_type("bloop.content.quiz.attempt.graded", 1, TOPIC)
class QuizAttemptGraded(BaseModel):
    attempt_id: str
    user_id: str
    lesson_id: str
    lesson_version: int
    course_id: str
    quiz_id: str
    concepts: list[str]
    attempt_number: int
    score: float
    max_score: float
    questions: list[QuestionGraded]
    graded_at: EventTime
    previous_graded_at: EventTime | None = Field(default=None, description=(
        "when the learner's previous attempt at the quiz that answered a question was graded; "
        "null for their first (blank ones passed over), and in events from before this field"))
