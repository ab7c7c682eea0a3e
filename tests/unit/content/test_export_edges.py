"""Course export at its edges: media URLs that are text, not links the export names; relative
links an import would take for the archive's media; another tenant's media; the same bytes for
an unchanged course; a draft edited while it is written; a client that leaves, while the zip
is built or sent, or stops reading it; how many exports a process builds at once, a slow reader
not counted, and how many built zips (and bytes of them) it keeps for their clients."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import time
import zipfile
from collections.abc import Sequence
from datetime import datetime, timedelta
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from starlette.requests import Request
from starlette.types import Message, Scope

from bloop.platform.content import model as content_model
from bloop.platform.content.model import Lesson, NewLesson, now
from bloop.platform.content.service import ContentService
from bloop.platform.content.uploads.export import ExportService, Waiting
from bloop.platform.content.uploads.settings import UploadSettings
from bloop.platform.kit.errors import Problem
from bloop.platform.kit.metrics import Metrics
from tests.support import member
from tests.unit.content import media_samples as s
from tests.unit.content.test_export_api import (
    BASE,
    OTHER,
    app,
    client,
    course_lessons,
    export,
    import_zip,
    upload,
)

__all__ = ["app", "client"]  # fixtures


def spool_files(app: FastAPI) -> list[str]:
    spool = app.state.platform.settings.runtime.data_dir / "spool"
    return [p.name for p in spool.iterdir()] if spool.exists() else []


def exports_of(app: FastAPI) -> ExportService:
    service: ExportService = app.state.content.state["exports"]
    return service


async def round_trip(client: httpx.AsyncClient, data: bytes) -> list[dict[str, Any]]:
    r = await client.post(f"{BASE}/courses", json={"id": "copy", "title": "Copie"})
    assert r.status_code == 201, r.text
    done = await import_zip(client, BASE, "copy", data)
    assert done.status_code == 201, done.text
    return await course_lessons(client, BASE, "copy")


TEXT_FORMS = {
    "inline code": "Call `GET {url}`",
    "bare": "download: {url}",
    "autolink": "See <http://bloop.test{url}>",
    "absolute link": "[dl](http://bloop.test{url})",
    "fragment": "[at 30s]({url}#t=30)",
    "query": "[dl]({url}?download=1)",
}


@pytest.mark.parametrize("form", [*TEXT_FORMS, "quiz prompt"])
async def test_a_media_url_the_export_does_not_name_is_kept_as_text(
        client: httpx.AsyncClient, form: str) -> None:
    image = await upload(client, BASE, "a.png", s.png(), "image/png")
    url = f"{BASE}/media/{image}/content"
    block: dict[str, Any] = {"type": "quiz", "id": "q", "title": "Q", "questions": [
        {"type": "true_false", "id": "tf", "prompt": f"Is {url} a URL?", "answer": True}]} \
        if form == "quiz prompt" else {"type": "markdown", "markdown": TEXT_FORMS[form].format(
            url=url)}
    made = await client.post(f"{BASE}/courses/py/lessons", json={"title": "One",
                                                                 "blocks": [block]})
    assert made.status_code == 201, made.text
    original = await course_lessons(client, BASE, "py")
    r = await export(client)
    assert r.status_code == 200, r.text
    assert "x-missing-media" not in r.headers
    archive = zipfile.ZipFile(io.BytesIO(r.content))
    assert archive.namelist() == ["0001-one.md", "course.yaml"]  # no media named: none copied
    assert url in archive.read("0001-one.md").decode()
    assert await round_trip(client, r.content) == original


async def test_a_media_named_and_shown_as_text_is_copied_once_the_text_kept(
        client: httpx.AsyncClient) -> None:
    image = await upload(client, BASE, "a.png", s.png(), "image/png")
    url = f"{BASE}/media/{image}/content"
    made = await client.post(f"{BASE}/courses/py/lessons", json={"title": "One", "blocks": [
        {"type": "markdown", "markdown": f"![i]({url}) and `{url}` and [t]({url}#t=1)"}]})
    assert made.status_code == 201, made.text
    r = await export(client)
    assert r.status_code == 200, r.text
    archive = zipfile.ZipFile(io.BytesIO(r.content))
    assert archive.namelist() == ["0001-one.md", "course.yaml", f"media/{image}/a.png"]
    assert f"![i](media/{image}/a.png) and `{url}` and [t]({url}#t=1)" in archive.read(
        "0001-one.md").decode()


async def test_a_relative_link_shaped_as_an_archive_s_media_imports_back(
        client: httpx.AsyncClient) -> None:
    fake = "0123456789abcdef0123456789abcdef"
    made = await client.post(f"{BASE}/courses/py/lessons", json={"title": "One", "blocks": [
        {"type": "markdown", "markdown": f"![x](media/{fake}/x.png) [y](<media/{fake}/y.pdf>)"
                                         f' <img src="media/{fake}/z.png">'},
        {"type": "quiz", "id": "q", "title": "Q", "questions": [
            {"type": "true_false", "id": "tf", "prompt": f"see ![d](media/{fake}/d.png)",
             "answer": True}]}]})
    assert made.status_code == 201, made.text
    original = await course_lessons(client, BASE, "py")
    r = await export(client)
    assert r.status_code == 200, r.text
    text = zipfile.ZipFile(io.BytesIO(r.content)).read("0001-one.md").decode()
    assert f"![x](./media/{fake}/x.png) [y](<./media/{fake}/y.pdf>)" in text
    assert f'<img src="./media/{fake}/z.png">' in text
    assert f"see ![d](./media/{fake}/d.png)" in text
    expected = json.loads(json.dumps(original).replace("media/", "./media/"))
    assert await round_trip(client, r.content) == expected
    again = await client.get(f"{BASE}/courses/copy/export")  # as written from then on
    assert zipfile.ZipFile(io.BytesIO(again.content)).read("0001-one.md").decode() == text


async def test_another_tenant_s_media_are_links_out_not_missing(
        client: httpx.AsyncClient, app: FastAPI) -> None:
    other = await member(app, client, "globex", ["educator"])
    stored = await client.post(f"{OTHER}/media", headers=other,
                               files={"file": ("b.png", s.png(3, 3), "image/png")})
    assert stored.status_code == 201, stored.text
    theirs = stored.json()["id"]
    made = await client.post(f"{BASE}/courses/py/lessons", json={"title": "One", "blocks": [
        {"type": "markdown", "markdown": f"![theirs]({OTHER}/media/{theirs}/content)"}]})
    assert made.status_code == 201, made.text
    original = await course_lessons(client, BASE, "py")
    r = await export(client)
    assert r.status_code == 200, r.text
    assert "x-missing-media" not in r.headers
    assert zipfile.ZipFile(io.BytesIO(r.content)).namelist() == ["0001-one.md", "course.yaml"]
    assert await round_trip(client, r.content) == original


async def test_an_unchanged_course_exports_to_the_same_bytes(
        client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch) -> None:
    image = await upload(client, BASE, "a.png", s.png(), "image/png")
    made = await client.post(f"{BASE}/courses/py/lessons", json={"title": "One", "blocks": [
        {"type": "image", "media": image}, {"type": "markdown", "markdown": "text"}]})
    assert made.status_code == 201, made.text
    first = (await export(client)).content
    later = time.time() + 3 * 86400  # the second export, three days on
    monkeypatch.setattr(zipfile, "time", SimpleNamespace(
        time=lambda: later, localtime=time.localtime, gmtime=time.gmtime))
    assert (await export(client)).content == first
    entry = zipfile.ZipFile(io.BytesIO(first)).getinfo("0001-one.md")
    edited = (await client.get(f"{BASE}/lessons/{made.json()['id']}")).json()["updated_at"]
    assert datetime(*entry.date_time).isoformat()[:16] == edited[:16]  # the lesson's last edit
    # a publication's export is the same whatever the draft's head becomes
    assert (await client.post(f"{BASE}/courses/py/publish")).status_code == 200
    published = (await export(client, "?version=published")).content
    edited_at = now() + timedelta(days=3)
    monkeypatch.setattr(content_model, "now", lambda: edited_at)
    assert (await client.patch(f"{BASE}/courses/py", json={"summary": "Later"})).status_code \
        == 200
    assert (await export(client, "?version=published")).content == published


async def sixty_lessons_and_a_hook(app: FastAPI, monkeypatch: pytest.MonkeyPatch,
                                   hook: Any) -> list[int]:
    """A course of 60 lessons (two pages), `hook(page number)` run as each page is read; the
    pages read."""
    content: ContentService = app.state.content.state["service"]
    await content.add_lessons("acme", "py", [NewLesson(title=f"L{n}", blocks=[])
                                             for n in range(60)], ids=[f"l{n}" for n in range(60)])
    read = content.repo.get_lessons
    pages: list[int] = []

    async def get_lessons(tenant: str, ids: Sequence[str]) -> list[Lesson]:
        found = await read(tenant, ids)
        pages.append(len(ids))
        await hook(len(pages))
        return found

    monkeypatch.setattr(content.repo, "get_lessons", get_lessons)
    return pages


async def retitle(app: FastAPI, lesson_id: str, title: str) -> None:
    content: ContentService = app.state.content.state["service"]
    [found] = [x for x in await content.repo.list_lessons("acme", "py") if x.id == lesson_id]
    await content.repo.replace_lesson(found.model_copy(update={
        "title": title, "version": found.version + 1}), found.version)


async def test_a_draft_edited_while_it_is_exported_is_written_again_as_one_state(
        client: httpx.AsyncClient, app: FastAPI, monkeypatch: pytest.MonkeyPatch) -> None:
    async def hook(page: int) -> None:
        if page == 1:  # the first page read, the first lesson and the last edited
            await retitle(app, "l0", "First edited")
            await retitle(app, "l59", "Last edited")

    pages = await sixty_lessons_and_a_hook(app, monkeypatch, hook)
    r = await export(client)
    assert r.status_code == 200, r.text
    names = sorted(zipfile.ZipFile(io.BytesIO(r.content)).namelist())
    assert (len(names), names[0], names[-2]) == (61, "0001-first-edited.md",
                                                 "0060-last-edited.md")
    assert pages == [50, 10, 50, 10]  # written again
    assert exports_of(app).slots.taken == 0


async def test_a_draft_that_keeps_changing_is_409_course_changed(
        client: httpx.AsyncClient, app: FastAPI, monkeypatch: pytest.MonkeyPatch) -> None:
    async def hook(page: int) -> None:
        if page % 2 == 0:  # after each build's last page: a lesson moved
            content: ContentService = app.state.content.state["service"]
            ids = [f"l{n}" for n in range(60)]
            await content.repo.reorder_lessons("acme", "py", [*ids[1:], ids[0]], now())

    pages = await sixty_lessons_and_a_hook(app, monkeypatch, hook)
    r = await export(client)
    assert (r.status_code, r.json()["code"]) == (409, "course_changed")
    assert r.json()["detail"] == "the course changed while it was exported; export it again"
    assert pages == [50, 10] * 3
    assert not spool_files(app)
    assert exports_of(app).slots.taken == 0


async def test_an_export_whose_client_left_stops_and_leaves_nothing(
        client: httpx.AsyncClient, app: FastAPI, monkeypatch: pytest.MonkeyPatch) -> None:
    async def nothing(page: int) -> None:
        return None

    pages = await sixty_lessons_and_a_hook(app, monkeypatch, nothing)
    asked: list[bool] = []

    async def gone(self: Request) -> bool:
        asked.append(True)
        return True

    monkeypatch.setattr(Request, "is_disconnected", gone)
    r = await export(client)
    assert (r.status_code, r.json()["code"]) == (499, "client_closed_request")
    assert (pages, len(asked)) == ([50], 1)  # stopped after the first page
    assert not spool_files(app)
    assert exports_of(app).slots.taken == 0


async def test_a_process_runs_so_many_exports_at_once(
        client: httpx.AsyncClient, app: FastAPI, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BLOOP_UPLOAD_EXPORTS_AT_ONCE", "2")
    assert UploadSettings().exports_at_once == 2
    await client.post(f"{BASE}/courses/py/lessons", json={"title": "One", "blocks": []})
    slots = exports_of(app).slots
    taken = [slots.take(f"globex/{n}", f"t{n}") for n in range(slots.size)]
    r = await export(client)
    assert (r.status_code, r.json()["code"]) == (503, "too_many_exports")
    assert r.headers["retry-after"] == "10"
    learner = await member(app, client, "acme", ["learner"])
    assert (await export(client, **learner)).status_code == 403  # checked first
    taken.pop()()
    assert (await export(client)).status_code == 200
    assert slots.taken == slots.size - 1  # its place freed once it was sent
    assert not spool_files(app)


async def test_one_tenant_never_takes_every_build(
        client: httpx.AsyncClient, app: FastAPI, monkeypatch: pytest.MonkeyPatch) -> None:
    """One educator's export loops took all the builds, and another tenant's admin got 503
    every time: one tenant takes all the builds but one."""
    await client.post(f"{BASE}/courses/py/lessons", json={"title": "One", "blocks": []})
    slots = exports_of(app).slots
    two = ExportService(None, None, UploadSettings(exports_at_once=2)).slots  # type: ignore[arg-type]
    monkeypatch.setattr(slots, "shares", two.shares)
    slots.take("globex/admin", "globex")()  # another tenant asked for an export just now
    give = slots.take("acme/someone-else", "acme")  # another of the tenant's exports
    r = await export(client)
    assert (r.status_code, r.json()["code"]) == (503, "too_many_exports")
    assert r.json()["detail"] == ("the tenant's course exports take 1 of the 2 builds of this "
                                  "process, as many as one tenant may; try again shortly")
    assert r.headers["retry-after"] == "10"
    slots.take("globex/admin", "globex")()  # another tenant still builds
    give()
    assert (await export(client)).status_code == 200


def test_one_user_builds_half_and_keeps_a_quarter_one_tenant_all_but_one() -> None:
    slots = ExportService(None, None, UploadSettings(  # type: ignore[arg-type]
        exports_at_once=4, exports_waiting=8)).slots
    slots.take("globex/d", "globex")()  # another tenant asked: the tenant's share applies
    slots.take("acme/a", "acme")
    slots.take("acme/a", "acme")
    with pytest.raises(Problem, match="you are building 2 course exports"):
        slots.take("acme/a", "acme")
    slots.take("acme/b", "acme")
    with pytest.raises(Problem, match="take 3 of the 4 builds"):
        slots.take("acme/c", "acme")
    give = slots.take("globex/d", "globex")
    with pytest.raises(Problem, match="4 course exports are being built"):
        slots.take("initech/e", "initech")
    give()
    give()  # once is enough
    slots.take("initech/e", "initech")
    waiting = Waiting(8, 1 << 30)
    waiting.take("globex/d", "globex").give()
    kept = [waiting.take("acme/a", "acme") for _ in range(2)]
    with pytest.raises(Problem, match="2 of your course exports' zips"):
        waiting.take("acme/a", "acme")
    kept += [waiting.take(f"acme/{n}", "acme") for n in range(5)]
    with pytest.raises(Problem, match="7 of the tenant's course exports' zips"):
        waiting.take("acme/z", "acme")
    kept[0].give()
    waiting.take("acme/a", "acme")
    assert (waiting.zips, waiting.shares.users["acme/a"]) == (7, 2)


def test_one_tenant_alone_builds_and_keeps_every_place() -> None:
    """A tenant built all the builds but one, and kept all the zips but one, even with no other
    tenant asking: a single-school install built 3 exports of 4 at once (the fourth 503) and
    kept 15 zips of 16. The tenant's share applies only while another tenant holds a place or
    asked for one within `RECENT_S`."""
    service = ExportService(None, None, UploadSettings(  # type: ignore[arg-type]
        exports_at_once=4, exports_waiting=4))
    slots, waiting = service.slots, service.waiting
    at = [1000.0]
    recent = slots.shares.recent
    assert recent is waiting.shares.recent  # an export asks for both
    recent.clock = lambda: at[0]
    builds = [slots.take(f"school/{u}", "school") for u in ("a", "a", "b", "b")]
    kept = [waiting.take(f"school/{u}", "school") for u in ("a", "b", "c", "d")]
    assert (slots.taken, waiting.zips) == (4, 4)
    with pytest.raises(Problem, match="4 course exports' zips are kept"):
        waiting.take("globex/x", "globex")  # refused (all kept), but it asked
    for give in builds[1:]:
        give()
    for k in kept[1:]:
        k.give()
    slots.take("school/b", "school")
    slots.take("school/c", "school")
    with pytest.raises(Problem, match="take 3 of the 4 builds"):
        slots.take("school/d", "school")
    at[0] += 59
    with pytest.raises(Problem, match="take 3 of the 4 builds"):
        slots.take("school/d", "school")
    at[0] += 2  # globex asked more than a minute ago
    slots.take("school/d", "school")
    assert slots.taken == 4


def spool_open(app: FastAPI) -> list[str]:
    """The files of the spool this process holds open, its nameless ones (`#123 (deleted)`)
    too."""
    spool = str(app.state.platform.settings.runtime.data_dir / "spool") + os.sep
    links = []
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            links.append(os.readlink(f"/proc/self/fd/{fd}"))
    return [link for link in links if link.startswith(spool)]


def export_scope(client: httpx.AsyncClient) -> Scope:
    path = f"{BASE}/courses/py/export"
    return {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
            "scheme": "http", "path": path, "raw_path": path.encode(), "root_path": "",
            "query_string": b"", "server": ("bloop.test", 80), "client": ("127.0.0.1", 5000),
            "headers": [(b"host", b"bloop.test"),
                        (b"authorization", client.headers["Authorization"].encode())]}


class SlowClient:
    """A client that takes the answer's headers and first chunk, then reads nothing more until
    `read_on` is set, or leaves (`http.disconnect`) when `leaves`."""

    def __init__(self, *, leaves: bool = False) -> None:
        self.leaves = leaves
        self.started = asyncio.Event()
        self.read_on = asyncio.Event()
        self.sent: list[Message] = []

    async def receive(self) -> Message:
        await self.started.wait()  # nothing before the first chunk: `is_disconnected` moves on
        if self.leaves:
            return {"type": "http.disconnect"}
        await asyncio.Event().wait()  # still there
        raise AssertionError("unreachable")

    async def send(self, message: Message) -> None:
        self.sent.append(message)
        if message["type"] == "http.response.body" and not self.started.is_set():
            self.started.set()
            if not self.leaves:
                await self.read_on.wait()

    def headers(self) -> dict[str, str]:
        return {k.decode(): v.decode() for k, v in self.sent[0]["headers"]}

    def body(self) -> bytes:
        return b"".join(m["body"] for m in self.sent if m["type"] == "http.response.body")


async def a_course_of_four_chunks(client: httpx.AsyncClient) -> None:
    image = await upload(client, BASE, "big.png", s.png(extra=1_000_000), "image/png")
    r = await client.post(f"{BASE}/courses/py/lessons", json={
        "title": "One", "blocks": [{"type": "image", "media": image}]})
    assert r.status_code == 201, r.text


async def test_a_client_slow_to_read_its_zip_keeps_no_other_export_waiting(
        client: httpx.AsyncClient, app: FastAPI, monkeypatch: pytest.MonkeyPatch) -> None:
    """The export's place bounds building zips, not sending them: with one place, a client
    that reads nothing past its first chunk leaves it free for the next export."""
    await a_course_of_four_chunks(client)
    slots = exports_of(app).slots
    monkeypatch.setattr(slots.shares, "size", 1)
    slow = SlowClient()
    sending = asyncio.create_task(app(export_scope(client), slow.receive, slow.send))
    try:
        await asyncio.wait_for(slow.started.wait(), 30)
        assert slow.sent[0]["status"] == 200
        assert len(spool_open(app)) == 1  # its zip, nameless, read as the client takes it
        r = await export(client)
        assert r.status_code == 200, r.text  # 503 too_many_exports while the first was sent
        assert slots.taken == 0  # built: its place is free while it is sent
        assert len(r.content) == int(r.headers["content-length"]) > 3 * 256 * 1024
        assert not sending.done()
        slow.read_on.set()
        await asyncio.wait_for(sending, 30)
    finally:
        sending.cancel()
    assert slow.body() == r.content  # the same bytes
    assert int(slow.headers()["content-length"]) == len(r.content)
    assert (slots.taken, spool_open(app), spool_files(app)) == (0, [], [])


async def test_a_zip_whose_client_leaves_while_it_is_sent_is_removed(
        client: httpx.AsyncClient, app: FastAPI) -> None:
    await a_course_of_four_chunks(client)
    gone = SlowClient(leaves=True)
    await asyncio.wait_for(app(export_scope(client), gone.receive, gone.send), 30)
    assert gone.sent[0]["status"] == 200
    assert 0 < len(gone.body()) < int(gone.headers()["content-length"])  # left part-way
    assert (exports_of(app).slots.taken, spool_open(app), spool_files(app)) == (0, [], [])
    r = await export(client)
    assert r.status_code == 200, r.text
    assert (exports_of(app).slots.taken, spool_open(app), spool_files(app)) == (0, [], [])


@pytest.fixture
def quick_to_give_up(monkeypatch: pytest.MonkeyPatch) -> None:
    """Sending a zip gives up after 0.3 s without a chunk taken (set before the app is made)."""
    monkeypatch.setenv("BLOOP_UPLOAD_EXPORT_SEND_IDLE_S", "0.3")


def counted(app: FastAPI, status: str) -> float:
    metrics: Metrics = app.state.platform.metrics
    return sum(sample.value for m in metrics.registry.collect()
               for sample in m.samples
               if m.name == "bloop_http_requests" and sample.name.endswith("_total")
               and sample.labels["route"].endswith("/export")
               and sample.labels["status"] == status)


async def test_a_client_that_stops_reading_its_zip_is_cut_off_and_the_zip_removed(
        quick_to_give_up: None, client: httpx.AsyncClient, app: FastAPI,
        caplog: pytest.LogCaptureFixture) -> None:
    """A client that takes the first chunk and then nothing held its zip, its connection and
    its place in the spool for ever; now it is cut off once it took no chunk for
    `BLOOP_UPLOAD_EXPORT_SEND_IDLE_S`, counted 499 (its answer had started 200)."""
    await a_course_of_four_chunks(client)
    stalled = SlowClient()  # never reads on
    started = time.monotonic()
    with caplog.at_level("INFO", "bloop.content.uploads"):
        await asyncio.wait_for(app(export_scope(client), stalled.receive, stalled.send), 10)
    assert time.monotonic() - started < 5
    assert stalled.sent[0]["status"] == 200
    assert 0 < len(stalled.body()) < int(stalled.headers()["content-length"])
    assert not any(m["type"] == "http.response.body" and not m.get("more_body", False)
                   for m in stalled.sent)  # left unfinished: the server closes the connection
    waiting = exports_of(app).waiting
    assert (spool_open(app), spool_files(app), waiting.zips, waiting.bytes) == ([], [], 0, 0)
    assert counted(app, "499") == 1
    assert counted(app, "200") == 0
    assert any("took no chunk of it for 0.3 s" in r.getMessage() for r in caplog.records)
    r = await export(client)  # a reader that reads is not cut off
    assert r.status_code == 200, r.text
    assert len(r.content) == int(r.headers["content-length"])
    assert counted(app, "200") == 1
    assert UploadSettings().export_send_idle_s == 0.3


async def test_a_client_that_leaves_part_way_is_counted_499(
        client: httpx.AsyncClient, app: FastAPI) -> None:
    await a_course_of_four_chunks(client)
    gone = SlowClient(leaves=True)
    await asyncio.wait_for(app(export_scope(client), gone.receive, gone.send), 30)
    assert (counted(app, "499"), counted(app, "200")) == (1, 0)
    assert (exports_of(app).waiting.zips, spool_open(app)) == (0, [])


@pytest.fixture
def two_zips_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BLOOP_UPLOAD_EXPORTS_WAITING", "2")


async def test_a_process_keeps_so_many_zips_for_their_clients(
        two_zips_kept: None, client: httpx.AsyncClient, app: FastAPI,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Built zips waiting for clients that do not read them filled the spool without bound:
    now a new export is 503 `too_many_exports` while `BLOOP_UPLOAD_EXPORTS_WAITING` of them
    wait, and is built again once one of them was sent."""
    shares = exports_of(app).waiting.shares
    monkeypatch.setattr(shares, "per_user", 2)  # one user's zips fill it (its share is 1)
    monkeypatch.setattr(shares, "per_tenant", 2)
    await a_course_of_four_chunks(client)
    slow = [SlowClient(), SlowClient()]
    sending = [asyncio.create_task(app(export_scope(client), c.receive, c.send)) for c in slow]
    try:
        for c in slow:
            await asyncio.wait_for(c.started.wait(), 30)
        assert exports_of(app).slots.taken == 0  # none is being built
        assert len(spool_open(app)) == 2
        assert spool_files(app) == []  # nameless: a process killed now leaves nothing
        r = await export(client)
        assert (r.status_code, r.json()["code"]) == (503, "too_many_exports")
        assert r.json()["detail"] == ("2 course exports' zips are kept in this process for "
                                      "their clients; try again shortly")
        assert r.headers["retry-after"] == "10"
        assert len(spool_open(app)) == 2  # nothing built for it
        slow[0].read_on.set()
        await asyncio.wait_for(sending[0], 30)
        r = await export(client)
        assert r.status_code == 200, r.text
        slow[1].read_on.set()
        await asyncio.wait_for(sending[1], 30)
    finally:
        for task in sending:
            task.cancel()
    assert slow[0].body() == slow[1].body() == r.content
    waiting = exports_of(app).waiting
    assert (waiting.zips, waiting.bytes, spool_open(app)) == (0, 0, [])
    assert UploadSettings().exports_waiting == 2


