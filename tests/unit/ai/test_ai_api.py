"""The AI routes through the real app (identity, content and ai on embedded stores, the job
consumer running in process): ask for jobs on a lesson, follow them to the end over server-sent
events, read the drafts, and the refusals: idempotent repeats, other tenants, empty lessons,
quotas, settings that never show a key."""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pydantic import ValidationError

from bloop.ai.jobs import api as ai_api
from bloop.ai.jobs import renderers
from bloop.ai.jobs.events import OutputRef
from bloop.ai.jobs.lessons import InProcessLessons
from bloop.ai.jobs.model import (
    Cost,
    Job,
    JobRequest,
    Lease,
    MediaOutput,
    MediaResult,
    TenantAiConfig,
    now,
)
from bloop.ai.jobs.service import JobService
from bloop.ai.providers import tts
from bloop.ai.text.model import LessonText
from bloop.platform.app import create_app
from bloop.platform.content.ai_outputs import AiOutputs
from bloop.platform.content.model import LessonEdit
from bloop.platform.content.quiz import QuizBlock
from bloop.platform.kit.errors import Problem, StoreUnavailable
from bloop.platform.kit.settings import AiSettings, RuntimeSettings, Settings
from tests.support import (
    NESTED_CURSOR,
    api_client,
    eventually,
    finished_ai_video,
    member,
    require_media_kind,
)
from tests.unit.ai.fake_openai import FakeOpenAI

BASE = "/v1/tenants/acme"
LESSON = """In Python, a *variable* is a name that refers to a value. An assignment statement
binds the name on its left to the value that the expression on its right evaluates to.

A name does not hold a copy of a value: it refers to an object, and two names can refer to the
same object. Rebinding a name never changes what another name refers to."""


def takes_quizzes() -> bool:
    try:
        LessonEdit.model_validate({"version": 1, "blocks": [{"type": "quiz", "id": "q", "title": "Q",
            "questions": [{"id": "a", "type": "true_false", "prompt": "p", "answer": True}]}]})
    except ValidationError:
        return False
    return True


def build(tmp_path: Path, ai: AiSettings) -> FastAPI:
    settings = Settings(runtime=RuntimeSettings(data_dir=tmp_path, seed_demo=False), ai=ai)
    return create_app(settings, services=["identity", "content", "ai"])


@pytest.fixture
async def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FastAPI]:
    for var in ("BLOOP_STORE", "BLOOP_MONGO_ADAPTER", "BLOOP_KAFKA_ADAPTER", "BLOOP_REDIS_ADAPTER"):
        monkeypatch.delenv(var, raising=False)
    application = build(tmp_path, AiSettings(max_jobs_per_hour=5))
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(app) as c:
        c.headers.update(await member(app, c, "acme", ["educator"]))
        yield c


async def lesson(client: httpx.AsyncClient, text: str = LESSON) -> dict[str, Any]:
    return await lesson_at(client, BASE, text)


async def lesson_at(client: httpx.AsyncClient, base: str, text: str = LESSON) -> dict[str, Any]:
    """A new lesson in course `py` of the tenant at `base`, teaching `variables`."""
    r = await client.post(f"{base}/concepts", json={"id": "variables", "name": "Variables"})
    assert r.status_code in (201, 409), r.text
    r = await client.post(f"{base}/courses", json={"id": "py", "title": "Python"})
    assert r.status_code in (201, 409), r.text
    blocks = [{"type": "markdown", "markdown": text}] if text else []
    r = await client.post(f"{base}/courses/py/lessons", json={
        "title": "Names and values", "teaches": ["variables"], "blocks": blocks})
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    return body


async def follow(client: httpx.AsyncClient, job_id: str) -> list[tuple[str, dict[str, Any]]]:
    return await follow_at(client, BASE, job_id)


async def follow_at(client: httpx.AsyncClient, base: str,
                    job_id: str) -> list[tuple[str, dict[str, Any]]]:
    """Every event of the job's stream, until the stream ends."""
    events: list[tuple[str, dict[str, Any]]] = []
    async with client.stream("GET", f"{base}/ai/jobs/{job_id}/events", timeout=60) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        name = ""
        async for line in r.aiter_lines():
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                events.append((name, json.loads(line[6:])))
    return events


async def test_a_stream_of_a_job_that_never_ends_ends_and_a_caller_keeps_few_open(
        client: httpx.AsyncClient, app: FastAPI, monkeypatch: pytest.MonkeyPatch) -> None:
    """A queued job nobody takes up: its stream used to stay open, read the store every 2 s,
    for as long as the client liked, and a caller could open any number."""
    service: JobService = app.state.ai.state["service"]
    les = await lesson(client)
    stuck = Job.create("acme", JobRequest(kind="summary", lesson_id=les["id"]), LessonText(
        id=les["id"], version=1, title="Names", text=LESSON), "u1", "stuck", 3)
    await service.store.create(stuck, [])  # no event: no worker takes it up
    monkeypatch.setattr(ai_api, "STREAM_LIFETIME_S", 1.5)
    url = f"{BASE}/ai/jobs/{stuck.id}/events"

    async def opened(wait_s: float) -> httpx.Response:
        await asyncio.sleep(wait_s)
        return await client.get(url, timeout=30)

    answers = await asyncio.gather(*(opened(0) for _ in range(ai_api.STREAMS_PER_CALLER)),
                                   opened(0.7))
    assert [r.status_code for r in answers] == [200] * ai_api.STREAMS_PER_CALLER + [429]
    assert answers[-1].json()["code"] == "too_many_streams"
    first = answers[0].text
    assert first.startswith("retry: 2000")
    assert "event: progress" in first
    assert "event: end" not in first  # ended by its lifetime: the client reconnects
    assert (await client.get(url, timeout=30)).status_code == 200  # all closed: room again


