"""Quizzes inside a lesson: their questions, the rules a quiz must keep to be answerable, the
learner's view of them (no answers in it), and grading. No I/O here.

A `QuizBlock` is one block of a lesson. Each question has an `id` unique in its quiz, a
`prompt`, `points` (the most it scores) and `feedback` shown after grading (`correct` when it
scored full marks, `incorrect` otherwise). Choice options carry their own `feedback`, shown when
the learner picked that option.

The question types and how they score:

- `single_choice`: exactly one correct option; all or nothing.
- `multiple_choice`: at least one correct option. Partial credit, "right minus wrong":
  `points * max(0, picked_correct - picked_wrong) / correct_count`, so picking every option
  scores nothing unless every option is correct.
- `true_false`: all or nothing.
- `numeric`: correct when `|given - answer| <= tolerance` (absolute, `tolerance >= 0`), the
  numbers compared as the decimals they are written as: 3.15 is within 0.01 of 3.14, and an
  answer of 6.626e-34 with no tolerance takes nothing else (0 included).
- `short_text`: correct when the normalised answer equals a normalised accepted answer.
  Normalising applies Unicode NFKC, case folding, trims the ends and turns every run of
  whitespace into one space; punctuation and accents count. All or nothing.
- `ordering`: the answer orders every item. Partial credit: the share of all pairs of items
  the answer puts in their right order relative to each other, so two neighbours swapped
  cost one pair, one item moved costs as many pairs as the places it moved, and the reverse
  order scores nothing.
- `matching`: pairs of a left and a right side (plus optional `distractors`, right sides that
  match nothing; every side has an id of its own); the answer maps left ids to right ids, each
  right at most once. Partial credit: the share of left sides matched to their right side.

An attempt maps question ids to answers. A question left out, or given an empty answer (no
option picked, no pair matched, blank text), scores nothing ("unanswered", with no feedback:
feedback often says the answer, and a blank attempt would fetch it free);
an answer of the wrong shape (unknown question, option id not in the question, wrong type) is
refused as a whole with `AnswerError` naming the question. A result tells the learner how each
question went and its feedback, never the correct answer, so the quiz can be tried again.
"""

from __future__ import annotations

import hashlib
import math
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from itertools import combinations
from typing import Annotated, Literal, TypeVar

from pydantic import (
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StringConstraints,
    model_validator,
)

from bloop.platform.kit.read_back import Tolerant
from bloop.platform.kit.text import Line, Lines, NonBlankLine, NonBlankLines, RawLine

QUIZ_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"
ItemId = Annotated[str, StringConstraints(pattern=QUIZ_ID_PATTERN)]
Text = NonBlankLines[Annotated[str, StringConstraints(strip_whitespace=True, min_length=1,
                                                       max_length=2000)]]
Prompt = NonBlankLines[Annotated[str, StringConstraints(strip_whitespace=True, min_length=1,
                                                         max_length=10_000)]]
FeedbackText = Lines[Annotated[str, StringConstraints(strip_whitespace=True, max_length=2000)]]
Points = Annotated[StrictFloat, Field(gt=0, le=1000, allow_inf_nan=False)]
ShortAnswer = RawLine[Annotated[str, StringConstraints(max_length=500)]]

MAX_QUESTIONS = 100
MAX_CHOICES = 30


class _Frozen(Tolerant):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Feedback(_Frozen):
    correct: FeedbackText = ""
    incorrect: FeedbackText = ""


class Choice(_Frozen):
    """An option, an item to order, or one side of a matching pair."""

    id: ItemId
    text: Text


class Option(Choice):
    correct: StrictBool = False
    feedback: FeedbackText = ""


class _Question(_Frozen):
    id: ItemId
    prompt: Prompt
    points: Points = 1
    feedback: Feedback = Field(default_factory=Feedback)

    def _refuse(self, why: str) -> ValueError:
        return ValueError(f"question {self.id!r}: {why}")

    def _distinct(self, what: str, values: Iterable[str]) -> None:
        seen: set[str] = set()
        for value in values:
            if value in seen:
                raise self._refuse(f"{what} {value!r} appears twice")
            seen.add(value)


