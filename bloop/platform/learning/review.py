"""Spaced review with FSRS (the `fsrs` package): scheduling each review, and fitting a learner's
own FSRS parameters to their review history.

The fit minimises the same loss as `fsrs.Optimizer` (the mean binary cross-entropy between the
retrievability FSRS predicts at each review on a later learner's day than the previous one and
whether the card was recalled), replaying the history through `fsrs.Scheduler` itself, plus a pull towards
the default parameters that fades as reviews grow; and a fit is checked on cards it never saw
before it is worth keeping (a few hundred reviews fitted freely scheduled worse than the
defaults). `fsrs.Optimizer` needs PyTorch; this fit searches the parameters coordinate by
coordinate within FSRS's bounds instead, which needs nothing more and is quick for one
learner's few hundred reviews.

A card next due a day or more after its review is due at the start of a learner's day (at
`ROLLOVER_HOUR` in their time zone), as in Anki: FSRS's interval in whole days counted on from
the learner's day of the review, so reviewed at 21:40 with a day to wait it is in the next
morning's reviews, and a change of the clocks between (whose days are 23 or 25 hours) moves
it by no day. Shorter steps (learning and relearning) stay exact. FSRS itself keeps its own due
and the review's real time; the time that passed at the next review is counted, as in Anki, in
the learner's days (`in_learner_days`), so the card shown at 04:00 the next morning is a day
old, as FSRS's own due would have had it.
"""

from __future__ import annotations

import math
import uuid
from collections import defaultdict
from collections.abc import Sequence
from copy import copy
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from fsrs import Card as FsrsCard
from fsrs import Rating, Scheduler
from fsrs.scheduler import DEFAULT_PARAMETERS, LOWER_BOUNDS_PARAMETERS, UPPER_BOUNDS_PARAMETERS

from bloop.platform.learning.model import CardState, ReviewLog, ReviewResult, SchedulerParams

MIN_REVIEWS_TO_OPTIMISE = 100
"""Reviews a learner needs before their own parameters are fitted."""

PULL = 8.0
"""How hard a fit is held to the default parameters: moving one by a twentieth of its range
costs this much cross-entropy over the whole history, so the pull fades as reviews grow."""
HELD_OUT = 4
"""One card in this many is left out of a fit, to check it."""
ROLLOVER_HOUR = 4
"""The learner's day starts at this hour of their local time (Anki's default)."""
UTC_ZONE = ZoneInfo("UTC")
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


def day_start(day: date, zone: ZoneInfo) -> datetime:
    """`ROLLOVER_HOUR` on `day` in `zone` (where a change of the clocks skips that hour, the
    moment they jump past it; where it repeats it, the first)."""
    return datetime.combine(day, time(ROLLOVER_HOUR), zone)


def learner_day(at: datetime, zone: ZoneInfo) -> datetime:
    """The start of the learner's day holding `at`: `ROLLOVER_HOUR` local time on the date
    `ROLLOVER_HOUR` hours before `at`'s local time."""
    day = (at.astimezone(zone).replace(tzinfo=None) - timedelta(hours=ROLLOVER_HOUR)).date()
    return day_start(day, zone)


def in_learner_days(card: FsrsCard, at: datetime, zone: ZoneInfo) -> FsrsCard:
    """`card` as FSRS is to see it at a review at `at`: when the whole days that passed since
    its last review are not the learner's days (`learner_day`: fewer, as from 21:40 to the next
    morning or from 02:00 to 04:00; one more, across a 25-hour day at a change of the clocks),
    a copy last reviewed that many days before `at`. FSRS counts whole days (a floor) and takes
    under one for a review the same day."""
    if card.last_review is None:
        return card
    days = (learner_day(at, zone).date() - learner_day(card.last_review, zone).date()).days
    if days < 0 or (at - card.last_review).days == days:
        return card
    seen = copy(card)
    seen.last_review = at - timedelta(days=days)
    return seen


def day_due(due: datetime, at: datetime, zone: ZoneInfo) -> datetime:
    """When a card FSRS next schedules at `due` after a review at `at` is due for the learner:
    `due` itself for a step shorter than a day, else the start of the learner's day as many
    days after the review's as FSRS's interval has (whole days; at least one), as Anki counts
    them: across a change of the clocks, `due` falls an hour off that day's start and could
    fall in the learner's day before or after it."""
    if due - at < timedelta(days=1):
        return due
    days = max(1, round((due - at) / timedelta(days=1)))
    return day_start(learner_day(at, zone).date() + timedelta(days=days), zone).astimezone(
        due.tzinfo)


def rescheduled(state: CardState, zone: ZoneInfo) -> CardState:
    """The card due as its last review would have made it in `zone` (`day_due`): the learner
    moved to another time zone. A step shorter than a day, and a card never reviewed, stay."""
    card = FsrsCard.from_dict(state.fsrs)  # type: ignore[arg-type]
    if card.last_review is None:
        return state
    due = day_due(card.due, card.last_review, zone)
    return state if due == state.due else state.model_copy(update={"due": due})


def check_rating(rating: int) -> None:
    """`BadRating` unless `rating` is 1 (again) to 4 (easy)."""
    if rating not in (1, 2, 3, 4):
        raise BadRating(f"a rating is 1 (again), 2 (hard), 3 (good) or 4 (easy), not {rating}")


