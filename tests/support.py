"""Helpers shared by the test layers: test event types, real-server gating, waiting."""

from __future__ import annotations

import asyncio
import base64
import collections
import contextlib
import contextvars
import functools
import gc
import inspect
import os
import shutil
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import iter_route_contexts
from jsonschema import Draft202012Validator
from pydantic import BaseModel, ConfigDict, SecretStr
from pymongo import AsyncMongoClient
from starlette.routing import Match

from bloop import infra
from bloop.ai.jobs.events import JobCompleted
from bloop.ai.jobs.model import Job, JobParams, MediaOutput, MediaResult
from bloop.ai.jobs.worker import completed as worker_completed
from bloop.ai.text.model import LessonText
from bloop.platform.app import create_app
from bloop.platform.identity.model import NewTenant, NewUser, Role, User
from bloop.platform.identity.ports import IdentityRepository
from bloop.platform.identity.service import IdentityService
from bloop.platform.kit import stores
from bloop.platform.kit.events.envelope import Envelope
from bloop.platform.kit.events.types import event_type, type_of
from bloop.platform.kit.pagination import Slice
from bloop.platform.kit.settings import MongoSettings, RuntimeSettings, Settings
from bloop.platform.kit.sqlite import SqliteDB

TEST_TOPIC = "bloop.test.events"


@event_type("bloop.test.ping.sent", 1, TEST_TOPIC)
class PingSent(BaseModel):
    model_config = ConfigDict(extra="forbid")
    run: str
    n: int


def require_server(name: str) -> infra.Server:
    """The real server `name`, reachable. Under CI a missing server fails the test; elsewhere the
    test is reported as not run (xfail) with the command that would start it."""
    server = infra.servers()[name]
    if server.reachable():
        return server
    host, port = server.address
    message = f"{name} is not reachable at {host}:{port}; start it with `bloop infra up {name}`"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.xfail(message)


@contextlib.asynccontextmanager
async def scratch_mongo(prefix: str) -> AsyncIterator[tuple[AsyncMongoClient[dict[str, Any]], str]]:
    """A client of the real MongoDB-wire server and the name of a database of the test's own
    (`<prefix>_<random>`), dropped afterwards."""
    server = require_server("mongo")
    client = stores.mongo_client(MongoSettings(url=server.url, timeout_ms=2000))
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    try:
        yield client, name
    finally:
        await client.drop_database(name)
        await client.close()


def require_media_kind(app: Any, kind: str) -> None:
    """The AI service offers `kind` (narration, video): its libraries are installed (`make test`
    installs them). Under CI their absence fails the test; elsewhere it is reported as not run."""
    if kind not in app.state.ai.state["service"].media_kinds:
        _not_installed(f"AI {kind} jobs need ffmpeg, espeak-ng and Manim")


def require_tools(*names: str) -> None:
    """The media tools `names` (espeak-ng, ffmpeg) are on the PATH, as `require_media_kind`."""
    if missing := [name for name in names if shutil.which(name) is None]:
        _not_installed(f"this needs {', '.join(missing)}")


def _not_installed(message: str) -> None:
    message += ": run `make test` (infra/media.sh)"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.xfail(message)


T = TypeVar("T")