class _ChoiceQuestion(_Question):
    options: Annotated[list[Option], Field(max_length=MAX_CHOICES)]

    def _check_options(self) -> int:
        if len(self.options) < 2:
            raise self._refuse("needs at least two options")
        self._distinct("the option id", (o.id for o in self.options))
        self._distinct("the option text", (o.text for o in self.options))
        return sum(o.correct for o in self.options)


class SingleChoice(_ChoiceQuestion):
    type: Literal["single_choice"] = "single_choice"

    @model_validator(mode="after")
    def _answerable(self) -> SingleChoice:
        if (n := self._check_options()) != 1:
            raise self._refuse(f"needs exactly one correct option, it has {n}")
        return self


class MultipleChoice(_ChoiceQuestion):
    type: Literal["multiple_choice"] = "multiple_choice"

    @model_validator(mode="after")
    def _answerable(self) -> MultipleChoice:
        if self._check_options() == 0:
            raise self._refuse("needs at least one correct option, it has none")
        return self


class TrueFalse(_Question):
    type: Literal["true_false"] = "true_false"
    answer: StrictBool


class Numeric(_Question):
    type: Literal["numeric"] = "numeric"
    answer: Annotated[StrictFloat, Field(allow_inf_nan=False)]
    tolerance: Annotated[StrictFloat, Field(allow_inf_nan=False)] = 0
    unit: Line[Annotated[str, StringConstraints(strip_whitespace=True, max_length=40)]] = ""

    @model_validator(mode="after")
    def _answerable(self) -> Numeric:
        if self.tolerance < 0:
            raise self._refuse(f"the tolerance cannot be negative ({self.tolerance})")
        return self


def normalise(text: str) -> str:
    """How short text answers compare: NFKC, case folded, whitespace runs made one space."""
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


class ShortText(_Question):
    type: Literal["short_text"] = "short_text"
    accepted: Annotated[list[ShortAnswer], Field(max_length=50)]

    @model_validator(mode="after")
    def _answerable(self) -> ShortText:
        if not self.accepted:
            raise self._refuse("needs at least one accepted answer")
        if any(not normalise(a) for a in self.accepted):
            raise self._refuse("an accepted answer is blank")
        return self


class Ordering(_Question):
    type: Literal["ordering"] = "ordering"
    items: Annotated[list[Choice], Field(max_length=MAX_CHOICES,
                                         description="the items in their correct order")]

    @model_validator(mode="after")
    def _answerable(self) -> Ordering:
        if len(self.items) < 2:
            raise self._refuse(f"needs at least two items to order, it has {len(self.items)}")
        self._distinct("the item id", (i.id for i in self.items))
        self._distinct("the item text", (i.text for i in self.items))
        return self


class Pair(_Frozen):
    left: Choice
    right: Choice


class Matching(_Question):
    type: Literal["matching"] = "matching"
    pairs: Annotated[list[Pair], Field(max_length=MAX_CHOICES)]
    distractors: Annotated[list[Choice], Field(max_length=MAX_CHOICES,
                                               description="right sides that match nothing")] = []

    @model_validator(mode="after")
    def _answerable(self) -> Matching:
        if len(self.pairs) < 2:
            raise self._refuse(f"needs at least two pairs, it has {len(self.pairs)}")
        lefts = [p.left for p in self.pairs]
        rights = [p.right for p in self.pairs] + self.distractors
        self._distinct("the pair", (f"{p.left.text} / {p.right.text}" for p in self.pairs))
        self._distinct("the side id", (c.id for c in lefts + rights))
        self._distinct("the left side", (c.text for c in lefts))
        self._distinct("the right side", (c.text for c in rights))
        return self