def review(state: CardState, rating: int, at: datetime, parameters: Sequence[float] | None,
           duration_ms: int | None = None, zone: ZoneInfo = UTC_ZONE
           ) -> tuple[CardState, ReviewLog, ReviewResult]:
    """Schedules the card after a review rated `rating` (1 again … 4 easy) at `at`, in the
    learner's day in `zone` (`day_due`), the time since its last review counted in their days
    (`in_learner_days`). A card reviewed before it is due is scheduled from the time actually
    elapsed. FSRS's state keeps `at` as its last review, from which the next review counts."""
    check_rating(rating)
    card = in_learner_days(FsrsCard.from_dict(state.fsrs), at, zone)  # type: ignore[arg-type]
    reviewed, _ = scheduler(parameters).review_card(card, Rating(rating), review_datetime=at,
                                                    review_duration=duration_ms)
    due = day_due(reviewed.due, at, zone)
    after = CardState(card_id=state.card_id, concept=state.concept,
                      fsrs=dict(reviewed.to_dict()), due=due, reps=state.reps + 1,
                      version=state.version + 1)
    log = ReviewLog(id=uuid.uuid4().hex, card_id=state.card_id, concept=state.concept,
                    rating=rating, reviewed_at=at, was_due=state.due, next_due=due,
                    duration_ms=duration_ms)
    result = ReviewResult(card_id=state.card_id, rating=rating, was_due=state.due <= at,
                          next_due=due,
                          interval_days=round((due - at).total_seconds() / 86_400, 4),
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


def losses(histories: Sequence[History], parameters: Sequence[float],
           zone: ZoneInfo = UTC_ZONE) -> list[float]:
    """The cross-entropy of FSRS's predicted recall at each review on a later learner's day (in
    `zone`) than the card's previous review, in the histories' order; the histories replayed
    as `review` schedules them."""
    sched = scheduler(parameters)
    out: list[float] = []
    for history in histories:
        if not history:
            continue
        card = FsrsCard(card_id=0, due=history[0][0])
        for at, rating in history:
            card = in_learner_days(card, at, zone)
            if card.last_review is not None and (at - card.last_review).days > 0:
                p = min(max(sched.get_card_retrievability(card, at), 1e-6), 1 - 1e-6)
                recalled = rating > 1
                out.append(-math.log(p if recalled else 1 - p))
            card, _ = sched.review_card(card, Rating(rating), review_datetime=at)
    return out


def loss(histories: Sequence[History], parameters: Sequence[float],
         zone: ZoneInfo = UTC_ZONE) -> tuple[float, int]:
    """Mean cross-entropy of FSRS's predicted recall over the reviews on a later learner's day
    than the card's previous review (`losses`), and how many such reviews there are."""
    each = losses(histories, parameters, zone)
    return (math.fsum(each) / len(each) if each else 0.0), len(each)


def optimise(histories: Sequence[History], start: Sequence[float] | None = None,
             sweeps: int = 6, zone: ZoneInfo = UTC_ZONE) -> SchedulerParams:
    """Parameters that fit these histories, of a learner in `zone`, at least as well as `start`
    (the defaults when None), held towards the defaults by `PULL`: coordinate search, each step
    halving once no coordinate improves. Its losses are the histories' own, without the pull."""
    params = list(start or DEFAULT_PARAMETERS)
    before, count = loss(histories, params, zone)
    widths = [(hi - lo) / 20 for lo, hi in zip(LOWER_BOUNDS_PARAMETERS, UPPER_BOUNDS_PARAMETERS,
                                               strict=True)]

    def pull(trial: Sequence[float]) -> float:
        return PULL * math.fsum(((w - d) / s) ** 2 for w, d, s in
                                zip(trial, DEFAULT_PARAMETERS, widths, strict=True)) / max(count, 1)

    best = before + pull(params)
    steps = list(widths)
    for _ in range(sweeps):
        improved = False
        for i in range(len(params)):
            for direction in (1, -1):
                trial = list(params)
                trial[i] = min(UPPER_BOUNDS_PARAMETERS[i],
                               max(LOWER_BOUNDS_PARAMETERS[i], params[i] + direction * steps[i]))
                if trial[i] == params[i]:
                    continue
                value = loss(histories, trial, zone)[0] + pull(trial)
                if value < best - 1e-9:
                    params, best, improved = trial, value, True
                    break
        if not improved:
            steps = [s / 2 for s in steps]
    return SchedulerParams(parameters=params, fitted_on=count, loss_before=before,
                           loss_after=loss(histories, params, zone)[0])


def fit_checked(histories: Sequence[History], start: Sequence[float] | None = None,
                sweeps: int = 6, zone: ZoneInfo = UTC_ZONE) -> SchedulerParams:
    """`optimise` on three cards in four (by when each was started), its losses those of
    `start` and of the fit on the fourth, which the fit never saw; `better` only when the fit
    predicts the reviews left out better by more than chance would (a one-sided paired test at
    5%). Fitted to a few hundred reviews, the parameters follow their noise and predict that
    history better but the next reviews worse."""
    ordered = sorted((h for h in histories if h), key=lambda h: h[0][0])
    fitted = optimise([h for i, h in enumerate(ordered) if i % HELD_OUT], start, sweeps, zone)
    left_out = ordered[::HELD_OUT]
    before = losses(left_out, start or DEFAULT_PARAMETERS, zone)
    after = losses(left_out, fitted.parameters, zone)
    gains = [b - a for b, a in zip(before, after, strict=True)]
    n = len(gains)
    mean = math.fsum(gains) / n if n else 0.0
    spread = math.sqrt(math.fsum((g - mean) ** 2 for g in gains) / (n - 1)) if n > 1 else 0.0
    better = n > 1 and mean > 0 and (spread == 0 or mean / (spread / math.sqrt(n)) > 1.645)
    return SchedulerParams(parameters=fitted.parameters, fitted_on=fitted.fitted_on,
                           loss_before=math.fsum(before) / n if n else 0.0,
                           loss_after=math.fsum(after) / n if n else 0.0, checked_on=n,
                           better=better)
