"""Quizzes over HTTP, through the real app (identity + content, embedded stores): the learner's
view never holds an answer, learners submit attempts and read their own, the tenant's staff
read every attempt of a lesson, bad answers are 422 naming the question, and a deleted user's
attempts go."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from bloop.platform.app import create_app
from bloop.platform.kit.settings import RuntimeSettings, Settings
from tests.support import PASSWORD, api_client, count_calls, eventually, member
from tests.unit.content.test_quiz import ANSWER_KEYS, keys_of

BASE = "/v1/tenants/acme"
SECRETS = ["a is right", "b is wrong", "well done", "read again", "accepted-answer-xyz", "0.0625"]


def choice(oid: str, correct: bool = False) -> dict[str, Any]:
    return {"id": oid, "text": f"Choice {oid}", "correct": correct,
            "feedback": "a is right" if correct else "b is wrong"}


QUIZ: dict[str, Any] = {"type": "quiz", "id": "check", "title": "Check yourself", "questions": [
    {"type": "single_choice", "id": "single", "prompt": "One", "points": 2,
     "feedback": {"correct": "well done", "incorrect": "read again"},
     "options": [choice("a", True), choice("b")]},
    {"type": "multiple_choice", "id": "multi", "prompt": "Many",
     "options": [choice("a", True), choice("b", True), choice("c")]},
    {"type": "true_false", "id": "tf", "prompt": "True?", "answer": False},
    {"type": "numeric", "id": "num", "prompt": "Half of 1.5", "answer": 0.75,
     "tolerance": 0.0625},
    {"type": "short_text", "id": "text", "prompt": "Say it", "accepted": ["accepted-answer-xyz"]},
    {"type": "ordering", "id": "order", "prompt": "Order",
     "items": [{"id": f"i{n}", "text": f"step {n}"} for n in range(4)]},
    {"type": "matching", "id": "match", "prompt": "Match",
     "pairs": [{"left": {"id": f"l{n}", "text": f"left {n}"},
                "right": {"id": f"r{n}", "text": f"right {n}"}} for n in range(3)],
     "distractors": [{"id": "r9", "text": "none"}]},
]}
RIGHT = {"single": "a", "multi": ["a", "b"], "tf": False, "num": 0.8, "text": " Accepted-Answer-XYZ ",
         "order": ["i0", "i1", "i2", "i3"], "match": {"l0": "r0", "l1": "r1", "l2": "r2"}}


@pytest.fixture
async def app(tmp_path: Any) -> AsyncIterator[FastAPI]:
    application = create_app(Settings(runtime=RuntimeSettings(data_dir=tmp_path, seed_demo=False)),
                             services=["identity", "content"])
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(app) as c:
        c.headers.update(await member(app, c, "acme", ["educator"]))
        yield c


async def lesson_with_quiz(client: httpx.AsyncClient, *, publish: bool = True) -> str:
    r = await client.post(f"{BASE}/concepts", json={"id": "loops", "name": "Loops"})
    assert r.status_code in (201, 409), r.text
    await client.post(f"{BASE}/courses", json={"id": "py", "title": "Python"})
    r = await client.post(f"{BASE}/courses/py/lessons", json={
        "title": "Loops", "teaches": ["loops"],
        "blocks": [{"type": "markdown", "markdown": "Loops repeat."}, QUIZ]})
    assert r.status_code == 201, r.text
    if publish:
        assert (await client.post(f"{BASE}/courses/py/publish")).status_code == 200
    return str(r.json()["id"])


def assert_no_answers(body: object) -> None:
    assert not keys_of(body) & ANSWER_KEYS, body
    text = json.dumps(body).lower()
    for secret in SECRETS:
        assert secret not in text


async def test_a_learner_never_sees_an_answer(app: FastAPI, client: httpx.AsyncClient) -> None:
    lesson = await lesson_with_quiz(client)
    learner = await member(app, client, "acme", ["learner"])
    r = await client.get(f"{BASE}/lessons/{lesson}/quizzes/check", headers=learner)
    assert r.status_code == 200, r.text
    quiz = r.json()
    assert_no_answers(quiz)
    assert [q["type"] for q in quiz["questions"]] == [q["type"] for q in QUIZ["questions"]]
    assert quiz["max_score"] == 8
    r = await client.get(f"{BASE}/lessons/{lesson}", headers=learner)
    assert r.status_code == 200
    assert_no_answers(r.json())
    assert "0.75" not in r.text
    # the lesson's authors still see the answers they wrote
    staff = (await client.get(f"{BASE}/lessons/{lesson}")).json()
    assert staff["blocks"][1]["questions"][0]["options"][0]["correct"] is True


async def test_learners_submit_and_read_their_own_staff_read_all(
        app: FastAPI, client: httpx.AsyncClient) -> None:
    lesson = await lesson_with_quiz(client)
    ada = await member(app, client, "acme", ["learner"])
    grace = await member(app, client, "acme", ["learner"])
    ta = await member(app, client, "acme", ["teaching_assistant"])
    url = f"{BASE}/lessons/{lesson}/quizzes/check/attempts"

    r = await client.post(url, json={"answers": RIGHT}, headers=ada)
    assert r.status_code == 201, r.text
    full = r.json()
    assert (full["score"], full["max_score"], full["number"]) == (8, 8, 1)
    assert all(q["outcome"] == "correct" for q in full["questions"])
    assert full["questions"][0]["feedback"] == "well done"
    assert full["questions"][0]["option_feedback"] == {"a": "a is right"}

    r = await client.post(url, json={"answers": {"single": "b", "multi": ["a"],
                                                 "order": ["i1", "i2", "i3", "i0"]}}, headers=ada)
    assert r.status_code == 201, r.text
    partial = r.json()
    assert (partial["score"], partial["number"]) == (0.5 + 0.5, 2)
    assert [q["outcome"] for q in partial["questions"]] == [
        "incorrect", "partial", "unanswered", "unanswered", "unanswered", "partial", "unanswered"]
    r = await client.post(url, json={"answers": {}}, headers=grace)
    assert r.status_code == 201

    mine = (await client.get(url, headers=ada)).json()
    assert [a["id"] for a in mine["items"]] == [partial["id"], full["id"]]
    assert mine["items"][1]["answers"]["tf"] is False
    page = (await client.get(f"{url}?limit=1", headers=ada)).json()
    assert [a["id"] for a in page["items"]] == [partial["id"]]
    rest = await client.get(url, params={"limit": 1, "after": page["next"]}, headers=ada)
    assert [a["id"] for a in rest.json()["items"]] == [full["id"]]
    assert [a["number"] for a in (await client.get(url, headers=grace)).json()["items"]] == [1]

    every = f"{BASE}/lessons/{lesson}/attempts"
    for staff in (client.headers, ta):
        r = await client.get(every, headers=dict(staff))
        assert r.status_code == 200, r.text
        assert len(r.json()["items"]) == 3
    ada_id = full["learner"]
    r = await client.get(every, params={"learner": ada_id, "quiz": "check"}, headers=ta)
    assert [a["number"] for a in r.json()["items"]] == [2, 1]
    r = await client.get(every, headers=ada)
    assert (r.status_code, r.json()["code"]) == (403, "missing_role")
    r = await client.post(url, json={"answers": RIGHT}, headers=ta)
    assert r.status_code == 403
    other = await member(app, client, "beta", ["learner"])
    assert (await client.post(url.replace("acme", "beta"), json={"answers": {}},
                              headers=other)).status_code == 404
    assert (await client.post(url, json={"answers": {}}, headers=other)).status_code == 403
    assert (await client.get(url, headers=other)).status_code == 403


async def test_no_cache_keeps_a_learner_s_attempts(app: FastAPI,
                                                  client: httpx.AsyncClient) -> None:
    """A learner's graded answers, their own or every learner's to staff, came back with no
    Cache-Control, storable, where identity's answers about people are no-store."""
    lesson = await lesson_with_quiz(client)
    ada = await member(app, client, "acme", ["learner"])
    url = f"{BASE}/lessons/{lesson}/quizzes/check/attempts"
    assert (await client.post(url, json={"answers": RIGHT}, headers=ada)).status_code == 201
    for r in (await client.get(url, headers=ada),
              await client.get(f"{BASE}/lessons/{lesson}/attempts")):
        assert (r.status_code, r.headers.get("cache-control")) == (200, "no-store"), r.url
        assert len(r.json()["items"]) == 1
    # The quiz itself is no one's data.
    r = await client.get(f"{BASE}/lessons/{lesson}/quizzes/check", headers=ada)
    assert (r.status_code, r.headers.get("cache-control")) == (200, None)


