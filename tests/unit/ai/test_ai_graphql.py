"""AI jobs over GraphQL: `aiJob`, `aiJobs`, `requestAiJob` and `cancelAiJob` do what their HTTP
twins do, show what they show (the same job, to the same callers) and refuse what they refuse,
with the same codes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from graphql.error import GraphQLError

from bloop.ai.jobs import graphql as ai_graphql
from bloop.ai.jobs.lessons import HttpLessons
from bloop.ai.jobs.model import Cost, Job, JobRequest
from bloop.ai.jobs.service import JobService
from bloop.ai.text.model import LessonText
from bloop.graphql.outcomes import code
from bloop.graphql.schema import build_schema
from bloop.platform.kit.settings import AiSettings
from bloop.platform.services import select
from tests.support import api_client, member, require_media_kind
from tests.unit.ai.fake_openai import FakeOpenAI
from tests.unit.ai.test_ai_api import (
    BASE,
    LESSON,
    app,
    build,
    client,
    follow,
    lesson,
    lesson_in,
)

__all__ = ["app", "client"]
Json = dict[str, Any]
JOB = """id kind status progress step lessonId lessonVersion lessonTitle requestedBy attempts
    maxAttempts params { level count voice instructions prompt language }
    errors { code message } cost { provider model promptTokens completionTokens usd }
    result notAttached { output code } cancelRequested cancelReason outputsRemovedAt retryAt
    createdAt updatedAt finishedAt url eventsUrl"""
REQUEST = """mutation($tenant: Slug!, $job: AiJobInput!, $key: String) {
    requestAiJob(tenant: $tenant, job: $job, idempotencyKey: $key) { created job { JOB } } }
""".replace("JOB", JOB)
READ = "query($tenant: Slug!, $id: ID!) { aiJob(tenant: $tenant, id: $id) { JOB } }".replace(
    "JOB", JOB)
LIST = """query($tenant: Slug!, $lesson: String, $status: AiJobStatus, $first: Int!,
               $after: String) {
    aiJobs(tenant: $tenant, lessonId: $lesson, status: $status, first: $first, after: $after) {
        items { id lessonTitle } next } }"""
CANCEL = """mutation($tenant: Slug!, $id: ID!) {
    cancelAiJob(tenant: $tenant, id: $id) { JOB } }""".replace("JOB", JOB)


async def ask(client: httpx.AsyncClient, query: str, headers: dict[str, str] | None = None,
              **variables: Any) -> Json:
    r = await client.post("/graphql", headers=headers,
                          json={"query": query, "variables": {"tenant": "acme", **variables}})
    assert r.status_code == 200, r.text
    body: Json = r.json()
    return body


def problem(body: Json) -> tuple[int, str]:
    [error] = body["errors"]
    found = error["extensions"]["code"]
    assert code(GraphQLError("x", extensions={"code": found})) == found, "counted by its code"
    return error["extensions"]["status"], found


def locs(body: Json) -> list[list[str]]:
    assert problem(body) == (422, "validation_failed"), body
    return [e["loc"] for e in body["errors"][0]["extensions"]["errors"]]


def as_http(job: Json) -> Json:
    """A GraphQL job as the HTTP API's JobView spells it, for the fields both show."""
    return {"id": job["id"], "kind": job["kind"].lower(), "status": job["status"].lower(),
            "lesson_id": job["lessonId"], "lesson_version": job["lessonVersion"],
            "lesson_title": job["lessonTitle"], "requested_by": job["requestedBy"],
            "attempts": job["attempts"], "max_attempts": job["maxAttempts"],
            "result": job["result"], "cancel_requested": job["cancelRequested"],
            "cancel_reason": job["cancelReason"], "url": job["url"],
            "events_url": job["eventsUrl"], "params": {"count": job["params"]["count"],
                                                     "level": job["params"]["level"]}}


def http_fields(view: Json) -> Json:
    return {**{k: view[k] for k in ("id", "kind", "status", "lesson_id", "lesson_version",
                                     "lesson_title", "requested_by", "attempts", "max_attempts",
                                     "result", "cancel_requested", "cancel_reason", "url",
                                     "events_url")},
            "params": {"count": view["params"]["count"], "level": view["params"]["level"]}}