async def test_the_metrics_count_unfinished_jobs_by_kind_and_status(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Before, /metrics said nothing of the AI jobs waiting or running."""
    for var in ("BLOOP_STORE", "BLOOP_MONGO_ADAPTER", "BLOOP_KAFKA_ADAPTER", "BLOOP_REDIS_ADAPTER"):
        monkeypatch.delenv(var, raising=False)
    app = build(tmp_path, AiSettings(sweep_interval_s=0.05))
    async with app.router.lifespan_context(app), api_client(app) as client:
        client.headers.update(await member(app, client, "acme", ["educator"]))
        service: JobService = app.state.ai.state["service"]
        les = await lesson(client)
        stuck = Job.create("acme", JobRequest(kind="summary", lesson_id=les["id"]), LessonText(
            id=les["id"], version=1, title="Names", text=LESSON), "u1", "stuck", 3)
        await service.store.create(stuck, [])  # no event: no worker takes it up

        def shown(status: str, count: int) -> Callable[[], Awaitable[bool]]:
            async def check() -> bool:
                text = (await client.get("/metrics")).text.splitlines()
                return (f'bloop_ai_jobs_unfinished{{kind="summary",status="{status}"}} {count}.0'
                        in text)
            return check

        await eventually(shown("queued", 1), timeout_s=5, what="the queued job counted")
        text = (await client.get("/metrics")).text.splitlines()
        assert 'bloop_ai_jobs_unfinished{kind="video",status="running"} 0.0' in text
        held = stuck.update(status="running", lease=Lease(
            owner="elsewhere", expires_at=now() + timedelta(minutes=5)))
        assert await service.store.replace(held, stuck.rev, [])
        await eventually(shown("running", 1), timeout_s=5, what="the running job counted")
        assert await shown("queued", 0)()


async def test_a_summary_job_runs_offline_and_streams_to_its_end(client: httpx.AsyncClient) -> None:
    les = await lesson(client)
    r = await client.post(f"{BASE}/ai/jobs", json={"kind": "summary", "lesson_id": les["id"]})
    assert r.status_code == 201, r.text
    job = r.json()
    assert r.headers["location"] == f"{BASE}/ai/jobs/{job['id']}"
    assert job["status"] in ("queued", "running", "succeeded")
    events = await follow(client, job["id"])
    assert events[-1][0] == "end"
    assert [n for n, _ in events[:-1]] == ["progress"] * (len(events) - 1)
    progress = [e["progress"] for _, e in events]
    assert progress == sorted(progress)
    final = events[-1][1]
    assert final["status"] == "succeeded", final
    assert final["progress"] == 100
    assert final["result"]["source"] == "offline"
    assert "no language model" in final["result"]["note"]
    for point in final["result"]["key_points"]:
        assert " ".join(point.split()) in " ".join(LESSON.replace("*", "").split())
    assert final["cost"]["usd"] == 0

    again = await client.post(f"{BASE}/ai/jobs", json={"kind": "summary", "lesson_id": les["id"]})
    assert again.status_code == 200
    assert again.json()["id"] == job["id"]
    listed = (await client.get(f"{BASE}/ai/jobs", params={"lesson_id": les["id"]})).json()
    assert ([j["id"] for j in listed["items"]], listed["next"]) == ([job["id"]], None)

    quiz = (await client.post(f"{BASE}/ai/jobs", json={"kind": "quiz", "lesson_id": les["id"]})).json()
    first = (await client.get(f"{BASE}/ai/jobs", params={"limit": 1})).json()
    assert [j["id"] for j in first["items"]] == [quiz["id"]]
    rest = (await client.get(f"{BASE}/ai/jobs", params={"limit": 1, "after": first["next"]})).json()
    assert ([j["id"] for j in rest["items"]], rest["next"]) == ([job["id"]], None)
    for after in ("bm9wZQ", NESTED_CURSOR):
        r = await client.get(f"{BASE}/ai/jobs", params={"after": after})
        assert (r.status_code, r.json()["code"]) == (422, "bad_cursor")


async def test_two_quiz_drafts_of_one_lesson_version_both_go_into_the_lesson(
        client: httpx.AsyncClient) -> None:
    """Both quizzes took the id of the lesson's version, so the second could not be added
    beside the first: 422, the quiz id appears twice."""
    les = await lesson(client)
    blocks = []
    for params in ({"count": 3}, {"count": 5, "instructions": "Ask about rebinding."}):
        r = await client.post(f"{BASE}/ai/jobs", json={"kind": "quiz", "lesson_id": les["id"],
                                                       "params": params})
        assert r.status_code == 201, r.text
        final = (await follow(client, r.json()["id"]))[-1][1]
        assert final["status"] == "succeeded", final
        again = (await client.get(f"{BASE}/ai/jobs/{final['id']}")).json()
        assert again["result"]["block"]["id"] == final["result"]["block"]["id"]
        blocks.append(final["result"]["block"])
    assert blocks[0]["id"] != blocks[1]["id"]
    edit = await client.patch(f"{BASE}/lessons/{les['id']}", json={
        "version": les["version"], "blocks": [*les["blocks"], *blocks]})
    assert edit.status_code == 200, edit.text


async def test_a_quiz_job_makes_a_content_quiz_block_with_the_llm(
        tmp_path: Path, fake_openai: FakeOpenAI, monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("BLOOP_STORE", "BLOOP_MONGO_ADAPTER", "BLOOP_KAFKA_ADAPTER"):
        monkeypatch.delenv(var, raising=False)
    app = build(tmp_path, AiSettings(openai_base_url=fake_openai.base_url, model="gpt-4o-mini",
                                     price_input_per_mtok=0.15, price_output_per_mtok=0.6))
    async with app.router.lifespan_context(app), api_client(app) as c:
        c.headers.update(await member(app, c, "acme", ["educator"]))
        les = await lesson(c)
        r = await c.post(f"{BASE}/ai/jobs", json={"kind": "quiz", "lesson_id": les["id"],
                                                  "params": {"count": 3}})
        assert r.status_code == 201, r.text
        final = (await follow(c, r.json()["id"]))[-1][1]
        assert final["status"] == "succeeded", final
        block = QuizBlock.model_validate(final["result"]["block"])
        assert [q.type for q in block.questions] == ["single_choice", "true_false",
                                                     "short_text"]
        assert final["cost"]["prompt_tokens"] == 1117
        assert final["cost"]["usd"] == pytest.approx((1117 * 0.15 + 246 * 0.6) / 1e6)
        # The educator accepts the draft: the block goes into the lesson through content's
        # edit API (once content's lessons take quiz blocks).
        if takes_quizzes():
            edit = await c.patch(f"{BASE}/lessons/{les['id']}", json={
                "version": les["version"],
                "blocks": [*les["blocks"], final["result"]["block"]]})
            assert edit.status_code == 200, edit.text
    [request] = fake_openai.requests
    assert request["response_format"]["type"] == "json_schema"
    assert request["response_format"]["json_schema"]["name"] == "QuizAnswer"
    assert "Names and values" in request["messages"][-1]["content"]


async def test_refusals(client: httpx.AsyncClient, app: FastAPI) -> None:
    empty = await lesson(client, text="")
    r = await client.post(f"{BASE}/ai/jobs", json={"kind": "summary", "lesson_id": empty["id"]})
    assert r.status_code == 422
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["code"] == "lesson_empty"

    r = await client.post(f"{BASE}/ai/jobs", json={"kind": "summary", "lesson_id": "nope"})
    assert r.status_code == 404

    les = await lesson(client)
    r = await client.post(f"{BASE}/ai/jobs", json={
        "kind": "summary", "lesson_id": les["id"], "params": {"instructions": "x" * 2001}})
    assert r.status_code == 422

    r = await client.post(f"{BASE}/ai/jobs", json={"kind": "flashcards", "lesson_id": les["id"]},
                          headers={"Idempotency-Key": "k-1"})
    assert r.status_code == 201
    r2 = await client.post(f"{BASE}/ai/jobs", json={"kind": "quiz", "lesson_id": les["id"]},
                           headers={"Idempotency-Key": "k-1"})
    assert r2.status_code == 422
    assert r2.json()["code"] == "idempotency_key_reused"
    r2 = await client.post(f"{BASE}/ai/jobs", json={"kind": "quiz", "lesson_id": les["id"]},
                           headers={"Idempotency-Key": "with space"})
    assert r2.json()["code"] == "invalid_idempotency_key"

    other = await member(app, client, "beta", ["educator"])
    job_id = r.json()["id"]
    r = await client.get(f"/v1/tenants/beta/ai/jobs/{job_id}", headers=other)
    assert r.status_code == 404
    r = await client.post("/v1/tenants/beta/ai/jobs", headers=other,
                          json={"kind": "summary", "lesson_id": les["id"]})
    assert r.status_code == 404
    r = await client.post(f"/v1/tenants/beta/ai/jobs/{job_id}/cancel", headers=other)
    assert r.status_code == 404

    learner = await member(app, client, "acme", ["learner"])
    r = await client.post(f"{BASE}/ai/jobs", headers=learner,
                          json={"kind": "summary", "lesson_id": les["id"]})
    assert r.status_code == 403
    r = await client.get(f"{BASE}/ai/jobs/{job_id}", headers=learner)
    assert r.status_code == 403
    r = await client.put(f"{BASE}/ai/settings", json={"model": "m"})
    assert r.status_code == 403, "only a tenant admin sets the provider"

    assert (await follow(client, job_id))[-1][1]["status"] == "succeeded"
    r = await client.post(f"{BASE}/ai/jobs/{job_id}/cancel")
    assert r.status_code == 409
    assert r.headers["content-type"] == "application/problem+json"
    assert (r.json()["code"], r.json()["status"], r.json()["job_status"]) == (
        "job_finished", 409, "succeeded")


async def test_quotas_refuse_before_any_spend(client: httpx.AsyncClient, app: FastAPI) -> None:
    admin = await member(app, client, "acme", ["tenant_admin"])
    r = await client.put(f"{BASE}/ai/settings", headers=admin, json={
        "monthly_budget_usd": 0, "api_key": "sk-secret-1234", "provider": "offline"})
    assert r.status_code == 200, r.text
    view = r.json()
    assert view["has_api_key"] is True
    assert "sk-secret" not in r.text
    assert view["effective_provider"] == "offline"
    les = await lesson(client)
    r = await client.post(f"{BASE}/ai/jobs", json={"kind": "summary", "lesson_id": les["id"]})
    assert r.status_code == 402
    assert r.json()["code"] == "ai_budget_exhausted"
    assert (await client.get(f"{BASE}/ai/jobs")).json()["items"] == []

    r = await client.put(f"{BASE}/ai/settings", headers=admin, json={"max_jobs_per_hour": 2})
    assert r.json()["has_api_key"] is True, "a key left out stays"
    for kind in ("summary", "flashcards"):
        r = await client.post(f"{BASE}/ai/jobs", json={"kind": kind, "lesson_id": les["id"]})
        assert r.status_code == 201, r.text
    r = await client.post(f"{BASE}/ai/jobs", json={"kind": "quiz", "lesson_id": les["id"]})
    assert r.status_code == 429
    assert r.json()["code"] == "ai_quota_exceeded"
    assert "retry-after" in r.headers
    view = (await client.get(f"{BASE}/ai/settings", headers=admin)).json()
    assert view["jobs_last_hour"] == 2


async def test_jobs_asked_for_at_once_keep_to_the_hourly_quota(client: httpx.AsyncClient,
                                                               app: FastAPI) -> None:
    admin = await member(app, client, "acme", ["tenant_admin"])
    r = await client.put(f"{BASE}/ai/settings", headers=admin, json={"max_jobs_per_hour": 2})
    assert r.status_code == 200, r.text
    les = await lesson(client)
    asked = await asyncio.gather(*(client.post(f"{BASE}/ai/jobs", json={
        "kind": "summary", "lesson_id": les["id"], "params": {"instructions": f"take {i}"}})
        for i in range(6)))
    assert sorted(r.status_code for r in asked) == [201, 201, 429, 429, 429, 429]
    assert {r.json()["code"] for r in asked if r.status_code == 429} == {"ai_quota_exceeded"}
    assert len((await client.get(f"{BASE}/ai/jobs")).json()["items"]) == 2


@pytest.mark.parametrize("base_url", [
    "http://127.0\x1f.0.1/v1", "http://models.internal/v1\n", "ftp://models.internal",
    "http://models.internal:70000/v1", "http://", "http://models internal/v1",
    "https://xn--.com/v1", "https://xn--ls8h.la/v1"])
async def test_a_provider_address_that_cannot_be_fetched_is_refused(
        client: httpx.AsyncClient, app: FastAPI, base_url: str) -> None:
    admin = await member(app, client, "acme", ["tenant_admin"])
    r = await client.put(f"{BASE}/ai/settings", headers=admin, json={"base_url": base_url})
    assert r.status_code == 422, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["code"] == "validation_failed"
    assert "not a web address" in r.text, "not a library's own words (idna's, for `xn--`)"
    view = (await client.get(f"{BASE}/ai/settings", headers=admin)).json()
    assert view["base_url"] is None, "nothing was kept"
    r = await client.put(f"{BASE}/ai/settings", headers=admin,
                         json={"base_url": "http://127.0.0.1:11434/v1"})
    assert (r.status_code, r.json()["code"]) == (422, "private_address"), "not by default"
    service: JobService = app.state.ai.state["service"]
    service.settings = service.settings.model_copy(update={"tenant_private_addresses": True})
    r = await client.put(f"{BASE}/ai/settings", headers=admin,
                         json={"base_url": "http://127.0.0.1:11434/v1"})
    assert r.json()["base_url"] == "http://127.0.0.1:11434/v1", "a good address is kept as written"


async def test_an_address_stored_before_the_check_fails_jobs_cleanly_until_corrected(
        client: httpx.AsyncClient, app: FastAPI) -> None:
    service: JobService = app.state.ai.state["service"]
    await service.store.put_config("acme", TenantAiConfig.model_construct(
        provider="openai", base_url="http://127.0\x1f.0.1/v1"))
    admin = await member(app, client, "acme", ["tenant_admin"])
    r = await client.get(f"{BASE}/ai/settings", headers=admin)
    assert r.status_code == 200, r.text
    assert r.json()["base_url"] == "http://127.0\x1f.0.1/v1"

    les = await lesson(client)
    summary = {"kind": "summary", "lesson_id": les["id"]}
    r = await client.post(f"{BASE}/ai/jobs", json=summary)
    assert r.status_code == 201, r.text
    failed = r.json()["id"]
    final = (await follow(client, failed))[-1][1]
    assert final["status"] == "failed"
    assert final["errors"][-1]["code"] == "provider_rejected", final["errors"]
    assert "base_url" in final["errors"][-1]["message"]
    keyed = await client.post(f"{BASE}/ai/jobs", json=summary, headers={"Idempotency-Key": "s-1"})
    assert (await follow(client, keyed.json()["id"]))[-1][1]["status"] == "failed"

    r = await client.put(f"{BASE}/ai/settings", headers=admin, json={"provider": "offline"})
    assert r.status_code == 200, r.text
    r = await client.post(f"{BASE}/ai/jobs", json={"kind": "flashcards", "lesson_id": les["id"]})
    assert (await follow(client, r.json()["id"]))[-1][1]["status"] == "succeeded"
    r = await client.post(f"{BASE}/ai/jobs", json=summary)
    assert r.status_code == 201, "asked again after it failed: a new job"
    assert r.json()["id"] != failed
    assert (await follow(client, r.json()["id"]))[-1][1]["status"] == "succeeded"
    again = await client.post(f"{BASE}/ai/jobs", json=summary)
    assert (again.status_code, again.json()["id"]) == (200, r.json()["id"])
    r = await client.post(f"{BASE}/ai/jobs", json=summary, headers={"Idempotency-Key": "s-1"})
    assert (r.status_code, r.json()["id"], r.json()["status"]) == (
        200, keyed.json()["id"], "failed"), "a client's key names its one job"


async def test_another_educator_works_from_what_was_published_and_adds_no_media(
        client: httpx.AsyncClient, app: FastAPI) -> None:
    """The AI service reads a lesson as the caller may: a course's draft is its authors' alone,
    and a narration or video (added to the draft) is theirs to ask for."""
    les = await lesson(client, "The launch code of the unreleased exam is PINEAPPLE.")
    other = await member(app, client, "acme", ["educator"])
    r = await client.post(f"{BASE}/ai/jobs", headers=other,
                          json={"kind": "summary", "lesson_id": les["id"]})
    assert (r.status_code, r.json()["code"]) == (404, "not_found"), r.text
    r = await client.post(f"{BASE}/courses/py/publish")
    assert r.status_code == 200, r.text
    r = await client.patch(f"{BASE}/lessons/{les['id']}", json={
        "version": les["version"], "title": "Secret draft",
        "blocks": [{"type": "markdown", "markdown": "A draft nobody else may read yet."}]})
    assert r.status_code == 200, r.text
    r = await client.post(f"{BASE}/ai/jobs", headers=other,
                          json={"kind": "summary", "lesson_id": les["id"]})
    assert r.status_code == 201, r.text
    assert (r.json()["lesson_title"], r.json()["lesson_version"]) == (
        "Names and values", les["version"])
    for kind in ("narration", "video"):
        r = await client.post(f"{BASE}/ai/jobs", headers=other,
                              json={"kind": kind, "lesson_id": les["id"]})
        assert (r.status_code, r.json()["code"]) == (403, "not_an_author"), r.text
    r = await client.post(f"{BASE}/ai/jobs", json={"kind": "summary", "lesson_id": les["id"]})
    assert r.json()["lesson_title"] == "Secret draft"


async def test_a_media_job_asked_for_as_its_lesson_is_deleted_answers_404(
        client: httpx.AsyncClient, app: FastAPI, monkeypatch: pytest.MonkeyPatch) -> None:
    """The lesson is deleted between its reading and the check of who may edit it: its own
    author was told 403 not_an_author."""
    les = await lesson(client)
    content = app.state.content.state["service"]
    read = InProcessLessons.lesson

    async def read_then_deleted(self: InProcessLessons, tenant: str, lesson_id: str,
                                *args: Any) -> LessonText:
        found = await read(self, tenant, lesson_id, *args)
        await content.delete_lesson(tenant, lesson_id)
        return found

    monkeypatch.setattr(InProcessLessons, "lesson", read_then_deleted)
    r = await client.post(f"{BASE}/ai/jobs", json={"kind": "narration", "lesson_id": les["id"]})
    assert (r.status_code, r.json()["code"]) == (404, "not_found"), r.text
    assert (await client.get(f"{BASE}/lessons/{les['id']}")).status_code == 404


async def test_only_the_requester_the_lesson_s_authors_and_admins_cancel_a_job(
        client: httpx.AsyncClient, app: FastAPI) -> None:
    """Any educator of the tenant could cancel anyone's job. A job ended before its cancel
    answers 409: allowed all the same."""
    les = await lesson(client)
    assert (await client.post(f"{BASE}/courses/py/publish")).status_code == 200
    reader, stranger, admin = [await member(app, client, "acme", [role]) for role in
                               ("educator", "educator", "tenant_admin")]
    asked = {}
    for name, headers in (("author", client.headers), ("reader", reader)):
        r = await client.post(f"{BASE}/ai/jobs", headers=headers, json={
            "kind": "summary", "lesson_id": les["id"], "params": {"instructions": name}})
        assert r.status_code == 201, r.text
        asked[name] = r.json()["id"]
    for job_id in asked.values():
        r = await client.post(f"{BASE}/ai/jobs/{job_id}/cancel", headers=stranger)
        assert (r.status_code, r.json()["code"]) == (403, "not_an_author"), r.text
    for headers, job_id in ((reader, asked["reader"]), (client.headers, asked["reader"]),
                            (admin, asked["author"])):
        r = await client.post(f"{BASE}/ai/jobs/{job_id}/cancel", headers=headers)
        assert r.status_code in (200, 409), r.text
        assert r.json().get("code") in (None, "job_finished")


async def test_a_narration_job_makes_audio_its_authors_can_play(client: httpx.AsyncClient,
                                                                app: FastAPI) -> None:
    """Its outputs stream to those who may see the job; a narration of a draft (its captions
    the draft's text) streamed to every member of the tenant."""
    require_media_kind(app, "narration")
    les = await lesson(client)
    r = await client.post(f"{BASE}/ai/jobs", json={"kind": "narration", "lesson_id": les["id"]})
    assert r.status_code == 201, r.text
    final = (await follow(client, r.json()["id"]))[-1][1]
    assert final["status"] == "succeeded", final["errors"]
    outputs = {o["kind"]: o for o in final["result"]["outputs"]}
    audio = outputs["audio"]
    assert audio["content_type"].startswith("audio/")
    assert audio["duration_s"] > 3
    got = await client.get(audio["url"])
    assert got.status_code == 200
    assert got.headers["content-type"] == audio["content_type"]
    assert len(got.content) == audio["bytes"] > 1000
    captions = await client.get(outputs["subtitles"]["url"])
    assert captions.text.startswith("WEBVTT")
    # served inline, as media are: never taken for another type sniffed from the bytes
    for served in (got, captions):
        assert served.headers["x-content-type-options"] == "nosniff"
    # what the API's schema says these answers are holds every type they come as
    spec = (await client.get("/openapi.json")).json()["paths"]
    for path in ("/v1/tenants/{tenant}/ai/jobs/{job}/outputs/{name}",
                 "/v1/tenants/{tenant}/ai/links/{job}/{name}"):
        declared = spec[path]["get"]["responses"]["200"]["content"]
        for got_type in (got.headers["content-type"], captions.headers["content-type"]):
            kind = got_type.split(";")[0]
            assert kind in declared or f"{kind.split('/')[0]}/*" in declared, (path, kind)
    for role in ("learner", "educator", "teaching_assistant"):
        stranger = await member(app, client, "acme", [role])
        for url in (audio["url"], outputs["subtitles"]["url"]):
            r = await client.get(url, headers=stranger)
            assert (r.status_code, r.json()["code"]) == (404, "not_found"), (role, r.text)
    other = await member(app, client, "beta", ["learner"])
    r = await client.get(audio["url"].replace("/acme/", "/beta/"), headers=other)
    assert r.status_code == 404

    # content, in this process, attached the audio to the lesson's draft through the AI
    # service's outputs object
    async def attached() -> bool:
        draft = (await client.get(f"{BASE}/lessons/{les['id']}")).json()
        return any(b["type"] == "audio" for b in draft["blocks"])

    await eventually(attached, timeout_s=20, what="the narration in the lesson's draft")

    # the signed link video.events carry opens the output without credentials, and nothing else
    link = app.state.ai.state["links"].signed("acme", final["id"], audio["name"])
    anonymous = httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                  base_url="http://bloop.test")
    async with anonymous:
        got_linked = await anonymous.get(link)
        assert got_linked.status_code == 200
        assert got_linked.content == got.content
        assert got_linked.headers["x-content-type-options"] == "nosniff"
        for forged in (link.replace("/acme/", "/beta/"), link[:-4] + "0000",
                       link.replace(audio["name"], outputs["subtitles"]["name"])):
            r = await anonymous.get(forged)
            assert r.status_code == 403, forged
            assert r.json()["code"] == "bad_signature"
        r = await anonymous.get(link.split("?")[0])
        assert r.status_code == 422
        # content in another process follows the link over HTTP
        remote = AiOutputs(lambda: None, "http://bloop.test", client=anonymous)
        ref = OutputRef(name=audio["name"], kind="audio", content_type=audio["content_type"],
                        url=link, file_id=audio["file_id"], bytes=audio["bytes"],
                        duration_s=audio["duration_s"])
        assert b"".join([c async for c in remote.read("acme", final["id"], ref)]) == got.content
        gone = ref.model_copy(update={"url": link.replace("/acme/", "/beta/")})
        with pytest.raises(Problem) as refused:
            _ = [c async for c in remote.read("acme", final["id"], gone)]
        assert refused.value.status == 403
    with pytest.raises(StoreUnavailable):
        AiOutputs(lambda: None, None).read("acme", final["id"], ref)


async def finished_video(app: FastAPI, tmp_path: Path, payload: bytes) -> str:
    """A succeeded video job from a prompt (shown to the tenant's staff) with its `video.mp4`
    stored, as a worker leaves one."""
    service: JobService = app.state.ai.state["service"]
    source = tmp_path / "video.mp4"
    source.write_bytes(payload)
    job = Job.create("acme", JobRequest(kind="video", params={"prompt": "Names"}), None, "u1",
                     "made", 3)
    stored = await app.state.ai.state["media"].put("acme", job.id, "video.mp4", "video/mp4",
                                                   source)
    done = job.update(status="succeeded", result=MediaResult(outputs=[MediaOutput(
        name="video.mp4", kind="video", content_type="video/mp4", bytes=stored.length,
        file_id=stored.file_id, url=f"{BASE}/ai/jobs/{job.id}/outputs/video.mp4")]))
    await service.store.create(done, [])
    return job.id


async def test_outputs_answer_range_requests_on_both_routes(
        client: httpx.AsyncClient, app: FastAPI, tmp_path: Path) -> None:
    """Outputs came whole (200) whatever the `Range`, with no `ETag` and no `HEAD`: Safari and
    iOS play no MP4 without 206 answers, and a seek downloaded the video from its start again."""
    payload = bytes(range(256)) * 4096  # 1 MiB: several store chunks
    job_id = await finished_video(app, tmp_path, payload)
    link = app.state.ai.state["links"].signed("acme", job_id, "video.mp4")
    anonymous = httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                  base_url="http://bloop.test")
    async with anonymous:
        for get, url in ((client, f"{BASE}/ai/jobs/{job_id}/outputs/video.mp4"),
                         (anonymous, link)):
            whole = await get.get(url)
            assert whole.status_code == 200, whole.text
            assert whole.content == payload
            etag = whole.headers["etag"]
            assert (whole.headers["accept-ranges"], whole.headers["cache-control"]) == (
                "bytes", "private, max-age=3600")
            assert "content-range" not in whole.headers
            size = len(payload)
            for asked, start, end in (("bytes=0-99", 0, 100), ("bytes=-500", size - 500, size),
                                      ("bytes=300000-", 300000, size),
                                      (f"bytes=5-{size + 10}", 5, size)):
                r = await get.get(url, headers={"Range": asked})
                assert r.status_code == 206, (url, asked, r.text)
                assert r.content == payload[start:end], (url, asked)
                assert r.headers["content-range"] == f"bytes {start}-{end - 1}/{size}"
                assert r.headers["content-length"] == str(end - start)
                assert (r.headers["etag"], r.headers["content-type"]) == (etag, "video/mp4")
            r = await get.get(url, headers={"Range": f"bytes={size}-"})
            assert (r.status_code, r.json()["code"]) == (416, "range_not_satisfiable"), url
            assert r.headers["content-range"] == f"bytes */{size}"
            # If-Range: the range while the tag is current, else the whole file
            r = await get.get(url, headers={"Range": "bytes=0-99", "If-Range": etag})
            assert (r.status_code, r.content) == (206, payload[:100])
            for stale in ('"other"', f"W/{etag}", "Wed, 21 Oct 2015 07:28:00 GMT"):
                r = await get.get(url, headers={"Range": "bytes=0-99", "If-Range": stale})
                assert (r.status_code, r.content) == (200, payload), stale
            # If-None-Match: 304 for its tag, a weak one and `*`, with no body
            for current in (etag, f"W/{etag}", f'"other", {etag}', "*"):
                r = await get.get(url, headers={"If-None-Match": current})
                assert (r.status_code, r.content) == (304, b""), current
                assert r.headers["etag"] == etag
            r = await get.get(url, headers={"If-None-Match": '"other"'})
            assert (r.status_code, r.content) == (200, payload)
            # HEAD: the headers GET gives, with no body
            head = await get.head(url)
            assert (head.status_code, head.content) == (200, b"")
            assert (head.headers["content-length"], head.headers["etag"],
                    head.headers["accept-ranges"]) == (str(size), etag, "bytes")
            head = await get.head(url, headers={"Range": "bytes=-500"})
            assert (head.status_code, head.content) == (206, b"")
            assert head.headers["content-range"] == f"bytes {size - 500}-{size - 1}/{size}"
            assert head.headers["content-length"] == "500"
        # the signed link stays its own credential for HEAD, as for GET
        r = await anonymous.head(link.replace("/acme/", "/beta/"))
        assert r.status_code == 403
    # the member route still shows the output only to those who may see the job
    learner = await member(app, client, "acme", ["learner"])
    r = await client.get(f"{BASE}/ai/jobs/{job_id}/outputs/video.mp4",
                         headers=learner | {"Range": "bytes=0-99"})
    assert r.status_code == 404