async def test_a_process_keeps_so_many_bytes_of_zips_for_their_clients(
        client: httpx.AsyncClient, app: FastAPI, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BLOOP_UPLOAD_EXPORTS_WAITING_BYTES", str(2 * 1024 * 1024))
    assert UploadSettings().exports_waiting_bytes == 2 * 1024 * 1024
    await a_course_of_four_chunks(client)
    waiting = exports_of(app).waiting
    slow = SlowClient()
    sending = asyncio.create_task(app(export_scope(client), slow.receive, slow.send))
    try:
        await asyncio.wait_for(slow.started.wait(), 30)
        size = int(slow.headers()["content-length"])
        assert (waiting.zips, waiting.bytes) == (1, size)
        monkeypatch.setattr(waiting, "max_bytes", size)
        r = await export(client)
        assert (r.status_code, r.json()["code"]) == (503, "too_many_exports")
        assert r.json()["detail"] == ("the course exports' zips kept in this process for their "
                                      f"clients hold {size} bytes; try again shortly")
        monkeypatch.setattr(waiting, "max_bytes", size + 1)
        assert (await export(client)).status_code == 200  # below it: built, beyond it meanwhile
        slow.read_on.set()
        await asyncio.wait_for(sending, 30)
    finally:
        sending.cancel()
    assert (waiting.zips, waiting.bytes, spool_open(app)) == (0, 0, [])