async def test_an_educator_asks_for_follows_lists_and_cancels_ai_jobs_over_graphql(
        client: httpx.AsyncClient, app: FastAPI) -> None:
    les = await lesson(client)
    job = {"kind": "QUIZ", "lessonId": les["id"], "params": {"count": 3}}
    body = await ask(client, REQUEST, job=job)
    asked = body["data"]["requestAiJob"]
    assert asked["created"] is True, body
    job_id = asked["job"]["id"]
    assert (asked["job"]["kind"], asked["job"]["lessonTitle"]) == ("QUIZ", "Names and values")
    again = (await ask(client, REQUEST, job=job))["data"]["requestAiJob"]
    assert (again["created"], again["job"]["id"]) == (False, job_id)
    assert (await follow(client, job_id))[-1][1]["status"] == "succeeded"

    read = (await ask(client, READ, id=job_id))["data"]["aiJob"]
    assert read["status"] == "SUCCEEDED"
    assert read["result"]["block"]["questions"], "the draft, as the HTTP view gives it"
    assert read["url"] == f"{BASE}/ai/jobs/{job_id}"
    http = (await client.get(f"{BASE}/ai/jobs/{job_id}")).json()
    assert as_http(read) == http_fields(http)
    assert read["cost"]["provider"] == http["cost"]["provider"]

    summary = (await ask(client, REQUEST, job={"kind": "SUMMARY", "lessonId": les["id"]},
                         key="summary-1"))["data"]["requestAiJob"]["job"]
    await follow(client, summary["id"])
    listed = (await ask(client, LIST, lesson=les["id"], first=1))["data"]["aiJobs"]
    assert [j["id"] for j in listed["items"]] == [summary["id"]]
    rest = (await ask(client, LIST, lesson=les["id"], first=1, after=listed["next"]))
    assert ([j["id"] for j in rest["data"]["aiJobs"]["items"]], rest["data"]["aiJobs"]["next"]
            ) == ([job_id], None)
    http_list = (await client.get(f"{BASE}/ai/jobs", params={"lesson_id": les["id"]})).json()
    assert [j["id"] for j in http_list["items"]] == [summary["id"], job_id]
    none = (await ask(client, LIST, status="QUEUED", first=5))["data"]["aiJobs"]
    assert none == {"items": [], "next": None}

    # a job nobody takes up, asked for by this educator: cancelled at once
    service: JobService = app.state.ai.state["service"]
    stuck = Job.create("acme", JobRequest(kind="summary", lesson_id=les["id"]), LessonText(
        id=les["id"], version=les["version"], title="Names and values", text=LESSON),
        http["requested_by"], "stuck", 3)
    await service.store.create(stuck, [])
    cancelled = (await ask(client, CANCEL, id=stuck.id))["data"]["cancelAiJob"]
    assert (cancelled["status"], cancelled["cancelRequested"], cancelled["cancelReason"]) == (
        "CANCELLED", True, "requested")
    assert (await client.get(f"{BASE}/ai/jobs/{stuck.id}")).json()["status"] == "cancelled"
    ended = await ask(client, CANCEL, id=job_id)
    assert (ended["data"]["cancelAiJob"], problem(ended)) == (None, (409, "job_finished"))


