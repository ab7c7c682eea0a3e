"""The request middleware's refusals of a request body, at the ASGI level: a body that stops
coming is answered 408, but only while no response has started."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from fastapi import FastAPI
from pydantic import BaseModel
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bloop.platform.kit.errors import install_error_handlers
from bloop.platform.kit.metrics import Metrics
from bloop.platform.kit.middleware import RequestContextMiddleware

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


async def test_once_the_response_has_started_the_body_is_no_longer_timed() -> None:
    """An app that answers without reading the body and then waits for the client to leave
    (as a streaming response does) is not cut off."""
    async def streaming(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await receive()  # the disconnect

    with pytest.raises(TimeoutError):
        await call(streaming, "/stream", timeout_s=IDLE_S * 6)
