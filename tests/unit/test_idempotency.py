"""`Idempotency-Key` on POST routes, through the real app on embedded stores: the same request
sent again with the same key answers what the first answered and changes nothing (a course, a
lesson, a quiz attempt, a learner's seconds on a lesson); another request under the key is 422,
one sent while the first runs 409; the key is the caller's own, and holds across processes
sharing a data dir."""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from redis.exceptions import TimeoutError as RedisTimeoutError
from starlette.types import Message, Receive, Scope, Send

from bloop.platform.app import create_app
from bloop.platform.content.service import ContentService
from bloop.platform.kit.errors import Problem, StoreUnavailable
from bloop.platform.kit.idempotency import RedisIdempotency, SqliteIdempotency, layer
from bloop.platform.kit.settings import HttpSettings, RuntimeSettings, Settings
from bloop.platform.kit.sqlite import SqliteDB
from tests.support import PASSWORD, embedded_app, eventually, login, member, require_server
from tests.unit.content.media_samples import png
from tests.unit.content.test_cache_processes import process
from tests.unit.content.test_quiz_api import QUIZ, RIGHT
from tests.unit.learning.test_learning_api import python_course

BASE = "/v1/tenants/acme"
SECRETS = {"/v1/tenants/{tenant}/api-keys", "/v1/tenants/{tenant}/invitations"}
Running = tuple[FastAPI, httpx.AsyncClient]


@pytest.fixture(autouse=True)
async def no_attempts_of_another_test() -> AsyncIterator[None]:
    """The background attempts (`layer._LATER`) are the process's: each test starts and ends
    without any (a test waiting for them to end waited for another test's too)."""
    await _drop_attempts()
    yield
    await _drop_attempts()


async def _drop_attempts() -> None:
    left = list(layer._LATER)
    for task in left:
        task.cancel()
    await asyncio.gather(*left, return_exceptions=True)
    layer._LATER.clear()


@pytest.fixture
async def running(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Running]:
    async with embedded_app(tmp_path, monkeypatch, ["identity", "content", "learning"]) as (
            app, c):
        c.headers.update(await member(app, c, "acme", ["educator"]))
        yield app, c


def test_the_document_names_the_key_and_its_problems_on_each_post_that_honours_it() -> None:
    doc = create_app(Settings(runtime=RuntimeSettings(data_dir=Path("unused")))).openapi()

    def keys(path: str) -> list[dict[str, Any]]:
        return [p for p in doc["paths"][path]["post"].get("parameters", [])
                if p["in"] == "header" and p["name"].lower() == "idempotency-key"]

    uploads = {"/v1/tenants/{tenant}/media", "/v1/tenants/{tenant}/courses/{course}/uploads"}
    own = "/v1/tenants/{tenant}/ai/jobs"
    honouring = {path for path, ops in doc["paths"].items()
                 if "security" in ops.get("post", {})} - uploads - {own} - SECRETS
    assert {"/graphql", "/v1/tenants/{tenant}/courses",
            "/v1/tenants/{tenant}/learning/me/lessons/{lesson}/progress"} <= honouring
    assert len(honouring) > 23
    for path in sorted(honouring):
        [header] = keys(path)
        assert header["required"] is False, path
        assert header["schema"]["maxLength"] == 200, path
        responses = doc["paths"][path]["post"]["responses"]
        for status, code in (("400", "invalid_idempotency_key"),
                             ("409", "idempotency_key_in_use"),
                             ("409", "idempotency_outcome_unknown"),
                             ("422", "idempotency_key_reused")):
            assert f"`{code}`" in responses[status]["description"], (path, status)
        assert "Retry-After" in responses["409"]["headers"], path
    for path in (*uploads, "/v1/auth/token", "/v1/tenants/{tenant}/signup",
                 "/v1/tenants/{tenant}/invitations/accept"):
        assert keys(path) == [], path
    assert len(keys(own)) == 1  # its own, which names a job for good
    assert "`invalid_idempotency_key`" in doc["paths"][own]["post"]["responses"]["400"][
        "description"]
    for path in SECRETS:
        [header] = keys(path)
        assert header["description"].startswith("not honoured here"), path
        responses = doc["paths"][path]["post"]["responses"]
        assert "`invalid_idempotency_key`" in responses["400"]["description"], path
        assert "409" not in responses, path
        assert "idempotency_key_reused" not in responses["422"]["description"], path


def key(value: str) -> dict[str, str]:
    return {"Idempotency-Key": value}


async def course_ids(client: httpx.AsyncClient) -> list[str]:
    r = await client.get(f"{BASE}/courses", params={"status": "all"})
    assert r.status_code == 200, r.text
    return [c["id"] for c in r.json()["items"]]


