"""Quiz attempts over GraphQL: graded and stored as their HTTP twin does, refused as it is."""

from __future__ import annotations

from typing import Any

import httpx
from fastapi import FastAPI

from tests.support import member
from tests.unit.content.test_quiz_api import BASE, RIGHT, app, client, lesson_with_quiz

__all__ = ["app", "client"]
Json = dict[str, Any]
SUBMIT = """mutation($lesson: String!, $answers: [QuizAnswerInput!]!, $version: Int) {
    submitQuizAttempt(tenant: "acme", lessonId: $lesson, quizId: "check", answers: $answers,
                      lessonVersion: $version) {
        id number score maxScore lessonVersion
        answers { questionId answer { text ids truth number pairs { left right } } }
        questions { questionId outcome correct score feedback optionFeedback { option feedback } }
    } }"""


def as_input(answers: dict[str, Any]) -> list[Json]:
    """The HTTP API's answers as GraphQL's: each in the field its kind takes."""
    def value(v: Any) -> Json:
        match v:
            case bool():
                return {"truth": v}
            case int() | float():
                return {"number": v}
            case str():
                return {"text": v}
            case list():
                return {"ids": v}
        return {"pairs": [{"left": k, "right": r} for k, r in v.items()]}
    return [{"questionId": q, "answer": value(v)} for q, v in answers.items()]


async def submit(client: httpx.AsyncClient, headers: dict[str, str], lesson: str,
                 answers: list[Json], version: int | None = None) -> Json:
    r = await client.post("/graphql", headers=headers, json={
        "query": SUBMIT, "variables": {"lesson": lesson, "answers": answers, "version": version}})
    assert r.status_code == 200, r.text
    body: Json = r.json()
    return body


def code(body: Json) -> tuple[int, str]:
    [error] = body["errors"]
    return error["extensions"]["status"], error["extensions"]["code"]


async def test_an_attempt_over_graphql_is_graded_and_stored_as_over_http(
        app: FastAPI, client: httpx.AsyncClient) -> None:
    lesson = await lesson_with_quiz(client)
    ada = await member(app, client, "acme", ["learner"])
    url = f"{BASE}/lessons/{lesson}/quizzes/check/attempts"
    body = await submit(client, ada, lesson, as_input(RIGHT), version=1)
    attempt = body["data"]["submitQuizAttempt"]
    assert (attempt["score"], attempt["maxScore"], attempt["number"]) == (8, 8, 1), body
    assert attempt["questions"][0]["feedback"] == "well done"
    assert attempt["questions"][0]["optionFeedback"] == [{"option": "a",
                                                          "feedback": "a is right"}]
    over_http = (await client.post(url, json={"answers": RIGHT}, headers=ada)).json()
    assert over_http["number"] == 2
    assert [(q["question_id"], q["outcome"], q["score"]) for q in over_http["questions"]] == [
        (q["questionId"], q["outcome"], q["score"]) for q in attempt["questions"]]
    stored = (await client.get(url, headers=ada)).json()["items"]
    assert stored[1]["id"] == attempt["id"]
    assert stored[1]["answers"] == RIGHT
    # the answers as stored, each in the field of its kind, as they were sent
    kinds = ("text", "ids", "truth", "number", "pairs")
    assert attempt["answers"] == [
        {"questionId": a["questionId"], "answer": {k: a["answer"].get(k) for k in kinds}}
        for a in as_input(RIGHT)]

    stale = await submit(client, ada, lesson, as_input(RIGHT), version=7)
    assert (stale["data"]["submitQuizAttempt"], code(stale)) == (None, (409, "stale_version"))
    wrong_kind = await submit(client, ada, lesson, [{"questionId": "tf",
                                                     "answer": {"text": "yes"}}])
    assert code(wrong_kind) == (422, "invalid_answer")
    assert wrong_kind["errors"][0]["extensions"]["question"] == "tf"
    assert len((await client.get(url, headers=ada)).json()["items"]) == 2


async def test_answers_that_cannot_be_one_are_refused_saying_where(
        app: FastAPI, client: httpx.AsyncClient) -> None:
    lesson = await lesson_with_quiz(client)
    ada = await member(app, client, "acme", ["learner"])
    twice = await submit(client, ada, lesson, [{"questionId": "tf", "answer": {"truth": True}},
                                               {"questionId": "tf", "answer": {"truth": False}}])
    assert code(twice) == (422, "validation_failed")
    assert twice["errors"][0]["extensions"]["errors"][0]["loc"] == ["answers", "1", "questionId"]
    matched_twice = await submit(client, ada, lesson, [{"questionId": "match", "answer": {
        "pairs": [{"left": "l0", "right": "r0"}, {"left": "l0", "right": "r1"}]}}])
    assert code(matched_twice) == (422, "validation_failed")
    both = await submit(client, ada, lesson, [{"questionId": "tf",
                                               "answer": {"truth": True, "text": "a"}}])
    assert code(both) == (422, "validation_failed")
    # a refusal's loc is the argument's path: the answer's place in the list, its field
    for answer, loc in (
            ({"questionId": "text", "answer": {"text": "x" * 501}}, ["1", "answer", "text"]),
            ({"questionId": "multi_one", "answer": {"ids": ["a", "b" * 65]}},
             ["1", "answer", "ids", "1"]),
            ({"questionId": "match", "answer": {"pairs": [
                {"left": "l0", "right": "r0"}, {"left": "l1", "right": "r" * 65}]}},
             ["1", "answer", "pairs", "1", "right"]),
            ({"questionId": "no way", "answer": {"truth": True}}, ["1", "questionId"])):
        refused = await submit(client, ada, lesson, [
            {"questionId": "tf", "answer": {"truth": True}}, answer])
        assert code(refused) == (422, "validation_failed")
        assert [e["loc"] for e in refused["errors"][0]["extensions"]["errors"]] == [
            ["answers", *loc]], refused
    bad_quiz = await client.post("/graphql", headers=ada, json={"query": """mutation {
        submitQuizAttempt(tenant: "acme", lessonId: "x", quizId: "no way", answers: []) {
        id } }"""})
    assert code(bad_quiz.json()) == (422, "validation_failed")
    url = f"{BASE}/lessons/{lesson}/quizzes/check/attempts"
    assert (await client.get(url, headers=ada)).json()["items"] == []


async def test_only_a_learner_in_the_tenant_submits(app: FastAPI,
                                                    client: httpx.AsyncClient) -> None:
    lesson = await lesson_with_quiz(client)
    ta = await member(app, client, "acme", ["teaching_assistant"])
    assert code(await submit(client, ta, lesson, [])) == (403, "missing_role")
    other = await member(app, client, "beta", ["learner"])
    assert code(await submit(client, other, lesson, [])) == (403, "wrong_tenant")
    ada = await member(app, client, "acme", ["learner"])
    assert code(await submit(client, ada, "ghost", [])) == (404, "not_found")