async def test_attempts_page_with_after_as_every_list_does(
        app: FastAPI, client: httpx.AsyncClient) -> None:
    """`after` takes the `next` of the page before, and the last page's `next` is null, also
    when it holds exactly `limit` attempts."""
    lesson = await lesson_with_quiz(client)
    ada = await member(app, client, "acme", ["learner"])
    url = f"{BASE}/lessons/{lesson}/quizzes/check/attempts"
    for _ in range(4):
        assert (await client.post(url, json={"answers": {}}, headers=ada)).status_code == 201
    every = f"{BASE}/lessons/{lesson}/attempts"
    for listed, headers in ((url, ada), (every, dict(client.headers))):
        first = (await client.get(listed, params={"limit": 2}, headers=headers)).json()
        assert [a["number"] for a in first["items"]] == [4, 3]
        last = (await client.get(listed, params={"limit": 2, "after": first["next"]},
                                 headers=headers)).json()
        assert ([a["number"] for a in last["items"]], last["next"]) == ([2, 1], None)
        whole = (await client.get(listed, params={"limit": 4}, headers=headers)).json()
        assert ([a["number"] for a in whole["items"]], whole["next"]) == ([4, 3, 2, 1], None)
    r = await client.get(url, params={"after": "not a cursor"}, headers=ada)
    assert (r.status_code, r.json()["code"]) == (422, "bad_cursor")


