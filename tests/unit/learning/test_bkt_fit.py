"""The fit of a concept's BKT parameters to its learners' answers, automatic or asked for: each
learner's first answers count, a handful of learners moves nothing, and a fit under which one
right answer is mastery is refused."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bloop.platform.kit.errors import Problem
from bloop.platform.learning import bkt
from bloop.platform.learning.model import MASTERED, BktParams, NewConcept
from bloop.platform.learning.service import (
    FIT_ANSWERS_PER_LEARNER,
    MIN_FIT_LEARNERS,
    MIN_FIT_OBSERVATIONS,
    LearningService,
)
from tests.unit.learning import embedded_learning
from tests.unit.learning.test_bkt import generate

T = "acme"
START = datetime(2025, 3, 1, 9, tzinfo=UTC)


@pytest.fixture
async def service(tmp_path: Path) -> AsyncIterator[LearningService]:
    async with embedded_learning(tmp_path) as service:
        await service.add_concept(T, NewConcept(id="numbers", name="Numbers"))
        yield service


class Clock:
    """Grading times a minute apart, in the order the attempts are made."""

    def __init__(self) -> None:
        self.at = START
        self.count = 0

    def tick(self) -> tuple[str, datetime]:
        self.count += 1
        self.at += timedelta(minutes=1)
        return f"attempt-{self.count}", self.at


async def answer(service: LearningService, clock: Clock, learner: str,
                 answers: Sequence[int]) -> float:
    """One graded attempt of `learner` on `numbers`; their p_known after it."""
    attempt, at = clock.tick()
    changed = await service.apply_attempt(T, learner, attempt, ["numbers"],
                                          [bool(a) for a in answers], at)
    return changed[0].p_known


async def bkt_of(service: LearningService) -> BktParams:
    return (await service.concept(T, "numbers")).bkt


async def test_one_learner_retaking_a_quiz_moves_nothing(service: LearningService) -> None:
    """The audit: one learner answers a 3-question quiz at random 36 times (108 answers). The
    fit of those (prior 0.999, guess 0.5, slip 0.45) made a fresh learner's one right answer
    mastery; counted up to the cap, they are one learner's 20 answers, too few to fit."""
    clock = Clock()
    rng = random.Random(7)
    for _ in range(36):
        await answer(service, clock, "retaker", [int(rng.random() < 0.5) for _ in range(3)])
    assert await bkt_of(service) == BktParams()

    p_known = await answer(service, clock, "fresh", [1])
    assert p_known == pytest.approx(0.6)
    assert p_known < MASTERED

    # An educator's fit counts the same: one learner's first 20 answers.
    with pytest.raises(Problem) as refused:
        await service.fit_bkt(T, "numbers")
    assert refused.value.code == "too_few_answers"
    assert refused.value.extra == {"answers": FIT_ANSWERS_PER_LEARNER + 1,
                                   "needed": MIN_FIT_OBSERVATIONS, "learners": 2,
                                   "learners_needed": MIN_FIT_LEARNERS}
    assert await bkt_of(service) == BktParams()


async def test_many_learners_still_fit_the_concept(service: LearningService) -> None:
    """80 learners answer 30 questions each (two attempts of 15), made by BKT with known
    parameters. Each counts with their first 20: the refits come at the tenth learner's first
    attempt (195 answers), then at 395, 795 and 1595, and recover the parameters; an
    educator's fit then has all 1600."""
    truth = BktParams(prior=0.3, learn=0.2, guess=0.15, slip=0.1)
    sequences = generate(truth, 80, 30, seed=4)
    clock = Clock()
    for n, seq in enumerate(sequences):
        await answer(service, clock, f"learner-{n}", seq[:15])
        await answer(service, clock, f"learner-{n}", seq[15:])
        if n == MIN_FIT_LEARNERS - 2:
            assert await bkt_of(service) == BktParams()  # 180 answers, but from nine learners
    auto = await bkt_of(service)
    assert auto.fitted_on == 79 * FIT_ANSWERS_PER_LEARNER + 15
    for name in ("prior", "learn", "guess", "slip"):
        assert getattr(auto, name) == pytest.approx(getattr(truth, name), abs=0.07), name

    fitted = (await service.fit_bkt(T, "numbers")).bkt
    assert fitted.fitted_on == 80 * FIT_ANSWERS_PER_LEARNER
    expected = bkt.fit([s[:FIT_ANSWERS_PER_LEARNER] for s in sequences]).params
    for name in ("prior", "learn", "guess", "slip"):
        assert getattr(fitted, name) == pytest.approx(getattr(expected, name), abs=1e-6), name
    assert bkt.sound(fitted)


async def test_a_fit_under_which_one_right_answer_is_mastery_is_refused(
        service: LearningService) -> None:
    """Twelve learners: half answer everything wrong, half at random. The likeliest model
    says a right answer comes only from a learner who knows the concept (guess 0.01) and
    they answer at random (slip 0.45), so one right answer would be mastery (0.98). Neither
    the automatic refits (at 100, 110 and 120 answers) nor an educator's fit keep it."""
    rng = random.Random(1)
    clock = Clock()
    data = [[0] * 10 if n % 2 == 0 else [int(rng.random() < 0.5) for _ in range(10)]
            for n in range(12)]
    for n, seq in enumerate(data):
        await answer(service, clock, f"learner-{n}", seq)
    assert not bkt.sound(bkt.fit(data).params)
    assert await bkt_of(service) == BktParams()
    with pytest.raises(Problem) as refused:
        await service.fit_bkt(T, "numbers")
    assert refused.value.code == "degenerate_fit"
    assert await bkt_of(service) == BktParams()
    assert await answer(service, clock, "fresh", [1]) < MASTERED


async def test_a_dropped_fit_is_tried_again_only_once_the_answers_double(
        service: LearningService, monkeypatch: pytest.MonkeyPatch) -> None:
    """A dropped fit left the last kept one's count as the mark: every learner passing ten
    more answers fitted again (a fit of 5,000 learners takes most of a minute), in the
    consumer that records attempts."""
    fits = 0
    real_fit = bkt.fit

    def counted(sequences: Sequence[Sequence[int]]) -> bkt.Fit:
        nonlocal fits
        fits += 1
        return real_fit(sequences)

    monkeypatch.setattr(bkt, "fit", counted)
    clock = Clock()
    for n in range(39):  # everyone right: a fit that says one right answer is mastery
        await answer(service, clock, f"learner-{n}", [1] * 10)
    assert await bkt_of(service) == BktParams()
    # tried at 100 answers and again at 200 (twice those of the dropped fit), not at each ten
    assert fits == 2