def count_calls(store: object, monkeypatch: pytest.MonkeyPatch,
                within: contextvars.ContextVar[bool] | None = None) -> collections.Counter[str]:
    """Counts, by method name, the calls of each public coroutine method of `store` (a
    repository) from now on; clear the counter to start again. With `within`, only the calls
    made where it is set to True (a request, and not the consumers working beside it)."""
    calls: collections.Counter[str] = collections.Counter()

    def counted(name: str, method: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        @functools.wraps(method)
        async def call(*args: Any, **kwargs: Any) -> Any:
            if within is None or within.get():
                calls[name] += 1
            return await method(*args, **kwargs)
        return call

    for name in dir(type(store)):
        if name.startswith("_") or isinstance(getattr(type(store), name), property):
            continue
        method = getattr(store, name)
        if inspect.iscoroutinefunction(method):
            monkeypatch.setattr(store, name, counted(name, method))
    return calls


async def query_plans(db: SqliteDB, reads: Callable[[], Awaitable[object]],
                      table: str) -> list[list[str]]:
    """The query plan of each statement `reads` makes on `db` (its reader or its writer) that
    names `table`."""
    statements: list[str] = []
    await db.run(lambda c: c.set_trace_callback(statements.append))
    await db.transaction(lambda c: c.set_trace_callback(statements.append))
    try:
        await reads()
    finally:
        await db.run(lambda c: c.set_trace_callback(None))
        await db.transaction(lambda c: c.set_trace_callback(None))
    return await db.run(lambda c: [
        [row[3] for row in c.execute(f"EXPLAIN QUERY PLAN {s}")]
        for s in statements if f" {table} " in s])


async def paged(read: Callable[[str | None, int], Awaitable[Slice[T]]], size: int) -> list[T]:
    """Every item of a list read `size` at a time, checking that each slice but the last is
    full and has a cursor, and that the last has none."""
    items: list[T] = []
    after: str | None = None
    while True:
        listed = await read(after, size)
        assert len(listed.items) <= size
        items += listed.items
        if listed.next is None:
            return items
        assert len(listed.items) == size, "a slice with a cursor is full"
        after = listed.next


async def graphql_pages(client: httpx.AsyncClient, headers: dict[str, str], query: str,
                        field: str, key: str) -> list[list[Any]]:
    """The `key` of each item of each page of the top-level `field` that `query` (taking an
    `$after: String`) answers, following `next` to the last page."""
    pages: list[list[Any]] = []
    after = None
    while True:
        r = await client.post("/graphql", json={"query": query, "variables": {"after": after}},
                              headers=headers)
        body = r.json()
        assert "errors" not in body, body
        page = body["data"][field]
        pages.append([item[key] for item in page["items"]])
        if (after := page["next"]) is None:
            return pages


async def pages_of(client: httpx.AsyncClient, url: str, size: int,
                   headers: dict[str, str] | None = None,
                   after: str | None = None) -> list[list[Any]]:
    """The items of each page `GET url` answers, `size` a page from the cursor `after` on,
    following `next`: checking that each page but the last is full, and the last has no
    `next`."""
    pages: list[list[Any]] = []
    while True:
        params: dict[str, str | int] = {"limit": size} | ({"after": after} if after else {})
        r = await client.get(url, params=params, headers=headers)
        assert r.status_code == 200, r.text
        page = r.json()
        assert len(page["items"]) <= size, "a page holds at most `limit` items"
        pages.append(page["items"])
        if page["next"] is None:
            return pages
        assert len(page["items"]) == size, "a page with a `next` is full"
        after = page["next"]


async def eventually(check: Callable[[], Awaitable[bool]], timeout_s: float = 30,
                     interval_s: float = 0.05, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout_s
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        await asyncio.sleep(interval_s)


async def start_up_announced() -> None:
    """Waits for the end of identity's start-up announcement of the time zones set before it
    announced them (a background task)."""
    for task in asyncio.all_tasks():
        if task.get_name() == "identity:time-zones":
            await task


async def bounded(work: Awaitable[T], timeout_s: float, what: str) -> T:
    """Awaits `work` for at most `timeout_s`. Past that it is cancelled and left behind, and the
    test fails naming where it and the tasks it started wait, so the test's own clean-up still
    runs (a pytest timeout would interrupt the event loop instead, skipping it)."""
    before = asyncio.all_tasks()
    task = asyncio.ensure_future(work)
    await asyncio.wait({task}, timeout=timeout_s)
    if task.done():
        return task.result()
    started = [t for t in asyncio.all_tasks() - before if t is not task and not t.done()]
    where = "; ".join(_waits_in(t) for t in [task, *started])
    task.cancel()
    pytest.fail(f"{what} did not end within {timeout_s:g}s; waiting in: {where}")


def _waits_in(task: asyncio.Task[Any]) -> str:
    """The innermost frames of a suspended task (its `get_stack` gives only the outermost)."""
    frames = []
    awaited: Any = task.get_coro()
    while awaited is not None:
        frame = getattr(awaited, "cr_frame", None) or getattr(awaited, "gi_frame", None)
        if frame is None:
            break
        frames.append(f"{Path(frame.f_code.co_filename).name}:{frame.f_lineno} "
                      f"{frame.f_code.co_name}")
        awaited = getattr(awaited, "cr_await", None) or getattr(awaited, "gi_yieldfrom", None)
    return " > ".join(frames[-3:]) or task.get_name()


class FirstWriteLast:
    """The identity store, but the first `replace_user` (`waiting` once it is in it) commits
    only after another one did."""

    def __init__(self, store: IdentityRepository) -> None:
        self.store = store
        self.first = True
        self.waiting = asyncio.Event()
        self.another_done = asyncio.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)

    async def replace_user(self, user: User, events: Sequence[Envelope], **kw: Any) -> None:
        first, self.first = self.first, False
        if first:
            self.waiting.set()
            await self.another_done.wait()
            await self.store.replace_user(user, events, **kw)
        else:
            try:
                await self.store.replace_user(user, events, **kw)
            finally:
                self.another_done.set()


class StallingRelay:
    """A TCP relay to a real server that can stall: while stalled it passes no byte either way
    but keeps every connection open, as a server that hangs would (one that is down closes
    them). `down` is the server stopping (connections cut, new ones refused), `up` it starting
    again on the same port."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._server: asyncio.Server | None = None
        self._port = 0
        self._pipes: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def port(self) -> int:
        return self._port

    def stall(self) -> None:
        self._flowing.clear()

    def resume(self) -> None:
        self._flowing.set()

    async def down(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in self._writers:
            writer.transport.abort()
        await self._server.wait_closed()

    async def up(self) -> None:
        self._server = await asyncio.start_server(self._accepted, "127.0.0.1", self._port,
                                                  reuse_address=True)
        self._port = int(self._server.sockets[0].getsockname()[1])

    async def __aenter__(self) -> StallingRelay:
        await self.up()
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self._server is not None
        self._server.close()
        for pipe in self._pipes:
            pipe.cancel()
        await asyncio.gather(*self._pipes, return_exceptions=True)

    async def _accepted(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        for source, sink in ((reader, up_writer), (up_reader, writer)):
            self._writers.add(sink)
            pipe = asyncio.create_task(self._pipe(source, sink))
            self._pipes.add(pipe)
            pipe.add_done_callback(self._pipes.discard)

    async def _pipe(self, source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        try:
            while data := await source.read(65536):
                await self._flowing.wait()
                sink.write(data)
                await sink.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            sink.close()
            self._writers.discard(sink)


@contextlib.contextmanager
def unretrieved() -> Iterator[list[dict[str, Any]]]:
    """What the running loop reports as never retrieved while inside, once tasks are collected."""
    loop = asyncio.get_running_loop()
    seen: list[dict[str, Any]] = []
    before = loop.get_exception_handler()
    loop.set_exception_handler(lambda _, context: seen.append(context))
    try:
        yield seen
        gc.collect()
    finally:
        loop.set_exception_handler(before)


PASSWORD = "quiet meadow lantern sings"
# An `after` of `[[[…`, 1,467 characters (under MAX_CURSOR), nested deeper than Python's JSON
# parser recurses: every list answered it with a 500 (RecursionError).
NESTED_CURSOR = base64.urlsafe_b64encode(b"[" * 1100).decode().rstrip("=")


def embedded_stores(monkeypatch: pytest.MonkeyPatch) -> None:
    """Drops the environment's choice of real stores: an app made now runs on embedded ones."""
    for var in ("BLOOP_STORE", "BLOOP_MONGO_ADAPTER", "BLOOP_NEO4J_ADAPTER", "BLOOP_KAFKA_ADAPTER",
                "BLOOP_REDIS_ADAPTER"):
        monkeypatch.delenv(var, raising=False)


@contextlib.asynccontextmanager
async def embedded_app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, services: Sequence[str]
                       ) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    """An app running `services` on embedded stores in `tmp_path`, whatever stores the
    environment names, without the demo tenant; and a client to it."""
    embedded_stores(monkeypatch)
    app = create_app(Settings(runtime=RuntimeSettings(data_dir=tmp_path, seed_demo=False)),
                     services=list(services))
    async with app.router.lifespan_context(app), api_client(app) as client:
        yield app, client


