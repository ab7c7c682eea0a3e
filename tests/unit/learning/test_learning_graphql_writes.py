"""The learner's writes over GraphQL: each does what its HTTP twin does, under the same rules,
and refuses what its twin refuses with the same code."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import httpx
from fastapi import FastAPI

from tests.support import member
from tests.unit.learning.test_learning_api import BASE, learner, python_course, running

__all__ = ["running"]
Json = dict[str, Any]


async def run(client: httpx.AsyncClient, headers: dict[str, str], query: str,
              **variables: Any) -> Json:
    r = await client.post("/graphql", json={"query": query, "variables": variables},
                          headers=headers)
    assert r.status_code == 200, r.text
    body: Json = r.json()
    return body


def refused(body: Json) -> tuple[int, str]:
    [error] = body["errors"]
    return error["extensions"]["status"], error["extensions"]["code"]


ENROL = """mutation($goal: GoalInput!) { enrol(tenant: "acme", goal: $goal) {
    created enrolment { courseId goalConcept goal enrolledAt } } }"""
UNENROL = 'mutation($goal: GoalInput!) { unenrol(tenant: "acme", goal: $goal) }'
PROGRESS = """mutation($lesson: String!, $progress: ProgressInput!) {
    recordProgress(tenant: "acme", lessonId: $lesson, progress: $progress) {
        lessonId status seconds completedAt updatedAt version } }"""
DUE = '{ myDueReviews(tenant: "acme") { items { cardId version front } } }'
REVIEW = """mutation($review: ReviewInput!) { reviewCard(tenant: "acme", review: $review) {
    cardId rating wasDue nextDue intervalDays version } }"""


async def test_a_learner_enrols_progresses_and_reviews_over_graphql(running: tuple[
        FastAPI, httpx.AsyncClient]) -> None:
    app, client = running
    await python_course(app, client)
    card = (await client.post(f"{BASE}/concepts/variables/cards",
                              json={"front": "What is a name?", "back": "A reference."})).json()
    pupil = await learner(app, client)

    first = await run(client, pupil, ENROL, goal={"courseId": "py"})
    assert first["data"]["enrol"]["created"] is True, first
    assert first["data"]["enrol"]["enrolment"]["goal"] == "course:py"
    again = await run(client, pupil, ENROL, goal={"courseId": "py"})
    assert again["data"]["enrol"]["created"] is False
    mine = (await client.get(f"{BASE}/me/enrolments", headers=pupil)).json()["items"]
    assert [e["course_id"] for e in mine] == ["py"]

    done = await run(client, pupil, PROGRESS, lesson="names",
                     progress={"status": "COMPLETED", "seconds": 90})
    assert done["data"]["recordProgress"]["status"] == "COMPLETED", done
    assert done["data"]["recordProgress"]["seconds"] == 90
    assert done["data"]["recordProgress"]["completedAt"] is not None
    report = (await client.get(f"{BASE}/me/progress", headers=pupil)).json()
    assert "names" in str(report)
    # times read the same over both (GraphQL wrote `+00:00` where the HTTP API writes `Z`)
    [over_rest] = [p for p in report["lessons"] if p["lesson_id"] == "names"]
    written = done["data"]["recordProgress"]
    assert (written["completedAt"], written["updatedAt"]) == (
        over_rest["completed_at"], over_rest["updated_at"])
    assert written["updatedAt"].endswith("Z")
    again = (await run(client, pupil, PROGRESS, lesson="names",
                       progress={"status": "STARTED"}))["data"]["recordProgress"]
    over_http = (await client.post(f"{BASE}/me/lessons/names/progress", headers=pupil,
                                   json={"status": "started"})).json()
    # the time of the last update, as the HTTP API's `updated_at`: it moves on at each
    times = [datetime.fromisoformat(t) for t in (
        done["data"]["recordProgress"]["updatedAt"], again["updatedAt"],
        over_http["updated_at"])]
    assert times[0] < times[1] < times[2], times
    assert (again["version"], over_http["version"]) == (2, 3)

    [due] = (await run(client, pupil, DUE))["data"]["myDueReviews"]["items"]
    assert due["cardId"] == card["id"]
    rated = await run(client, pupil, REVIEW,
                      review={"cardId": card["id"], "rating": 3, "version": due["version"]})
    outcome = rated["data"]["reviewCard"]
    assert (outcome["wasDue"], outcome["version"]) == (True, due["version"] + 1), rated
    twice = await run(client, pupil, REVIEW,
                      review={"cardId": card["id"], "rating": 3, "version": due["version"]})
    assert twice["data"]["reviewCard"] is None
    assert refused(twice) == (409, "already_reviewed")
    assert refused(await run(client, pupil, REVIEW, review={"cardId": card["id"], "rating": 5})
                   ) == (422, "bad_rating")
    for wrong in ({"cardId": "nope", "rating": 9}, {"cardId": card["id"], "rating": 9,
                                                    "version": 7}):
        assert refused(await run(client, pupil, REVIEW, review=wrong)) == (422, "bad_rating")

    dropped = await run(client, pupil, 'mutation($c: String!) { dropCard(tenant: "acme", '
                                       'id: $c) }', c=card["id"])
    assert dropped["data"]["dropCard"] is True
    assert refused(await run(client, pupil, 'mutation($c: String!) { dropCard(tenant: "acme", '
                                            'id: $c) }', c=card["id"])) == (404, "not_in_deck")
    back = await run(client, pupil, 'mutation($c: String!) { studyCard(tenant: "acme", '
                                    'id: $c) { cardId reps } }', c=card["id"])
    assert back["data"]["studyCard"] == {"cardId": card["id"], "reps": 1}

    left = await run(client, pupil, UNENROL, goal={"courseId": "py"})
    assert left["data"]["unenrol"] is True
    assert (await client.get(f"{BASE}/me/enrolments", headers=pupil)).json()["items"] == []
    assert refused(await run(client, pupil, UNENROL, goal={"courseId": "py"})
                   ) == (404, "not_enrolled")


async def test_a_write_refuses_its_input_as_its_http_twin_does(running: tuple[
        FastAPI, httpx.AsyncClient]) -> None:
    app, client = running
    pupil = await learner(app, client)
    both = await run(client, pupil, ENROL, goal={"courseId": "py", "goalConcept": "x"})
    assert refused(both) == (422, "validation_failed")
    assert both["errors"][0]["extensions"]["errors"][0]["loc"] == ["goal"]
    bad_slug = await run(client, pupil, ENROL, goal={"courseId": "Not A Slug"})
    assert refused(bad_slug) == (422, "validation_failed")
    assert bad_slug["errors"][0]["extensions"]["errors"][0]["loc"] == ["goal", "courseId"]
    too_long = await run(client, pupil, PROGRESS, lesson="names",
                         progress={"status": "STARTED", "seconds": 86_401})
    assert refused(too_long) == (422, "validation_failed")
    assert too_long["errors"][0]["extensions"]["errors"][0]["loc"] == ["progress", "seconds"]
    long_id = await run(client, pupil, PROGRESS, lesson="x" * 65,
                        progress={"status": "STARTED"})
    assert refused(long_id) == (422, "validation_failed")
    assert (await client.get(f"{BASE}/me/progress", headers=pupil)).json()["lessons"] == []
    placement = await run(client, pupil, """mutation { startPlacement(tenant: "acme",
        goal: {goalConcept: "ghost"}) { id done } }""")
    assert refused(placement)[0] == 404


async def test_writes_need_a_person_in_the_tenant_and_never_run_over_get(running: tuple[
        FastAPI, httpx.AsyncClient]) -> None:
    app, client = running
    pupil = await learner(app, client)
    elsewhere = await member(app, client, "beta", ["learner"])
    assert refused(await run(client, elsewhere, ENROL, goal={"courseId": "py"})
                   ) == (403, "wrong_tenant")
    admin = await member(app, client, roles=["tenant_admin"])
    key = await client.post("/v1/tenants/acme/api-keys", headers=admin, json={
        "name": "sync", "scopes": ["learning:write"]})
    assert key.status_code == 201, key.text
    robot = {"Authorization": f"Bearer {key.json()['key']}"}
    assert refused(await run(client, robot, ENROL, goal={"courseId": "py"})
                   ) == (403, "not_a_person")
    over_get = await client.get("/graphql", params={"query": UNENROL}, headers=pupil)
    assert (over_get.status_code, over_get.json()["code"]) == (400, "bad_request"), over_get.text
    assert (await client.get(f"{BASE}/me/enrolments", headers=pupil)).json()["items"] == []


async def test_one_operation_runs_at_most_twenty_writes(running: tuple[
        FastAPI, httpx.AsyncClient]) -> None:
    """A request counts once against the caller's rate limit: aliases would make it hundreds
    of writes."""
    app, client = running
    pupil = await learner(app, client)
    twenty = " ".join(f'w{i}: unenrol(tenant: "acme", goal: {{courseId: "c{i}"}})'
                      for i in range(20))
    within = await run(client, pupil, f"mutation {{ {twenty} }}")
    assert {e["extensions"]["code"] for e in within["errors"]} == {"not_enrolled"}
    spread = ('mutation { ...more w20: unenrol(tenant: "acme", goal: {courseId: "py"}) } '
              f"fragment more on Mutation {{ {twenty} }}")
    past = await run(client, pupil, spread)
    assert past["data"] is None
    assert refused(past) == (422, "too_many_writes")
    assert past["errors"][0]["extensions"]["limit"] == 20