async def test_the_data_export_has_the_user_s_jobs_and_deleting_the_user_anonymises_them(
        client: httpx.AsyncClient, app: FastAPI) -> None:
    les = await lesson(client)
    assert (await client.post(f"{BASE}/courses/py/publish")).status_code == 200  # for `author`
    author = await member(app, client, "acme", ["educator"])
    r = await client.post(f"{BASE}/ai/jobs", headers=author, json={
        "kind": "quiz", "lesson_id": les["id"],
        "params": {"count": 3, "instructions": "Mention my cat Tom."}})
    assert r.status_code == 201, r.text
    job_id = r.json()["id"]
    final = (await follow(client, job_id))[-1][1]
    assert final["status"] == "succeeded", final
    r = await client.post(f"{BASE}/ai/jobs", json={"kind": "summary", "lesson_id": les["id"]})
    assert r.status_code == 201, r.text
    someone_else = r.json()["id"]
    admin = await member(app, client, "acme", ["tenant_admin"])
    await client.put(f"{BASE}/ai/settings", headers=admin, json={"api_key": "sk-never-exported"})

    export = await client.get(f"{BASE}/me/export", headers=author)
    assert export.status_code == 200, export.text
    mine = export.json()["services"]["ai"]["jobs_requested"]
    assert [(j["id"], j["kind"], j["status"]) for j in mine] == [(job_id, "quiz", "succeeded")]
    assert mine[0]["params"]["instructions"] == "Mention my cat Tom."
    assert "sk-never-exported" not in export.text

    user_id = final["requested_by"]
    r = await client.delete(f"{BASE}/me", headers=author)
    assert r.status_code == 204, r.text
    service = app.state.ai.state["service"]

    async def anonymised() -> bool:
        job = await service.job("acme", job_id)
        return bool(job.requested_by == "deleted-user")

    await eventually(anonymised, timeout_s=20, interval_s=0.05, what="the job to be anonymised")
    view = (await client.get(f"{BASE}/ai/jobs/{job_id}")).json()
    assert (view["requested_by"], view["params"]["instructions"]) == ("deleted-user", "")
    assert view["status"] == "succeeded"
    assert view["result"] is not None
    assert "Tom" not in json.dumps(view)
    assert user_id not in json.dumps(view)
    assert (await service.job("acme", someone_else)).requested_by != "deleted-user"
    assert await service.personal_data("acme", user_id) == {"jobs_requested": []}