async def test_attempts_posted_at_once_are_all_created(
        app: FastAPI, client: httpx.AsyncClient) -> None:
    lesson = await lesson_with_quiz(client)
    ada = await member(app, client, "acme", ["learner"])
    url = f"{BASE}/lessons/{lesson}/quizzes/check/attempts"
    answers = await asyncio.gather(*(client.post(url, json={"answers": RIGHT}, headers=ada)
                                     for _ in range(8)))
    assert [r.status_code for r in answers] == [201] * 8, [r.text for r in answers]
    assert sorted(r.json()["number"] for r in answers) == list(range(1, 9))


async def test_submitting_an_attempt_needs_the_learning_write_scope(
        app: FastAPI, client: httpx.AsyncClient) -> None:
    """An attempt moves the learner's mastery: a token narrowed to reading may read the quiz
    and its own attempts, not submit one."""
    lesson = await lesson_with_quiz(client)
    await member(app, client, "acme", ["learner"], email="reader@acme.test")
    r = await client.post("/v1/auth/token", data={
        "grant_type": "password", "tenant": "acme", "username": "reader@acme.test",
        "password": PASSWORD, "scope": "content:read learning:read"})
    assert r.status_code == 200, r.text
    reader = {"Authorization": f"Bearer {r.json()['access_token']}"}
    url = f"{BASE}/lessons/{lesson}/quizzes/check/attempts"
    r = await client.post(url, json={"answers": RIGHT}, headers=reader)
    assert (r.status_code, r.json()["code"]) == (403, "insufficient_scope"), r.text
    assert (await client.get(url, headers=reader)).json()["items"] == []
    assert (await client.get(f"{BASE}/lessons/{lesson}/quizzes/check",
                             headers=reader)).status_code == 200


async def test_unpublished_lessons_and_unknown_quizzes_are_not_found(
        app: FastAPI, client: httpx.AsyncClient) -> None:
    draft = await lesson_with_quiz(client, publish=False)
    learner = await member(app, client, "acme", ["learner"])
    for path in (f"lessons/{draft}/quizzes/check", "lessons/nope/quizzes/check"):
        r = await client.post(f"{BASE}/{path}/attempts", json={"answers": {}}, headers=learner)
        assert r.status_code == 404, r.text
        assert (await client.get(f"{BASE}/{path}", headers=learner)).status_code == 404
    assert (await client.post(f"{BASE}/courses/py/publish")).status_code == 200
    r = await client.post(f"{BASE}/lessons/{draft}/quizzes/other/attempts", json={"answers": {}},
                          headers=learner)
    assert r.status_code == 404
    assert "no quiz 'other'" in r.json()["detail"]


@pytest.mark.parametrize(("answers", "question"), [
    ({"single": "z"}, "single"),
    ({"multi": ["a", "nope"]}, "multi"),
    ({"tf": "yes"}, "tf"),
    ({"num": "0.75"}, "num"),
    ({"num": 10**309}, "num"),  # past what a float holds: it was a 500
    ({"order": ["i0", "i1"]}, "order"),
    ({"match": {"l0": "r0", "l1": "r0"}}, "match"),
    ({"ghost": "a"}, "ghost"),
])
async def test_answers_of_the_wrong_shape_are_422_naming_the_question(
        app: FastAPI, client: httpx.AsyncClient, answers: dict[str, Any], question: str) -> None:
    lesson = await lesson_with_quiz(client)
    learner = await member(app, client, "acme", ["learner"])
    url = f"{BASE}/lessons/{lesson}/quizzes/check/attempts"
    r = await client.post(url, json={"answers": answers}, headers=learner)
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert question in r.json()["detail"]
    assert (await client.get(url, headers=learner)).json()["items"] == []


