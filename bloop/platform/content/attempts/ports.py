"""What quiz attempts need: a store for the attempts, and the published quizzes to grade them
against. Every read and write names its tenant."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from bloop.platform.content.attempts.model import Attempt, PublishedQuiz
from bloop.platform.kit.events.envelope import Envelope
from bloop.platform.kit.events.outbox import OutboxStore


class Duplicate(Exception):
    """The learner already has an attempt with this number at this quiz."""


class AttemptStore(Protocol):
    @property
    def outbox(self) -> OutboxStore:
        """Where the events written beside each attempt wait for the relay."""

    async def setup(self) -> None:
        """Creates tables or indexes; safe to call on every start."""

    async def add(self, attempt: Attempt, events: Sequence[Envelope]) -> None:
        """Stores the attempt and its events atomically; `Duplicate` when the learner already
        has an attempt with its number at its quiz (nothing is written then)."""

    async def last_number(self, tenant: str, learner: str, lesson_id: str, quiz_id: str) -> int:
        """The number of the learner's latest attempt at the quiz; 0 when there is none."""

    async def of_learner(self, tenant: str, learner: str, *, lesson_id: str | None = None,
                         quiz_id: str | None = None, before: str | None = None,
                         limit: int | None = 100) -> list[Attempt]:
        """The learner's attempts (at one lesson, or one quiz of it), newest first, those whose
        `sort_key` is below `before` when given; every one when `limit` is None."""

    async def of_lesson(self, tenant: str, lesson_id: str, *, quiz_id: str | None = None,
                        learner: str | None = None, before: str | None = None,
                        limit: int = 100) -> list[Attempt]:
        """Every learner's attempts at the lesson (or one quiz of it), newest first, those
        whose `sort_key` is below `before` when given."""

    async def erase_learner(self, tenant: str, learner: str) -> int:
        """Deletes every attempt of the learner in the tenant; returns how many there were."""


class QuizSource(Protocol):
    async def published_quiz(self, tenant: str, lesson_id: str, quiz_id: str) -> PublishedQuiz:
        """The quiz as learners see it published, with its answers; `NotFound` when the lesson
        is not published in the tenant or has no quiz `quiz_id`."""