async def test_a_course_made_again_with_its_key_is_made_once(running: Running) -> None:
    _, client = running
    first = await client.post(f"{BASE}/courses", json={"title": "Python"}, headers=key("k-1"))
    assert first.status_code == 201, first.text
    again = await client.post(f"{BASE}/courses", json={"title": "Python"}, headers=key("k-1"))
    assert (again.status_code, again.json()) == (201, first.json())
    for name in ("location", "etag", "content-type"):
        assert again.headers.get(name) == first.headers.get(name), name
    assert await course_ids(client) == [first.json()["id"]]
    other = await client.post(f"{BASE}/courses", json={"title": "Python"}, headers=key("k-2"))
    assert other.status_code == 201
    assert other.json()["id"] != first.json()["id"]


async def test_a_lesson_added_again_with_its_key_is_added_once(running: Running) -> None:
    _, client = running
    await client.post(f"{BASE}/courses", json={"id": "py", "title": "Python"})
    lesson = {"title": "Loops", "blocks": [{"type": "markdown", "markdown": "Loops repeat."}]}
    answers = [await client.post(f"{BASE}/courses/py/lessons", json=lesson, headers=key("l"))
               for _ in range(2)]
    assert [a.status_code for a in answers] == [201, 201]
    assert answers[0].json() == answers[1].json()
    course = (await client.get(f"{BASE}/courses/py")).json()
    assert len(course["lessons"]) == 1, course


async def test_a_quiz_attempt_sent_again_is_graded_once(running: Running) -> None:
    app, client = running
    await client.post(f"{BASE}/courses", json={"id": "py", "title": "Python"})
    r = await client.post(f"{BASE}/courses/py/lessons", json={
        "title": "Loops", "blocks": [{"type": "markdown", "markdown": "Loops repeat."}, QUIZ]})
    lesson = r.json()["id"]
    assert (await client.post(f"{BASE}/courses/py/publish")).status_code == 200
    ada = await member(app, client, "acme", ["learner"])
    url = f"{BASE}/lessons/{lesson}/quizzes/check/attempts"
    numbers = []
    for _ in range(2):
        r = await client.post(url, json={"answers": RIGHT}, headers={**ada, **key("attempt")})
        assert r.status_code == 201, r.text
        numbers.append(r.json()["number"])
    r = await client.post(url, json={"answers": RIGHT}, headers=ada)
    assert [*numbers, r.json()["number"]] == [1, 1, 2]


async def test_progress_sent_again_counts_its_seconds_once(running: Running) -> None:
    app, client = running
    await python_course(app, client)
    pupil = await member(app, client, "acme", ["learner"])
    url = f"{BASE}/learning/me/lessons/names/progress"
    for _ in range(2):
        r = await client.post(url, json={"status": "started", "seconds": 60},
                              headers={**pupil, **key("progress-1")})
        assert r.status_code == 200, r.text
        assert r.json()["seconds"] == 60
    r = await client.post(url, json={"status": "started", "seconds": 60},
                          headers={**pupil, **key("progress-2")})
    assert r.json()["seconds"] == 120


def kept_bytes(data_dir: Path) -> bytes:
    """What the key store's file (and its write-ahead log) hold, raw."""
    return b"".join(f.read_bytes() for f in data_dir.glob("idempotency.sqlite3*"))


async def test_an_answer_carrying_a_secret_is_never_kept(
        running: Running, tmp_path: Path) -> None:
    """Whoever read the store got a working API key, or an invitation to accept."""
    app, client = running
    admin = await member(app, client, "acme", ["tenant_admin"])
    for path, body, secret in (
            ("api-keys", {"name": "sync", "scopes": ["identity:read"]}, "key"),
            ("invitations", {"email": "ada@acme.test", "roles": ["tenant_admin"]}, "token")):
        answers = [await client.post(f"{BASE}/{path}", json=body,
                                     headers={**admin, **key(f"secret-{path}")})
                   for _ in range(2)]
        assert [a.status_code for a in answers] == [201, 201], answers[-1].text
        assert answers[0].json()["id"] != answers[1].json()["id"], path  # made again
        kept = kept_bytes(tmp_path)
        for a in answers:
            assert a.json()[secret].encode() not in kept, path


async def test_an_erasure_drops_every_answer_kept_in_the_persons_tenant(
        running: Running) -> None:
    """Their own answers, and those about them: the admin's `POST …/users` sent again gave 201
    with the erased person's email and name for a day."""
    app, client = running
    admin = await member(app, client, "acme", ["tenant_admin"])
    ada = {"email": "ada@acme.test", "display_name": "Ada", "roles": ["educator"],
           "password": PASSWORD}
    made = await client.post(f"{BASE}/users", json=ada, headers={**admin, **key("new-ada")})
    assert made.status_code == 201, made.text
    as_ada = await login(client, "acme", "ada@acme.test")
    r = await client.post(f"{BASE}/courses", json={"title": "Mine"}, headers={**as_ada, **key("c")})
    assert r.status_code == 201, r.text
    beta = await member(app, client, "beta", ["educator"])
    theirs = await client.post("/v1/tenants/beta/courses", json={"title": "B"},
                               headers={**beta, **key("b")})
    assert (await client.delete(f"{BASE}/me", headers=as_ada)).status_code == 204

    async def made_anew() -> bool:  # not the erased one replayed
        again = await client.post(f"{BASE}/users", json=ada,
                                  headers={**admin, **key("new-ada")})
        assert again.status_code == 201, again.text
        return bool(again.json()["id"] != made.json()["id"])

    await eventually(made_anew, timeout_s=10, what="the admin's answer dropped")
    kept = await client.post("/v1/tenants/beta/courses", json={"title": "B"},
                             headers={**beta, **key("b")})
    assert kept.json() == theirs.json()  # another tenant's stay