async def test_a_job_on_a_draft_is_shown_only_to_those_who_may_read_the_draft(
        client: httpx.AsyncClient, app: FastAPI) -> None:
    """Any staff member read every job: a second educator or a teaching assistant, answered
    404 for a draft lesson, read its title and the quiz made from it, answers included,
    through the jobs routes. A job now shows only to whoever asked for it, the lesson's
    authors, the admins, and those content shows the lesson to at the job's version."""
    les = await lesson(client, LESSON + "\n\nThe launch code of the unreleased exam is "
                                        "PINEAPPLE.")
    other, ta, admin = [await member(app, client, "acme", [role]) for role in
                        ("educator", "teaching_assistant", "tenant_admin")]
    r = await client.post(f"{BASE}/ai/jobs", json={"kind": "quiz", "lesson_id": les["id"]})
    assert r.status_code == 201, r.text
    drafted = r.json()["id"]
    assert (await follow(client, drafted))[-1][1]["status"] == "succeeded"
    url = f"{BASE}/ai/jobs/{drafted}"

    for stranger in (other, ta):
        assert (await client.get(f"{BASE}/lessons/{les['id']}", headers=stranger)
                ).status_code == 404, "content answers 404 for the draft"
        for path in (url, f"{url}/events"):
            r = await client.get(path, headers=stranger)
            assert (r.status_code, r.json()["code"]) == (404, "not_found"), r.text
            assert "PINEAPPLE" not in r.text
            assert "Names and values" not in r.text
        for params in ({}, {"lesson_id": les["id"]}, {"status": "succeeded"}):
            r = await client.get(f"{BASE}/ai/jobs", headers=stranger, params=params)
            assert r.json() == {"items": [], "next": None}, r.text
    r = await client.post(f"{url}/cancel", headers=other)
    assert (r.status_code, r.json()["code"]) == (404, "not_found"), "as for GET"
    for reader in (client.headers, admin):
        r = await client.get(url, headers=reader)
        assert r.status_code == 200, r.text
        assert r.json()["lesson_title"] == "Names and values"
        assert r.json()["result"]["block"]["questions"]
        listed = (await client.get(f"{BASE}/ai/jobs", headers=reader)).json()
        assert [j["id"] for j in listed["items"]] == [drafted]

    # published as it was: those who read the published lesson read the job made from it
    assert (await client.post(f"{BASE}/courses/py/publish")).status_code == 200
    for reader in (other, ta):
        r = await client.get(url, headers=reader)
        assert r.status_code == 200, r.text
        assert (await follow_with(client, drafted, reader))[-1][1]["status"] == "succeeded"
    r = await client.post(f"{url}/cancel", headers=other)
    assert (r.status_code, r.json()["code"]) == (403, "not_an_author"), "seen, not theirs"

    # the draft moves on: a job on the new draft is its authors' again
    r = await client.patch(f"{BASE}/lessons/{les['id']}", json={
        "version": les["version"], "title": "Secret draft",
        "blocks": [{"type": "markdown", "markdown": "The new code is MANGO, for authors only."}]})
    assert r.status_code == 200, r.text
    quiz = {"kind": "quiz", "lesson_id": les["id"]}
    r = await client.post(f"{BASE}/ai/jobs", json=quiz, headers={"Idempotency-Key": "quiz-1"})
    assert r.status_code == 201, r.text
    redrafted = r.json()["id"]
    assert (await follow(client, redrafted))[-1][1]["lesson_title"] == "Secret draft"
    r = await client.get(f"{BASE}/ai/jobs/{redrafted}", headers=other)
    assert r.status_code == 404
    r = await client.post(f"{BASE}/ai/jobs", headers={**other, "Idempotency-Key": "quiz-1"},
                          json={"kind": "summary", "lesson_id": les["id"]})
    assert r.status_code == 201, "a key is its caller's own: not the author's job, nor its id"
    for hidden in (redrafted, "Secret draft", "MANGO"):
        assert hidden not in r.text
    own = r.json()["id"]
    r = await client.post(f"{BASE}/ai/jobs", json=quiz, headers=other)
    assert r.status_code == 200, "the published version's quiz, asked for again: that job"
    assert (r.json()["id"], r.json()["lesson_title"]) == (drafted, "Names and values")

    # a page is full whatever it passed over
    first = (await client.get(f"{BASE}/ai/jobs", headers=other, params={"limit": 1})).json()
    assert [j["id"] for j in first["items"]] == [own]
    rest = (await client.get(f"{BASE}/ai/jobs", headers=other,
                             params={"limit": 1, "after": first["next"]})).json()
    assert ([j["id"] for j in rest["items"]], rest["next"]) == ([drafted], None)
    mine = (await client.get(f"{BASE}/ai/jobs", params={"limit": 5})).json()
    assert [j["id"] for j in mine["items"]] == [own, redrafted, drafted], \
        "the authors see them all"
    assert "MANGO" not in (await client.get(f"{BASE}/ai/jobs", headers=ta)).text