async def test_malformed_and_oversized_submissions_are_refused(
        app: FastAPI, client: httpx.AsyncClient) -> None:
    lesson = await lesson_with_quiz(client)
    learner = await member(app, client, "acme", ["learner"])
    url = f"{BASE}/lessons/{lesson}/quizzes/check/attempts"
    bodies: list[dict[str, Any]] = [
        {"answers": {"match": {"l0": {"deep": 1}}}}, {"answers": []},
        {"answers": {}, "extra": 1}, {"answers": {"text": "x" * 501}}]
    for body in bodies:
        r = await client.post(url, json=body, headers=learner)
        assert r.status_code == 422, (body, r.text)
    well_formed_but_large = {f"q{n}": [f"{k:02d}" * 30 for k in range(30)] for n in range(100)}
    r = await client.post(url, json={"answers": well_formed_but_large}, headers=learner)
    assert (r.status_code, r.json()["code"]) == (413, "payload_too_large")


async def test_an_invalid_quiz_is_refused_naming_the_question(client: httpx.AsyncClient) -> None:
    await client.post(f"{BASE}/courses", json={"id": "py", "title": "Python"})
    bad = json.loads(json.dumps(QUIZ))
    bad["questions"][1]["options"] = [choice("a"), choice("b")]
    r = await client.post(f"{BASE}/courses/py/lessons", json={"title": "L", "blocks": [bad]})
    assert r.status_code == 422, r.text
    assert "question 'multi'" in r.json()["detail"]
    assert "correct option" in r.json()["detail"]


async def test_a_deleted_users_attempts_are_erased(app: FastAPI,
                                                   client: httpx.AsyncClient) -> None:
    lesson = await lesson_with_quiz(client)
    admin = await member(app, client, "acme", ["tenant_admin"])
    ada = await member(app, client, "acme", ["learner"])
    grace = await member(app, client, "acme", ["learner"])
    url = f"{BASE}/lessons/{lesson}/quizzes/check/attempts"
    ada_id = (await client.post(url, json={"answers": RIGHT}, headers=ada)).json()["learner"]
    await client.post(url, json={"answers": RIGHT}, headers=grace)
    attempts = app.state.content.state["attempts"]
    assert len((await attempts.personal_data("acme", ada_id))["quiz_attempts"]) == 1

    r = await client.delete(f"{BASE.replace('/tenants/acme', '/tenants')}/acme/users/{ada_id}",
                            headers=admin)
    assert r.status_code == 204, r.text

    async def erased() -> bool:
        return bool(await attempts.personal_data("acme", ada_id) == {"quiz_attempts": []})

    await eventually(erased, timeout_s=20, what="the deleted learner's attempts erased")
    r = await client.get(f"{BASE}/lessons/{lesson}/attempts")
    learners = [a["learner"] for a in r.json()["items"]]
    assert len(learners) == 1
    assert ada_id not in learners


def flipped() -> dict[str, Any]:
    """QUIZ with the answer of its first question moved from option a to option b."""
    quiz: dict[str, Any] = json.loads(json.dumps(QUIZ))
    quiz["questions"][0]["options"] = [choice("a"), choice("b", True)]
    return quiz


async def republish_flipped(client: httpx.AsyncClient, lesson: str) -> None:
    draft = (await client.get(f"{BASE}/lessons/{lesson}")).json()
    r = await client.patch(f"{BASE}/lessons/{lesson}", json={
        "version": draft["version"], "blocks": [draft["blocks"][0], flipped()]})
    assert r.status_code == 200, r.text
    assert (await client.post(f"{BASE}/courses/py/publish")).status_code == 200