Question = Annotated[
    SingleChoice | MultipleChoice | TrueFalse | Numeric | ShortText | Ordering | Matching,
    Field(discriminator="type"),
]


class QuizBlock(_Frozen):
    """A quiz, one block of a lesson. Its `id` is unique among the lesson's quizzes."""

    type: Literal["quiz"] = "quiz"
    id: ItemId
    title: NonBlankLine[Annotated[str, StringConstraints(strip_whitespace=True, min_length=1,
                                                         max_length=200)]]
    questions: Annotated[list[Question], Field(max_length=MAX_QUESTIONS)]

    @model_validator(mode="after")
    def _answerable(self) -> QuizBlock:
        if not self.questions:
            raise ValueError(f"quiz {self.id!r}: needs at least one question")
        seen: set[str] = set()
        for q in self.questions:
            if q.id in seen:
                raise ValueError(f"quiz {self.id!r}: the question id {q.id!r} appears twice")
            seen.add(q.id)
        return self

    @property
    def max_score(self) -> float:
        return _round(sum(q.points for q in self.questions))

    def question(self, question_id: str) -> QuestionType | None:
        return next((q for q in self.questions if q.id == question_id), None)


QuestionType = SingleChoice | MultipleChoice | TrueFalse | Numeric | ShortText | Ordering | Matching


def find_quiz(blocks: Iterable[object], quiz_id: str) -> QuizBlock | None:
    """The quiz `quiz_id` among a lesson's blocks."""
    return next((b for b in blocks if isinstance(b, QuizBlock) and b.id == quiz_id), None)


def duplicate_quiz_ids(blocks: Iterable[object]) -> list[str]:
    """The quiz ids that appear more than once among a lesson's blocks (a lesson should refuse
    them: an attempt names its quiz by id)."""
    ids = [b.id for b in blocks if isinstance(b, QuizBlock)]
    return sorted({i for i in ids if ids.count(i) > 1})


# The learner's view: the questions without anything that gives the answer away.


class LearnerChoice(_Frozen):
    id: str
    text: str


class _LearnerQuestion(_Frozen):
    id: str
    prompt: str
    points: float


class LearnerSingleChoice(_LearnerQuestion):
    type: Literal["single_choice"] = "single_choice"
    options: list[LearnerChoice]


class LearnerMultipleChoice(_LearnerQuestion):
    type: Literal["multiple_choice"] = "multiple_choice"
    options: list[LearnerChoice]


class LearnerTrueFalse(_LearnerQuestion):
    type: Literal["true_false"] = "true_false"


class LearnerNumeric(_LearnerQuestion):
    type: Literal["numeric"] = "numeric"
    unit: str = ""


class LearnerShortText(_LearnerQuestion):
    type: Literal["short_text"] = "short_text"


class LearnerOrdering(_LearnerQuestion):
    type: Literal["ordering"] = "ordering"
    items: list[LearnerChoice] = Field(description=(
        "the items, in an order drawn from their ids (which may be the right one)"))


class LearnerMatching(_LearnerQuestion):
    type: Literal["matching"] = "matching"
    left: list[LearnerChoice]
    right: list[LearnerChoice] = Field(description="shuffled; may hold distractors")


LearnerQuestion = Annotated[
    LearnerSingleChoice | LearnerMultipleChoice | LearnerTrueFalse | LearnerNumeric
    | LearnerShortText | LearnerOrdering | LearnerMatching,
    Field(discriminator="type"),
]


class LearnerQuiz(_Frozen):
    type: Literal["quiz"] = "quiz"
    id: str
    title: str
    max_score: float
    questions: list[LearnerQuestion]


_C = TypeVar("_C", bound=Choice)


def _shuffled(quiz_id: str, question_id: str, items: Sequence[_C]) -> list[_C]:
    """`items` in an order fixed by their ids (the same on every read), whatever order that
    is: one order kept out would be a clue, and with two items the answer itself."""
    def rank(c: Choice) -> bytes:
        return hashlib.sha256(f"{quiz_id}\x00{question_id}\x00{c.id}".encode()).digest()

    return sorted(items, key=rank)