async def follow_with(client: httpx.AsyncClient, job_id: str,
                      headers: dict[str, str]) -> list[tuple[str, dict[str, Any]]]:
    events: list[tuple[str, dict[str, Any]]] = []
    async with client.stream("GET", f"{BASE}/ai/jobs/{job_id}/events", headers=headers,
                             timeout=60) as r:
        assert r.status_code == 200
        name = ""
        async for line in r.aiter_lines():
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                events.append((name, json.loads(line[6:])))
    return events


async def test_ai_settings_refuse_and_never_show_a_password_in_the_base_url(
        client: httpx.AsyncClient, app: FastAPI) -> None:
    admin = await member(app, client, "acme", ["tenant_admin"])
    r = await client.put(f"{BASE}/ai/settings", headers=admin, json={
        "base_url": "https://user:hunter22@models.example/v1", "api_key": "k-1234567"})
    assert (r.status_code, r.json()["code"]) == (422, "credentials_in_url"), r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert "hunter22" not in r.text
    view = (await client.get(f"{BASE}/ai/settings", headers=admin)).json()
    assert (view["base_url"], view["has_api_key"]) == (None, False), "nothing was kept"
    service: JobService = app.state.ai.state["service"]
    await service.store.put_config("acme", TenantAiConfig.model_validate(
        {"base_url": "https://user:hunter22@models.example/v1"}))  # stored before the check
    r = await client.get(f"{BASE}/ai/settings", headers=admin)
    assert r.json()["base_url"] == "https://***@models.example/v1"
    assert "hunter22" not in r.text


