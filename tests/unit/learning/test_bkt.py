"""Bayesian Knowledge Tracing: the update rule, and the EM fit checked against pyBKT (the
reference implementation, a test-only dependency) on the same generated answers."""

from __future__ import annotations

import random
from typing import Any

import pytest
from pydantic import ValidationError

from bloop.platform.kit.read_back import STORED
from bloop.platform.learning import bkt
from bloop.platform.learning.model import MASTERED, MIN_NOISE, BktParams


def generate(truth: BktParams, learners: int, answers: int, seed: int) -> list[list[int]]:
    rng = random.Random(seed)
    out = []
    for _ in range(learners):
        known = rng.random() < truth.prior
        seq = []
        for _ in range(answers):
            seq.append(int(rng.random() < ((1 - truth.slip) if known else truth.guess)))
            if not known and rng.random() < truth.learn:
                known = True
        out.append(seq)
    return out


def test_a_right_answer_raises_and_a_wrong_one_lowers_the_estimate() -> None:
    p = BktParams(prior=0.3, learn=0.1, guess=0.2, slip=0.1)
    right = bkt.update(0.3, True, p)
    wrong = bkt.update(0.3, False, p)
    # By hand: 0.3·0.9 / (0.3·0.9 + 0.7·0.2) = 0.6585…, then + (1 - that)·0.1.
    assert right == pytest.approx(0.6585366 + (1 - 0.6585366) * 0.1, abs=1e-6)
    assert wrong == pytest.approx(0.03 / (0.03 + 0.7 * 0.8) * 0.9 + 0.1, abs=1e-6)
    assert wrong < 0.3 < right


def test_steady_right_answers_reach_mastery() -> None:
    p = BktParams()
    history: list[int] = []
    while bkt.replay(history, p) < MASTERED:
        history.append(1)
    assert 2 <= len(history) <= 6
    assert bkt.replay([0] * 10, p) < 0.5


def test_the_fit_recovers_the_parameters_that_made_the_data() -> None:
    truth = BktParams(prior=0.3, learn=0.2, guess=0.15, slip=0.1)
    fitted = bkt.fit(generate(truth, 400, 10, seed=3)).params
    assert fitted.prior == pytest.approx(truth.prior, abs=0.06)
    assert fitted.learn == pytest.approx(truth.learn, abs=0.06)
    assert fitted.guess == pytest.approx(truth.guess, abs=0.06)
    assert fitted.slip == pytest.approx(truth.slip, abs=0.04)
    assert fitted.fitted_on == 4000


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize(("truth", "seed"), [
    (BktParams(prior=0.3, learn=0.2, guess=0.15, slip=0.1), 7),
    (BktParams(prior=0.1, learn=0.35, guess=0.25, slip=0.05), 11),
    (BktParams(prior=0.6, learn=0.05, guess=0.3, slip=0.2), 13),
])
def test_the_fit_matches_pybkt_on_the_same_data(truth: BktParams, seed: int,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    import numpy as np
    import pandas as pd  # type: ignore[import-untyped]
    import pyBKT.fit.EM_fit as em  # type: ignore[import-untyped]
    from pyBKT.models import Model  # type: ignore[import-untyped]

    # pyBKT 1.4.3 stores a one-element array where NumPy 2 wants a scalar; hand it the scalar.
    e_step = em.run

    def run(*args: Any, **kwargs: Any) -> Any:
        result = e_step(*args, **kwargs)
        result["total_loglike"] = float(np.asarray(result["total_loglike"]).sum())
        return result

    monkeypatch.setattr(em, "run", run)

    sequences = generate(truth, 250, 10, seed)
    rows = [{"order_id": i * 100 + j, "user_id": f"u{i}", "skill_name": "s", "correct": a}
            for i, seq in enumerate(sequences) for j, a in enumerate(seq)]
    model = Model(seed=seed, num_fits=3)
    model.fit(data=pd.DataFrame(rows))
    found = {row.param: row.value for row in model.params().reset_index().itertuples()}
    reference = BktParams(prior=found["prior"], learn=found["learns"],
                          guess=min(found["guesses"], 0.5), slip=min(found["slips"], 0.5))
    ours = bkt.fit(sequences)
    # The same model, so the same likelihood surface: our optimum is at least as likely as
    # pyBKT's, and the parameters agree.
    assert ours.log_likelihood >= bkt.log_likelihood(sequences, reference) - 0.5
    for name in ("prior", "learn", "guess", "slip"):
        assert getattr(ours.params, name) == pytest.approx(getattr(reference, name), abs=0.03), name


def test_a_fit_of_clean_data_keeps_some_noise() -> None:
    """Wrong until learnt, then right, every time: the likeliest guess and slip are 0, after
    which one right answer settles mastery for good."""
    clean = [[0] * k + [1] * (10 - k) for k in range(1, 9) for _ in range(20)]
    fitted = bkt.fit(clean).params
    assert (fitted.guess, fitted.slip) >= (MIN_NOISE, MIN_NOISE)
    assert bkt.replay([1], fitted) < 0.95


def test_a_fit_of_nothing_keeps_the_defaults() -> None:
    fitted = bkt.fit([[], []], restarts=1)
    assert fitted.params.model_copy(update={"fitted_on": 0}) == BktParams()


def test_a_guess_or_slip_below_the_floor_stored_before_it_is_read_as_the_floor() -> None:
    stored = BktParams.model_validate({"prior": 0.2, "learn": 0.15, "guess": 0.0, "slip": 0.0},
                                      context=STORED)
    assert (stored.guess, stored.slip) == (MIN_NOISE, MIN_NOISE)
    assert bkt.replay([1, 0, 0, 0, 0, 0, 0], stored) < 0.95
    with pytest.raises(ValidationError):
        BktParams(guess=0.0)


@pytest.mark.parametrize(("params", "sound"), [
    (BktParams(), True),
    (BktParams(prior=0.3, learn=0.2, guess=0.15, slip=0.1), True),
    # The audit's fit of one learner's random answers: one right answer, 0.985.
    (BktParams(prior=0.569, learn=0.001, guess=0.01, slip=0.49), False),
    # Unlikely to know beforehand, but sure to learn at the first answer.
    (BktParams(prior=0.001, learn=0.999, guess=0.01, slip=0.495), False),
    # Known already: even a wrong answer is mastery.
    (BktParams(prior=0.999, learn=0.02, guess=0.5, slip=0.45), False),
    # Right answers no likelier from a learner who knows.
    (BktParams(prior=0.2, learn=0.01, guess=0.5, slip=0.5), False),
])
def test_a_model_is_sound_when_one_right_answer_is_not_mastery(params: BktParams,
                                                               sound: bool) -> None:
    assert bkt.sound(params) is sound
    if not sound and 1 - params.slip > params.guess:
        assert bkt.update(params.prior, True, params) >= MASTERED
