"""An import's form read as its bytes arrive: each file written into the data directory's spool
as it comes (nothing in the system's temporary directory), a file too large for its kind, or not
an accepted type, refused before the rest of the body is read, and a refused, stalled or
abandoned request leaving nothing behind."""

from __future__ import annotations

import asyncio
import json
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from starlette.types import Message, Scope

from bloop.platform.app import create_app
from bloop.platform.content.media.service import MediaService
from bloop.platform.content.service import ContentService
from bloop.platform.kit.settings import HttpSettings, RuntimeSettings, Settings
from tests.support import api_client, embedded_stores, member
from tests.unit.content import media_samples as s

BASE = "/v1/tenants/acme"
UPLOAD = f"{BASE}/courses/py/uploads"
BOUNDARY = b"b0undary"
FORM = "multipart/form-data; boundary=b0undary"
CHUNK = 64 * 1024
MAX_REQUEST = 4 * 1024 * 1024
IDLE_S = 1.0


@pytest.fixture
async def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FastAPI]:
    embedded_stores(monkeypatch)
    monkeypatch.setenv("BLOOP_MEDIA_IMAGE_MAX_BYTES", "20000")
    monkeypatch.setenv("BLOOP_UPLOAD_MAX_FILES", "4")
    monkeypatch.setenv("BLOOP_UPLOAD_MAX_REQUEST_BYTES", str(MAX_REQUEST))
    settings = Settings(runtime=RuntimeSettings(data_dir=tmp_path / "data", seed_demo=False),
                        http=HttpSettings(max_body_bytes=64 * 1024, body_idle_timeout_s=IDLE_S))
    application = create_app(settings, services=["identity", "content"])
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(app) as c:
        c.headers.update(await member(app, c, "acme", ["educator"]))
        assert (await c.post(f"{BASE}/courses", json={"id": "py", "title": "Python"})
                ).status_code == 201
        yield c


def opening(filename: str, content_type: str) -> bytes:
    """The start of a part of the field `files`, up to its bytes."""
    return (b"--" + BOUNDARY + b"\r\nContent-Disposition: form-data; name=\"files\"; filename=\""
            + filename.encode() + b"\"\r\nContent-Type: " + content_type.encode() + b"\r\n\r\n")


def part(filename: str, data: bytes, content_type: str = "text/markdown") -> bytes:
    return opening(filename, content_type) + data + b"\r\n"


CLOSING = b"\r\n--" + BOUNDARY + b"--\r\n"


async def left(app: FastAPI) -> tuple[list[str], list[str], list[str]]:
    """The course's lessons, the tenant's media, and everything in the spool."""
    content: ContentService = app.state.content.state["service"]
    media: MediaService = app.state.content.state["media"]
    return ([x.id for x in await content.repo.list_lessons("acme", "py")],
            [m.id for m in (await media.media("acme")).items],
            sorted(str(p.relative_to(media.spool)) for p in media.spool.rglob("*")))


@dataclass
class Body:
    """A form sent as a client streams it: `head`, then `chunks` of zeros (the last file's
    bytes), then the closing boundary; `sent` counts the zeros the server has asked for."""

    head: bytes
    chunks: int
    sent: int = 0

    async def stream(self) -> AsyncIterator[bytes]:
        yield self.head
        for _ in range(self.chunks):
            self.sent += CHUNK
            yield bytes(CHUNK)
        yield CLOSING


@pytest.mark.parametrize(("body", "status", "code", "says"), [
    pytest.param(Body(part("a.md", s.MARKDOWN) + opening("big.png", "image/png") + s.png(), 40),
                 413, "too_large", "big.png: a PNG image may hold at most 20000 bytes",
                 id="file-too-large"),
    pytest.param(Body(part("a.md", s.MARKDOWN) + opening("notes.md", "text/markdown")
                      + b"# Notes\n\x00\x01", 40),
                 415, "unsupported_media_type", "notes.md: ", id="file-not-accepted"),
    pytest.param(Body(b"".join(part(f"{n}.md", s.MARKDOWN) for n in range(4))
                      + opening("4.md", "text/markdown"), 40),
                 422, "invalid_multipart", "Maximum number of files is 4", id="too-many-files"),
    pytest.param(Body(opening("long.wav", "audio/wav") + s.wav(), 100),
                 413, "too_large", f"larger than {MAX_REQUEST} bytes in all", id="request"),
])
async def test_a_refusal_comes_before_the_rest_of_the_body_is_read(
        client: httpx.AsyncClient, app: FastAPI, body: Body, status: int, code: str,
        says: str) -> None:
    """A file too large for its kind, or not an accepted type, was refused only once the
    whole request (up to 1,100 MB) had been read and written to disk twice."""
    r = await client.post(UPLOAD, content=body.stream(), headers={"Content-Type": FORM})
    assert (r.status_code, r.json()["code"]) == (status, code), r.text
    assert says in r.json()["detail"]
    if code != "invalid_multipart" and "in all" not in says:
        assert r.json()["file"] == says.split(":", 1)[0]
    assert body.sent < body.chunks * CHUNK, "the body was read to its end"
    assert await left(app) == ([], [], [])