async def test_expired_answers_go_without_keyed_requests(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Only a claim dropped them: a data dir that no keyed request reached kept them for good."""
    db = SqliteDB(tmp_path / "idempotency.sqlite3")
    now = [1_000.0]
    keys = SqliteIdempotency(db, clock=lambda: now[0], prune_every_s=0.05)
    assert await keys.claim("acme", "k", "0" * 64, 60) is None
    await keys.finish("acme", "k", "0" * 64, b"201\n{}", 60)
    keys.start()
    try:
        now[0] += 120
        await eventually(lambda: _none_kept(keys), timeout_s=10, what="expired keys dropped")
    finally:
        await keys.stop()
    now[0] = 1_000.0  # kept anew, expired when the server starts: it drops them at once
    assert await keys.claim("acme", "k", "0" * 64, 60) is None
    await db.close()
    async with embedded_app(tmp_path, monkeypatch, ["identity"]) as (app, _):
        assert isinstance(app.state.platform.idempotency, SqliteIdempotency)
        await eventually(lambda: _none_kept(app.state.platform.idempotency), timeout_s=10,
                         what="expired keys dropped at start")


async def _none_kept(store: SqliteIdempotency) -> bool:
    kept: int = await store.db.run(lambda c: c.execute(
        "SELECT count(*) FROM idempotency_keys").fetchone()[0])
    return kept == 0


async def test_a_key_used_for_another_request_is_refused(running: Running) -> None:
    _, client = running
    assert (await client.post(f"{BASE}/courses", json={"title": "A"},
                              headers=key("same"))).status_code == 201
    for path, body in ((f"{BASE}/courses", {"title": "B"}), (f"{BASE}/concepts",
                                                             {"id": "x", "name": "X"})):
        r = await client.post(path, json=body, headers=key("same"))
        assert r.status_code == 422, r.text
        assert r.json()["code"] == "idempotency_key_reused"
    assert len(await course_ids(client)) == 1


async def test_a_key_is_its_callers_own(running: Running) -> None:
    app, client = running
    other = await member(app, client, "acme", ["educator"])
    mine = await client.post(f"{BASE}/courses", json={"title": "A"}, headers=key("k"))
    theirs = await client.post(f"{BASE}/courses", json={"title": "A"},
                               headers={**other, **key("k")})
    assert theirs.status_code == 201
    assert theirs.json()["id"] != mine.json()["id"]


async def test_a_request_sent_while_its_first_runs_is_409(
        running: Running, monkeypatch: pytest.MonkeyPatch) -> None:
    app, client = running
    service: ContentService = app.state.content.state["service"]
    entered, go_on = asyncio.Event(), asyncio.Event()
    create = service.create_course

    async def slow(*args: Any, **kwargs: Any) -> Any:
        entered.set()
        await go_on.wait()
        return await create(*args, **kwargs)

    monkeypatch.setattr(service, "create_course", slow)
    second: asyncio.Task[httpx.Response] | None = None
    first = asyncio.create_task(client.post(f"{BASE}/courses", json={"title": "A"},
                                            headers=key("busy")))
    try:
        await asyncio.wait_for(entered.wait(), 10)
        entered.clear()
        second = asyncio.create_task(client.post(f"{BASE}/courses", json={"title": "A"},
                                                 headers=key("busy")))
        ran = asyncio.create_task(entered.wait())
        await asyncio.wait([second, ran], return_when=asyncio.FIRST_COMPLETED, timeout=10)
        ran.cancel()
        assert second.done(), "the second request ran the route"
        r = second.result()
        assert r.status_code == 409, r.text
        assert r.json()["code"] == "idempotency_key_in_use"
        assert r.headers["retry-after"] == "1"
    finally:
        go_on.set()
        if second is not None:
            await asyncio.gather(second, return_exceptions=True)
    done = await first
    assert done.status_code == 201
    replay = await client.post(f"{BASE}/courses", json={"title": "A"}, headers=key("busy"))
    assert replay.json() == done.json()
    assert len(await course_ids(client)) == 1


async def test_a_request_sent_again_the_moment_its_answer_came_gets_that_answer(
        running: Running) -> None:
    """The answer was kept only after it was sent: a client (or another process) sending the
    request again at once met the key still taken, 409."""
    app, client = running
    again: list[httpx.Response] = []

    async def retried_at_its_answer(scope: Scope, receive: Receive, send: Send) -> None:
        async def sent(message: Message) -> None:
            if message["type"] == "http.response.body" and not message.get("more_body"):
                again.append(await client.post(f"{BASE}/courses", json={"title": "A"},
                                               headers=key("at-once")))
            await send(message)

        await app(scope, receive, sent)

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=retried_at_its_answer),
                                 base_url=str(client.base_url),
                                 headers=client.headers) as first_client:
        first = await first_client.post(f"{BASE}/courses", json={"title": "A"},
                                        headers=key("at-once"))
    assert first.status_code == 201, first.text
    [retry] = again
    assert (retry.status_code, retry.json()) == (201, first.json())
    assert len(await course_ids(client)) == 1


async def test_an_error_is_not_kept(running: Running) -> None:
    _, client = running
    r = await client.post(f"{BASE}/courses/ghost/lessons", json={"title": "L"},
                          headers=key("e"))
    assert r.status_code == 404
    await client.post(f"{BASE}/courses", json={"id": "ghost", "title": "Now here"})
    r = await client.post(f"{BASE}/courses/ghost/lessons", json={"title": "L"},
                          headers=key("e"))
    assert r.status_code == 201, r.text


async def test_a_key_left_unanswered_past_its_lock_is_not_run_again(
        running: Running, monkeypatch: pytest.MonkeyPatch) -> None:
    """Its process died after the course was made, before the answer was kept: once the key's
    lock lapsed, the request sent again made the course again."""
    app, client = running
    keys: SqliteIdempotency = app.state.platform.idempotency
    http = HttpSettings()
    now = [time.time()]
    monkeypatch.setattr(keys, "clock", lambda: now[0])
    finish = keys.finish

    async def died(*args: object) -> None:
        pass

    monkeypatch.setattr(keys, "finish", died)
    first = await client.post(f"{BASE}/courses", json={"title": "A"}, headers=key("died"))
    assert first.status_code == 201, first.text
    monkeypatch.setattr(keys, "finish", finish)
    r = await client.post(f"{BASE}/courses", json={"title": "A"}, headers=key("died"))
    assert r.json()["code"] == "idempotency_key_in_use"
    now[0] += http.idempotency_lock_s + 1
    for _ in range(2):
        r = await client.post(f"{BASE}/courses", json={"title": "A"}, headers=key("died"))
        assert r.status_code == 409, r.text
        assert r.json()["code"] == "idempotency_outcome_unknown"
        assert "retry-after" not in r.headers
    assert await course_ids(client) == [first.json()["id"]]
    now[0] += http.idempotency_keep_s
    r = await client.post(f"{BASE}/courses", json={"title": "A"}, headers=key("died"))
    assert r.status_code == 201, r.text  # as any key kept no longer


async def test_a_key_freed_by_its_error_is_free_past_its_lock_too(
        running: Running, monkeypatch: pytest.MonkeyPatch) -> None:
    app, client = running
    keys: SqliteIdempotency = app.state.platform.idempotency
    now = [time.time()]
    monkeypatch.setattr(keys, "clock", lambda: now[0])
    r = await client.post(f"{BASE}/courses/ghost/lessons", json={"title": "L"}, headers=key("e"))
    assert r.status_code == 404
    now[0] += HttpSettings().idempotency_lock_s + 1
    await client.post(f"{BASE}/courses", json={"id": "ghost", "title": "Now here"})
    r = await client.post(f"{BASE}/courses/ghost/lessons", json={"title": "L"}, headers=key("e"))
    assert r.status_code == 201, r.text


async def test_a_malformed_key_is_400(running: Running) -> None:
    _, client = running
    for bad in ("", "with space", "x" * 201, "é"):
        r = await client.post(f"{BASE}/courses", json={"title": "A"},
                              headers={b"Idempotency-Key": bad.encode()})
        assert r.status_code == 400, (bad, r.text)
        assert r.json()["code"] == "invalid_idempotency_key"
    assert await course_ids(client) == []


async def test_a_route_that_ignores_the_key_ignores_a_malformed_one(running: Running) -> None:
    app, client = running
    bad = {b"Idempotency-Key": b"with space"}
    email = f"learner-{uuid.uuid4().hex[:8]}@acme.test"
    await member(app, client, "acme", ["learner"], email=email)
    r = await client.post("/v1/auth/token", headers=bad, data={
        "grant_type": "password", "tenant": "acme", "username": email, "password": PASSWORD})
    assert r.status_code == 200, r.text
    r = await client.post(f"{BASE}/media", content=png(), headers=bad)
    assert r.status_code == 201, r.text
    assert (await client.get(f"{BASE}/courses", headers=bad)).status_code == 200


async def test_a_key_store_that_is_down_fails_only_requests_with_a_key(
        running: Running, monkeypatch: pytest.MonkeyPatch) -> None:
    app, client = running

    async def down(*args: object) -> None:
        raise StoreUnavailable("sqlite:idempotency")

    monkeypatch.setattr(app.state.platform.idempotency, "claim", down)
    r = await client.post(f"{BASE}/courses", json={"title": "A"}, headers=key("k"))
    assert r.status_code == 503
    assert "retry-after" in r.headers
    assert (await client.post(f"{BASE}/courses", json={"title": "A"})).status_code == 201
    assert len(await course_ids(client)) == 1


async def test_two_processes_on_one_data_dir_share_the_keys(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async with process(tmp_path, monkeypatch, "one") as (one, c1), \
            process(tmp_path, monkeypatch, "two") as (_, c2):
        assert isinstance(one.state.platform.idempotency, SqliteIdempotency)
        c1.headers.update(await member(one, c1, "acme", ["educator"]))
        c2.headers.update(c1.headers)
        first = await c1.post(f"{BASE}/courses", json={"title": "A"}, headers=key("shared"))
        assert first.status_code == 201
        again = await c2.post(f"{BASE}/courses", json={"title": "A"}, headers=key("shared"))
        assert (again.status_code, again.json()) == (201, first.json())
        assert await course_ids(c2) == [first.json()["id"]]


async def test_with_redis_the_keys_are_kept_there(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    require_server("redis")
    monkeypatch.setenv("BLOOP_REDIS_ADAPTER", "real")
    async with process(tmp_path, monkeypatch, "one") as (one, c1), \
            process(tmp_path, monkeypatch, "two") as (_, c2):
        assert isinstance(one.state.platform.idempotency, RedisIdempotency)
        c1.headers.update(await member(one, c1, "acme", ["educator"]))
        c2.headers.update(c1.headers)
        sent = uuid.uuid4().hex  # Redis outlives the test
        first = await c1.post(f"{BASE}/courses", json={"title": "A"}, headers=key(sent))
        again = await c2.post(f"{BASE}/courses", json={"title": "A"}, headers=key(sent))
        assert (again.status_code, again.json()) == (201, first.json())
        r = await c2.post(f"{BASE}/courses", json={"title": "B"}, headers=key(sent))
        assert r.json()["code"] == "idempotency_key_reused"


def graphql(query: str) -> dict[str, str]:
    return {"query": query}


ADD_TO_GHOST = graphql('mutation { addLesson(tenant: "acme", courseId: "ghost", '
                       'lesson: {title: "L"}) { id } }')
MAKE = 'made: createCourse(tenant: "acme", course: {id: "made", title: "Made"}) { id }'


async def test_graphql_takes_the_key_too(running: Running) -> None:
    _, client = running
    body = graphql(f"mutation {{ {MAKE} }}")
    first = await client.post("/graphql", json=body, headers=key("g"))
    assert first.status_code == 200, first.text
    assert "errors" not in first.json()
    r = await client.post("/graphql", json=body, headers=key("g"))
    assert r.json() == first.json()
    # The replay is the answer no cache keeps, as the first (it dropped Cache-Control).
    assert r.headers["cache-control"] == first.headers["cache-control"] == "no-store"
    assert await course_ids(client) == ["made"]
    r = await client.post("/graphql", json=graphql("{ __typename }"), headers=key("g"))
    assert r.status_code == 422
    assert r.json()["code"] == "idempotency_key_reused"


async def test_a_graphql_operation_whose_every_mutation_failed_frees_its_key(
        running: Running) -> None:
    """It is 200 with errors: it was kept, and the same operation sent again once what it
    needed was there (or a store back up) got the first refusal for a day."""
    _, client = running
    r = await client.post("/graphql", json=ADD_TO_GHOST, headers=key("e"))
    assert r.json()["errors"][0]["extensions"]["code"] == "not_found", r.text
    await client.post(f"{BASE}/courses", json={"id": "ghost", "title": "Now here"})
    r = await client.post("/graphql", json=ADD_TO_GHOST, headers=key("e"))
    assert "errors" not in r.json(), r.text
    again = await client.post("/graphql", json=ADD_TO_GHOST, headers=key("e"))
    assert again.json() == r.json()
    course = (await client.get(f"{BASE}/courses/ghost")).json()
    assert len(course["lessons"]) == 1, course


async def test_a_graphql_operation_that_wrote_something_keeps_its_answer_errors_and_all(
        running: Running) -> None:
    _, client = running
    body = graphql(f'mutation {{ {MAKE} lost: addLesson(tenant: "acme", courseId: "ghost", '
                   'lesson: {title: "L"}) { id } }')
    first = await client.post("/graphql", json=body, headers=key("p"))
    assert [e["path"] for e in first.json()["errors"]] == [["lost"]], first.text
    again = await client.post("/graphql", json=body, headers=key("p"))
    assert again.json() == first.json()
    assert await course_ids(client) == ["made"]


async def test_a_graphql_operation_refused_whole_or_reading_frees_its_key(
        running: Running) -> None:
    _, client = running
    for body in (graphql("mutation { nothingSuch }"), graphql("{ __typename }")):
        await client.post("/graphql", json=body, headers=key("q"))
        r = await client.post("/graphql", json=graphql(f"mutation {{ {MAKE} }}"),
                              headers=key("q"))
        assert r.status_code == 200, r.text
    assert await course_ids(client) == ["made"]


@pytest.mark.parametrize("keyed", [False, True])
@pytest.mark.parametrize(("client_then", "status", "code"), [
    ("leaves", 499, "client_closed_request"), ("sends-too-much", 413, "payload_too_large")])
async def test_a_body_cut_short_is_answered_and_counted_as_without_a_key(
        running: Running, caplog: pytest.LogCaptureFixture, keyed: bool, client_then: str,
        status: int, code: str) -> None:
    """With a key, the middleware reading the body ahead returned without an answer when the
    client left: the request was logged and counted 500 under `route="unmatched"`, where one
    without a key is 499 under its route (and its 413 was counted `unmatched` too)."""
    app, client = running
    path = f"{BASE}/courses"
    headers = [(b"host", b"bloop.test"), (b"content-type", b"application/json"),
               (b"transfer-encoding", b"chunked"),
               *((k.lower().encode(), v.encode()) for k, v in client.headers.items()
                 if k.lower() == "authorization"),
               *([(b"idempotency-key", b"cut-short")] if keyed else [])]
    asgi: Scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
                   "method": "POST", "scheme": "http", "path": path, "raw_path": path.encode(),
                   "root_path": "", "query_string": b"", "server": ("bloop.test", 80),
                   "client": ("127.0.0.1", 5000), "headers": headers}
    parts: list[Message] = [
        {"type": "http.request", "body": b'{"title": "Py', "more_body": True},
        {"type": "http.disconnect"} if client_then == "leaves" else
        {"type": "http.request", "body": b" " * 1_100_000, "more_body": True}]

    async def receive() -> Message:
        return parts.pop(0) if parts else {"type": "http.disconnect"}

    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    caplog.set_level(logging.INFO, "bloop")
    await asyncio.wait_for(app(asgi, receive, send), 10)
    assert sent[0]["status"] == status
    assert json.loads(sent[1]["body"])["code"] == code
    assert app.state.platform.metrics.registry.get_sample_value(
        "bloop_http_requests_total",
        {"method": "POST", "route": "/v1/tenants/{tenant}/courses", "status": str(status)}) == 1
    [access] = [r for r in caplog.records if r.name == "bloop.http" and r.msg == "request"]
    assert (access.__dict__["status"], access.__dict__["route"]) == (
        status, "/v1/tenants/{tenant}/courses")
    assert [r.levelname for r in caplog.records if r.levelno >= logging.WARNING] == []
    assert await course_ids(client) == []


async def test_a_key_whose_taking_timed_out_is_not_held_for_the_lock(
        running: Running, monkeypatch: pytest.MonkeyPatch) -> None:
    """Redis ran the claim after the client gave up on it (a timeout), once or late: the key was
    taken by no running request, and the request sent again was 409 for lock_s (300 s)."""
    app, client = running
    monkeypatch.setattr(layer, "AGAIN_S", 1.0)
    store = app.state.platform.idempotency
    taken, freed = store.claim, store.release
    late: list[asyncio.Task[object]] = []

    freed_after: list[float] = []

    async def release(*args: Any) -> None:
        await freed(*args)
        freed_after.append(time.monotonic())
        if not late:  # the claim, carried out late: after the first release
            late.append(asyncio.create_task(taken(*claimed)))

    claimed: tuple[Any, ...] = ()

    async def claim(*args: Any) -> None:
        nonlocal claimed
        claimed = args
        raise RedisTimeoutError("Timeout reading from socket")

    monkeypatch.setattr(store, "claim", claim)
    monkeypatch.setattr(store, "release", release)
    r = await client.post(f"{BASE}/courses", json={"title": "A"}, headers=key("k"))
    assert (r.status_code, r.json()["code"]) == (503, "store_unavailable")
    monkeypatch.setattr(store, "claim", taken)
    await eventually(lambda: asyncio.sleep(0, bool(late) and late[0].done()), timeout_s=5)
    again = await client.post(f"{BASE}/courses", json={"title": "A"}, headers=key("k"))
    assert again.status_code == 409  # the late claim holds it, until freed again
    await eventually(lambda: asyncio.sleep(0, len(freed_after) >= 2), timeout_s=5)
    again = await client.post(f"{BASE}/courses", json={"title": "A"}, headers=key("k"))
    assert again.status_code == 201, again.text
    assert len(await course_ids(client)) == 1


async def test_an_answer_that_could_not_be_kept_is_kept_later(
        running: Running, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keeping the answer timed out: the key stayed taken for lock_s, then the request sent
    again ran again."""
    app, client = running
    monkeypatch.setattr(layer, "AGAIN_S", 0.05)
    store = app.state.platform.idempotency
    kept = store.finish
    tries: list[object] = []

    async def fails_once(*args: Any) -> None:
        tries.append(args)
        if len(tries) == 1:
            raise RedisTimeoutError("Timeout reading from socket")
        await kept(*args)

    monkeypatch.setattr(store, "finish", fails_once)
    first = await client.post(f"{BASE}/courses", json={"title": "A"}, headers=key("k"))
    assert first.status_code == 201
    await eventually(lambda: asyncio.sleep(0, len(tries) == 2))
    await asyncio.sleep(0.05)
    again = await client.post(f"{BASE}/courses", json={"title": "A"}, headers=key("k"))
    assert (again.status_code, again.json()) == (201, first.json())
    assert await course_ids(client) == [first.json()["id"]]


class LostReplies:
    """A store whose claim is carried out (at once, or `late_s` later) but whose reply is lost,
    and whose first `failing` settles fail (the store unreachable)."""

    def __init__(self, inner: SqliteIdempotency, failing: int, late_s: float = 0.0,
                 lost: type[BaseException] = ConnectionError) -> None:
        self.inner, self.failing, self.late_s, self.lost = inner, failing, late_s, lost
        self.tries: list[str] = []
        self.claimed_at = self.freed_at = 0.0  # when it took the key; freed it last
        self.late: asyncio.Task[None] | None = None

    async def claim(self, *args: Any) -> None:
        if self.late_s:
            self.claimed_at = float("inf")  # once carried out, late: waited for by the test
            self.late = asyncio.create_task(self._claimed(args, self.late_s))
        else:
            await self._claimed(args)
        raise self.lost("the reply was lost")

    async def _claimed(self, args: tuple[Any, ...], after_s: float = 0.0) -> None:
        await asyncio.sleep(after_s)
        await self.inner.claim(*args)
        self.claimed_at = time.monotonic()

    def freed_since_taken(self) -> bool:
        return self.freed_at > self.claimed_at

    async def _settle(self, what: str) -> None:
        self.tries.append(what)
        if len(self.tries) <= self.failing:
            raise ConnectionError("store unreachable")

    async def release(self, *args: Any) -> None:
        await self._settle("release")
        await self.inner.release(*args)
        self.freed_at = time.monotonic()

    async def finish(self, *args: Any) -> None:
        await self._settle("finish")
        await self.inner.finish(*args)

    async def drop_tenant(self, tenant: str) -> None:
        await self.inner.drop_tenant(tenant)

    async def ping(self) -> None:
        await self.inner.ping()


FINGERPRINT = "f" * 64
GAVE_UP = "an Idempotency-Key whose taking failed could not be freed: given up"


@pytest.fixture
async def keys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[
        SqliteIdempotency]:
    monkeypatch.setattr(layer, "AGAIN_S", 0.05)
    db = SqliteDB(tmp_path / "keys.sqlite3")
    try:
        yield SqliteIdempotency(db)
    finally:
        await _drop_attempts()
        await db.close()


async def _taken_again(keys: SqliteIdempotency, lock_s: float) -> bool:
    """Whether the client's retry (another token) takes the key."""
    retry = layer.Pending(keys, "client-key", FINGERPRINT, lock_s, 60)
    try:
        await retry.claim("t", ("u",), None)
    except (Problem, layer.Replayed):
        return False
    return True


@pytest.mark.parametrize("late_s", [0.0, 0.4])
async def test_a_key_whose_taking_failed_is_freed_while_the_store_is_down_a_while(
        keys: SqliteIdempotency, late_s: float) -> None:
    """The claim was carried out (or was, late) but its reply lost, and freeing the key failed
    at once and AGAIN_S later (or the claim came later than that): the key of a request that
    never ran was 409 idempotency_outcome_unknown for keep_s (24 h)."""
    store = LostReplies(keys, failing=0 if late_s else 2, late_s=late_s)
    first = layer.Pending(store, "client-key", FINGERPRINT, 1.5, 60)
    with pytest.raises(ConnectionError):
        await first.claim("t", ("u",), None)
    await eventually(lambda: asyncio.sleep(0, store.freed_since_taken()), timeout_s=2)
    assert await _taken_again(keys, 1.5)


async def test_a_key_taken_by_a_claim_cancelled_on_the_way_is_freed(
        keys: SqliteIdempotency) -> None:
    """A forced shutdown cancelled the claim the store carried out: it was never freed."""
    store = LostReplies(keys, failing=0, lost=asyncio.CancelledError)
    first = layer.Pending(store, "client-key", FINGERPRINT, 1.5, 60)
    with pytest.raises(asyncio.CancelledError):
        await first.claim("t", ("u",), None)
    await eventually(lambda: asyncio.sleep(0, store.freed_since_taken()), timeout_s=2)
    assert await _taken_again(keys, 1.5)


async def test_attempts_beyond_the_limit_are_tried_once_and_logged(
        keys: SqliteIdempotency, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    """A long outage piles up no attempts: beyond MAX_LATER, each is tried once; giving up is
    logged (it was not)."""
    monkeypatch.setattr(layer, "MAX_LATER", 0)
    store = LostReplies(keys, failing=10)
    with pytest.raises(ConnectionError):
        await layer.Pending(store, "client-key", FINGERPRINT, 1.0, 60).claim("t", ("u",), None)
    await eventually(lambda: asyncio.sleep(0, not layer._LATER), timeout_s=2)
    assert store.tries == ["release"]
    assert GAVE_UP in caplog.messages


async def test_giving_up_once_the_lock_lapsed_is_logged(
        keys: SqliteIdempotency, caplog: pytest.LogCaptureFixture) -> None:
    store = LostReplies(keys, failing=100)
    with pytest.raises(ConnectionError):
        await layer.Pending(store, "client-key", FINGERPRINT, 0.3, 60).claim("t", ("u",), None)
    await eventually(lambda: asyncio.sleep(0, not layer._LATER), timeout_s=3)
    assert 3 <= len(store.tries) < 10
    [gave_up] = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert gave_up.getMessage() == GAVE_UP


async def test_attempts_left_at_shutdown_are_tried_once_more(
        keys: SqliteIdempotency, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(layer, "AGAIN_S", 60.0)
    store = LostReplies(keys, failing=1)
    with pytest.raises(ConnectionError):
        await layer.Pending(store, "client-key", FINGERPRINT, 1.0, 60).claim("t", ("u",), None)
    await eventually(lambda: asyncio.sleep(0, bool(store.tries)), timeout_s=2)  # at once
    await layer.try_pending_once(within_s=2)  # not 60 s later
    assert store.tries == ["release", "release"]
    assert not layer._LATER
    assert await _taken_again(keys, 1.0)


async def test_shutdown_is_not_held_by_attempts_that_outlast_it() -> None:
    """The last tries at shutdown waited for the attempts without a bound, and one cancelled as
    it ran raised CancelledError there: the stores were then never closed."""
    async def stubborn() -> None:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            await asyncio.sleep(5)  # a store call that does not stop at once

    async def cancelled() -> None:
        raise asyncio.CancelledError

    layer._in_background(stubborn, 60, "given up", late=True)
    layer._in_background(cancelled, 60, "given up", late=True)
    await asyncio.sleep(0.05)
    started = time.monotonic()
    await layer.try_pending_once(within_s=0.2)
    assert time.monotonic() - started < 3


async def test_an_errors_key_is_freed_while_the_store_is_down_a_while(
        running: Running, monkeypatch: pytest.MonkeyPatch) -> None:
    """Freeing an error's key failed twice: it was 409 (then for keep_s) though free to send."""
    app, client = running
    monkeypatch.setattr(layer, "AGAIN_S", 0.05)
    store = app.state.platform.idempotency
    freed = store.release
    tries: list[object] = []

    async def down_a_while(*args: Any) -> None:
        tries.append(args)
        if len(tries) <= 2:
            raise RedisTimeoutError("Timeout reading from socket")
        await freed(*args)
        tries.append("freed")

    monkeypatch.setattr(store, "release", down_a_while)
    r = await client.post(f"{BASE}/courses/ghost/lessons", json={"title": "L"}, headers=key("e"))
    assert r.status_code == 404
    await eventually(lambda: asyncio.sleep(0, "freed" in tries), timeout_s=2)
    await client.post(f"{BASE}/courses", json={"id": "ghost", "title": "Now here"})
    r = await client.post(f"{BASE}/courses/ghost/lessons", json={"title": "L"}, headers=key("e"))
    assert r.status_code == 201, r.text


async def test_an_answer_is_kept_while_the_store_is_down_a_while(
        running: Running, monkeypatch: pytest.MonkeyPatch) -> None:
    app, client = running
    monkeypatch.setattr(layer, "AGAIN_S", 0.05)
    store = app.state.platform.idempotency
    kept = store.finish
    tries: list[object] = []

    async def down_a_while(*args: Any) -> None:
        tries.append(args)
        if len(tries) <= 3:
            raise RedisTimeoutError("Timeout reading from socket")
        await kept(*args)
        tries.append("kept")

    monkeypatch.setattr(store, "finish", down_a_while)
    first = await client.post(f"{BASE}/courses", json={"title": "A"}, headers=key("k"))
    assert first.status_code == 201
    await eventually(lambda: asyncio.sleep(0, "kept" in tries), timeout_s=2)
    again = await client.post(f"{BASE}/courses", json={"title": "A"}, headers=key("k"))
    assert (again.status_code, again.json()) == (201, first.json())
    assert await course_ids(client) == [first.json()["id"]]
