"""A list of AI jobs asks content about the lessons of a whole page of jobs at once, in one
process (content's store) and over content's HTTP API alike: what it costs does not grow with
the number of lessons, and each caller sees the jobs it saw when content was asked one lesson
at a time."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextvars import ContextVar
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from bloop.ai.jobs import api as ai_api
from bloop.ai.jobs.lessons import HttpLessons
from bloop.platform.kit.settings import AiSettings
from tests.support import api_client, count_calls, member
from tests.unit.ai.test_ai_api import build, lesson_at

LISTING = ContextVar("LISTING", default=False)  # set while the test's own request runs


@pytest.fixture
async def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FastAPI]:
    for var in ("BLOOP_STORE", "BLOOP_MONGO_ADAPTER", "BLOOP_KAFKA_ADAPTER", "BLOOP_REDIS_ADAPTER"):
        monkeypatch.delenv(var, raising=False)
    application = build(tmp_path, AiSettings(run_jobs=False))
    async with application.router.lifespan_context(application):
        yield application


class Tenant:
    """A tenant whose author asked for a job on each of `lessons` lessons of a published course,
    half of which they edited since (so the job shows their draft), and on a lesson of a
    course never published."""

    def __init__(self, name: str) -> None:
        self.base = f"/v1/tenants/{name}"
        self.name = name
        self.shown: list[str] = []  # the jobs on what was published, newest first
        self.hidden: list[str] = []

    async def fill(self, app: FastAPI, lessons: int) -> None:
        async with api_client(app) as client:
            self.author = await member(app, client, self.name, ["educator"])
            self.callers = {role: await member(app, client, self.name, [role])
                            for role in ("educator", "teaching_assistant", "tenant_admin")}
            client.headers.update(self.author)
            ids = [(await lesson_at(client, self.base))["id"] for _ in range(lessons)]
            r = await client.post(f"{self.base}/courses/py/publish")
            assert r.status_code == 200, r.text
            for lesson_id in ids[1::2]:
                r = await client.patch(f"{self.base}/lessons/{lesson_id}",
                                       json={"version": 1, "title": "Moved on"})
                assert r.status_code == 200, r.text
            r = await client.post(f"{self.base}/courses", json={"id": "drafts", "title": "D"})
            assert r.status_code == 201, r.text
            r = await client.post(f"{self.base}/courses/drafts/lessons", json={
                "title": "Unpublished", "blocks": [{"type": "markdown", "markdown": "Secret."}]})
            assert r.status_code == 201, r.text
            for n, lesson_id in enumerate([*ids, r.json()["id"]]):
                r = await client.post(f"{self.base}/ai/jobs",
                                      json={"kind": "summary", "lesson_id": lesson_id})
                assert r.status_code == 201, r.text
                shown = n < len(ids) and n % 2 == 0
                (self.shown if shown else self.hidden).insert(0, r.json()["id"])

    async def listed(self, client: httpx.AsyncClient, headers: dict[str, str]) -> list[str]:
        listing = LISTING.set(True)
        try:
            r = await client.get(f"{self.base}/ai/jobs", headers=headers, params={"limit": 50})
        finally:
            LISTING.reset(listing)
        assert r.status_code == 200, r.text
        assert r.json()["next"] is None
        return [j["id"] for j in r.json()["items"]]


async def test_a_page_of_jobs_asks_content_once_whatever_its_lessons(
        app: FastAPI, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = app.state.content.state["service"].repo
    requests: list[httpx.Request] = []

    async def sent(request: httpx.Request) -> None:
        requests.append(request)

    to_content = httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                   base_url="http://bloop.test", event_hooks={"request": [sent]})
    over_http = HttpLessons("http://bloop.test", client=to_content)
    costs: dict[int, tuple[int, int]] = {}
    async with api_client(app) as client:
        for lessons in (2, 14):
            tenant = Tenant(f"t{lessons}")
            await tenant.fill(app, lessons)
            everything = await tenant.listed(client, tenant.author)
            assert sorted(everything) == sorted(tenant.shown + tenant.hidden)
            for role in ("educator", "teaching_assistant"):
                calls = count_calls(repo, monkeypatch, LISTING)
                assert await tenant.listed(client, tenant.callers[role]) == tenant.shown, role
                in_process = sum(calls.values())
                monkeypatch.undo()

                monkeypatch.setattr(ai_api, "get_lessons", lambda _: over_http)
                requests.clear()
                assert await tenant.listed(client, tenant.callers[role]) == tenant.shown, role
                monkeypatch.undo()
                costs[lessons] = (in_process, len(requests))
                assert (in_process, [r.url.path for r in requests]) == (
                    2, [f"{tenant.base}/lesson-access"]), f"{lessons} lessons: {costs}"
            calls = count_calls(repo, monkeypatch, LISTING)
            assert await tenant.listed(client, tenant.callers["tenant_admin"]) == everything
            assert sum(calls.values()) == 0, "an admin's list asks content nothing"
            monkeypatch.undo()
    await to_content.aclose()
    assert costs[2] == costs[14] == (2, 1), costs