async def test_an_attempt_naming_the_published_lesson_version_is_graded(
        app: FastAPI, client: httpx.AsyncClient) -> None:
    """The lesson version read goes in `lesson_version`, or `If-Match` as the version or the
    ETag the lesson came with."""
    lesson = await lesson_with_quiz(client)
    learner = await member(app, client, "acme", ["learner"])
    read = await client.get(f"{BASE}/lessons/{lesson}", headers=learner)
    version, etag = read.json()["version"], read.headers["ETag"]
    url = f"{BASE}/lessons/{lesson}/quizzes/check/attempts"
    for body, if_match in (({"lesson_version": version}, {}), ({}, {"If-Match": etag}),
                           ({}, {"If-Match": f'"{version}"'}),
                           ({"lesson_version": version}, {"If-Match": etag})):
        r = await client.post(url, json={"answers": RIGHT, **body},
                              headers=learner | if_match)
        assert r.status_code == 201, (body, if_match, r.text)
        assert (r.json()["lesson_version"], r.json()["score"]) == (version, 8)
    r = await client.post(url, json={"answers": RIGHT}, headers=learner | {"If-Match": '"x"'})
    assert (r.status_code, r.json()["code"]) == (400, "bad_if_match")


async def test_an_attempt_at_a_lesson_read_before_its_republication_is_409_and_not_stored(
        app: FastAPI, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch) -> None:
    """The learner read the quiz whose answer is a; the educator moved it to b and published
    again: answers naming what the learner read are not graded against what they never saw.
    Without a version named they are graded against what is published, as before."""
    lesson = await lesson_with_quiz(client)
    learner = await member(app, client, "acme", ["learner"])
    read = await client.get(f"{BASE}/lessons/{lesson}", headers=learner)
    version, etag = read.json()["version"], read.headers["ETag"]
    await republish_flipped(client, lesson)
    current = (await client.get(f"{BASE}/lessons/{lesson}", headers=learner)).json()["version"]
    assert current > version
    url = f"{BASE}/lessons/{lesson}/quizzes/check/attempts"
    store = app.state.content.state["attempts"].store
    calls = count_calls(store, monkeypatch)
    for body, if_match in (({"lesson_version": version}, {}), ({}, {"If-Match": etag}),
                           ({}, {"If-Match": f'"{version}"'}),
                           ({"lesson_version": current}, {"If-Match": etag})):
        r = await client.post(url, json={"answers": {"single": "a"}, **body},
                              headers=learner | if_match)
        assert (r.status_code, r.json()["code"]) == (409, "stale_version"), (body, if_match)
        assert r.json()["current_version"] == current
    assert calls["add"] == 0  # no attempt, no number, no graded event
    assert (await client.get(url, headers=learner)).json()["items"] == []

    r = await client.post(url, json={"answers": {"single": "a"}}, headers=learner)
    assert r.status_code == 201, r.text
    assert (r.json()["number"], r.json()["lesson_version"], r.json()["score"]) == (1, current, 0)
    reread = await client.get(f"{BASE}/lessons/{lesson}", headers=learner)
    r = await client.post(url, json={"answers": {"single": "b"}},
                          headers=learner | {"If-Match": reread.headers["ETag"]})
    assert r.status_code == 201, r.text
    assert (r.json()["number"], r.json()["score"]) == (2, 2)


async def test_an_if_match_and_a_lesson_version_that_differ_are_422(
        app: FastAPI, client: httpx.AsyncClient) -> None:
    lesson = await lesson_with_quiz(client)
    learner = await member(app, client, "acme", ["learner"])
    read = await client.get(f"{BASE}/lessons/{lesson}", headers=learner)
    version, etag = read.json()["version"], read.headers["ETag"]
    url = f"{BASE}/lessons/{lesson}/quizzes/check/attempts"
    for if_match in (f'"{version}"', etag):
        r = await client.post(url, json={"answers": RIGHT, "lesson_version": version + 1},
                              headers=learner | {"If-Match": if_match})
        assert (r.status_code, r.json()["code"]) == (422, "version_mismatch"), r.text
    assert (await client.get(url, headers=learner)).json()["items"] == []


async def test_an_api_key_submits_and_reads_no_attempts_of_its_own(
        app: FastAPI, client: httpx.AsyncClient) -> None:
    """A key with the learner role stored attempts as `apikey:acme.…`, which moved mastery
    nobody has; it is no person, as on the `…/me` routes."""
    lesson = await lesson_with_quiz(client)
    admin = await member(app, client, "acme", ["tenant_admin"])
    r = await client.post(f"{BASE}/api-keys", headers=admin, json={
        "name": "gradebook", "roles": ["learner"],
        "scopes": ["content:read", "learning:write"]})
    assert r.status_code == 201, r.text
    key = {"Authorization": f"Bearer {r.json()['key']}"}
    url = f"{BASE}/lessons/{lesson}/quizzes/check/attempts"
    r = await client.post(url, json={"answers": RIGHT}, headers=key)
    assert (r.status_code, r.json().get("code")) == (403, "not_a_person"), r.text
    r = await client.get(url, headers=key)
    assert (r.status_code, r.json().get("code")) == (403, "not_a_person"), r.text
    assert (await client.get(f"{BASE}/lessons/{lesson}/attempts")).json()["items"] == []
    assert (await client.get(f"{BASE}/lessons/{lesson}/quizzes/check",
                             headers=key)).status_code == 200