def _choices(items: Iterable[Choice]) -> list[LearnerChoice]:
    return [LearnerChoice(id=c.id, text=c.text) for c in items]


def _learner_question(quiz_id: str, q: QuestionType) -> _LearnerQuestion:
    common = {"id": q.id, "prompt": q.prompt, "points": q.points}
    match q:
        case SingleChoice():
            return LearnerSingleChoice(**common, options=_choices(q.options))
        case MultipleChoice():
            return LearnerMultipleChoice(**common, options=_choices(q.options))
        case TrueFalse():
            return LearnerTrueFalse(**common)
        case Numeric():
            return LearnerNumeric(**common, unit=q.unit)
        case ShortText():
            return LearnerShortText(**common)
        case Ordering():
            items = _shuffled(quiz_id, q.id, q.items)
            return LearnerOrdering(**common, items=_choices(items))
        case Matching():
            rights = _shuffled(quiz_id, q.id, [p.right for p in q.pairs] + q.distractors)
            return LearnerMatching(**common, left=_choices(p.left for p in q.pairs),
                                   right=_choices(rights))


def learner_quiz(block: QuizBlock) -> LearnerQuiz:
    """The quiz as a learner sees it: no correct flags, answers, accepted answers, tolerances,
    feedback, nor the authored order of ordering items and matching pairs (both in an order
    drawn from their ids)."""
    return LearnerQuiz.model_validate({
        "id": block.id, "title": block.title, "max_score": block.max_score,
        "questions": [_learner_question(block.id, q).model_dump() for q in block.questions],
    })


def learner_view(block: QuizBlock) -> dict[str, object]:
    """`learner_quiz` as JSON-ready data, to stand in for the block in a learner's lesson."""
    return learner_quiz(block).model_dump(mode="json")


# Grading.

Outcome = Literal["correct", "partial", "incorrect", "unanswered"]
AnswerValue = bool | int | float | str | list[str] | dict[str, str]


class AnswerError(ValueError):
    """An answer that does not fit its question; `question` names it."""

    def __init__(self, question: str, why: str) -> None:
        super().__init__(f"question {question!r}: {why}")
        self.question = question


class QuestionResult(_Frozen):
    question_id: str
    outcome: Outcome
    correct: bool
    score: float
    max_score: float
    feedback: str = ""
    option_feedback: dict[str, str] = Field(
        default_factory=dict, description="the feedback of each option the learner picked")


class Grade(_Frozen):
    score: float
    max_score: float
    questions: list[QuestionResult]


def _round(x: float) -> float:
    return round(x, 4)


def _text(qid: str, value: object) -> str:
    if not isinstance(value, str):
        raise AnswerError(qid, "the answer must be a string")
    return value


