"""The request middleware's refusals of a request body, at the ASGI level: a body that stops
coming is answered 408, but only while no response has started."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request, Response
from pydantic import BaseModel
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bloop.platform.kit.errors import install_error_handlers
from bloop.platform.kit.logging import JsonFormatter
from bloop.platform.kit.metrics import Metrics
from bloop.platform.kit.middleware import LOGGED_PATH, RequestContextMiddleware

IDLE_S = 0.05


def scope(path: str) -> Scope:
    return {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
            "scheme": "http", "path": path, "raw_path": path.encode(), "root_path": "",
            "query_string": b"", "server": ("127.0.0.1", 8000), "client": ("127.0.0.1", 5000),
            "headers": [(b"host", b"bloop.test"), (b"content-type", b"application/json"),
                        (b"content-length", b"100")]}


async def never_sent() -> Message:
    """A client that declared a body and sends none of it (nor leaves)."""
    await asyncio.Event().wait()
    raise AssertionError("unreachable")


async def call(app: ASGIApp, path: str, timeout_s: float) -> list[Message]:
    metrics = Metrics()
    wrapped = RequestContextMiddleware(app, lambda: metrics, 1_048_576, body_idle_s=IDLE_S)
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    await asyncio.wait_for(wrapped(scope(path), never_sent, send), timeout_s)
    return sent


class Course(BaseModel):
    title: str


async def test_a_body_that_stops_coming_is_answered_408() -> None:
    app = FastAPI()
    install_error_handlers(app)

    @app.post("/courses")
    async def create(course: Course) -> dict[str, Any]:
        raise AssertionError("the body never came")

    sent = await call(app, "/courses", timeout_s=5)
    start = sent[0]
    assert start["status"] == 408
    assert (b"connection", b"close") in start["headers"]
    assert json.loads(sent[1]["body"])["code"] == "request_timeout"


def dripping(every_s: float, size: int, total: int = 100) -> Receive:
    """A client that sends `total` bytes, `size` at a time, one part every `every_s`."""
    left = total

    async def receive() -> Message:
        nonlocal left
        await asyncio.sleep(every_s)
        part = min(size, left)
        left -= part
        return {"type": "http.request", "body": b"x" * part, "more_body": left > 0}

    return receive


async def rated_call(receive: Receive, timeout_s: float) -> list[Message]:
    metrics = Metrics()
    app = FastAPI()
    install_error_handlers(app)

    @app.post("/upload")
    async def upload(request: Request) -> Response:
        return Response(str(len(await request.body())))

    wrapped = RequestContextMiddleware(app, lambda: metrics, 1_048_576, body_idle_s=0.2,
                                       body_min_rate=50)
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    await asyncio.wait_for(wrapped(scope("/upload"), receive, send), timeout_s)
    return sent


async def test_a_body_that_trickles_in_is_answered_408_after_the_first_idle_period() -> None:
    """A byte every 0.1 s never left a gap of 0.2 s, so it was waited for as long as the client
    liked (a connection and an upload's spool file each)."""
    loop = asyncio.get_running_loop()
    began = loop.time()
    sent = await rated_call(dripping(0.1, 1), timeout_s=5)
    assert sent[0]["status"] == 408
    assert (b"connection", b"close") in sent[0]["headers"]
    body = json.loads(sent[1]["body"])
    assert body["code"] == "request_timeout"
    assert "slower than 50 bytes/s" in body["detail"]
    assert loop.time() - began < 1.0


async def test_a_slow_but_steady_body_is_never_cut() -> None:
    """20 bytes every 0.1 s (200 bytes/s, above the 50 asked) for 2 s: ten idle periods."""
    sent = await rated_call(dripping(0.1, 20, total=400), timeout_s=10)
    assert sent[0]["status"] == 200
    assert sent[1]["body"] == b"400"


async def test_a_client_that_leaves_mid_body_is_counted_as_gone_not_as_a_bad_request() -> None:
    """FastAPI reads a JSON route's body itself and answered a client gone half-way 400 "There
    was an error parsing the body", counted as the client's fault; an upload route said 499."""
    app = FastAPI()
    install_error_handlers(app)

    @app.post("/courses")
    async def create(course: Course) -> dict[str, Any]:
        raise AssertionError("half a body reached the route")

    parts: list[Message] = [{"type": "http.request", "body": b'{"title": "Alg', "more_body": True},
                            {"type": "http.disconnect"}]

    async def leaves() -> Message:
        return parts.pop(0)

    metrics = Metrics()
    wrapped = RequestContextMiddleware(app, lambda: metrics, 1_048_576, body_idle_s=5)
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    await asyncio.wait_for(wrapped(scope("/courses"), leaves, send), 5)
    assert sent[0]["status"] == 499
    assert json.loads(sent[1]["body"])["code"] == "client_closed_request"


async def test_once_the_response_has_started_the_body_is_no_longer_timed() -> None:
    """An app that answers without reading the body and then waits for the client to leave
    (as a streaming response does) is not cut off."""
    async def streaming(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await receive()  # the disconnect

    with pytest.raises(TimeoutError):
        await call(streaming, "/stream", timeout_s=IDLE_S * 6)


async def test_an_unexpected_error_is_answered_once_with_the_request_id(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The 500 goes out through the middleware, so it carries X-Request-ID and names the id in
    its body, and the error is logged once, while the id is still known (not raised again for
    the server to log a second time)."""
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("kaput")

    lines: list[str] = []

    class Lines(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(JsonFormatter().format(record))  # formatted as logged, as in a server

    monkeypatch.setattr(logging.getLogger(), "handlers", [Lines()])
    metrics = Metrics()
    app.add_middleware(RequestContextMiddleware, metrics=lambda: metrics, max_body_bytes=1024)
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    async def no_body() -> Message:
        return {"type": "http.request", "body": b""}

    asked = {**scope("/boom"), "method": "GET",
             "headers": [(b"host", b"bloop.test"), (b"x-request-id", b"report-42")]}
    await app(asked, no_body, send)
    assert sent[0]["status"] == 500
    assert (b"x-request-id", b"report-42") in sent[0]["headers"]
    assert json.loads(sent[1]["body"])["request_id"] == "report-42"
    errors = [json.loads(line) for line in lines if json.loads(line)["level"] == "ERROR"]
    assert [e["msg"] for e in errors] == ["unhandled error"]
    assert errors[0]["request_id"] == "report-42"
    assert "RuntimeError: kaput" in errors[0]["exc"]


async def test_methods_outside_http_are_counted_as_other() -> None:
    metrics = Metrics()
    wrapped = RequestContextMiddleware(FastAPI(), lambda: metrics, 1_048_576)

    async def send(message: Message) -> None:
        return None

    async def no_body() -> Message:
        return {"type": "http.request", "body": b""}

    for method in ("MKCALENDAR", "PROPFIND", "GET"):
        await wrapped({**scope("/x"), "method": method, "headers": []}, no_body, send)
    methods = {s.labels["method"] for m in metrics.registry.collect() for s in m.samples
               if m.name == "bloop_http_requests"}
    assert methods == {"other", "GET"}


async def test_probes_write_access_lines_only_when_not_ready(caplog: pytest.LogCaptureFixture
                                                              ) -> None:
    app = FastAPI()
    ready = True

    @app.get("/readyz")
    async def readyz() -> Response:
        return Response(status_code=200 if ready else 503)

    @app.get("/healthz")
    async def healthz() -> None:
        return None

    @app.get("/courses")
    async def courses() -> None:
        return None

    caplog.set_level(logging.INFO)
    metrics = Metrics()
    app.add_middleware(RequestContextMiddleware, metrics=lambda: metrics, max_body_bytes=1024)

    async def send(message: Message) -> None:
        return None

    async def no_body() -> Message:
        return {"type": "http.request", "body": b""}

    async def get(path: str) -> None:
        await app({**scope(path), "method": "GET", "headers": []}, no_body, send)

    for path in ("/healthz", "/readyz", "/courses"):
        await get(path)
    ready = False
    await get("/readyz")
    lines = [(getattr(r, "route", None), getattr(r, "status", None)) for r in caplog.records
             if r.getMessage() == "request"]
    assert lines == [("/courses", 200), ("/readyz", 503)]


async def test_a_no_content_answer_carries_no_content_type() -> None:
    """Whether the route declares its 204 or sets it as it answers, and whatever response
    class it has."""
    app = FastAPI()

    @app.delete("/courses/{course}", status_code=204)
    async def delete(course: str) -> None:
        return None

    @app.put("/courses/{course}/tags")
    async def tag(course: str, response: Response) -> None:
        response.status_code = 204

    metrics = Metrics()
    app.add_middleware(RequestContextMiddleware, metrics=lambda: metrics, max_body_bytes=1024)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://bloop.test") as client:
        for r in (await client.delete("/courses/c1"), await client.put("/courses/c1/tags")):
            assert r.status_code == 204
            assert "content-type" not in r.headers, r.request.url
            assert "content-length" not in r.headers, r.request.url
            assert r.content == b""
            assert "x-request-id" in r.headers


@pytest.mark.parametrize(("body", "says"), [
    (b"[" * 3000 + b"]" * 3000, "nests too deeply"),
    (b'{"title": ' + b"9" * 5000 + b"}", "digits"),
    (b'{"title": "\xff"}', "not UTF-8"),
], ids=["deep", "long-number", "not-utf8"])
async def test_a_body_json_cannot_read_is_told_why(body: bytes, says: str) -> None:
    """FastAPI answered these 400 "There was an error parsing the body", saying nothing of
    what was wrong, where a syntax error gets 422 with its place."""
    app = FastAPI()
    install_error_handlers(app)

    @app.post("/courses")
    async def create(course: Course) -> dict[str, Any]:
        raise AssertionError("an unreadable body reached the route")

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://bloop.test") as client:
        r = await client.post("/courses", content=body,
                              headers={"Content-Type": "application/json"})
    assert r.status_code == 422, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert (r.json()["code"], r.json()["errors"][0]["loc"]) == ("validation_failed", ["body"])
    assert says in r.json()["detail"]


@pytest.mark.parametrize("sent", ["text/plain", "application/xml; charset=utf-8",
                                  "application/x-www-form-urlencoded"])
async def test_a_body_that_is_not_json_is_told_to_be(sent: str) -> None:
    """Such a body was refused 422 "body: Input should be a valid dictionary or object", which
    does not say that the content type was the fault."""
    app = FastAPI()
    install_error_handlers(app)

    @app.post("/courses")
    async def create(course: Course) -> dict[str, Any]:
        return {"title": course.title}

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://bloop.test") as client:
        r = await client.post("/courses", content=b'{"title": "T"}',
                              headers={"Content-Type": sent})
        assert (r.status_code, r.json()["code"]) == (415, "unsupported_media_type"), r.text
        assert "application/json" in r.json()["detail"]
        for fine in ("application/json", "application/merge-patch+json"):
            r = await client.post("/courses", content=b'{"title": "T"}',
                                  headers={"Content-Type": fine})
            assert r.status_code == 200, r.text
        r = await client.post("/courses", content=b'{"name": "T"}',
                              headers={"Content-Type": "application/json"})
        assert (r.status_code, r.json()["code"]) == (422, "validation_failed")


async def test_pages_are_never_framed_by_another_site_and_nothing_is_sniffed() -> None:
    """The landing page, GraphiQL (its sign-in form) and the API docs loaded inside another
    site's frame, and sent their address, which holds GraphiQL's query, to links they
    followed."""
    app = FastAPI()

    @app.get("/page")
    async def page() -> Response:
        return Response("<!doctype html><title>t</title>", media_type="text/html")

    @app.get("/data")
    async def data() -> dict[str, int]:
        return {"n": 1}

    @app.get("/own")
    async def own() -> Response:
        return Response("<p>", media_type="text/html",
                        headers={"Content-Security-Policy": "default-src 'self'"})

    metrics = Metrics()
    wrapped = RequestContextMiddleware(app, lambda: metrics, 1_048_576)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=wrapped),
                                 base_url="http://bloop.test") as client:
        html, json_, own_ = [await client.get(p) for p in ("/page", "/data", "/own")]
    assert html.headers["content-security-policy"] == "frame-ancestors 'none'"
    assert html.headers["x-frame-options"] == "DENY"
    assert html.headers["referrer-policy"] == "no-referrer"
    assert "x-frame-options" not in json_.headers
    assert {r.headers["x-content-type-options"] for r in (html, json_, own_)} == {"nosniff"}
    assert own_.headers.get_list("content-security-policy") == ["default-src 'self'"]


async def test_a_long_path_is_logged_cut(caplog: pytest.LogCaptureFixture) -> None:
    """A 60 KB path was logged whole, on every request that sent one."""
    metrics = Metrics()
    wrapped = RequestContextMiddleware(FastAPI(), lambda: metrics, 1_048_576)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=wrapped),
                                 base_url="http://bloop.test") as client:
        with caplog.at_level(logging.INFO, logger="bloop.http"):
            assert (await client.get("/" + "a" * 60_000)).status_code == 404
    [logged] = [r for r in caplog.records if r.getMessage() == "request"]
    assert vars(logged)["path"] == "/" + "a" * (LOGGED_PATH - 1) + f"…(+{60_001 - LOGGED_PATH})"
