"""Media and imports with every store real: bytes in GridFS on the MongoDB-wire server, lessons in
its `content` database, events through Kafka. Each test works in a tenant of its own."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from bloop.platform.app import create_app
from bloop.platform.content.media.service import MediaService
from bloop.platform.content.media.stores.gridfs import GridFsMediaStore
from bloop.platform.content.service import ContentService
from bloop.platform.kit.settings import RuntimeSettings, Settings
from tests.support import api_client, member, require_server
from tests.unit.content import media_samples as s

pytestmark = pytest.mark.real


@pytest.fixture
async def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FastAPI]:
    for name in ("mongo", "redis", "kafka", "neo4j"):
        require_server(name)
    monkeypatch.setenv("BLOOP_MEDIA_PUBLISHED_CACHE_S", "0")
    settings = Settings(runtime=RuntimeSettings(store="real", data_dir=tmp_path, seed_demo=False))
    application = create_app(settings, services=["identity", "content"])
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
def tenant() -> str:
    return f"m-{uuid.uuid4().hex[:10]}"


@pytest.fixture
async def client(app: FastAPI, tenant: str) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(app) as c:
        c.headers.update(await member(app, c, tenant, ["educator"]))
        c.headers["X-Learner"] = (await member(app, c, tenant, ["learner"]))["Authorization"]
        yield c
    media: MediaService = app.state.content.state["media"]
    for m in (await media.media(tenant, limit=500)).items:
        await media.store.delete(tenant, m.id)


def gridfs(app: FastAPI) -> GridFsMediaStore:
    store = app.state.content.state["media"].store
    assert isinstance(store, GridFsMediaStore)
    return store


async def test_a_video_in_gridfs_seeks_like_a_browser_asks(client: httpx.AsyncClient,
                                                           app: FastAPI, tenant: str) -> None:
    data = s.mp4(2_000_000)
    r = await client.post(f"/v1/tenants/{tenant}/media", content=data,
                          headers={"Content-Type": "video/mp4"}, params={"filename": "clip.mp4"})
    assert r.status_code == 201, r.text
    media = r.json()
    doc = await gridfs(app).files.find_one({"_id": f"{tenant}/{media['id']}"})
    assert doc is not None
    assert doc["length"] == len(data)
    assert doc["metadata"]["sha256"] == media["sha256"]
    assert await gridfs(app).chunks.count_documents({"files_id": doc["_id"]}) == -(
        -len(data) // doc["chunkSize"])

    url, size = media["url"], len(data)
    r = await client.get(url, headers={"Range": "bytes=0-"})
    assert r.status_code == 206
    assert r.headers["content-range"] == f"bytes 0-{size - 1}/{size}"
    assert r.content == data
    r = await client.get(url, headers={"Range": "bytes=1048570-1048589"})  # across a chunk edge
    assert (r.status_code, r.content) == (206, data[1048570:1048590])
    r = await client.get(url, headers={"Range": "bytes=-1000"})
    assert (r.status_code, r.content) == (206, data[-1000:])
    r = await client.get(url, headers={"Range": f"bytes={size}-"})
    assert r.status_code == 416
    r = await client.get(url, headers={"If-None-Match": f'"{media["sha256"]}"'})
    assert r.status_code == 304


async def test_an_import_lands_in_mongodb_and_learners_read_its_media(
        client: httpx.AsyncClient, app: FastAPI, tenant: str) -> None:
    base = f"/v1/tenants/{tenant}"
    assert (await client.post(f"{base}/courses", json={"id": "py", "title": "Python"})
            ).status_code == 201
    pack = s.zip_of({"one.md": b"---\ntitle: One\n---\n![dot](img/dot.png)\n",
                     "img/dot.png": s.png()})
    r = await client.post(f"{base}/courses/py/uploads",
                          files=[("files", ("pack.zip", pack, "application/zip"))])
    assert r.status_code == 201, r.text
    [lesson], [media] = r.json()["lessons"], r.json()["media"]
    [block] = lesson["blocks"]  # an image alone in its paragraph is an image block
    assert (block["type"], block["media"]) == ("image", media["id"])
    assert await gridfs(app).files.count_documents({"metadata.tenant": tenant}) == 1

    learner = {"Authorization": client.headers["X-Learner"]}
    assert (await client.get(media["url"], headers=learner)).status_code == 404
    assert (await client.post(f"{base}/courses/py/publish")).status_code == 200
    r = await client.get(media["url"], headers={**learner, "Range": "bytes=0-"})
    assert (r.status_code, r.content) == (206, s.png())


async def test_a_failed_import_leaves_gridfs_and_the_course_as_they_were(
        client: httpx.AsyncClient, app: FastAPI, tenant: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    base = f"/v1/tenants/{tenant}"
    await client.post(f"{base}/courses", json={"id": "py", "title": "Python"})
    content: ContentService = app.state.content.state["service"]
    real_add = content.repo.add_lessons
    calls = 0

    async def add_lessons(*args: Any, **kwargs: Any) -> Any:
        """The lessons' one write, after the media are stored, fails as if it never ran."""
        nonlocal calls
        calls += 1
        raise ConnectionError("the store went away")

    monkeypatch.setattr(content.repo, "add_lessons", add_lessons)
    pack = s.zip_of({"a.md": b"# A\n![i](i.png)", "b.md": b"# B", "i.png": s.png(),
                     "t.wav": s.wav()})
    failed = await client.post(f"{base}/courses/py/uploads",
                               files=[("files", ("pack.zip", pack, "application/zip"))])
    assert failed.status_code == 500
    assert calls == 1
    assert await gridfs(app).files.count_documents({"metadata.tenant": tenant}) == 0
    assert await gridfs(app).chunks.count_documents(
        {"files_id": {"$regex": f"^{tenant}/"}}) == 0
    monkeypatch.setattr(content.repo, "add_lessons", real_add)
    assert await content.repo.list_lessons(tenant, "py") == []