def api_client(app: FastAPI) -> httpx.AsyncClient:
    """A client to `app` that also checks each error and JSON answer it gets fits the OpenAPI
    document."""
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bloop.test",
                             event_hooks={"response": [answers_documented(app)]})


def answers_documented(app: FastAPI) -> Callable[[httpx.Response], Awaitable[None]]:
    """A response hook: each error, and each JSON answer, of an operation of the OpenAPI document
    fits what the document says of that operation and status."""

    async def check(r: httpx.Response) -> None:
        json_answer = r.headers.get("content-type") == "application/json" and r.status_code != 204
        if r.request.method == "HEAD" or (r.status_code < 400 and not json_answer):
            return  # streams and files are left unread
        await r.aread()
        scope = {"type": "http", "method": r.request.method, "path": r.request.url.path,
                 "root_path": "", "headers": [], "query_string": b""}
        for route in iter_route_contexts(app.router.routes):
            if route.methods and route.matches(scope)[0] is Match.FULL:
                method, path = r.request.method.lower(), route.path_format
                if path is not None and method in app.openapi()["paths"].get(path, {}):
                    check_fits(app.openapi(), method, path, r)
                return

    return check


async def login(client: httpx.AsyncClient, tenant: str, email: str,
                password: str = PASSWORD) -> dict[str, str]:
    """Signs in through the token route; returns the `Authorization` header."""
    r = await client.post("/v1/auth/token", data={
        "grant_type": "password", "tenant": tenant, "username": email, "password": password})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