async def test_the_attempts_at_a_lesson_never_stored_are_not_found(
        app: FastAPI, client: httpx.AsyncClient) -> None:
    """They answered 200 with no attempts, where the lesson's quiz routes answer 404; a lesson
    deleted since still lists the attempts made at it."""
    lesson = await lesson_with_quiz(client)
    ada = await member(app, client, "acme", ["learner"])
    admin = await member(app, client, "acme", ["tenant_admin"])
    r = await client.get(f"{BASE}/lessons/nope/attempts", headers=admin)
    assert (r.status_code, r.json().get("code")) == (404, "not_found"), r.text
    assert r.json()["detail"] == "no lesson 'nope' in tenant 'acme'"
    beta = await member(app, client, "beta", ["tenant_admin"])
    r = await client.get(f"/v1/tenants/beta/lessons/{lesson}/attempts", headers=beta)
    assert r.status_code == 404, r.text
    url = f"{BASE}/lessons/{lesson}/quizzes/check/attempts"
    assert (await client.post(url, json={"answers": RIGHT}, headers=ada)).status_code == 201
    assert (await client.delete(f"{BASE}/lessons/{lesson}")).status_code == 204
    r = await client.get(f"{BASE}/lessons/{lesson}/attempts", headers=admin)
    assert r.status_code == 200, r.text
    assert [a["number"] for a in r.json()["items"]] == [1]
    r = await client.get(url, headers=ada)
    assert [a["number"] for a in r.json()["items"]] == [1]


async def test_a_learners_own_attempts_at_a_lesson_never_stored_are_not_found(
        app: FastAPI, client: httpx.AsyncClient) -> None:
    """They answered 200 with none, as if the lesson were there."""
    await lesson_with_quiz(client)
    learner = await member(app, client, "acme", ["learner"])
    r = await client.get(f"{BASE}/lessons/nope/quizzes/check/attempts", headers=learner)
    assert (r.status_code, r.json().get("code")) == (404, "not_found"), r.text
    assert r.json()["detail"] == "no lesson 'nope' in tenant 'acme'"


@pytest.mark.parametrize(("answer", "detail"), [
    ("x" * 501, "body.answers.text.text: String should have at most 500 characters"),
    (None, "body.answers.text: an answer is true or false, a number, text, a list of ids or an "
           "object of ids"),
    (["a"] * 31, "body.answers.text.ids: List should have at most 30 items after validation, "
                 "not 31"),
    ("a\x00b", "body.answers.text.text: "),
])
async def test_an_answer_refused_by_its_shape_is_told_what_is_wrong_with_it(
        app: FastAPI, client: httpx.AsyncClient, answer: object, detail: str) -> None:
    """The first kind of answer tried spoke for all: a long text was "not a valid boolean"."""
    lesson = await lesson_with_quiz(client)
    learner = await member(app, client, "acme", ["learner"])
    url = f"{BASE}/lessons/{lesson}/quizzes/check/attempts"
    r = await client.post(url, json={"answers": {"text": answer}}, headers=learner)
    assert r.status_code == 422, r.text
    assert r.json()["detail"].startswith(detail), r.json()["detail"]


async def test_a_text_answer_pasted_with_a_line_break_or_tab_is_graded(
        app: FastAPI, client: httpx.AsyncClient) -> None:
    lesson = await lesson_with_quiz(client)
    learner = await member(app, client, "acme", ["learner"])
    url = f"{BASE}/lessons/{lesson}/quizzes/check/attempts"
    for typed in ("accepted-answer-xyz\n", "\taccepted-answer-xyz", "accepted-answer-xyz\r\n"):
        r = await client.post(url, json={"answers": {"text": typed}}, headers=learner)
        assert r.status_code == 201, r.text
        [text] = [q for q in r.json()["questions"] if q["question_id"] == "text"]
        assert text["outcome"] == "correct", typed
