"""What quiz attempts need: a store for the attempts, and the published quizzes to grade them
against. Every read and write names its tenant."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Protocol

from bloop.platform.content.attempts.model import Attempt, PublishedQuiz
from bloop.platform.kit.events.envelope import Envelope
from bloop.platform.kit.events.outbox import OutboxStore
from bloop.platform.kit.pagination import Slice

Numbered = Callable[[int, datetime | None], tuple[Attempt, Sequence[Envelope]]]
"""Makes the attempt that takes the number given, and the events to store beside it, knowing
when the learner's latest earlier attempt at the quiz that answered a question was graded (None
for their first, or when every earlier one was blank)."""


class AttemptStore(Protocol):
    @property
    def outbox(self) -> OutboxStore:
        """Where the events written beside each attempt wait for the relay."""

    async def setup(self) -> None:
        """Creates tables or indexes; safe to call on every start."""

    async def add(self, tenant: str, learner: str, lesson_id: str, quiz_id: str,
                  make: Numbered) -> Attempt:
        """Gives the learner's next attempt at the quiz its number (one past their latest; 1
        for the first), stores the attempt `make` builds with it and its events atomically, and
        returns the attempt. `make` also gets the `graded_at` of the learner's latest attempt
        at the quiz numbered below it that answered at least one question (`Attempt.answered`;
        blank ones are passed over; None when there is none), read in one indexed lookup.
        Attempts added at once all get numbers of their own (and may be given the same earlier
        attempt)."""

    async def of_learner(self, tenant: str, learner: str, *, lesson_id: str | None = None,
                         quiz_id: str | None = None, after: str | None = None,
                         limit: int | None = 100) -> Slice[Attempt]:
        """The learner's attempts (at one lesson, or one quiz of it), newest first, from the
        cursor `after` (a slice's `next`) when given; every one when `limit` is None."""

    async def of_lesson(self, tenant: str, lesson_id: str, *, quiz_id: str | None = None,
                        learner: str | None = None, after: str | None = None,
                        limit: int = 100) -> Slice[Attempt]:
        """Every learner's attempts at the lesson (or one quiz of it), newest first, from the
        cursor `after` (a slice's `next`) when given."""

    async def erase_learner(self, tenant: str, learner: str) -> int:
        """Deletes every attempt of the learner in the tenant (their numbering starts again at
        1); returns how many there were."""


class QuizSource(Protocol):
    async def published_quiz(self, tenant: str, lesson_id: str, quiz_id: str) -> PublishedQuiz:
        """The quiz as learners see it published, with its answers; `NotFound` when the lesson
        is not published in the tenant or has no quiz `quiz_id`."""

    async def lesson_stored(self, tenant: str, lesson_id: str) -> bool:
        """Whether the tenant ever had the lesson (deleted since or not)."""