async def test_ai_job_refusals_are_those_of_the_http_twins(client: httpx.AsyncClient,
                                                           app: FastAPI) -> None:
    les = await lesson(client, LESSON + "\n\nThe launch code of the exam is PINEAPPLE.")
    drafted = (await ask(client, REQUEST, job={"kind": "SUMMARY", "lessonId": les["id"]})
               )["data"]["requestAiJob"]["job"]["id"]
    learner, other, beta = (await member(app, client, "acme", ["learner"]),
                            await member(app, client, "acme", ["educator"]),
                            await member(app, client, "beta", ["educator"]))

    # roles: a learner neither asks for jobs nor reads them
    for query, variables, method, path in (
            (REQUEST, {"job": {"kind": "SUMMARY", "lessonId": les["id"]}}, "POST", "/ai/jobs"),
            (READ, {"id": drafted}, "GET", f"/ai/jobs/{drafted}"),
            (LIST, {"first": 5}, "GET", "/ai/jobs"),
            (CANCEL, {"id": drafted}, "POST", f"/ai/jobs/{drafted}/cancel")):
        r = await client.request(method, f"{BASE}{path}", headers=learner,
                                 json={"kind": "summary", "lesson_id": les["id"]})
        assert problem(await ask(client, query, learner, **variables)) == (
            r.status_code, r.json()["code"]) == (403, "missing_role")

    # another tenant's educator: not in this tenant; their own tenant has no such job
    body = await ask(client, READ, beta, id=drafted)
    assert problem(body) == (403, "wrong_tenant")
    assert (await ask(client, READ, beta, tenant="beta", id=drafted))["data"]["aiJob"] is None
    body = await ask(client, CANCEL, beta, tenant="beta", id=drafted)
    r = await client.post(f"/v1/tenants/beta/ai/jobs/{drafted}/cancel", headers=beta)
    assert problem(body) == (r.status_code, r.json()["code"]) == (404, "not_found")

    # a job on a draft is its authors': another educator is answered as for no job
    body = await ask(client, READ, other, id=drafted)
    assert body == {"data": {"aiJob": None}}
    assert "PINEAPPLE" not in str(await ask(client, LIST, other, first=50))
    assert (await ask(client, LIST, other, first=50))["data"]["aiJobs"]["items"] == []
    body = await ask(client, CANCEL, other, id=drafted)
    r = await client.post(f"{BASE}/ai/jobs/{drafted}/cancel", headers=other)
    assert problem(body) == (r.status_code, r.json()["code"]) == (404, "not_found")

    # published: the other educator sees it but may not cancel it, nor ask for a narration
    assert (await client.post(f"{BASE}/courses/py/publish")).status_code == 200
    assert (await ask(client, READ, other, id=drafted))["data"]["aiJob"]["id"] == drafted
    body = await ask(client, CANCEL, other, id=drafted)
    assert problem(body) == (403, "not_an_author")
    body = await ask(client, REQUEST, other, job={"kind": "NARRATION", "lessonId": les["id"]})
    r = await client.post(f"{BASE}/ai/jobs", headers=other,
                          json={"kind": "narration", "lesson_id": les["id"]})
    assert problem(body) == (r.status_code, r.json()["code"]) == (403, "not_an_author")

    # the body's rules, each refusal naming the argument and its field
    body = await ask(client, REQUEST, job={"kind": "QUIZ", "lessonId": les["id"],
                                           "params": {"count": 0, "level": "expert"}})
    assert locs(body) == [["job", "params", "level"], ["job", "params", "count"]]
    assert locs(await ask(client, REQUEST, job={"kind": "SUMMARY", "lessonId": ""})) == [
        ["job", "lessonId"]]
    assert locs(await ask(client, REQUEST, job={"kind": "SUMMARY", "lessonId": les["id"]},
                          key="two words")) == [["idempotencyKey"]]
    assert locs(await ask(client, READ, id="x" * 65)) == [["id"]]
    assert locs(await ask(client, LIST, lesson="x" * 65, first=5)) == [["lessonId"]]
    for job, refusal in (({"kind": "SUMMARY"}, (422, "lesson_required")),
                         ({"kind": "SUMMARY", "lessonId": "nope"}, (404, "not_found")),
                         ({"kind": "QUIZ", "lessonId": les["id"],
                           "params": {"language": "fr"}}, (422, "language_not_supported"))):
        body = await ask(client, REQUEST, job=job)
        r = await client.post(f"{BASE}/ai/jobs", json={
            "kind": job["kind"].lower(), **({"lesson_id": job["lessonId"]}
                                            if "lessonId" in job else {}),
            **({"params": job["params"]} if "params" in job else {})})
        assert problem(body) == (r.status_code, r.json()["code"]) == refusal, job

    # a client's key names one job: another request under it is refused
    body = await ask(client, REQUEST, job={"kind": "FLASHCARDS", "lessonId": les["id"]},
                     key="k-1")
    assert body["data"]["requestAiJob"]["created"] is True
    body = await ask(client, REQUEST, job={"kind": "QUIZ", "lessonId": les["id"]}, key="k-1")
    assert problem(body) == (422, "idempotency_key_reused")


async def test_over_content_s_http_api_content_is_asked_as_the_caller(
        client: httpx.AsyncClient, app: FastAPI, monkeypatch: pytest.MonkeyPatch) -> None:
    """In a process without content, the fields read lessons through content's API with the
    caller's own credentials, as the HTTP routes do."""
    les = await lesson(client)
    sent: list[httpx.Request] = []

    async def record(request: httpx.Request) -> None:
        sent.append(request)

    over_http = HttpLessons("http://bloop.test", client=httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://bloop.test",
        event_hooks={"request": [record]}))
    monkeypatch.setattr(ai_graphql, "lesson_source", lambda content, remote: over_http)
    other = await member(app, client, "acme", ["educator"])
    asked = await ask(client, REQUEST, job={"kind": "SUMMARY", "lessonId": les["id"]})
    job_id = asked["data"]["requestAiJob"]["job"]["id"]
    assert (await ask(client, READ, other, id=job_id))["data"]["aiJob"] is None
    assert [(r.url.path, r.headers["Authorization"]) for r in sent] == [
        (f"{BASE}/lessons/{les['id']}", client.headers["Authorization"]),
        (f"{BASE}/courses/py", client.headers["Authorization"]),
        (f"{BASE}/lesson-access", other["Authorization"])]
    await over_http.close()


def test_the_ai_fields_are_in_the_schema_of_a_process_running_ai_without_content() -> None:
    for names in (["ai"], ["identity", "ai"]):
        schema = build_schema(select(names))
        assert schema is not None
        queries, mutations = schema._schema.query_type, schema._schema.mutation_type
        assert queries is not None
        assert {"aiJob", "aiJobs"} <= set(queries.fields)
        assert mutations is not None
        assert {"requestAiJob", "cancelAiJob"} <= set(mutations.fields)