async def test_deleting_a_course_cancels_its_lessons_jobs_and_removes_their_files(
        client: httpx.AsyncClient, app: FastAPI, tmp_path: Path) -> None:
    """Its jobs ran on to the end (a paid provider still spending), and their files stayed
    downloadable for good, in a store no API could clear."""
    service: JobService = app.state.ai.state["service"]
    les = await lesson(client)
    video = tmp_path / "lesson.mp4"
    video.write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 500)
    await finished_ai_video(app, "acme", "done1", les["id"], video)
    queued = Job.create("acme", JobRequest(kind="summary", lesson_id=les["id"]), LessonText(
        id=les["id"], version=1, course="py", title="Names", text=LESSON), "teacher-1",
        "queued", 3)
    await service.store.create(queued, [])  # no command: no worker takes it up
    admin = await member(app, client, "acme", ["tenant_admin"])
    output = f"{BASE}/ai/jobs/done1/outputs/lesson.mp4"
    assert (await client.get(output, headers=admin)).status_code == 200

    r = await client.delete(f"{BASE}/courses/py")
    assert r.status_code == 204, r.text

    async def cancelled() -> bool:
        return (await service.job("acme", queued.id)).status == "cancelled"

    await eventually(cancelled, timeout_s=20, interval_s=0.05, what="the job to be cancelled")
    view = (await client.get(f"{BASE}/ai/jobs/{queued.id}", headers=admin)).json()
    assert (view["status"], view["cancel_reason"]) == ("cancelled", "lesson_deleted")

    async def removed() -> bool:
        return (await service.job("acme", "done1")).outputs_removed_at is not None

    await eventually(removed, timeout_s=20, interval_s=0.05, what="the files to be removed")
    view = (await client.get(f"{BASE}/ai/jobs/done1", headers=admin)).json()
    assert view["status"] == "succeeded"
    assert view["outputs_removed_at"] is not None
    r = await client.get(output, headers=admin)
    assert r.status_code == 404
    assert r.json()["code"] == "output_expired"


async def test_a_job_asked_for_on_a_deleted_lesson_says_it_was_deleted(
        client: httpx.AsyncClient, app: FastAPI) -> None:
    """Content's own 404 answered first: `not_found`, where the AI service knew better."""
    service: JobService = app.state.ai.state["service"]
    les = await lesson(client)
    assert (await client.delete(f"{BASE}/courses/py")).status_code == 204

    async def heard() -> bool:
        return await service.store.deleted_at("acme", les["id"]) is not None

    await eventually(heard, timeout_s=20, interval_s=0.05, what="the lesson's tombstone")
    for kind in ("summary", "flashcards", "narration"):
        r = await client.post(f"{BASE}/ai/jobs", json={"kind": kind, "lesson_id": les["id"]})
        assert (r.status_code, r.json()["code"]) == (404, "lesson_gone"), (kind, r.text)
    r = await client.post(f"{BASE}/ai/jobs", json={"kind": "summary", "lesson_id": "nope"})
    assert (r.status_code, r.json()["code"]) == (404, "not_found"), r.text