def _ids(qid: str, value: object, known: Sequence[str], what: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise AnswerError(qid, f"the answer must be a list of {what} ids")
    ids: list[str] = value
    unknown = [v for v in ids if v not in known]
    if unknown:
        raise AnswerError(qid, f"no {what} {unknown[0]!r} in this question")
    if len(set(ids)) != len(ids):
        raise AnswerError(qid, f"an {what} appears twice in the answer")
    return ids


def _finite(value: object) -> float | None:
    """`value` as a float when it is a number a float holds (JSON integers past 1e308 do not)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def _decimal(number: float) -> Decimal:
    """The decimal a float is written as (its shortest round-trip form): 3.15 - 3.14 is then
    0.01, not 0.010000000000000231."""
    return Decimal(repr(float(number)))


def _fraction(q: QuestionType, value: object) -> tuple[float, list[str]]:
    """The share of the question's points `value` earns, and the options it picked (for their
    feedback). Raises `AnswerError` when `value` does not fit the question."""
    match q:
        case SingleChoice():
            picked = _text(q.id, value)
            option = next((o for o in q.options if o.id == picked), None)
            if option is None:
                raise AnswerError(q.id, f"no option {picked!r} in this question")
            return float(option.correct), [picked]
        case MultipleChoice():
            ids = _ids(q.id, value, [o.id for o in q.options], "option")
            right = {o.id for o in q.options if o.correct}
            hits = len(right.intersection(ids))
            return max(0, hits - (len(ids) - hits)) / len(right), ids
        case TrueFalse():
            if not isinstance(value, bool):
                raise AnswerError(q.id, "the answer must be true or false")
            return float(value == q.answer), []
        case Numeric():
            number = _finite(value)
            if number is None:
                raise AnswerError(q.id, "the answer must be a finite number")
            off = abs(_decimal(number) - _decimal(q.answer))
            return float(off <= _decimal(q.tolerance)), []
        case ShortText():
            given = normalise(_text(q.id, value))
            return float(given in {normalise(a) for a in q.accepted}), []
        case Ordering():
            ids = _ids(q.id, value, [i.id for i in q.items], "item")
            if len(ids) != len(q.items):
                raise AnswerError(q.id, "the answer must order every item")
            place = {item.id: i for i, item in enumerate(q.items)}
            pairs = list(combinations(ids, 2))
            return sum(place[a] < place[b] for a, b in pairs) / len(pairs), []
        case Matching():
            if not isinstance(value, dict) or not all(
                    isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
                raise AnswerError(q.id, "the answer must map left ids to right ids")
            lefts = {p.left.id: p.right.id for p in q.pairs}
            rights = {c.id for c in [p.right for p in q.pairs] + q.distractors}
            for left, right in value.items():
                if left not in lefts:
                    raise AnswerError(q.id, f"no left side {left!r} in this question")
                if right not in rights:
                    raise AnswerError(q.id, f"no right side {right!r} in this question")
            if len(set(value.values())) != len(value):
                raise AnswerError(q.id, "a right side is matched twice")
            return sum(lefts[k] == v for k, v in value.items()) / len(q.pairs), []


def _empty(q: QuestionType, value: object) -> bool:
    """Whether `value` answers nothing: no option picked, no pair matched, or blank text."""
    match q:
        case MultipleChoice():
            return value == []
        case Matching():
            return value == {}
        case ShortText():
            return isinstance(value, str) and not normalise(value)
    return False


def grade(quiz: QuizBlock, answers: Mapping[str, object]) -> Grade:
    """Grades `answers` (question id → answer) against `quiz`; `AnswerError` when one of them
    does not fit (unknown question, unknown option, wrong type)."""
    unknown = [k for k in answers if quiz.question(k) is None]
    if unknown:
        raise AnswerError(unknown[0], f"there is no such question in quiz {quiz.id!r}")
    results = []
    scores: list[float] = []
    for q in quiz.questions:
        if q.id not in answers or _empty(q, answers[q.id]):
            results.append(QuestionResult(question_id=q.id, outcome="unanswered", correct=False,
                                          score=0, max_score=q.points))
            continue
        fraction, picked = _fraction(q, answers[q.id])
        scores.append(q.points * fraction)
        outcome: Outcome = ("correct" if fraction >= 1 else
                            "partial" if fraction > 0 else "incorrect")
        options = {o.id: o.feedback for o in q.options} if isinstance(
            q, SingleChoice | MultipleChoice) else {}
        results.append(QuestionResult(
            question_id=q.id, outcome=outcome, correct=outcome == "correct",
            score=_round(q.points * fraction), max_score=q.points,
            feedback=q.feedback.correct if outcome == "correct" else q.feedback.incorrect,
            option_feedback={i: options[i] for i in picked if options.get(i)},
        ))
    return Grade(score=_round(sum(scores)), max_score=quiz.max_score,
                 questions=results)