async def test_an_export_from_mongodb_and_gridfs_imports_back_equal(
        client: httpx.AsyncClient, tenant: str) -> None:
    base = f"/v1/tenants/{tenant}"
    r = await client.post(f"{base}/media", files={"file": ("point é.png", s.png(), "image/png")})
    image = r.json()["id"]
    url = f"{base}/media/{image}/content"
    for course in ("py", "copy"):
        assert (await client.post(f"{base}/courses", json={"id": course, "title": course})
                ).status_code == 201
    blocks: list[dict[str, Any]] = [
        {"type": "markdown", "markdown": f"# Ça\n\n![p]({url}) et `{url}`"},
        {"type": "image", "media": image, "alt": "p"},
        {"type": "code", "language": "go", "source": "```\n"},
        {"type": "quiz", "id": "q", "title": "Q", "questions": [
            {"type": "true_false", "id": "tf", "prompt": f"![p]({url})?", "answer": True,
             "feedback": {"correct": "oui", "incorrect": "non"}}]}]
    assert (await client.post(f"{base}/courses/py/lessons", json={
        "title": "Leçon 🔁", "blocks": blocks})).status_code == 201
    r = await client.get(f"{base}/courses/py/export")
    assert r.status_code == 200, r.text
    done = await client.post(f"{base}/courses/copy/uploads",
                             files=[("files", ("py.zip", r.content, "application/zip"))])
    assert done.status_code == 201, done.text

    def lessons(detail: dict[str, Any]) -> list[tuple[str, list[Any]]]:
        return [(x["title"], x["blocks"]) for x in detail["lessons"]]

    [(title, found)] = lessons((await client.get(f"{base}/courses/copy")).json())
    assert [(title, found)] == lessons((await client.get(f"{base}/courses/py")).json())
    assert (title, found[0], found[2]) == ("Leçon 🔁", blocks[0], blocks[2])


async def test_an_export_carries_its_modules_and_concepts_to_another_tenant(
        client: httpx.AsyncClient, app: FastAPI, tenant: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    base = f"/v1/tenants/{tenant}"
    assert (await client.post(f"{base}/concepts", json={
        "id": "loops", "name": "Boucles", "description": "for et while"})).status_code == 201
    assert (await client.post(f"{base}/courses", json={
        "id": "py", "title": "Python", "modules": [{"id": "basics", "title": "Bases"}]})
            ).status_code == 201
    r = await client.post(f"{base}/media", files={"file": ("a.png", s.png(), "image/png")})
    url = f"{base}/media/{r.json()['id']}/content"
    assert (await client.post(f"{base}/courses/py/lessons", json={
        "title": "One", "teaches": ["loops"], "module": "basics", "blocks": [
            {"type": "markdown", "markdown": f"<{url}> <a href=\"{url}\">a</a>"}]})
            ).status_code == 201
    data = (await client.get(f"{base}/courses/py/export")).content

    other = f"m-{uuid.uuid4().hex[:10]}"
    obase = f"/v1/tenants/{other}"
    headers = await member(app, client, other, ["educator"])
    assert (await client.post(f"{obase}/courses", headers=headers, json={
        "id": "py", "title": "Python"})).status_code == 201

    async def upload() -> httpx.Response:
        return await client.post(f"{obase}/courses/py/uploads", headers=headers,
                                 files=[("files", ("py.zip", data, "application/zip"))])

    async def carried() -> tuple[list[Any], list[Any]]:
        concepts = (await client.get(f"{obase}/concepts", headers=headers)).json()["items"]
        head = (await client.get(f"{obase}/courses/py", headers=headers)).json()
        return ([(c["id"], c["name"], c["description"]) for c in concepts],
                [m["id"] for m in head["modules"]])

    content: ContentService = app.state.content.state["service"]

    async def failing(*_: Any, **__: Any) -> Any:
        raise ConnectionError("the store went away")

    try:
        with monkeypatch.context() as patched:
            patched.setattr(content.repo, "add_lessons", failing)
            assert (await upload()).status_code == 500
        # the module taken back; the concept stays (another author may name it at once)
        assert await carried() == ([("loops", "Boucles", "for et while")], [])
        done = await upload()
        assert done.status_code == 201, done.text
        assert await carried() == ([("loops", "Boucles", "for et while")], ["basics"])
        [lesson] = (await client.get(f"{obase}/courses/py", headers=headers)).json()["lessons"]
        moved = f"{obase}/media/{done.json()['media'][0]['id']}/content"
        assert (lesson["teaches"], lesson["module"], lesson["blocks"][0]["markdown"]) == (
            ["loops"], "basics", f"<{moved}> <a href=\"{moved}\">a</a>")
    finally:
        media: MediaService = app.state.content.state["media"]
        for m in (await media.media(other, limit=500)).items:
            await media.store.delete(other, m.id)