@pytest.mark.parametrize("voice", [
    "../../../../../etc/passwd", "/etc/passwd", "en/../../x", "fr.voice", "-x", "en us",
    "a" * 65])
async def test_a_voice_that_is_not_a_voices_name_is_refused_and_nothing_queued(
        client: httpx.AsyncClient, voice: str) -> None:
    """`espeak-ng -v` took the voice as a path under its voices folder, and printed each line of
    the file it read as "Bad voice attribute: …", which became the job's error: an educator
    read /etc/passwd through `GET …/ai/jobs/{id}`."""
    les = await lesson(client)
    for kind in ("narration", "video"):
        r = await client.post(f"{BASE}/ai/jobs", json={
            "kind": kind, "lesson_id": les["id"], "params": {"voice": voice}})
        assert (r.status_code, r.json()["code"]) == (422, "validation_failed"), r.text
        assert r.json()["errors"][0]["loc"] == ["body", "params", "voice"]
    assert (await client.get(f"{BASE}/ai/jobs")).json()["items"] == []


async def test_a_voice_the_local_engine_does_not_have_is_refused_when_asked_for(
        client: httpx.AsyncClient, app: FastAPI, monkeypatch: pytest.MonkeyPatch) -> None:
    require_media_kind(app, "narration")
    monkeypatch.setenv("BLOOP_TTS_PROVIDER", "local")
    les = await lesson(client)
    r = await client.post(f"{BASE}/ai/jobs", json={
        "kind": "narration", "lesson_id": les["id"], "params": {"voice": "nosuch-x-voice"}})
    assert (r.status_code, r.json()["code"]) == (422, "validation_failed"), r.text
    assert r.json()["errors"][0]["loc"] == ["body", "params", "voice"]
    assert r.json()["detail"] == ("body.params.voice: the narration voice 'nosuch-x-voice' is "
                                  "not available: the local (espeak-ng) text-to-speech provider "
                                  "has no voice of that name")
    assert (await client.get(f"{BASE}/ai/jobs")).json()["items"] == []
    for voice in ("fr", "pt-BR", "zh-cn", "en-us+f3", "EN-GB", "Afrikaans"):
        assert await renderers.voice_problem(voice) is None, voice
    assert await renderers.voice_problem("en+nosuch") is not None, "a variant it has not"


async def test_a_key_sent_before_keys_were_the_callers_own_still_names_its_job(
        client: httpx.AsyncClient, app: FastAPI) -> None:
    """A job a client's key made before the key was looked up among the caller's own jobs
    (stored as `client:<key>`) is that key's job for that caller still, not a second paid
    job (another caller's same key makes their own: see the draft test)."""
    service: JobService = app.state.ai.state["service"]
    les = await lesson(client)
    summary = {"kind": "summary", "lesson_id": les["id"]}
    r = await client.post(f"{BASE}/ai/jobs", json=summary, headers={"Idempotency-Key": "old"})
    assert r.status_code == 201, r.text
    first = r.json()["id"]
    await service.mutate("acme", first, lambda job: (
        job.update(idempotency_key="client:old"), []))
    r = await client.post(f"{BASE}/ai/jobs", json=summary, headers={"Idempotency-Key": "old"})
    assert (r.status_code, r.json()["id"]) == (200, first), r.text
    mine = (await client.get(f"{BASE}/ai/jobs")).json()["items"]
    assert [j["id"] for j in mine] == [first]


def hide(monkeypatch: pytest.MonkeyPatch, *programs: str) -> None:
    """This machine without `programs`, as far as anything looking them up can tell."""
    real = shutil.which

    def which(name: str, *args: Any, **kwargs: Any) -> str | None:
        return None if name in programs else real(name, *args, **kwargs)

    monkeypatch.setattr(shutil, "which", which)


@pytest.mark.parametrize("program", ["ffmpeg", "espeak-ng"])
def test_a_media_kind_whose_programs_are_missing_is_not_available(
        monkeypatch: pytest.MonkeyPatch, program: str) -> None:
    """Without ffmpeg, narration and video were offered all the same, and every such job failed
    when it ran."""
    monkeypatch.delenv("BLOOP_TTS_PROVIDER", raising=False)
    hide(monkeypatch, program)
    assert renderers.available() == {}
    assert program in (renderers.missing_tools("narration") or "")
    assert set(renderers.available(tools=False)) <= {"narration", "video"}


