"""Bayesian Knowledge Tracing: the update after each graded answer, and the fit of a concept's
parameters to accumulated answers (expectation-maximisation over a two-state hidden Markov model
without forgetting, the model pyBKT fits by default; `tests/unit/learning/test_bkt.py` checks the
two agree on the same data)."""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from bloop.platform.learning.model import MASTERED, MIN_NOISE, BktParams

EPS = 1e-9


def update(p_known: float, correct: bool, params: BktParams) -> float:
    """The probability the learner knows the concept after one more answer."""
    if correct:
        right = p_known * (1 - params.slip)
        posterior = right / (right + (1 - p_known) * params.guess + EPS)
    else:
        wrong = p_known * params.slip
        posterior = wrong / (wrong + (1 - p_known) * (1 - params.guess) + EPS)
    return min(1.0, posterior + (1 - posterior) * params.learn)


def replay(answers: Iterable[int], params: BktParams) -> float:
    """The probability of knowing after `answers` (1 right, 0 wrong), in order, from the prior."""
    p = params.prior
    for a in answers:
        p = update(p, bool(a), params)
    return p


def sound(params: BktParams) -> bool:
    """Whether a fitted model can be kept: a learner who knows the concept answers right more
    often than one who does not, and one right answer from the prior is not yet mastery (a fit
    that says otherwise lets a single lucky guess master the concept)."""
    return 1 - params.slip > params.guess and update(params.prior, True, params) < MASTERED


@dataclass(frozen=True)
class Fit:
    params: BktParams
    log_likelihood: float
    iterations: int


def log_likelihood(sequences: Sequence[Sequence[int]], params: BktParams) -> float:
    total = 0.0
    for seq in sequences:
        for _, scale in _forward(seq, params):
            total += math.log(scale)
    return total


def _emission(known: bool, answer: int, p: BktParams) -> float:
    if known:
        return 1 - p.slip if answer else p.slip
    return p.guess if answer else 1 - p.guess


def _forward(seq: Sequence[int], p: BktParams) -> list[tuple[float, float]]:
    """Scaled forward probabilities: per step, (P(known | answers so far), scale)."""
    out: list[tuple[float, float]] = []
    known = p.prior
    for t, a in enumerate(seq):
        if t:
            known = known + (1 - known) * p.learn
        k = known * _emission(True, a, p)
        u = (1 - known) * _emission(False, a, p)
        scale = k + u + EPS
        known = k / scale
        out.append((known, scale))
    return out


def _em_step(sequences: Sequence[Sequence[int]], p: BktParams) -> tuple[BktParams, float]:
    prior_sum = 0.0
    learn_num = learn_den = 0.0
    guess_num = guess_den = 0.0
    slip_num = slip_den = 0.0
    ll = 0.0
    for seq in sequences:
        if not seq:
            continue
        fwd = _forward(seq, p)
        ll += sum(math.log(s) for _, s in fwd)
        n = len(seq)
        # Backward pass over the smoothed probability of being in "known" at each step.
        gamma = [0.0] * n
        gamma[-1] = fwd[-1][0]
        for t in range(n - 2, -1, -1):
            filt = fwd[t][0]
            pred_known = filt + (1 - filt) * p.learn  # P(known at t+1 | answers up to t)
            # Unknown at t: unknown at t+1 (only unknown precedes it), or the expected share of
            # known at t+1 that came from unknown at t (a learning transition).
            moved = (1 - filt) * p.learn / max(pred_known, EPS) * gamma[t + 1]
            unknown_t = (1 - gamma[t + 1]) + moved
            gamma[t] = 1 - unknown_t
            learn_num += moved
            learn_den += unknown_t
        prior_sum += gamma[0]
        for t, a in enumerate(seq):
            g = gamma[t]
            guess_den += 1 - g
            slip_den += g
            if a:
                guess_num += 1 - g
            else:
                slip_num += g
    count = sum(1 for s in sequences if s)

    def ratio(num: float, den: float, fallback: float) -> float:
        return num / den if den > EPS else fallback

    fitted = BktParams(
        prior=_clip(ratio(prior_sum, count, p.prior), 0.001, 0.999),
        learn=_clip(ratio(learn_num, learn_den, p.learn), 0.001, 0.999),
        # A guess or slip fitted to nothing would make one answer settle mastery for good.
        guess=_clip(ratio(guess_num, guess_den, p.guess), MIN_NOISE, 0.5),
        slip=_clip(ratio(slip_num, slip_den, p.slip), MIN_NOISE, 0.5),
    )
    return fitted, ll


def _clip(x: float, lo: float, hi: float) -> float:
    return min(hi, max(lo, x))


def fit(sequences: Sequence[Sequence[int]], *, restarts: int = 5, max_iterations: int = 100,
        tolerance: float = 1e-4, seed: int = 0) -> Fit:
    """Expectation-maximisation from `restarts` random starting points (the first one the
    defaults); the fit with the highest likelihood wins. Guess and slip stay at or below 0.5,
    so "known" keeps meaning more right answers than "unknown"."""
    rng = random.Random(seed)
    observations = sum(len(s) for s in sequences)
    best: Fit | None = None
    for r in range(restarts):
        p = BktParams() if r == 0 else BktParams(
            prior=rng.uniform(0.05, 0.9), learn=rng.uniform(0.02, 0.5),
            guess=rng.uniform(0.02, 0.45), slip=rng.uniform(0.02, 0.45))
        previous = -math.inf
        iterations = 0
        for iterations in range(1, max_iterations + 1):  # noqa: B007  (read after the loop)
            p, ll = _em_step(sequences, p)
            if ll - previous < tolerance:
                break
            previous = ll
        ll = log_likelihood(sequences, p)
        if best is None or ll > best.log_likelihood:
            best = Fit(p, ll, iterations)
    assert best is not None
    return Fit(best.params.model_copy(update={"fitted_on": observations}), best.log_likelihood,
               best.iterations)