async def test_ai_jobs_of_one_kind(client: httpx.AsyncClient) -> None:
    """`aiJobs` had no `kind` argument (its HTTP twin ignored `?kind=`)."""
    les = await lesson(client)
    for kind, count in (("QUIZ", 2), ("SUMMARY", 5), ("QUIZ", 3), ("FLASHCARDS", 5)):
        body = await ask(client, REQUEST, job={"kind": kind, "lessonId": les["id"],
                                               "params": {"count": count}})
        assert body["data"]["requestAiJob"]["created"], body
    every = (await client.get(f"{BASE}/ai/jobs")).json()["items"]
    quizzes = [j["id"] for j in every if j["kind"] == "quiz"]
    by_kind = """query($tenant: Slug!, $kind: AiJobKind, $first: Int!, $after: String) {
        aiJobs(tenant: $tenant, kind: $kind, first: $first, after: $after) {
            items { id kind } next } }"""
    page = (await ask(client, by_kind, kind="QUIZ", first=1))["data"]["aiJobs"]
    rest = (await ask(client, by_kind, kind="QUIZ", first=1, after=page["next"])
            )["data"]["aiJobs"]
    assert [j["id"] for j in page["items"] + rest["items"]] == quizzes
    assert rest["next"] is None
    both = (await ask(client, by_kind, kind="QUIZ", first=5))["data"]["aiJobs"]["items"]
    assert [j["kind"] for j in both] == ["QUIZ", "QUIZ"]
    video = (await ask(client, by_kind, kind="VIDEO", first=5))["data"]["aiJobs"]
    assert video == {"items": [], "next": None}


@pytest.mark.parametrize("language", ["tlh", "zz"])
async def test_a_narration_the_local_voice_cannot_speak_is_refused_as_over_http(
        client: httpx.AsyncClient, app: FastAPI, monkeypatch: pytest.MonkeyPatch,
        language: str) -> None:
    require_media_kind(app, "narration")
    monkeypatch.setenv("BLOOP_TTS_PROVIDER", "local")
    les = await lesson_in(client, language)
    body = await ask(client, REQUEST, job={"kind": "NARRATION", "lessonId": les["id"]})
    r = await client.post(f"{BASE}/ai/jobs", json={"kind": "narration", "lesson_id": les["id"]})
    assert problem(body) == (r.status_code, r.json()["code"]) == (422, "voice_unavailable")
    assert body["errors"][0]["extensions"]["language"] == language
    assert body["errors"][0]["message"] == r.json()["detail"]
    assert (await client.get(f"{BASE}/ai/jobs")).json()["items"] == []


async def test_the_budget_refusal_shows_the_spend_rounded(client: httpx.AsyncClient,
                                                          app: FastAPI) -> None:
    service: JobService = app.state.ai.state["service"]
    les = await lesson(client)
    spent = Job.create("acme", JobRequest(kind="summary", lesson_id=les["id"]), None, "u1",
                       "spent", 3).model_copy(update={"cost": Cost(usd=0.005987850000000001)})
    await service.store.create(spent, [])
    admin = await member(app, client, "acme", ["tenant_admin"])
    r = await client.put(f"{BASE}/ai/settings", headers=admin, json={"monthly_budget_usd": 0.001})
    assert r.status_code == 200, r.text
    body = await ask(client, REQUEST, job={"kind": "SUMMARY", "lessonId": les["id"]})
    assert problem(body) == (402, "ai_budget_exhausted")
    assert body["errors"][0]["extensions"]["spent_usd"] == 0.005988


async def test_a_new_job_names_the_provider_it_will_pay_over_graphql(
        tmp_path: Path, fake_openai: FakeOpenAI, monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("BLOOP_STORE", "BLOOP_MONGO_ADAPTER", "BLOOP_KAFKA_ADAPTER"):
        monkeypatch.delenv(var, raising=False)
    application = build(tmp_path, AiSettings(openai_base_url=fake_openai.base_url,
                                             model="gpt-4o-mini"))
    async with application.router.lifespan_context(application), api_client(application) as c:
        c.headers.update(await member(application, c, "acme", ["educator"]))
        les = await lesson(c)
        body = await ask(c, REQUEST, job={"kind": "SUMMARY", "lessonId": les["id"]})
        job = body["data"]["requestAiJob"]["job"]
        assert (job["status"], job["cost"]["provider"], job["cost"]["model"]) == (
            "QUEUED", "openai", "gpt-4o-mini")
        await follow(c, job["id"])