def test_espeak_ng_is_not_needed_with_a_paid_voice(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BLOOP_TTS_OPENAI_API_KEY", "sk-test")
    hide(monkeypatch, "espeak-ng")
    if shutil.which("ffmpeg") is None or shutil.which("ffprobe") is None:
        pytest.xfail("this needs ffmpeg")
    assert renderers.missing_tools("narration") is None


@pytest.mark.parametrize("kind", ["narration", "video"])
async def test_a_job_whose_programs_are_missing_is_refused_when_asked_for(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str) -> None:
    for var in ("BLOOP_STORE", "BLOOP_MONGO_ADAPTER", "BLOOP_KAFKA_ADAPTER", "BLOOP_REDIS_ADAPTER",
                "BLOOP_TTS_PROVIDER"):
        monkeypatch.delenv(var, raising=False)
    hide(monkeypatch, "ffmpeg")
    application = build(tmp_path, AiSettings())
    async with application.router.lifespan_context(application), api_client(application) as c:
        c.headers.update(await member(application, c, "acme", ["educator"]))
        les = await lesson(c)
        r = await c.post(f"{BASE}/ai/jobs", json={"kind": kind, "lesson_id": les["id"]})
        assert r.status_code == 501, r.text
        assert r.json()["code"] == "not_available"
        assert "`ffmpeg` is not installed" in r.json()["detail"]
        assert (await c.get(f"{BASE}/ai/jobs")).json()["items"] == []


async def test_a_process_that_runs_no_jobs_leaves_the_programs_to_the_workers(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An API process beside `bloop worker ai` processes cannot tell what their machines have."""
    for var in ("BLOOP_STORE", "BLOOP_MONGO_ADAPTER", "BLOOP_KAFKA_ADAPTER", "BLOOP_REDIS_ADAPTER"):
        monkeypatch.delenv(var, raising=False)
    hide(monkeypatch, "ffmpeg")
    application = build(tmp_path, AiSettings(run_jobs=False))
    async with application.router.lifespan_context(application):
        service = application.state.ai.state["service"]
        assert service.media_kinds == frozenset(renderers.available(tools=False))


async def lesson_in(client: httpx.AsyncClient, language: str) -> dict[str, Any]:
    """A new lesson of course `py` in `language`."""
    r = await client.post(f"{BASE}/courses", json={"id": "py", "title": "Python"})
    assert r.status_code in (201, 409), r.text
    r = await client.post(f"{BASE}/courses/py/lessons", json={
        "title": f"In {language}", "language": language,
        "blocks": [{"type": "markdown", "markdown": LESSON}]})
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    return body


@pytest.mark.parametrize("language", ["tlh", "zz"])
async def test_narration_in_a_language_the_local_voice_lacks_is_refused(
        client: httpx.AsyncClient, app: FastAPI, monkeypatch: pytest.MonkeyPatch,
        language: str) -> None:
    """espeak-ng has no Klingon voice: the narration was read with the English voice and
    succeeded, the file tagged Klingon."""
    require_media_kind(app, "narration")
    monkeypatch.setenv("BLOOP_TTS_PROVIDER", "local")
    service: JobService = app.state.ai.state["service"]
    les = await lesson_in(client, language)
    for kind in sorted(service.media_kinds):
        r = await client.post(f"{BASE}/ai/jobs", json={"kind": kind, "lesson_id": les["id"]})
        assert (r.status_code, r.json()["code"]) == (422, "voice_unavailable"), r.text
        assert r.json()["language"] == language
        assert f"no voice for the language {language!r}" in r.json()["detail"]
        assert "params.voice" in r.json()["detail"]
    assert (await client.get(f"{BASE}/ai/jobs")).json()["items"] == []
    r = await client.post(f"{BASE}/ai/jobs", json={
        "kind": "narration", "lesson_id": les["id"], "params": {"voice": "en-us"}})
    assert r.status_code == 201, "a voice the caller names is theirs to choose"
    for spoken in ("fr", "pt-BR", "en-GB", "ja"):
        r = await client.post(f"{BASE}/ai/jobs", json={
            "kind": "narration", "lesson_id": (await lesson_in(client, spoken))["id"]})
        assert r.status_code == 201, (spoken, r.text)
    assert await renderers.language_problem("tlh") is not None
    monkeypatch.setenv("BLOOP_TTS_PROVIDER", "openai")
    assert await renderers.language_problem("tlh") is None, "a paid voice speaks many"


async def test_the_local_voice_is_asked_of_a_language_after_the_quotas(
        client: httpx.AsyncClient, app: FastAPI, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each language tag new to the process starts an espeak-ng: an over-quota tenant's
    requests started them too, and the answers kept grew with every tag a client made up."""
    require_media_kind(app, "narration")
    monkeypatch.setenv("BLOOP_TTS_PROVIDER", "local")
    service: JobService = app.state.ai.state["service"]
    asked: list[str] = []
    checked = service.language_problem
    assert checked is not None

    async def counted(language: str) -> str | None:
        asked.append(language)
        return await checked(language)

    monkeypatch.setattr(service, "language_problem", counted)
    les = await lesson_in(client, "tlh")
    for n in range(5):  # the test app's hourly quota
        r = await client.post(f"{BASE}/ai/jobs", json={
            "kind": "summary", "lesson_id": les["id"], "params": {"instructions": f"take {n}"}})
        assert r.status_code == 201, r.text
    r = await client.post(f"{BASE}/ai/jobs", json={"kind": "narration", "lesson_id": les["id"]})
    assert r.json()["code"] == "ai_quota_exceeded", r.text
    assert asked == []

    monkeypatch.setattr(tts.EspeakTts, "_voices", {})
    monkeypatch.setattr(tts.EspeakTts, "KEPT_LANGUAGES", 3)
    for tag in ("fr", "de", "tlh", "zz", "it", "qx"):
        await tts.EspeakTts().speaks(tag)
        assert len(tts.EspeakTts._voices) <= 3
    assert await tts.EspeakTts().speaks("fr")
    assert not await tts.EspeakTts().speaks("zz")


async def test_jobs_list_by_kind(client: httpx.AsyncClient) -> None:
    """`?kind=quiz` was not read: the list gave every kind."""
    les = await lesson(client)
    for kind, count in (("quiz", 2), ("summary", 5), ("quiz", 3), ("flashcards", 5)):
        r = await client.post(f"{BASE}/ai/jobs", json={
            "kind": kind, "lesson_id": les["id"], "params": {"count": count}})
        assert r.status_code == 201, r.text
    every = (await client.get(f"{BASE}/ai/jobs")).json()["items"]
    quizzes = [j["id"] for j in every if j["kind"] == "quiz"]
    assert len(quizzes) == 2
    r = await client.get(f"{BASE}/ai/jobs", params={"kind": "quiz"})
    assert [j["id"] for j in r.json()["items"]] == quizzes
    first = (await client.get(f"{BASE}/ai/jobs", params={"kind": "quiz", "limit": 1})).json()
    rest = (await client.get(f"{BASE}/ai/jobs", params={
        "kind": "quiz", "limit": 1, "after": first["next"]})).json()
    assert [j["id"] for j in first["items"] + rest["items"]] == quizzes
    assert rest["next"] is None
    r = await client.get(f"{BASE}/ai/jobs", params={"kind": "poem"})
    assert (r.status_code, r.json()["code"]) == (422, "validation_failed")


async def test_the_budget_refusal_shows_the_spend_as_the_settings_do(
        client: httpx.AsyncClient, app: FastAPI) -> None:
    """402 `ai_budget_exhausted` said `spent_usd: 0.005987850000000001`; the settings show
    0.005988."""
    service: JobService = app.state.ai.state["service"]
    les = await lesson(client)
    spent = Job.create("acme", JobRequest(kind="summary", lesson_id=les["id"]), None, "u1",
                       "spent", 3).model_copy(update={"cost": Cost(usd=0.005987850000000001)})
    await service.store.create(spent, [])
    admin = await member(app, client, "acme", ["tenant_admin"])
    view = (await client.put(f"{BASE}/ai/settings", headers=admin,
                             json={"monthly_budget_usd": 0.001})).json()
    r = await client.post(f"{BASE}/ai/jobs", json={"kind": "summary", "lesson_id": les["id"]})
    assert (r.status_code, r.json()["code"]) == (402, "ai_budget_exhausted")
    assert r.json()["spent_usd"] == view["spent_this_month_usd"] == 0.005988


async def test_a_new_job_names_the_provider_it_will_pay(
        tmp_path: Path, fake_openai: FakeOpenAI, monkeypatch: pytest.MonkeyPatch) -> None:
    """A queued job showed `cost.provider` and `model` "offline" while its tenant's provider
    was OpenAI's."""
    for var in ("BLOOP_STORE", "BLOOP_MONGO_ADAPTER", "BLOOP_KAFKA_ADAPTER"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("BLOOP_TTS_PROVIDER", "local")
    app = build(tmp_path, AiSettings(openai_base_url=fake_openai.base_url, model="gpt-4o-mini"))
    async with app.router.lifespan_context(app), api_client(app) as c:
        c.headers.update(await member(app, c, "acme", ["educator"]))
        les = await lesson(c)
        r = await c.post(f"{BASE}/ai/jobs", json={"kind": "summary", "lesson_id": les["id"]})
        assert r.status_code == 201, r.text
        cost = r.json()["cost"]
        assert (cost["provider"], cost["model"], cost["usd"]) == ("openai", "gpt-4o-mini", 0)
        final = (await follow(c, r.json()["id"]))[-1][1]
        assert (final["status"], final["cost"]["provider"]) == ("succeeded", "openai"), final
        admin = await member(app, c, "acme", ["tenant_admin"])
        r = await c.put(f"{BASE}/ai/settings", headers=admin, json={"provider": "offline"})
        assert r.status_code == 200, r.text
        r = await c.post(f"{BASE}/ai/jobs", json={"kind": "quiz", "lesson_id": les["id"]})
        assert (r.json()["cost"]["provider"], r.json()["cost"]["model"]) == ("offline", "offline")


async def test_job_answers_are_kept_by_no_cache(client: httpx.AsyncClient) -> None:
    """A job names who asked for it (`requested_by`) and a media job's outputs carry signed
    links, yet its answers had no `Cache-Control` (its events `no-cache`, which stores them)."""
    les = await lesson(client)
    r = await client.post(f"{BASE}/ai/jobs", json={"kind": "summary", "lesson_id": les["id"]})
    assert r.status_code == 201, r.text
    job = r.json()["id"]
    again = await client.post(f"{BASE}/ai/jobs", json={"kind": "summary", "lesson_id": les["id"]})
    assert again.status_code == 200, again.text
    answers = [r, again, await client.get(f"{BASE}/ai/jobs"),
               await client.get(f"{BASE}/ai/jobs/{job}")]
    async with client.stream("GET", f"{BASE}/ai/jobs/{job}/events", timeout=60) as events:
        answers.append(events)
    for answer in answers:
        assert answer.status_code == 200 or answer is r, answer.request.url
        assert answer.headers["cache-control"] == "no-store", answer.request.url
