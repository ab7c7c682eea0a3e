"""Spaced review with FSRS (the `fsrs` package): scheduling each review, and fitting a learner's
own FSRS parameters to their review history.

The fit minimises the same loss as `fsrs.Optimizer` (the mean binary cross-entropy between the
retrievability FSRS predicts at each review a day or more after the previous one and whether the
card was recalled), replaying the history through `fsrs.Scheduler` itself. `fsrs.Optimizer`
needs PyTorch; this fit searches the parameters coordinate by coordinate within FSRS's bounds
instead, which needs nothing more and is quick for one learner's few hundred reviews.
"""

from __future__ import annotations

import math
import uuid
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime

from fsrs import Card as FsrsCard
from fsrs import Rating, Scheduler
from fsrs.scheduler import DEFAULT_PARAMETERS, LOWER_BOUNDS_PARAMETERS, UPPER_BOUNDS_PARAMETERS

from bloop.platform.learning.model import CardState, ReviewLog, ReviewResult, SchedulerParams

MIN_REVIEWS_TO_OPTIMISE = 100
"""Reviews a learner needs before their own parameters are fitted."""

History = Sequence[tuple[datetime, int]]
"""One card's reviews in time order: (when, rating 1 to 4)."""


class BadRating(ValueError):
    pass


def scheduler(parameters: Sequence[float] | None = None) -> Scheduler:
    """Without fuzz, so an interval follows from the history alone."""
    return Scheduler(parameters=tuple(parameters or DEFAULT_PARAMETERS), enable_fuzzing=False)


def new_state(card_id: str, concept: str, at: datetime) -> CardState:
    """A card joining a learner's deck: due at once."""
    fsrs_card = FsrsCard(card_id=0, due=at)
    return CardState(card_id=card_id, concept=concept, fsrs=dict(fsrs_card.to_dict()), due=at)


def review(state: CardState, rating: int, at: datetime, parameters: Sequence[float] | None,
           duration_ms: int | None = None) -> tuple[CardState, ReviewLog, ReviewResult]:
    """Schedules the card after a review rated `rating` (1 again … 4 easy) at `at`. A card
    reviewed before it is due is scheduled from the time actually elapsed."""
    if rating not in (1, 2, 3, 4):
        raise BadRating(f"a rating is 1 (again), 2 (hard), 3 (good) or 4 (easy), not {rating}")
    card = FsrsCard.from_dict(state.fsrs)  # type: ignore[arg-type]
    reviewed, _ = scheduler(parameters).review_card(card, Rating(rating), review_datetime=at,
                                                    review_duration=duration_ms)
    after = CardState(card_id=state.card_id, concept=state.concept,
                      fsrs=dict(reviewed.to_dict()), due=reviewed.due, reps=state.reps + 1,
                      version=state.version + 1)
    log = ReviewLog(id=uuid.uuid4().hex, card_id=state.card_id, concept=state.concept,
                    rating=rating, reviewed_at=at, was_due=state.due, next_due=reviewed.due,
                    duration_ms=duration_ms)
    result = ReviewResult(card_id=state.card_id, rating=rating, was_due=state.due <= at,
                          next_due=reviewed.due,
                          interval_days=round((reviewed.due - at).total_seconds() / 86_400, 4),
                          version=after.version)
    return after, log, result


def newest_histories(logs: Sequence[ReviewLog], most: int) -> list[History]:
    """The whole histories of the cards first reviewed last, `most` reviews in all (the
    earliest of these cards may keep only its first reviews). A history replayed from part-way
    would be taken for a new card's; and cards chosen by when they were started, not by how
    they went since, tell as much of what was forgotten as of what was recalled."""
    by_card: dict[str, list[tuple[datetime, int]]] = defaultdict(list)
    for log in sorted(logs, key=lambda x: x.reviewed_at):
        by_card[log.card_id].append((log.reviewed_at, log.rating))
    chosen: list[History] = []
    left = most
    for history in sorted(by_card.values(), key=lambda h: h[0][0], reverse=True):
        if left <= 0:
            break
        chosen.append(history[:left])
        left -= len(chosen[-1])
    return chosen


def loss(histories: Sequence[History], parameters: Sequence[float]) -> tuple[float, int]:
    """Mean cross-entropy of FSRS's predicted recall over the reviews a day or more after the
    card's previous review, and how many such reviews there are."""
    sched = scheduler(parameters)
    total, count = 0.0, 0
    for history in histories:
        if not history:
            continue
        card = FsrsCard(card_id=0, due=history[0][0])
        for at, rating in history:
            if card.last_review is not None and (at - card.last_review).days > 0:
                p = min(max(sched.get_card_retrievability(card, at), 1e-6), 1 - 1e-6)
                recalled = rating > 1
                total -= math.log(p if recalled else 1 - p)
                count += 1
            card, _ = sched.review_card(card, Rating(rating), review_datetime=at)
    return (total / count if count else 0.0), count


def optimise(histories: Sequence[History], start: Sequence[float] | None = None,
             sweeps: int = 6) -> SchedulerParams:
    """Parameters that fit these histories at least as well as `start` (the defaults when
    None): coordinate search, each step halving once no coordinate improves."""
    params = list(start or DEFAULT_PARAMETERS)
    before, count = loss(histories, params)
    best = before
    steps = [(hi - lo) / 20 for lo, hi in zip(LOWER_BOUNDS_PARAMETERS, UPPER_BOUNDS_PARAMETERS,
                                              strict=True)]
    for _ in range(sweeps):
        improved = False
        for i in range(len(params)):
            for direction in (1, -1):
                trial = list(params)
                trial[i] = min(UPPER_BOUNDS_PARAMETERS[i],
                               max(LOWER_BOUNDS_PARAMETERS[i], params[i] + direction * steps[i]))
                if trial[i] == params[i]:
                    continue
                value, _ = loss(histories, trial)
                if value < best - 1e-9:
                    params, best, improved = trial, value, True
                    break
        if not improved:
            steps = [s / 2 for s in steps]
    return SchedulerParams(parameters=params, fitted_on=count, loss_before=before,
                           loss_after=best)