async def test_no_file_is_written_outside_the_data_directory(
        client: httpx.AsyncClient, app: FastAPI, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A file of more than 1 MiB went to a temporary file in the system's temporary directory
    first (Starlette's form parser), then to the spool. The system's temporary directory
    here does not exist, so anything written there fails the import."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "no-system-temp"))
    big = b"# Big\n\n" + b"".join(b"## Part %d\n\n" % n + b"word " * 8000 + b"\n\n"
                                  for n in range(30))
    assert len(big) > 1024 * 1024
    r = await client.post(UPLOAD, files=[
        ("files", ("big.md", big, "text/markdown")),
        ("files", ("dot.png", s.png(), "image/png")),
        ("files", ("dot.md", b"# Dot\n\n![dot](dot.png)\n", "text/markdown"))])
    assert r.status_code == 201, r.text
    assert [x["title"] for x in r.json()["lessons"]] == ["Big", "Dot"]
    assert [m["filename"] for m in r.json()["media"]] == ["dot.png"]
    lessons, media, _ = await left(app)

    r = await client.post(UPLOAD, files=[("files", ("a.md", s.MARKDOWN, "text/markdown")),
                                         ("files", ("huge.png", s.png(extra=1_500_000),
                                                    "image/png"))])
    assert (r.status_code, r.json()["code"], r.json()["file"]) == (413, "too_large", "huge.png")
    assert await left(app) == (lessons, media, [])


def scope(authorization: str) -> Scope:
    return {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
            "scheme": "http", "path": UPLOAD, "raw_path": UPLOAD.encode(), "root_path": "",
            "query_string": b"", "server": ("bloop.test", 80), "client": ("127.0.0.1", 5000),
            "headers": [(b"host", b"bloop.test"), (b"content-type", FORM.encode()),
                        (b"transfer-encoding", b"chunked"),
                        (b"authorization", authorization.encode())]}


@pytest.mark.parametrize(("client_then", "status", "code"), [
    ("stops-sending", 408, "request_timeout"), ("leaves", 499, "client_closed_request")])
async def test_a_body_that_stalls_or_is_abandoned_leaves_nothing(
        client: httpx.AsyncClient, app: FastAPI, client_then: str, status: int,
        code: str) -> None:
    """The files that came are written into the spool as they come, and removed when the rest
    does not come."""
    media: MediaService = app.state.content.state["media"]
    chunks = [part("a.md", s.MARKDOWN), opening("tone.wav", "audio/wav") + s.wav(seconds=2.0)]
    spooled: list[str] = []

    async def receive() -> Message:
        if chunks:
            return {"type": "http.request", "body": chunks.pop(0), "more_body": True}
        spooled.extend(p.name for p in media.spool.rglob("*") if p.is_file())
        if client_then == "leaves":
            return {"type": "http.disconnect"}
        await asyncio.Event().wait()  # a client that neither sends nor leaves
        raise AssertionError("unreachable")

    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    await asyncio.wait_for(app(scope(client.headers["Authorization"]), receive, send), 30)
    assert sent[0]["status"] == status
    assert json.loads(sent[1]["body"])["code"] == code
    assert spooled == ["part-0000"]
    assert await left(app) == ([], [], [])


async def test_an_upload_that_trickles_in_is_refused_408_and_leaves_nothing(
        client: httpx.AsyncClient, app: FastAPI) -> None:
    """A byte every half idle period kept an upload (its connection and spool file) open for as
    long as the client liked; past the first idle period it must average
    `BLOOP_HTTP_BODY_MIN_RATE_BYTES_S` (the default, 500: the 2 KB sent first buy 4 s)."""
    chunks = [part("a.md", s.MARKDOWN), opening("tone.wav", "audio/wav") + s.wav(seconds=0.1)]

    async def receive() -> Message:
        if chunks:
            return {"type": "http.request", "body": chunks.pop(0), "more_body": True}
        await asyncio.sleep(IDLE_S / 2)
        return {"type": "http.request", "body": b"\x00", "more_body": True}

    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    await asyncio.wait_for(app(scope(client.headers["Authorization"]), receive, send), 20)
    assert sent[0]["status"] == 408
    assert "slower than 500 bytes/s" in json.loads(sent[1]["body"])["detail"]
    assert await left(app) == ([], [], [])
