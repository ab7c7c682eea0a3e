"""Quiz questions: the rules that make each type answerable, the learner's view of them, and
grading with partial credit."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError

from bloop.platform.content.quiz import (
    AnswerError,
    QuizBlock,
    duplicate_quiz_ids,
    find_quiz,
    grade,
    learner_quiz,
    learner_view,
    normalise,
)


def opt(oid: str, correct: bool = False, feedback: str = "") -> dict[str, Any]:
    return {"id": oid, "text": f"Option {oid.upper()}", "correct": correct, "feedback": feedback}


def item(iid: str) -> dict[str, str]:
    return {"id": iid, "text": f"Item {iid}"}


def pair(n: int) -> dict[str, Any]:
    return {"left": {"id": f"l{n}", "text": f"left {n}"}, "right": {"id": f"r{n}", "text": f"right {n}"}}


QUESTIONS: dict[str, dict[str, Any]] = {
    "single": {"type": "single_choice", "id": "single", "prompt": "Pick one", "points": 2,
               "feedback": {"correct": "Well done", "incorrect": "Read again"},
               "options": [opt("a", True, "A is right"), opt("b", feedback="B is a trap"),
                           opt("c")]},
    "multi": {"type": "multiple_choice", "id": "multi", "prompt": "Pick all that apply",
              "points": 4, "options": [opt("a", True), opt("b", True), opt("c"), opt("d")]},
    "tf": {"type": "true_false", "id": "tf", "prompt": "Python is compiled to bytecode",
           "answer": True},
    "num": {"type": "numeric", "id": "num", "prompt": "Pi to two places", "answer": 3.14,
            "tolerance": 0.005, "unit": "rad"},
    "text": {"type": "short_text", "id": "text", "prompt": "The keyword that defines a function",
             "accepted": ["def", "DEF keyword"]},
    "order": {"type": "ordering", "id": "order", "prompt": "Order the steps", "points": 3,
              "items": [item("i1"), item("i2"), item("i3"), item("i4")]},
    "match": {"type": "matching", "id": "match", "prompt": "Match them", "points": 3,
              "pairs": [pair(1), pair(2), pair(3)],
              "distractors": [{"id": "r9", "text": "nothing matches me"}]},
}


def quiz(*names: str, qid: str = "check") -> QuizBlock:
    chosen = names or tuple(QUESTIONS)
    return QuizBlock.model_validate({"id": qid, "title": "Check yourself",
                                     "questions": [QUESTIONS[n] for n in chosen]})


def refusal(question: dict[str, Any]) -> str:
    with pytest.raises(ValidationError) as caught:
        QuizBlock.model_validate({"id": "q", "title": "T", "questions": [question]})
    return str(caught.value)


def test_every_question_type_is_accepted_when_answerable() -> None:
    block = quiz()
    assert [q.type for q in block.questions] == [
        "single_choice", "multiple_choice", "true_false", "numeric", "short_text", "ordering",
        "matching"]
    assert block.max_score == 2 + 4 + 1 + 1 + 1 + 3 + 3


@pytest.mark.parametrize(("question", "why"), [
    (QUESTIONS["single"] | {"options": [opt("a"), opt("b")]}, "exactly one correct option, it has 0"),
    (QUESTIONS["single"] | {"options": [opt("a", True), opt("b", True)]},
     "exactly one correct option, it has 2"),
    (QUESTIONS["single"] | {"options": [opt("a", True)]}, "at least two options"),
    (QUESTIONS["single"] | {"options": [opt("a", True), opt("a")]}, "option id 'a' appears twice"),
    (QUESTIONS["multi"] | {"options": [opt("a"), opt("b")]}, "at least one correct option, it has none"),
    (QUESTIONS["num"] | {"tolerance": -0.1}, "tolerance cannot be negative"),
    (QUESTIONS["text"] | {"accepted": []}, "at least one accepted answer"),
    (QUESTIONS["text"] | {"accepted": ["  "]}, "accepted answer is blank"),
    (QUESTIONS["order"] | {"items": [item("i1")]}, "at least two items to order, it has 1"),
    (QUESTIONS["order"] | {"items": [item("i1"), item("i1")]}, "item id 'i1' appears twice"),
    (QUESTIONS["match"] | {"pairs": [pair(1), pair(1)]}, "pair 'left 1 / right 1' appears twice"),
    (QUESTIONS["match"] | {"pairs": [pair(1), {"left": {"id": "l2", "text": "left 2"},
                                               "right": {"id": "r2", "text": "right 1"}}]},
     "right side 'right 1' appears twice"),
    (QUESTIONS["match"] | {"pairs": [pair(1)]}, "at least two pairs, it has 1"),
])
def test_a_question_without_a_correct_answer_is_refused_by_name(question: dict[str, Any],
                                                                 why: str) -> None:
    message = refusal(question)
    assert f"question {question['id']!r}" in message
    assert why in message


def test_quiz_level_rules() -> None:
    with pytest.raises(ValidationError, match="needs at least one question"):
        QuizBlock(id="q", title="Empty", questions=[])
    with pytest.raises(ValidationError, match="question id 'tf' appears twice"):
        QuizBlock.model_validate({"id": "q", "title": "T",
                                  "questions": [QUESTIONS["tf"], QUESTIONS["tf"]]})
    with pytest.raises(ValidationError):
        QuizBlock.model_validate({"id": "q", "title": "T", "questions": [QUESTIONS["tf"]],
                                  "secret": 1})
    with pytest.raises(ValidationError):
        QuizBlock.model_validate({"id": "q", "title": "T",
                                  "questions": [QUESTIONS["tf"] | {"points": 0}]})
    block = quiz("tf")
    with pytest.raises(ValidationError):
        block.title = "changed"  # type: ignore[misc]


def test_quizzes_are_found_among_a_lessons_blocks_by_id() -> None:
    a, b = quiz("tf", qid="a"), quiz("num", qid="b")
    assert find_quiz([object(), a, b], "b") is b
    assert find_quiz([a], "nope") is None
    assert duplicate_quiz_ids([a, b, quiz("text", qid="a")]) == ["a"]


# the learner's view

ANSWER_KEYS = {"correct", "answer", "accepted", "tolerance", "feedback", "pairs", "distractors"}


def keys_of(value: object) -> set[str]:
    if isinstance(value, dict):
        return set(value) | {k for v in value.values() for k in keys_of(v)}
    if isinstance(value, list):
        return {k for v in value for k in keys_of(v)}
    return set()


def test_the_learner_view_holds_no_answer_of_any_question_type() -> None:
    block = quiz()
    view = learner_view(block)
    assert not keys_of(view) & ANSWER_KEYS
    text = json.dumps(view)
    for secret in ("A is right", "B is a trap", "Well done", "Read again", "DEF keyword", "0.005"):
        assert secret not in text
    assert view["max_score"] == block.max_score
    questions = {q["id"]: q for q in view["questions"]}  # type: ignore[attr-defined]
    assert [o["id"] for o in questions["single"]["options"]] == ["a", "b", "c"]
    assert questions["num"]["unit"] == "rad"
    assert set(questions["tf"]) == {"id", "type", "prompt", "points"}
    assert set(questions["text"]) == {"id", "type", "prompt", "points"}


def test_ordering_and_matching_show_an_order_drawn_from_ids_that_tells_nothing() -> None:
    """Two items shown always the other way round would give the answer away: across quizzes,
    the shown order is the right one about as often as not."""
    right_order = right_match = 0
    for n in range(200):
        items = [item("i0"), item("i1")]
        block = QuizBlock.model_validate({"id": f"quiz{n}", "title": "T", "questions": [
            {"type": "ordering", "id": "o", "prompt": "Order", "items": items},
            {"type": "matching", "id": "m", "prompt": "Match", "pairs": [pair(0), pair(1)]}]})
        order, match = learner_quiz(block).questions
        assert order.type == "ordering"
        assert match.type == "matching"
        assert sorted(i.id for i in order.items) == ["i0", "i1"]
        assert [c.id for c in match.left] == ["l0", "l1"]
        assert sorted(c.id for c in match.right) == ["r0", "r1"]
        assert learner_view(block) == learner_view(block)
        right_order += [i.id for i in order.items] == ["i0", "i1"]
        right_match += [c.id for c in match.right] == ["r0", "r1"]
    assert 70 < right_order < 130
    assert 70 < right_match < 130


# grading


def one(block: QuizBlock, answer: object) -> tuple[str, float, str, dict[str, str]]:
    [q] = block.questions
    [r] = grade(block, {q.id: answer}).questions
    return r.outcome, r.score, r.feedback, r.option_feedback


def test_single_choice_is_all_or_nothing_with_option_feedback() -> None:
    block = quiz("single")
    assert one(block, "a") == ("correct", 2, "Well done", {"a": "A is right"})
    assert one(block, "b") == ("incorrect", 0, "Read again", {"b": "B is a trap"})
    assert one(block, "c") == ("incorrect", 0, "Read again", {})


@pytest.mark.parametrize(("picked", "outcome", "score"), [
    (["a", "b"], "correct", 4),
    (["b", "a"], "correct", 4),
    (["a"], "partial", 2),
    (["a", "b", "c"], "partial", 2),
    (["a", "c"], "incorrect", 0),
    (["a", "b", "c", "d"], "incorrect", 0),
    (["c"], "incorrect", 0),
])
def test_multiple_choice_scores_right_minus_wrong(picked: list[str], outcome: str,
                                                  score: float) -> None:
    assert one(quiz("multi"), picked)[:2] == (outcome, score)


def test_true_false() -> None:
    assert one(quiz("tf"), True)[:2] == ("correct", 1)
    assert one(quiz("tf"), False)[:2] == ("incorrect", 0)


@pytest.mark.parametrize(("given", "outcome"), [
    (3.14, "correct"), (3.145, "correct"), (3.135, "correct"), (3.1451, "incorrect"),
    (3, "incorrect"), (-3.14, "incorrect"),
])
def test_numeric_with_tolerance(given: float, outcome: str) -> None:
    assert one(quiz("num"), given)[0] == outcome


def test_numeric_without_tolerance_takes_the_exact_value_even_as_an_integer() -> None:
    block = QuizBlock.model_validate({"id": "q", "title": "T", "questions": [
        {"type": "numeric", "id": "n", "prompt": "6 * 7", "answer": 42}]})
    assert one(block, 42)[0] == "correct"
    assert one(block, 42.0)[0] == "correct"
    assert one(block, 42.001)[0] == "incorrect"


@pytest.mark.parametrize(("answer", "tolerance", "given", "outcome"), [
    (6.626e-34, 1e-37, 0, "incorrect"),
    (6.626e-34, 1e-37, -1e-10, "incorrect"),
    (6.626e-34, 1e-37, 6.6261e-34, "correct"),
    (1e-9, 0.0, 0, "incorrect"),
    (1e-9, 0.0, 2e-9, "incorrect"),
    (1e-9, 0.0, 1e-9, "correct"),
    (1e12, 0.0, 1000000000999, "incorrect"),
    (1e12, 0.0, 1000000000000, "correct"),
    (3.14, 0.01, 3.15, "correct"),
    (3.14, 0.01, 3.13, "correct"),
    (0.3, 0.0, 0.30000000000000004, "incorrect"),
    (-40.0, 0.5, -40.5, "correct"),
])
def test_numeric_compares_the_decimals_as_written(answer: float, tolerance: float, given: float,
                                                   outcome: str) -> None:
    block = QuizBlock.model_validate({"id": "q", "title": "T", "questions": [
        {"type": "numeric", "id": "n", "prompt": "How much?", "answer": answer,
         "tolerance": tolerance}]})
    assert one(block, given)[0] == outcome


@pytest.mark.parametrize(("given", "outcome"), [
    ("def", "correct"), ("  DEF ", "correct"), ("def   keyword", "correct"),
    ("Def\tKeyword", "correct"), ("\uff44\uff45\uff46", "correct"), ("define", "incorrect"),
    ("de f", "incorrect"),
])
def test_short_text_normalises_case_and_whitespace(given: str, outcome: str) -> None:
    assert one(quiz("text"), given)[0] == outcome


def test_normalise() -> None:
    assert normalise("  Straße\u00a0 Nº1 ") == "strasse no1"


@pytest.mark.parametrize(("order", "outcome", "score"), [
    (["i1", "i2", "i3", "i4"], "correct", 3),
    (["i4", "i3", "i2", "i1"], "incorrect", 0),
    (["i2", "i3", "i4", "i1"], "partial", 1.5),
    (["i1", "i3", "i2", "i4"], "partial", 2.5),
    (["i1", "i2", "i4", "i3"], "partial", 2.5),
    (["i2", "i1", "i4", "i3"], "partial", 2),
])
def test_ordering_credits_the_pairs_in_their_right_order(order: list[str], outcome: str,
                                                         score: float) -> None:
    assert one(quiz("order"), order)[:2] == (outcome, score)


def test_a_small_ordering_slip_never_scores_below_a_big_one() -> None:
    items = [item(f"i{k}") for k in range(1, 6)]
    block = QuizBlock.model_validate({"id": "q", "title": "T", "questions": [
        {"type": "ordering", "id": "o", "prompt": "Order", "points": 1, "items": items}]})
    one_swap = one(block, ["i1", "i3", "i2", "i4", "i5"])[1]
    rotated = one(block, ["i3", "i4", "i5", "i1", "i2"])[1]
    assert one_swap == 0.9
    assert rotated == 0.4


@pytest.mark.parametrize(("matched", "outcome", "score"), [
    ({"l1": "r1", "l2": "r2", "l3": "r3"}, "correct", 3),
    ({"l1": "r1", "l2": "r3", "l3": "r2"}, "partial", 1),
    ({"l1": "r1", "l2": "r2"}, "partial", 2),
    ({"l1": "r9", "l2": "r1"}, "incorrect", 0),
])
def test_matching_credits_each_left_matched(matched: dict[str, str], outcome: str,
                                            score: float) -> None:
    assert one(quiz("match"), matched)[:2] == (outcome, score)


def test_a_whole_quiz_scores_the_sum_and_unanswered_questions_score_nothing() -> None:
    block = quiz()
    result = grade(block, {"single": "a", "multi": ["a"], "tf": False, "order": ["i1", "i2", "i3", "i4"]})
    assert result.max_score == 15
    assert result.score == 2 + 2 + 0 + 3
    outcomes = {r.question_id: r.outcome for r in result.questions}
    assert outcomes == {"single": "correct", "multi": "partial", "tf": "incorrect",
                        "num": "unanswered", "text": "unanswered", "order": "correct",
                        "match": "unanswered"}
    assert [r.question_id for r in result.questions] == [q.id for q in block.questions]
    assert all(r.correct == (r.outcome == "correct") for r in result.questions)
    assert grade(block, {}).score == 0


def test_an_unanswered_question_shows_no_feedback() -> None:
    block = quiz("single")
    assert one(block, "b")[2] == "Read again"
    [blank] = grade(block, {}).questions
    assert (blank.outcome, blank.feedback) == ("unanswered", "")



@pytest.mark.parametrize(("qid", "answer"), [
    ("multi", []), ("match", {}), ("text", ""), ("text", "   "), ("text", " \t\n\u00a0"),
])
def test_an_empty_answer_is_unanswered_and_shows_no_feedback(qid: str, answer: object) -> None:
    """Sent empty, a question was not answered: it counts for nothing (mastery skips it) and
    fetches no feedback, which would give the answer away as a question left out would."""
    told = {"feedback": {"correct": "Right", "incorrect": "It is def"}}
    block = QuizBlock.model_validate({"id": "q", "title": "T", "questions": [
        QUESTIONS[qid] | told | ({"options": [opt("a", True, "A!"), opt("b", feedback="B?")]}
                                 if qid == "multi" else {})]})
    [r] = grade(block, {qid: answer}).questions
    assert (r.outcome, r.correct, r.score, r.feedback, r.option_feedback) == (
        "unanswered", False, 0, "", {})
    assert r == grade(block, {}).questions[0]


def test_an_empty_answer_to_the_other_types_is_refused_as_before() -> None:
    for qid, answer, why in [("single", "", "no option ''"), ("order", [], "order every item"),
                             ("tf", "", "true or false"), ("num", "", "finite number")]:
        with pytest.raises(AnswerError, match=why):
            grade(quiz(), {qid: answer})


def test_fractional_points_round_to_four_places() -> None:
    block = QuizBlock.model_validate({"id": "q", "title": "T", "questions": [
        QUESTIONS["multi"] | {"points": 1, "options": [opt("a", True), opt("b", True),
                                                       opt("c", True), opt("d")]}]})
    assert one(block, ["a"])[:2] == ("partial", 0.3333)


def test_a_quiz_total_rounds_once() -> None:
    thirds = [QUESTIONS["multi"] | {"id": f"m{k}", "points": 1, "options": [
        opt("a", True), opt("b", True), opt("c", True), opt("d")]} for k in range(3)]
    block = QuizBlock.model_validate({"id": "q", "title": "T", "questions": thirds})
    result = grade(block, {f"m{k}": ["a"] for k in range(3)})
    assert [r.score for r in result.questions] == [0.3333] * 3
    assert result.score == 1


@pytest.mark.parametrize(("qid", "answer", "why"), [
    ("nope", "a", "no such question"),
    ("single", "z", "no option 'z'"),
    ("single", ["a"], "must be a string"),
    ("multi", "a", "list of option ids"),
    ("multi", ["a", "z"], "no option 'z'"),
    ("multi", ["a", "a"], "appears twice"),
    ("tf", "true", "true or false"),
    ("tf", 1, "true or false"),
    ("num", "3.14", "finite number"),
    ("num", True, "finite number"),
    ("num", float("nan"), "finite number"),
    ("num", 10**309, "finite number"),
    ("text", 3, "must be a string"),
    ("order", ["i1", "i2", "i3"], "order every item"),
    ("order", ["i1", "i2", "i3", "i3"], "appears twice"),
    ("order", ["i1", "i2", "i3", "x"], "no item 'x'"),
    ("match", ["l1"], "map left ids"),
    ("match", {"x": "r1"}, "no left side 'x'"),
    ("match", {"l1": "x"}, "no right side 'x'"),
    ("match", {"l1": "r1", "l2": "r1"}, "matched twice"),
])
def test_answers_of_the_wrong_shape_are_refused_by_question(qid: str, answer: object,
                                                            why: str) -> None:
    with pytest.raises(AnswerError, match=why) as caught:
        grade(quiz(), {qid: answer})
    assert caught.value.question == qid