async def member(app: FastAPI, client: httpx.AsyncClient, tenant: str = "acme",
                 roles: Sequence[Role] = ("learner",), email: str | None = None) -> dict[str, str]:
    """Creates the tenant (when new) and a user with `roles` in it, signs them in, and returns
    their `Authorization` header. The app must run identity."""
    service: IdentityService = app.state.identity.state["service"]
    if await service.repo.get_tenant(tenant) is None:
        await service.create_tenant(NewTenant(id=tenant, name=f"{tenant} school"))
    email = email or f"{'-'.join(roles).replace('_', '-')}-{uuid.uuid4().hex[:8]}@{tenant}.test"
    await service.register_user(tenant, NewUser(email=email, display_name=email.split("@")[0],
                                                roles=list(roles), password=SecretStr(PASSWORD)))
    return await login(client, tenant, email)


async def finished_ai_video(app: FastAPI, tenant: str, job_id: str, lesson_id: str,
                            video: Path, captions: Path | None = None,
                            language: str | None = None) -> Envelope:
    """A succeeded video job of the app's AI service with `video` as its output (and
    `captions`, its WebVTT file, when given), and the `bloop.ai.job.completed.v1` event its
    worker sends (with each output's signed link)."""
    ai = app.state.ai.state
    files: list[tuple[str, str, str, Path, float | None]] = [
        ("lesson.mp4", "video", "video/mp4", video, 2.0)]
    if captions is not None:
        files.append(("lesson.vtt", "subtitles", "text/vtt", captions, None))
    outputs = []
    for name, kind, content_type, path, duration_s in files:
        stored = await ai["media"].put(tenant, job_id, name, content_type, path)
        outputs.append(MediaOutput(
            name=name, kind=kind, content_type=content_type, bytes=stored.length,
            file_id=stored.file_id, duration_s=duration_s,
            url=f"/v1/tenants/{tenant}/ai/jobs/{job_id}/outputs/{name}"))
    at = datetime.now(UTC)
    content = app.state.content.state["service"]
    draft = await content.repo.get_lesson(tenant, lesson_id)  # as the job read it
    course = await content.repo.get_course(tenant, draft.course)
    job = Job(id=job_id, tenant=tenant, kind="video", params=JobParams(language=language),
              lesson=LessonText(id=lesson_id, version=draft.version, course=draft.course,
                                title=draft.title, text=draft.prose,
                                language=draft.language or course.language),
              requested_by="teacher-1", idempotency_key=job_id, status="succeeded",
              result=MediaResult(outputs=outputs), created_at=at, updated_at=at, finished_at=at)
    await ai["service"].store.create(job, [])
    done = type_of(JobCompleted).type_id
    return next(e for e in worker_completed(job, ai["links"]) if e.type == done)


def check_fits(doc: dict[str, Any], method: str, path: str, r: httpx.Response) -> None:
    """`r` is what the document says `method path` answers with its status."""
    responses = doc["paths"][path][method]["responses"]
    documented = responses.get(str(r.status_code), responses["default"] if r.status_code >= 400
                               else {})
    content_type = r.headers["content-type"]
    assert content_type in documented.get("content", {}), (r.status_code, content_type, documented)
    schema = {**documented["content"][content_type]["schema"], "components": doc["components"]}
    errors = [e.message for e in Draft202012Validator(schema).iter_errors(r.json())]
    assert not errors, (r.status_code, r.text, errors)
