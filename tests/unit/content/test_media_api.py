"""Media through the real app on the embedded stores: uploads typed from their bytes, limits and
quota, range requests as a browser's video player makes them, and who may read what. Each
refused upload leaves the store and the disk as they were."""

from __future__ import annotations

import asyncio
import errno
import hashlib
import os
import shutil
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from fastapi import FastAPI

from bloop.platform.app import create_app
from bloop.platform.content.media.service import MediaService
from bloop.platform.kit.settings import HttpSettings, RuntimeSettings, Settings
from bloop.platform.kit.signing import LinkSigner
from tests.support import NESTED_CURSOR, api_client, member
from tests.unit.content import media_samples as s

BASE = "/v1/tenants/acme"
QUOTA = 600_000


@pytest.fixture
async def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FastAPI]:
    for var in ("BLOOP_STORE", "BLOOP_MONGO_ADAPTER", "BLOOP_KAFKA_ADAPTER", "BLOOP_REDIS_ADAPTER"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("BLOOP_MEDIA_IMAGE_MAX_BYTES", "20000")
    monkeypatch.setenv("BLOOP_MEDIA_VIDEO_MAX_BYTES", "400000")
    monkeypatch.setenv("BLOOP_MEDIA_TENANT_QUOTA_BYTES", str(QUOTA))
    monkeypatch.setenv("BLOOP_MEDIA_PUBLISHED_CACHE_S", "0")
    settings = Settings(runtime=RuntimeSettings(data_dir=tmp_path, seed_demo=False),
                        http=HttpSettings(max_body_bytes=64 * 1024))
    application = create_app(settings, services=["identity", "content"])
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(app) as c:
        c.headers.update(await member(app, c, "acme", ["educator"]))
        c.headers["X-Learner"] = (await member(app, c, "acme", ["learner"]))["Authorization"]
        yield c


def learner(client: httpx.AsyncClient) -> dict[str, str]:
    return {"Authorization": client.headers["X-Learner"]}


async def upload(client: httpx.AsyncClient, data: bytes, content_type: str | None = None,
                 filename: str | None = None) -> httpx.Response:
    headers = {"Content-Type": content_type} if content_type else {}
    params = {"filename": filename} if filename else {}
    return await client.post(f"{BASE}/media", content=data, headers=headers, params=params)


def disk(app: FastAPI) -> set[str]:
    """Every file under the media folder and the spool."""
    data_dir: Path = app.state.platform.settings.runtime.data_dir
    return {str(p.relative_to(data_dir)) for p in data_dir.rglob("*")
            if p.is_file() and ("media" in p.parts or "spool" in p.parts)}


async def snapshot(app: FastAPI) -> tuple[list[Any], set[str]]:
    media: MediaService = app.state.content.state["media"]
    return [m.id for m in (await media.media("acme")).items], disk(app)


async def test_upload_then_read_back(client: httpx.AsyncClient, app: FastAPI) -> None:
    data = s.png()
    r = await upload(client, data, "image/png", "dot.png")
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["content_type"] == "image/png"
    assert body["kind"] == "image"
    assert body["size"] == len(data)
    assert body["sha256"] == hashlib.sha256(data).hexdigest()
    assert body["filename"] == "dot.png"
    assert body["url"] == f"{BASE}/media/{body['id']}/content"

    r = await client.get(body["url"])
    assert r.status_code == 200
    assert r.content == data
    assert r.headers["content-type"] == "image/png"
    assert r.headers["etag"] == f'"{body["sha256"]}"'
    assert r.headers["accept-ranges"] == "bytes"
    assert r.headers["x-content-type-options"] == "nosniff"
    assert (await client.get(f"{BASE}/media/{body['id']}")).json() == body
    assert [m["id"] for m in (await client.get(f"{BASE}/media")).json()["items"]] == [body["id"]]
    assert (await client.get(f"{BASE}/media/usage")).json() == {
        "tenant": "acme", "used_bytes": len(data), "quota_bytes": QUOTA}

    for tags in (r.headers["etag"], f'"other", W/{r.headers["etag"]}', "*"):
        kept = await client.get(body["url"], headers={"If-None-Match": tags})
        assert (kept.status_code, kept.content) == (304, b""), tags


async def test_media_come_a_page_at_a_time(client: httpx.AsyncClient) -> None:
    ids = [(await upload(client, data)).json()["id"] for data in (s.png(), s.gif(), s.jpeg())]
    whole = [m["id"] for m in (await client.get(f"{BASE}/media")).json()["items"]]
    assert sorted(whole) == sorted(ids)
    first = (await client.get(f"{BASE}/media", params={"limit": 2})).json()
    rest = (await client.get(f"{BASE}/media", params={"limit": 2, "after": first["next"]})).json()
    assert [m["id"] for m in first["items"] + rest["items"]] == whole
    assert (len(first["items"]), rest["next"]) == (2, None)
    for after in ("not-a-cursor", NESTED_CURSOR):
        r = await client.get(f"{BASE}/media", params={"after": after})
        assert (r.status_code, r.json()["code"]) == (422, "bad_cursor")


async def test_the_client_type_is_not_trusted(client: httpx.AsyncClient) -> None:
    r = await upload(client, s.wav(), "application/octet-stream", "tone.wav")
    assert r.status_code == 201, r.text
    assert r.json()["content_type"] == "audio/wav"
    r = await upload(client, s.webm())
    assert r.status_code == 201
    assert r.json()["content_type"] == "video/webm"
    assert r.json()["filename"] == "video.webm"


async def test_identical_bytes_are_kept_once(client: httpx.AsyncClient, app: FastAPI) -> None:
    first = await upload(client, s.gif(), "image/gif", "a.gif")
    again = await upload(client, s.gif(), "image/gif", "b.gif")
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["id"] == first.json()["id"]
    assert len((await snapshot(app))[0]) == 1


async def test_the_same_new_bytes_sent_at_once_are_one_media(
        client: httpx.AsyncClient, app: FastAPI, monkeypatch: pytest.MonkeyPatch) -> None:
    """Uploads of the same new image side by side, each past the check for a kept copy before
    any stores it, with room left for it once: one media, taking its bytes once, and every
    answer names it (none is refused for the quota)."""
    assert (await upload(client, s.mp4(350_000), "video/mp4")).status_code == 201
    assert (await upload(client, s.mp4(249_700), "video/mp4")).status_code == 201
    data = s.png(extra=50)
    used = (await client.get(f"{BASE}/media/usage")).json()["used_bytes"]
    assert len(data) <= QUOTA - used < 2 * len(data)
    media: MediaService = app.state.content.state["media"]
    uploads, all_storing = 10, asyncio.Event()
    storing = 0
    put = media.store.put

    async def put_together(info: Any, source: Path) -> Any:
        nonlocal storing
        storing += 1
        if storing == uploads:
            all_storing.set()
        await asyncio.wait_for(all_storing.wait(), 10)
        return await put(info, source)

    monkeypatch.setattr(media.store, "put", put_together)
    answers = await asyncio.gather(*(upload(client, data, "image/png", f"dot{n}.png")
                                     for n in range(uploads)))
    assert sorted(r.status_code for r in answers) == [200] * (uploads - 1) + [201], [
        r.text for r in answers]
    assert len({r.json()["id"] for r in answers}) == 1
    ids, _ = await snapshot(app)
    assert answers[0].json()["id"] in ids
    assert len(ids) == 3
    assert (await client.get(f"{BASE}/media/usage")).json()["used_bytes"] == used + len(data)


async def test_ranges_as_a_video_player_asks(client: httpx.AsyncClient) -> None:
    data = s.mp4(300_000)
    r = await upload(client, data, "video/mp4", "clip.mp4")
    assert r.status_code == 201, r.text
    url, size = r.json()["url"], len(data)

    r = await client.get(url, headers={"Range": "bytes=0-"})  # what a browser sends first
    assert r.status_code == 206
    assert r.headers["content-range"] == f"bytes 0-{size - 1}/{size}"
    assert r.headers["content-length"] == str(size)
    assert r.headers["accept-ranges"] == "bytes"
    assert r.content == data

    r = await client.get(url, headers={"Range": "bytes=100-199"})
    assert r.status_code == 206
    assert r.headers["content-range"] == f"bytes 100-199/{size}"
    assert r.content == data[100:200]

    r = await client.get(url, headers={"Range": "bytes=250000-"})  # a seek
    assert (r.status_code, r.content) == (206, data[250000:])
    r = await client.get(url, headers={"Range": "bytes=-500"})
    assert (r.status_code, r.content) == (206, data[-500:])
    r = await client.get(url, headers={"Range": f"bytes={size - 10}-{size + 1000}"})
    assert (r.status_code, r.content) == (206, data[-10:])

    r = await client.get(url, headers={"Range": f"bytes={size}-"})
    assert r.status_code == 416
    assert r.headers["content-range"] == f"bytes */{size}"
    assert r.json()["code"] == "range_not_satisfiable"

    r = await client.get(url, headers={"Range": "bytes=0-1", "If-Range": '"stale"'})
    assert (r.status_code, len(r.content)) == (200, size)
    r = await client.get(url, headers={"Range": "bytes=0-1", "If-Range": r.headers["etag"]})
    assert (r.status_code, r.content) == (206, data[:2])

    r = await client.head(url, headers={"Range": "bytes=10-19"})
    assert r.status_code == 206
    assert r.headers["content-length"] == "10"
    assert r.content == b""

    # Positions too long for Python to convert (over 4,300 digits) answered 500: they lie
    # beyond the file, as shorter ones do.
    huge = "9" * 5000
    r = await client.get(url, headers={"Range": f"bytes={huge}-"})
    assert (r.status_code, r.json()["code"]) == (416, "range_not_satisfiable")
    r = await client.get(url, headers={"Range": f"bytes=10-{huge}"})
    assert (r.status_code, r.content) == (206, data[10:])
    r = await client.get(url, headers={"Range": f"bytes=-{huge}"})
    assert (r.status_code, r.content) == (206, data)


async def test_learners_read_only_media_of_published_lessons(client: httpx.AsyncClient) -> None:
    used = (await upload(client, s.png(), "image/png", "a.png")).json()
    unused = (await upload(client, s.jpeg(), "image/jpeg", "b.jpg")).json()
    await client.post(f"{BASE}/courses", json={"id": "py", "title": "Python"})
    await client.post(f"{BASE}/courses/py/lessons", json={"title": "One", "blocks": [
        {"type": "markdown", "markdown": f"![a dot]({used['url']})"}]})
    them = learner(client)
    assert (await client.get(used["url"], headers=them)).status_code == 404  # draft course
    assert (await client.get(f"{BASE}/media", headers=them)).status_code == 403

    assert (await client.post(f"{BASE}/courses/py/publish")).status_code == 200
    r = await client.get(used["url"], headers={**them, "Range": "bytes=0-"})
    assert (r.status_code, r.content) == (206, s.png())
    assert (await client.get(f"{BASE}/media/{used['id']}", headers=them)).status_code == 200
    assert (await client.get(unused["url"], headers=them)).status_code == 404
    assert (await client.get(f"/v1/tenants/beta/media/{used['id']}/content")).status_code == 403
    r = await client.post(f"{BASE}/media", content=s.png(), headers=them)
    assert r.status_code == 403


async def test_a_signed_link_serves_the_bytes_without_credentials(client: httpx.AsyncClient,
                                                                   app: FastAPI) -> None:
    video = (await upload(client, s.mp4(50_000), "video/mp4", "clip.mp4")).json()
    other = (await upload(client, s.png(), "image/png", "dot.png")).json()
    them = learner(client)
    link_route = f"{BASE}/media/{video['id']}/link"
    assert (await client.get(link_route, headers=them)).status_code == 404  # nothing published
    r = await client.get(link_route)
    assert r.status_code == 200, r.text
    link = r.json()
    url = link["url"]
    assert url.startswith(f"{BASE}/media/{video['id']}/signed?reach=staff&expires=")
    expires = int(url.split("expires=")[1].split("&")[0])
    assert link["expires_at"].startswith(
        datetime.fromtimestamp(expires, UTC).isoformat().replace("+00:00", ""))
    assert 4 * 3600 * 7 / 8 - 60 <= expires - time.time() <= 4 * 3600

    anonymous = api_client(app)
    async with anonymous:
        r = await anonymous.get(url)
        assert (r.status_code, r.content) == (200, s.mp4(50_000))
        assert r.headers["content-type"] == "video/mp4"
        r = await anonymous.get(url, headers={"Range": "bytes=100-199"})
        assert (r.status_code, r.content) == (206, s.mp4(50_000)[100:200])
        assert r.headers["content-range"] == f"bytes 100-199/{video['size']}"
        assert (await anonymous.head(url)).headers["content-length"] == str(video["size"])
        assert (await anonymous.get(video["url"])).status_code == 401

        signature = url.split("signature=")[1]
        forged = [
            url.replace(video["id"], other["id"]),  # another file
            url.replace("/acme/", "/beta/"),  # another tenant
            url.replace(f"expires={expires}", f"expires={expires + 3600}"),  # a longer life
            url.replace("reach=staff", "reach=published"),
            url.replace("reach=staff&", ""),
            url.replace(signature, signature[::-1]),
        ]
        for bad in forged:
            r = await anonymous.get(bad)
            assert r.status_code == 403, bad
            assert r.headers["content-type"] == "application/problem+json"
            assert r.json()["code"] == "bad_signature"
        r = await anonymous.get(url.split("&signature")[0])
        assert r.status_code == 422

        media: MediaService = app.state.content.state["media"]
        yesterday = LinkSigner(media.links.secret, ttl_s=3600, clock=lambda: time.time() - 86_400)
        old_expires, old_signature = yesterday.sign("media", "acme", video["id"], "staff")
        r = await anonymous.get(f"{BASE}/media/{video['id']}/signed?reach=staff"
                                f"&expires={old_expires}&signature={old_signature}")
        assert r.status_code == 403
        assert r.json()["code"] == "link_expired"


async def test_learners_still_reach_the_media_of_an_archived_course(
        client: httpx.AsyncClient) -> None:
    image = (await upload(client, s.png(), "image/png", "kept.png")).json()
    await client.post(f"{BASE}/courses", json={"id": "py", "title": "Python"})
    await client.post(f"{BASE}/courses/py/lessons", json={"title": "One", "blocks": [
        {"type": "image", "media": image["id"], "alt": "a figure"}]})
    assert (await client.post(f"{BASE}/courses/py/publish")).status_code == 200
    assert (await client.post(f"{BASE}/courses/py/archive")).status_code == 200
    r = await client.get(f"{BASE}/media/{image['id']}/link", headers=learner(client))
    assert r.status_code == 200, r.text


async def test_a_learners_link_stops_when_no_published_lesson_references_the_media(
        client: httpx.AsyncClient, app: FastAPI) -> None:
    image = (await upload(client, s.png(), "image/png", "secret.png")).json()
    await client.post(f"{BASE}/courses", json={"id": "py", "title": "Python"})
    lesson = (await client.post(f"{BASE}/courses/py/lessons", json={"title": "One", "blocks": [
        {"type": "image", "media": image["id"], "alt": "the answers"}]})).json()
    assert (await client.post(f"{BASE}/courses/py/publish")).status_code == 200
    r = await client.get(f"{BASE}/media/{image['id']}/link", headers=learner(client))
    assert r.status_code == 200, r.text
    theirs = r.json()["url"]
    assert theirs.startswith(f"{BASE}/media/{image['id']}/signed?reach=published&expires=")
    staffs = (await client.get(f"{BASE}/media/{image['id']}/link")).json()["url"]
    media: MediaService = app.state.content.state["media"]
    expires, signature = media.links.sign("media", "acme", image["id"])
    unreached = f"{BASE}/media/{image['id']}/signed?expires={expires}&signature={signature}"

    anonymous = api_client(app)
    async with anonymous:
        for url in (theirs, staffs, unreached):
            r = await anonymous.get(url)
            assert (r.status_code, r.content) == (200, s.png()), url
        r = await anonymous.get(theirs.replace("reach=published", "reach=staff"))
        assert (r.status_code, r.json()["code"]) == (403, "bad_signature")
        r = await anonymous.get(theirs.replace("reach=published", "reach=everyone"))
        assert r.status_code == 422

        r = await client.patch(f"{BASE}/lessons/{lesson['id']}", json={
            "version": lesson["version"], "blocks": [{"type": "markdown", "markdown": "Gone."}]})
        assert r.status_code == 200, r.text
        r = await anonymous.get(theirs)  # the draft changed; the publication still shows it
        assert r.status_code == 200
        assert (await client.post(f"{BASE}/courses/py/publish")).status_code == 200

        for url in (theirs, unreached):
            r = await anonymous.get(url)
            assert r.status_code == 404, url
            assert r.headers["content-type"] == "application/problem+json"
            assert (await anonymous.head(url)).status_code == 404
        r = await anonymous.get(staffs)
        assert (r.status_code, r.content) == (200, s.png())
        r = await client.get(f"{BASE}/media/{image['id']}/link", headers=learner(client))
        assert r.status_code == 404


MARKDOWN_LINKS = """
query ($l: String!) {
  lesson(tenant: "acme", id: $l) {
    blocks { ... on MarkdownBlock { mediaLinks { media link { url expiresAt } } } }
  }
}"""


async def test_the_links_of_a_lessons_media_are_those_its_reader_may_see(
        client: httpx.AsyncClient, app: FastAPI) -> None:
    """Before, only media blocks had links (in GraphQL): an image in Markdown written by an
    educator, which names the media URL that needs a token, showed broken in a page."""
    shown = (await upload(client, s.png(), "image/png", "shown.png")).json()
    later = (await upload(client, s.jpeg(), "image/jpeg", "later.jpg")).json()
    hint = (await upload(client, s.gif(), "image/gif", "hint.gif")).json()
    clip = (await upload(client, s.mp4(50_000), "video/mp4", "clip.mp4")).json()
    await client.post(f"{BASE}/courses", json={"id": "py", "title": "Python"})
    quiz = {"type": "quiz", "id": "check", "title": "Check", "questions": [
        {"type": "single_choice", "id": "one", "prompt": "Pick one", "options": [
            {"id": "a", "text": "A", "correct": True, "feedback": f"![why]({hint['url']})"},
            {"id": "b", "text": "B"}]}]}
    text = f"A dot ![dot]({shown['url']}) here."
    lesson = (await client.post(f"{BASE}/courses/py/lessons", json={"title": "One", "blocks": [
        {"type": "markdown", "markdown": text}, {"type": "video", "media": clip["id"]},
        quiz]})).json()
    assert (await client.post(f"{BASE}/courses/py/publish")).status_code == 200
    r = await client.patch(f"{BASE}/lessons/{lesson['id']}", json={
        "version": lesson["version"], "blocks": [
            {"type": "markdown", "markdown": f"{text} And ![later]({later['url']})."},
            {"type": "video", "media": clip["id"]}, quiz]})
    assert r.status_code == 200, r.text
    unpublished = (await client.post(f"{BASE}/courses/py/lessons", json={
        "title": "Two", "blocks": [{"type": "markdown", "markdown": text}]})).json()
    route = f"{BASE}/lessons/{lesson['id']}/media-links"

    async def markdown_links(headers: dict[str, str] | None = None) -> list[str]:
        r = await client.post("/graphql", json={"query": MARKDOWN_LINKS, "variables": {
            "l": lesson["id"]}}, headers=headers)
        assert r.status_code == 200, r.text
        assert "errors" not in r.json(), r.text
        [block, *_] = r.json()["data"]["lesson"]["blocks"]
        return [x["link"]["url"] for x in block["mediaLinks"]]

    them = learner(client)
    r = await client.get(route, headers=them)
    assert r.status_code == 200, r.text
    assert r.headers["cache-control"] == "no-store"
    theirs = r.json()
    assert (theirs["lesson"], theirs["version"]) == (lesson["id"], 1)  # the publication
    assert sorted(theirs["links"]) == sorted([shown["id"], clip["id"]])  # no draft, no answers
    assert all("reach=published&" in x["url"] for x in theirs["links"].values())
    [in_markdown] = await markdown_links(them)
    assert in_markdown.startswith(f"{BASE}/media/{shown['id']}/signed?reach=published&")
    r = await client.get(f"{BASE}/lessons/{unpublished['id']}/media-links", headers=them)
    assert r.status_code == 404

    r = await client.get(route)
    assert r.status_code == 200, r.text
    authors = r.json()
    assert authors["version"] == 2
    assert sorted(authors["links"]) == sorted([shown["id"], later["id"], clip["id"], hint["id"]])
    assert all("reach=staff&" in x["url"] for x in authors["links"].values())
    assert [urlsplit(x).path for x in await markdown_links()] == [
        f"{BASE}/media/{shown['id']}/signed", f"{BASE}/media/{later['id']}/signed"]

    media: MediaService = app.state.content.state["media"]
    learners_later = media.signed("acme", later["id"], "published").url
    anonymous = api_client(app)
    async with anonymous:
        for url, data in ((in_markdown, s.png()), (theirs["links"][clip["id"]]["url"],
                                                   s.mp4(50_000))):
            r = await anonymous.get(url)
            assert (r.status_code, r.content) == (200, data), url
        assert r.headers["content-type"] == "video/mp4"
        assert (await anonymous.get(learners_later)).status_code == 404
        assert (await anonymous.get(authors["links"][later["id"]]["url"])).status_code == 200


LESSON_LINKS = """
query ($l: String!) { lesson(tenant: "acme", id: $l) { mediaLinks { media link { url } } } }"""


async def test_graphql_links_what_media_links_does_and_neither_links_code(
        client: httpx.AsyncClient, app: FastAPI) -> None:
    """Before, GraphQL linked only media blocks, their captions and Markdown's URLs, not a
    quiz's or a caption's; and `…/media-links` signed the URLs in a code block, whose source is
    shown as written, and a learner's link to what only code names worked."""
    ids = [(await upload(client, data, kind, name)).json()["id"] for data, kind, name in (
        (s.png(), "image/png", "a.png"), (s.jpeg(), "image/jpeg", "b.jpg"),
        (s.gif(), "image/gif", "c.gif"), (s.mp4(50_000), "video/mp4", "d.mp4"))]
    picture, in_prompt, in_caption, in_code = ids
    url = {m: f"{BASE}/media/{m}/content" for m in ids}
    await client.post(f"{BASE}/courses", json={"id": "py", "title": "Python"})
    lesson = (await client.post(f"{BASE}/courses/py/lessons", json={"title": "One", "blocks": [
        {"type": "image", "media": picture, "caption": f"as {url[in_caption]} shows"},
        {"type": "code", "language": "python", "source": f"get('{url[in_code]}')"},
        {"type": "quiz", "id": "check", "title": "Check", "questions": [
            {"type": "single_choice", "id": "one", "prompt": f"See {url[in_prompt]}",
             "options": [{"id": "a", "text": "A", "correct": True}, {"id": "b", "text": "B"}]}]},
    ]})).json()
    assert (await client.post(f"{BASE}/courses/py/publish")).status_code == 200
    for headers in (None, learner(client)):  # the draft, the publication
        r = await client.get(f"{BASE}/lessons/{lesson['id']}/media-links", headers=headers)
        assert r.status_code == 200, r.text
        rest = {m: x["url"] for m, x in r.json()["links"].items()}
        assert sorted(rest) == sorted([picture, in_prompt, in_caption])
        r = await client.post("/graphql", headers=headers, json={
            "query": LESSON_LINKS, "variables": {"l": lesson["id"]}})
        assert "errors" not in r.json(), r.text
        assert {x["media"]: x["link"]["url"] for x in r.json()["data"]["lesson"]["mediaLinks"]
                } == rest
        assert [x["media"] for x in r.json()["data"]["lesson"]["mediaLinks"]] == sorted(rest)
    r = await client.get(f"{BASE}/media/{in_code}/link", headers=learner(client))
    assert r.status_code == 404
    assert (await client.get(f"{BASE}/media/{in_prompt}/link",
                             headers=learner(client))).status_code == 200


@pytest.mark.parametrize(("data", "content_type", "filename", "status", "code"), [
    (s.png(), "image/jpeg", None, 415, "type_mismatch"),
    (s.png(), None, "photo.gif", 415, "type_mismatch"),
    (s.mp3(), "video/mp4", "a.mp4", 415, "type_mismatch"),
    (b"MZ\x90\x00" + bytes(100), "image/png", "x.png", 415, "unsupported_media_type"),
    (s.pdf("x"), None, "run.exe", 415, "type_mismatch"),
    (s.SVG_WITH_SCRIPT, "image/svg+xml", "x.svg", 422, "unsafe_svg"),
    (b"", "image/png", "x.png", 422, "empty_file"),
    (s.png(extra=30_000), "image/png", "big.png", 413, "too_large"),
    (s.mp4(500_000), "video/mp4", "big.mp4", 413, "too_large"),
])
async def test_bad_uploads_change_nothing(client: httpx.AsyncClient, app: FastAPI, data: bytes,
                                          content_type: str | None, filename: str | None,
                                          status: int, code: str) -> None:
    before = await snapshot(app)
    r = await upload(client, data, content_type, filename)
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["code"] == code
    assert r.json()["detail"]
    assert await snapshot(app) == before


def form(*parts: tuple[str, str | None, str | None, bytes], boundary: str = "b0undary",
         close: bool = True) -> bytes:
    """A multipart/form-data body of (field, filename, content type, bytes) parts."""
    out = b""
    for name, filename, content_type, data in parts:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        out += f"--{boundary}\r\nContent-Disposition: {disposition}\r\n".encode()
        out += (f"Content-Type: {content_type}\r\n" if content_type else "").encode()
        out += b"\r\n" + data + b"\r\n"
    return out + (f"--{boundary}--\r\n".encode() if close else b"")


FORM = "multipart/form-data; boundary=b0undary"


async def test_a_file_sent_as_a_form(client: httpx.AsyncClient, app: FastAPI) -> None:
    """As an HTML form or `curl -F` sends it: the file's name and type come from its part, the
    other fields are ignored, and the bytes stored are the file's alone."""
    data = s.pdf("Photosynthesis")
    r = await client.post(f"{BASE}/media", files={"file": ("notes.pdf", data, "application/pdf")},
                          data={"caption": "week 3"})
    assert r.status_code == 201, r.text
    body = r.json()
    assert (body["filename"], body["content_type"], body["size"]) == ("notes.pdf", "application/pdf",
                                                                       len(data))
    assert (await client.get(body["url"])).content == data

    markdown = b"# Cells\n\nThe unit of life.\n"
    r = await client.post(f"{BASE}/media", params={"filename": "cells.md"},
                          content=form(("note", None, None, b"x"),
                                       ("upload", "C:/tmp/draft.txt", None, markdown)),
                          headers={"Content-Type": FORM})
    assert r.status_code == 201, r.text
    assert (r.json()["filename"], r.json()["content_type"]) == ("cells.md", "text/markdown")
    assert (await client.get(r.json()["url"])).content == markdown

    r = await client.post(f"{BASE}/media", content=form(("file", "a/b/tone.wav", None, s.wav())),
                          headers={"Content-Type": FORM})
    assert (r.status_code, r.json()["filename"]) == (201, "tone.wav")


@pytest.mark.parametrize(("body", "content_type", "status", "code"), [
    (form(("file", "a.png", "image/jpeg", s.png())), FORM, 415, "type_mismatch"),
    (form(("file", "a.gif", None, s.png())), FORM, 415, "type_mismatch"),
    (form(("file", "a.png", None, s.png(extra=30_000))), FORM, 413, "too_large"),
    (form(("caption", None, None, b"no file here")), FORM, 422, "invalid_multipart"),
    (form(("file", "a.png", None, s.png()), ("more", "b.gif", None, s.gif())), FORM, 422,
     "one_file_only"),
    (form(("file", "a.png", None, s.png()), close=False), FORM, 422, "invalid_multipart"),
    (form(("file", "a.png", None, s.png())), "multipart/form-data", 422, "invalid_multipart"),
    (form(("file", "x" * 256 + ".png", None, s.png())), FORM, 422, "filename_too_long"),
    (form(("notes", None, None, bytes(70_000)), ("file", "a.png", None, s.png())), FORM, 413,
     "form_too_large"),
    (b"--b0undary\r\nthis is not a part header at all\r\n\r\n", FORM, 422, "invalid_multipart"),
])
async def test_bad_forms_change_nothing(client: httpx.AsyncClient, app: FastAPI, body: bytes,
                                        content_type: str, status: int, code: str) -> None:
    before = await snapshot(app)
    r = await client.post(f"{BASE}/media", content=body, headers={"Content-Type": content_type})
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["code"] == code
    assert await snapshot(app) == before


async def test_the_size_limit_holds_as_a_forms_bytes_arrive(client: httpx.AsyncClient,
                                                           app: FastAPI) -> None:
    sent = 0

    async def stream() -> AsyncIterator[bytes]:
        nonlocal sent
        yield form(("file", "big.mp4", "video/mp4", s.mp4(0)), close=False)[:-2]
        for _ in range(200):
            sent += 64 * 1024
            yield bytes(64 * 1024)
        yield b"\r\n--b0undary--\r\n"

    before = await snapshot(app)
    r = await client.post(f"{BASE}/media", content=stream(), headers={"Content-Type": FORM})
    assert (r.status_code, r.json()["code"]) == (413, "too_large")
    assert sent < 200 * 64 * 1024, "the upload was read to its end"
    assert await snapshot(app) == before


async def test_the_size_limit_holds_as_bytes_arrive(client: httpx.AsyncClient, app: FastAPI) -> None:
    """A streamed body without Content-Length is cut off once it passes the limit."""
    sent = 0

    def chunks() -> Iterator[bytes]:
        nonlocal sent
        yield s.mp4(0)
        for _ in range(200):
            sent += 64 * 1024
            yield bytes(64 * 1024)

    async def stream() -> AsyncIterator[bytes]:
        for c in chunks():
            yield c

    before = await snapshot(app)
    r = await client.post(f"{BASE}/media", content=stream(), headers={"Content-Type": "video/mp4"})
    assert r.status_code == 413
    assert r.json()["code"] == "too_large"
    assert r.json()["limit_bytes"] == 400_000
    assert sent < 200 * 64 * 1024, "the upload was read to its end"
    assert await snapshot(app) == before


@pytest.mark.parametrize(("declared", "code"), [(10**13, "too_large"), (QUOTA + 1, "quota_exceeded")])
async def test_a_declared_size_over_the_limits_is_refused_before_the_body(
        client: httpx.AsyncClient, app: FastAPI, declared: int, code: str) -> None:
    """A Content-Length beyond every kind's limit, or beyond the tenant's room, gets its 413
    before a byte is read: the body here never arrives."""
    read = False

    async def never() -> AsyncIterator[bytes]:
        nonlocal read
        read = True
        await asyncio.Event().wait()
        yield b""

    before = await snapshot(app)
    r = await asyncio.wait_for(client.post(
        f"{BASE}/media", content=never(),
        headers={"Content-Type": "video/mp4", "Content-Length": str(declared)}), 10)
    assert r.status_code == 413
    assert r.json()["code"] == code
    assert r.json()["upload_bytes"] == declared
    assert not read
    assert await snapshot(app) == before


async def test_other_routes_keep_the_body_limit(client: httpx.AsyncClient) -> None:
    r = await client.post(f"{BASE}/courses", json={"title": "x" * 70_000})
    assert r.status_code == 413
    assert r.json()["code"] == "payload_too_large"


async def test_the_tenant_quota(client: httpx.AsyncClient, app: FastAPI) -> None:
    assert (await upload(client, s.mp4(350_000), "video/mp4")).status_code == 201
    before = await snapshot(app)
    r = await upload(client, s.mp4(300_000), "video/mp4")
    assert r.status_code == 413
    problem = r.json()
    assert problem["code"] == "quota_exceeded"
    assert problem["quota_bytes"] == QUOTA
    assert problem["used_bytes"] == len(s.mp4(350_000))
    assert "quota" in problem["detail"]
    assert await snapshot(app) == before


async def test_a_declared_size_over_the_room_left_is_refused_before_the_body(
        client: httpx.AsyncClient, app: FastAPI) -> None:
    """The room is what the tenant's media leave of its quota, not the whole quota."""
    assert (await upload(client, s.mp4(350_000), "video/mp4")).status_code == 201
    before = await snapshot(app)
    read = False

    async def never() -> AsyncIterator[bytes]:
        nonlocal read
        read = True
        await asyncio.Event().wait()
        yield b""

    r = await asyncio.wait_for(client.post(
        f"{BASE}/media", content=never(),
        headers={"Content-Type": "video/mp4", "Content-Length": "300000"}), 10)
    assert (r.status_code, r.json()["code"]) == (413, "quota_exceeded")
    assert r.json()["used_bytes"] == len(s.mp4(350_000))
    assert not read
    assert await snapshot(app) == before


async def test_near_the_quota_bytes_the_tenant_keeps_are_taken_again(
        client: httpx.AsyncClient, app: FastAPI) -> None:
    """The same bytes are one file, so uploading them again adds nothing: with less room left
    than their size they were refused 413, as a body with or without Content-Length or a form."""
    data = s.mp4(350_000)
    first = (await upload(client, data, "video/mp4", "clip.mp4")).json()
    before = await snapshot(app)

    async def streamed() -> AsyncIterator[bytes]:
        for at in range(0, len(data), 64 * 1024):
            yield data[at:at + 64 * 1024]

    for r in (await upload(client, data, "video/mp4", "again.mp4"),
              await client.post(f"{BASE}/media", content=streamed(),
                                headers={"Content-Type": "video/mp4"}),
              await client.post(f"{BASE}/media", files={"file": ("c.mp4", data, "video/mp4")})):
        assert r.status_code == 200, r.text
        assert r.json()["id"] == first["id"]
    assert await snapshot(app) == before
    assert (await client.get(f"{BASE}/media/usage")).json()["used_bytes"] == len(data)
    r = await upload(client, s.mp4(350_000)[:-1] + b"\x01", "video/mp4")  # same size, new bytes
    assert (r.status_code, r.json()["code"]) == (413, "quota_exceeded")
    assert r.json()["upload_bytes"] == len(data)
    assert await snapshot(app) == before


async def test_past_the_room_bytes_are_read_only_as_far_as_a_kept_copy_goes(
        client: httpx.AsyncClient, app: FastAPI) -> None:
    """Bytes past the room may still be a file the tenant keeps, but none keeps more than its
    largest file of that type: a longer stream is cut off there, under the kind's limit."""
    assert (await upload(client, s.mp4(350_000), "video/mp4")).status_code == 201
    before = await snapshot(app)
    sent = 0

    async def stream() -> AsyncIterator[bytes]:
        nonlocal sent
        yield s.mp4(0)
        for _ in range(95):  # 389,120 bytes in all: under the video limit, past the copy
            sent += 4096
            yield bytes(4096)

    r = await client.post(f"{BASE}/media", content=stream(), headers={"Content-Type": "video/mp4"})
    assert (r.status_code, r.json()["code"]) == (413, "quota_exceeded")
    assert "at least" in r.json()["detail"]
    assert sent < 95 * 4096, "the upload was read to its end"
    assert await snapshot(app) == before


async def test_delete(client: httpx.AsyncClient, app: FastAPI) -> None:
    before = await snapshot(app)
    body = (await upload(client, s.ogg_opus(), "audio/ogg", "a.opus")).json()
    assert (await client.delete(f"{BASE}/media/{body['id']}",
                                headers=learner(client))).status_code == 403
    assert (await client.delete(f"{BASE}/media/{body['id']}")).status_code == 204
    assert (await client.get(body["url"])).status_code == 404
    assert (await client.delete(f"{BASE}/media/{body['id']}")).status_code == 404
    assert await snapshot(app) == before


async def test_a_truncated_damaged_or_huge_image_is_refused(
        client: httpx.AsyncClient, app: FastAPI) -> None:
    """Only an image's first bytes were looked at: a PNG cut short was kept as an image."""
    before = await snapshot(app)
    whole = s.png(64, 64)
    damaged = bytearray(whole)
    damaged[40] ^= 0xFF  # inside IHDR: its checksum no longer holds
    for data in (whole[:-30], bytes(damaged), s.jpeg(64, 64)[:-200], s.png_claiming(20_000, 20_000)):
        r = await upload(client, data, "image/png" if data[:4] == whole[:4] else "image/jpeg")
        assert (r.status_code, r.json()["code"]) == (422, "broken_image"), r.text
    assert "more than 89,478,485 pixels" in r.json()["detail"]
    assert await snapshot(app) == before
    for data, kind in ((whole, "image/png"), (s.jpeg(64, 64), "image/jpeg"),
                       (s.gif(), "image/gif"), (s.webp(), "image/webp")):
        assert (await upload(client, data, kind)).status_code == 201


async def test_a_broken_image_s_problem_names_no_server_path(client: httpx.AsyncClient,
                                                             app: FastAPI) -> None:
    """It carried the decoder's message, with the path of the spool file the upload was read
    into, as a body or as a form."""
    data_dir = str(app.state.platform.settings.runtime.data_dir)
    data = s.png(64, 64)[:16] + bytes(200)
    for r in (await upload(client, data, "image/png", "photo.png"),
              await client.post(f"{BASE}/media", files={"file": ("photo.png", data, "image/png")})):
        assert (r.status_code, r.json()["code"]) == (422, "broken_image")
        assert "truncated or damaged" in r.json()["detail"]
        assert data_dir not in r.text
        assert ".part" not in r.text


async def test_a_person_s_export_lists_the_media_they_uploaded(
        client: httpx.AsyncClient, app: FastAPI) -> None:
    body = (await upload(client, s.ogg_opus(), "audio/ogg", "a.opus")).json()
    export = (await client.get(f"{BASE}/me/export")).json()
    assert [m["id"] for m in export["services"]["content"]["media_uploaded"]] == [body["id"]]
    other = (await client.get(f"{BASE}/me/export", headers=learner(client))).json()
    assert other["services"]["content"]["media_uploaded"] == []


async def test_only_the_first_uploader_and_admins_delete_media(
        client: httpx.AsyncClient, app: FastAPI) -> None:
    """Any educator could delete any media, and an upload of bytes already kept answers with
    the file already kept: "deleting my upload" removed a colleague's image from their lessons."""
    body = (await upload(client, s.ogg_opus(), "audio/ogg", "a.opus")).json()
    colleague = await member(app, client, "acme", ["educator"])
    again = await client.post(f"{BASE}/media", content=s.ogg_opus(),
                              headers={**colleague, "Content-Type": "audio/ogg"})
    assert again.json()["id"] == body["id"]
    r = await client.delete(f"{BASE}/media/{body['id']}", headers=colleague)
    assert (r.status_code, r.json()["code"]) == (403, "not_the_uploader")
    assert (await client.get(body["url"])).status_code == 200
    admin = await member(app, client, "acme", ["tenant_admin"])
    assert (await client.delete(f"{BASE}/media/{body['id']}", headers=admin)).status_code == 204
    r = await client.delete(f"{BASE}/media/{body['id']}", headers=colleague)
    assert r.status_code == 404


async def test_svg_is_served_under_a_strict_policy(client: httpx.AsyncClient) -> None:
    body = (await upload(client, s.SVG, "image/svg+xml", "dot.svg")).json()
    r = await client.get(body["url"])
    assert r.status_code == 200
    assert "default-src 'none'" in r.headers["content-security-policy"]
    assert r.content == s.SVG


async def test_learners_asking_at_once_share_one_read_of_what_is_published(
        client: httpx.AsyncClient, app: FastAPI, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each read of what the tenant publishes reads every published lesson: requests asking at
    once (misses, such as a file no lesson shows) wait for one read instead of each making
    its own."""
    media: MediaService = app.state.content.state["media"]
    read = media._published_media
    reads = 0

    async def slow(tenant: str) -> set[str]:
        nonlocal reads
        reads += 1
        await asyncio.sleep(0.2)
        return await read(tenant)

    monkeypatch.setattr(media, "_published_media", slow)
    image = (await upload(client, s.png())).json()
    answers = await asyncio.gather(*(client.get(f"{BASE}/media/{image['id']}/link",
                                                headers=learner(client)) for _ in range(20)))
    assert {r.status_code for r in answers} == {404}
    assert reads == 1


VTT = b"WEBVTT\n\n00:00.000 --> 00:01.500\nA loop repeats.\n"


async def test_an_educator_s_captions_are_webvtt_media_of_the_tenant(
        client: httpx.AsyncClient, app: FastAPI) -> None:
    """Audio and video blocks had no captions, and WebVTT files were refused (415)."""
    r = await upload(client, VTT, "text/vtt", "loops.vtt")
    assert r.status_code == 201, r.text
    vtt = r.json()
    assert (vtt["content_type"], vtt["kind"]) == ("text/vtt", "text")
    r = await client.get(vtt["url"])
    assert r.headers["content-type"].startswith("text/vtt")
    assert r.headers["content-disposition"].startswith("inline")
    assert r.content == VTT
    # text that merely starts like WebVTT stays what its name says
    notes = (await upload(client, VTT + b"\nnotes", None, "notes.txt")).json()
    assert notes["content_type"] == "text/plain"
    clip = (await upload(client, s.mp4(50_000), "video/mp4", "clip.mp4")).json()
    beta = await member(app, client, "beta", ["educator"])
    r = await client.post("/v1/tenants/beta/media", content=VTT + b"\n", headers={
        **beta, "Content-Type": "text/vtt"}, params={"filename": "theirs.vtt"})
    assert r.status_code == 201, r.text
    theirs = r.json()
    await client.post(f"{BASE}/courses", json={"id": "py", "title": "Python"})

    def video(captions: str) -> dict[str, Any]:
        return {"type": "video", "media": clip["id"],
                "captions": {"media": captions, "language": "en"}}

    for captions, code in ((theirs["id"], "unknown_media"), (notes["id"], "not_captions"),
                           (clip["id"], "not_captions"), ("f" * 32, "unknown_media")):
        r = await client.post(f"{BASE}/courses/py/lessons", json={
            "title": "One", "blocks": [video(captions)]})
        assert (r.status_code, r.json()["code"]) == (422, code), r.text
    r = await client.post(f"{BASE}/courses/py/lessons", json={
        "title": "One", "blocks": [video(vtt["id"])]})
    assert r.status_code == 201, r.text
    lesson = r.json()
    assert lesson["blocks"][0]["captions"] == {"media": vtt["id"], "language": "en"}
    r = await client.patch(f"{BASE}/lessons/{lesson['id']}", json={
        "version": lesson["version"], "blocks": [video(vtt["id"]), video(theirs["id"])]})
    assert (r.status_code, r.json()["code"]) == (422, "unknown_media"), r.text
    r = await client.get(f"{BASE}/lessons/{lesson['id']}")
    assert r.json()["version"] == lesson["version"]

    # deleted since, the captions stay named (as media blocks do) and other edits go through
    assert (await client.delete(f"{BASE}/media/{vtt['id']}")).status_code == 204
    r = await client.patch(f"{BASE}/lessons/{lesson['id']}", json={
        "version": lesson["version"], "title": "One, again"})
    assert r.status_code == 200, r.text
    assert r.json()["blocks"] == lesson["blocks"]


async def test_a_media_block_shows_media_of_the_tenant_of_a_kind_it_shows(
        client: httpx.AsyncClient, app: FastAPI) -> None:
    """A media block's own media was never checked, as its captions were: an image block
    naming no media, a video block naming a PNG, an audio block naming WebVTT were stored (201)
    and published."""
    image = (await upload(client, s.png(), "image/png", "dot.png")).json()
    vtt = (await upload(client, VTT, "text/vtt", "loops.vtt")).json()
    clip = (await upload(client, s.mp4(50_000), "video/mp4", "clip.mp4")).json()
    voice = (await upload(client, s.webm(), "audio/webm", "voice.webm")).json()
    narration = (await upload(client, s.mp3(), "audio/mpeg", "narration.mp3")).json()
    notes = (await upload(client, s.pdf("Loops"), "application/pdf", "notes.pdf")).json()
    assert voice["content_type"] == "video/webm"
    beta = await member(app, client, "beta", ["educator"])
    r = await client.post("/v1/tenants/beta/media", content=s.png(3, 3), headers={
        **beta, "Content-Type": "image/png"})
    assert r.status_code == 201, r.text
    theirs = r.json()
    await client.post(f"{BASE}/courses", json={"id": "py", "title": "Python"})

    for block, code in (({"type": "image", "media": "nosuchmedia"}, "unknown_media"),
                        ({"type": "image", "media": "f" * 32}, "unknown_media"),
                        ({"type": "image", "media": theirs["id"]}, "unknown_media"),
                        ({"type": "file", "media": "nosuchmedia"}, "unknown_media"),
                        ({"type": "video", "media": image["id"]}, "wrong_media_kind"),
                        ({"type": "audio", "media": vtt["id"]}, "wrong_media_kind"),
                        ({"type": "image", "media": clip["id"]}, "wrong_media_kind"),
                        ({"type": "video", "media": narration["id"]}, "wrong_media_kind")):
        r = await client.post(f"{BASE}/courses/py/lessons", json={
            "title": "One", "blocks": [block]})
        assert (r.status_code, r.json()["code"]) == (422, code), (block, r.text)
        assert r.json()["media"] == block["media"]
    assert (await client.get(f"{BASE}/courses/py")).json()["lessons"] == []

    shown = [{"type": "image", "media": image["id"]}, {"type": "video", "media": clip["id"]},
             {"type": "audio", "media": narration["id"]}, {"type": "audio", "media": voice["id"]},
             {"type": "file", "media": notes["id"]}, {"type": "file", "media": vtt["id"]}]
    r = await client.post(f"{BASE}/courses/py/lessons", json={"title": "One", "blocks": shown})
    assert r.status_code == 201, r.text
    lesson = r.json()
    url = f"{BASE}/lessons/{lesson['id']}"
    r = await client.patch(url, json={"version": 1, "blocks": [
        *shown, {"type": "video", "media": "nosuchmedia"}]})
    assert (r.status_code, r.json()["code"]) == (422, "unknown_media"), r.text
    assert (await client.get(url)).json()["version"] == 1

    # deleted since, the media stay named, and other edits go through
    assert (await client.delete(f"{BASE}/media/{image['id']}")).status_code == 204
    r = await client.patch(url, json={"version": 1, "title": "One, again"})
    assert r.status_code == 200, r.text
    assert r.json()["blocks"] == lesson["blocks"]
    # a new block naming it is checked
    r = await client.patch(url, json={"version": 2, "blocks": [
        *shown, {"type": "file", "media": image["id"]}]})
    assert (r.status_code, r.json()["code"]) == (422, "unknown_media"), r.text
    assert (await client.post(f"{BASE}/courses/py/publish")).status_code == 200


async def test_a_full_disk_answers_503_and_keeps_nothing(
        client: httpx.AsyncClient, app: FastAPI, monkeypatch: pytest.MonkeyPatch) -> None:
    """The spool's disk full as the bytes arrive: the disk is a store that is unavailable (503
    with Retry-After, as a full SQLite file is), and neither a record nor a file is left."""
    from bloop.platform.content.media import service as media_service

    def full(*_: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    before = await snapshot(app)
    monkeypatch.setattr(media_service._Spool, "write", full)
    r = await upload(client, s.png(), "image/png", "dot.png")
    assert r.status_code == 503, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert int(r.headers["Retry-After"]) > 0
    assert (r.json()["code"], r.json()["store"]) == ("store_unavailable", "disk")
    assert await snapshot(app) == before

    monkeypatch.undo()
    assert (await upload(client, s.png(), "image/png", "dot.png")).status_code == 201


async def test_media_bytes_copied_onto_a_full_disk_leave_no_part_behind(
        client: httpx.AsyncClient, app: FastAPI, monkeypatch: pytest.MonkeyPatch) -> None:
    """Placing the bytes from the spool on another file system (a copy) meets a full disk."""
    replace, copy = os.replace, shutil.copyfile

    def elsewhere(source: Path, target: Path) -> None:
        if "media" not in Path(target).parts:
            replace(source, target)
            return
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    def full(source: Path, target: Path) -> None:
        if "media" not in Path(target).parts:
            copy(source, target)
            return
        Path(target).write_bytes(b"part")
        raise OSError(errno.ENOSPC, "No space left on device")

    before = await snapshot(app)
    monkeypatch.setattr(os, "replace", elsewhere)
    monkeypatch.setattr(shutil, "copyfile", full)
    r = await upload(client, s.png(), "image/png", "dot.png")
    assert (r.status_code, r.json()["store"]) == (503, "disk")
    assert await snapshot(app) == before
