"""Course export through the real app on the embedded stores: the zip imports back, in the same
tenant and another, to lessons equal block for block (every block type, media deduplicated);
who may export; the draft or the publication; media the store lost; a store down."""

from __future__ import annotations

import io
import json
import os
import zipfile
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from fastapi import FastAPI

from bloop.platform.app import create_app
from bloop.platform.content.media.service import MediaService
from bloop.platform.content.model import Lesson, NewLesson
from bloop.platform.content.service import ContentService
from bloop.platform.kit.errors import StoreUnavailable
from bloop.platform.kit.settings import RuntimeSettings, Settings
from tests.support import api_client, member
from tests.unit.content import media_samples as s

BASE = "/v1/tenants/acme"
OTHER = "/v1/tenants/globex"
VTT = b"WEBVTT\n\n00:00.000 --> 00:01.000\nBonjour\n"
FIELDS = ("title", "estimated_minutes", "blocks", "teaches", "requires", "tags", "language",
          "level", "module")
MODULES = [{"id": "basics", "title": "Bases"}]


@pytest.fixture
async def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FastAPI]:
    for var in ("BLOOP_STORE", "BLOOP_MONGO_ADAPTER", "BLOOP_KAFKA_ADAPTER", "BLOOP_REDIS_ADAPTER"):
        monkeypatch.delenv(var, raising=False)
    application = create_app(Settings(runtime=RuntimeSettings(data_dir=tmp_path, seed_demo=False)),
                             services=["identity", "content"])
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(app) as c:
        c.headers.update(await member(app, c, "acme", ["educator"]))
        for concept in ("loops", "vars"):
            assert (await c.post(f"{BASE}/concepts", json={"id": concept, "name": concept})
                    ).status_code == 201
        assert (await c.post(f"{BASE}/courses", json={"id": "py", "title": "Python",
                                                      "modules": MODULES})).status_code == 201
        yield c


async def upload(client: httpx.AsyncClient, base: str, name: str, data: bytes,
                 kind: str) -> str:
    r = await client.post(f"{base}/media", files={"file": (name, data, kind)})
    assert r.status_code in (200, 201), r.text
    media_id: str = r.json()["id"]
    return media_id


async def course_lessons(client: httpx.AsyncClient, base: str, course: str,
                         **headers: str) -> list[dict[str, Any]]:
    r = await client.get(f"{base}/courses/{course}", headers=headers)
    assert r.status_code == 200, r.text
    return [{k: x[k] for k in FIELDS} for x in r.json()["lessons"]]


async def every_block_type(client: httpx.AsyncClient) -> list[dict[str, Any]]:
    image = await upload(client, BASE, "point é.png", s.png(), "image/png")
    sound = await upload(client, BASE, "son.mp3", s.mp3(), "audio/mpeg")
    film = await upload(client, BASE, "film.webm", s.webm(), "video/webm")
    notes = await upload(client, BASE, "notes.pdf", s.pdf("Notes"), "application/pdf")
    captions = await upload(client, BASE, "fr.vtt", VTT, "text/vtt")
    url = f"{BASE}/media/{image}/content"
    lessons: list[dict[str, Any]] = [
        {"title": "Boucles: « for » et 日本語 🔁", "estimated_minutes": 7,
         "teaches": ["loops"], "requires": ["vars"], "tags": ["python"], "language": "fr",
         "level": "advanced", "module": "basics", "blocks": [
             {"type": "markdown", "markdown": f"# Boucles\n\nUn `for` ![point]({url}).\n\n"
                                             f"## While\n\nEt `![pas un lien]({url})`."},
             {"type": "markdown", "markdown": "Un second bloc, juste après"},
             {"type": "code", "language": "python", "source": f"print('{url}')\n```\n"},
             {"type": "image", "media": image, "alt": "un point", "title": "Point",
              "caption": f"voir [ici]({url})"},
             {"type": "audio", "media": sound, "captions": {"media": captions, "language": "fr"}},
             {"type": "video", "media": film, "title": "Film"},
             {"type": "file", "media": notes},
             {"type": "quiz", "id": "check", "title": "Vérifiez", "questions": [
                 {"type": "single_choice", "id": "one", "prompt": f"Quel `x`? ![p]({url})",
                  "points": 2, "feedback": {"correct": "bien", "incorrect": "relisez"},
                  "options": [{"id": "a", "text": "A", "correct": True, "feedback": "oui"},
                              {"id": "b", "text": "B", "feedback": "non"}]},
                 {"type": "numeric", "id": "num", "prompt": "π?", "answer": 3.14,
                  "tolerance": 0.01, "unit": "rad"},
                 {"type": "short_text", "id": "st", "prompt": "Dis", "accepted": ["oui"]},
                 {"type": "ordering", "id": "ord", "prompt": "Ordre",
                  "items": [{"id": f"i{n}", "text": f"étape {n}"} for n in range(3)]},
                 {"type": "matching", "id": "m", "prompt": "Relie", "pairs": [
                     {"left": {"id": f"l{n}", "text": f"a{n}"},
                      "right": {"id": f"r{n}", "text": f"b{n}"}} for n in range(2)]},
                 {"type": "true_false", "id": "tf", "prompt": "Vrai?", "answer": True},
                 {"type": "multiple_choice", "id": "mc", "prompt": "Plusieurs", "options": [
                     {"id": "a", "text": "A", "correct": True}, {"id": "b", "text": "B"}]}]}]},
        {"title": "Second", "estimated_minutes": 3, "blocks": [
            {"type": "image", "media": image},
            {"type": "markdown", "markdown": "<!-- bloop:block -->\n\n  edges  \n"}]},
        {"title": "Empty", "estimated_minutes": 1, "blocks": []},
    ]
    for lesson in lessons:
        r = await client.post(f"{BASE}/courses/py/lessons", json=lesson)
        assert r.status_code == 201, r.text
    return lessons


async def export(client: httpx.AsyncClient, query: str = "",
                 **headers: str) -> httpx.Response:
    return await client.get(f"{BASE}/courses/py/export{query}", headers=headers)


async def import_zip(client: httpx.AsyncClient, base: str, course: str, data: bytes,
                     **headers: str) -> httpx.Response:
    return await client.post(f"{base}/courses/{course}/uploads", headers=headers,
                             files=[("files", ("py.zip", data, "application/zip"))])


async def test_the_export_imports_back_equal_in_the_same_tenant_and_another(
        client: httpx.AsyncClient, app: FastAPI) -> None:
    assert (await client.patch(f"{BASE}/concepts/loops", json={
        "name": "Boucles", "description": "for et while"})).status_code == 200
    await every_block_type(client)
    original = await course_lessons(client, BASE, "py")
    r = await export(client)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/zip"
    assert r.headers["content-disposition"] == 'attachment; filename="py.zip"'
    assert "x-missing-media" not in r.headers
    names = zipfile.ZipFile(io.BytesIO(r.content)).namelist()
    assert names[:4] == ["0001-boucles-for-et.md", "0002-second.md", "0003-empty.md",
                         "course.yaml"]
    assert len(names) == 4 + 5  # each media once

    assert (await client.post(f"{BASE}/courses", json={"id": "copy", "title": "Copie",
                                                       "modules": MODULES})).status_code == 201
    done = await import_zip(client, BASE, "copy", r.content)
    assert done.status_code == 201, done.text
    assert done.json()["notes"] == ["py.zip/course.yaml: the course keeps its own title (the "
                                    "archive's course is 'Python')"]
    assert await course_lessons(client, BASE, "copy") == original
    assert {m["filename"] for m in done.json()["media"]} >= {"point é.png", "fr.vtt"}

    # Another tenant, with none of the concepts but one of its own named otherwise, and a
    # course with no modules: the archive's course.yaml brings the modules and the concepts
    # missing, so the lessons keep them; a concept the tenant has stays as it is.
    other = await member(app, client, "globex", ["educator"])
    assert (await client.post(f"{OTHER}/concepts", headers=other, json={
        "id": "vars", "name": "Variables"})).status_code == 201
    assert (await client.post(f"{OTHER}/courses", headers=other,
                              json={"id": "py", "title": "Python"})).status_code == 201
    done = await import_zip(client, OTHER, "py", r.content, **other)
    assert done.status_code == 201, done.text
    assert done.json()["notes"] == []
    concepts = (await client.get(f"{OTHER}/concepts", headers=other)).json()["items"]
    assert [(c["id"], c["name"], c["description"]) for c in concepts] == [
        ("loops", "Boucles", "for et while"), ("vars", "Variables", "")]
    head = (await client.get(f"{OTHER}/courses/py", headers=other)).json()
    assert head["modules"] == [{"id": "basics", "title": "Bases", "summary": ""}]
    moved = {m["sha256"]: m["id"] for m in done.json()["media"]}
    media: MediaService = app.state.content.state["media"]
    renamed = json.dumps(original).replace("/tenants/acme/", "/tenants/globex/")
    for m in (await media.media("acme")).items:
        renamed = renamed.replace(m.id, moved[m.sha256])
    expected = json.loads(renamed)
    first = original[0]["blocks"]
    old_url = f"{BASE}/media/{first[3]['media']}/content"
    new_url = f"{OTHER}/media/{moved[(await media.info('acme', first[3]['media'])).sha256]}/content"
    expected[0]["blocks"][0]["markdown"] = expected[0]["blocks"][0]["markdown"].replace(
        f"`![pas un lien]({new_url})`", f"`![pas un lien]({old_url})`")  # code: as written
    expected[0]["blocks"][2] = first[2]
    assert await course_lessons(client, OTHER, "py", **other) == expected


async def test_who_may_export(client: httpx.AsyncClient, app: FastAPI) -> None:
    await client.post(f"{BASE}/courses/py/lessons", json={"title": "One", "blocks": []})
    learner = await member(app, client, "acme", ["learner"])
    stranger = await member(app, client, "acme", ["educator"])
    admin = await member(app, client, "acme", ["tenant_admin"])
    elsewhere = await member(app, client, "globex", ["tenant_admin"])
    assert (await export(client, **learner)).status_code == 403
    assert (await export(client, **stranger)).status_code == 404  # a draft: not told it exists
    assert (await export(client, **elsewhere)).status_code in (403, 404)
    assert (await export(client, **admin)).status_code == 200
    assert (await client.post(f"{BASE}/courses/py/publish")).status_code == 200
    r = await export(client, **stranger)
    assert (r.status_code, r.json()["code"]) == (403, "not_an_author")
    assert (await export(client, **learner)).status_code == 403
    co_author = (await client.get(f"{BASE}/me", headers=stranger)).json()["id"]
    r = await client.put(f"{BASE}/courses/py/co-authors/{co_author}", headers=admin)
    assert r.status_code == 200, r.text
    assert (await export(client, **stranger)).status_code == 200


async def test_the_draft_or_the_publication(client: httpx.AsyncClient) -> None:
    r = await client.post(f"{BASE}/courses/py/lessons", json={"title": "Published", "blocks": [
        {"type": "markdown", "markdown": "v1"}]})
    assert (await export(client, "?version=published")).json()["code"] == "not_published"
    assert (await client.post(f"{BASE}/courses/py/publish")).status_code == 200
    lesson = r.json()
    assert (await client.patch(f"{BASE}/lessons/{lesson['id']}", json={
        "version": lesson["version"], "title": "Draft"})).status_code == 200
    assert (await client.patch(f"{BASE}/courses/py", json={"title": "Python 2"})
            ).status_code == 200
    draft = zipfile.ZipFile(io.BytesIO((await export(client)).content))
    assert draft.namelist() == ["0001-draft.md", "course.yaml"]
    assert yaml.safe_load(draft.read("course.yaml"))["title"] == "Python 2"
    r = await export(client, "?version=published")
    assert r.headers["content-disposition"] == 'attachment; filename="py-v1.zip"'
    published = zipfile.ZipFile(io.BytesIO(r.content))
    assert published.namelist() == ["0001-published.md", "course.yaml"]
    assert yaml.safe_load(published.read("course.yaml")) == {
        "format": "bloop-course/1", "title": "Python", "summary": "", "language": "en",
        "level": "beginner", "tags": [], "modules": [MODULES[0] | {"summary": ""}],
        "concepts": []}
    assert (await export(client, "?version=3")).status_code == 422


async def test_media_the_store_lost_are_named_and_refused_on_import(
        client: httpx.AsyncClient, app: FastAPI) -> None:
    kept = await upload(client, BASE, "a.png", s.png(), "image/png")
    lost = await upload(client, BASE, "b.png", s.png(3, 3), "image/png")
    assert (await client.post(f"{BASE}/courses/py/lessons", json={"title": "One", "blocks": [
        {"type": "image", "media": kept}, {"type": "image", "media": lost}]})).status_code == 201
    media: MediaService = app.state.content.state["media"]
    await media.store.delete("acme", lost)
    r = await export(client)
    assert r.status_code == 200
    assert (r.headers["x-missing-media"], r.headers["x-missing-media-count"]) == (lost, "1")
    assert len(zipfile.ZipFile(io.BytesIO(r.content)).namelist()) == 3  # course.yaml too
    done = await import_zip(client, BASE, "py", r.content)
    assert (done.status_code, done.json()["code"]) == (422, "missing_file")
    assert lost in done.json()["link"]


async def test_a_store_down_is_503(client: httpx.AsyncClient, app: FastAPI,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    image = await upload(client, BASE, "a.png", s.png(), "image/png")
    await client.post(f"{BASE}/courses/py/lessons", json={"title": "One", "blocks": [
        {"type": "image", "media": image}]})
    media: MediaService = app.state.content.state["media"]

    async def down(*_: object) -> None:
        raise StoreUnavailable("mongodb", "down")

    monkeypatch.setattr(media.store, "get", down)
    r = await export(client)
    assert r.status_code == 503
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.headers["retry-after"]
    assert not list((app.state.platform.settings.runtime.data_dir / "spool").iterdir())


async def test_a_course_of_a_thousand_lessons_goes_out_and_back(
        client: httpx.AsyncClient, app: FastAPI, monkeypatch: pytest.MonkeyPatch) -> None:
    image = await upload(client, BASE, "a.png", s.png(), "image/png")
    content: ContentService = app.state.content.state["service"]
    new = [NewLesson(title=f"Leçon {n}", blocks=[
        {"type": "markdown", "markdown": f"## {n}\n\n" + "x " * (20_000 if n % 100 == 0 else 200)},
        {"type": "image", "media": image}]) for n in range(1000)]
    await content.add_lessons("acme", "py", new, ids=[f"l{n}" for n in range(1000)])
    pages: list[int] = []
    read = content.repo.get_lessons

    async def get_lessons(tenant: str, ids: Sequence[str]) -> list[Lesson]:
        pages.append(len(ids))
        return await read(tenant, ids)

    async def never(*_: object) -> None:
        raise AssertionError("the course's lessons were read all at once")

    with monkeypatch.context() as patched:  # its lessons are read a page at a time
        patched.setattr(content.repo, "get_lessons", get_lessons)
        for whole in ("list_lessons", "lessons_of_courses"):
            patched.setattr(content.repo, whole, never)
        r = await export(client)
    assert r.status_code == 200
    assert (len(pages), max(pages), sum(pages)) == (20, 50, 1000)
    assert r.headers["x-lesson-count"] == "1000"
    names = zipfile.ZipFile(io.BytesIO(r.content)).namelist()
    assert (len(names), names[999], names[1000]) == (1002, "1000-lecon-999.md", "course.yaml")
    deflated = [i.compress_type for i in zipfile.ZipFile(io.BytesIO(r.content)).infolist()]
    assert deflated.count(zipfile.ZIP_STORED) == 10 + 1  # past the import's ratio, and media
    assert (await client.post(f"{BASE}/courses", json={"id": "copy", "title": "Copie"})
            ).status_code == 201
    done = await import_zip(client, BASE, "copy", r.content)
    assert done.status_code == 201, done.text
    assert await course_lessons(client, BASE, "copy") == await course_lessons(client, BASE, "py")


async def test_relative_links_to_no_exported_media_are_kept_as_written(
        client: httpx.AsyncClient) -> None:
    image = await upload(client, BASE, "a.png", s.png(), "image/png")
    url = f"{BASE}/media/{image}/content"
    made = await client.post(f"{BASE}/courses/py/lessons", json={"title": "One", "blocks": [
        {"type": "markdown", "markdown": f"[handout](handout.pdf) ![i](img/a.png) "
                                         f"![x](media/abc/x.png) ![kept]({url})"},
        {"type": "image", "media": image, "caption": "[notes](../notes.md)"},
        {"type": "quiz", "id": "q", "title": "Q", "questions": [
            {"type": "true_false", "id": "tf", "prompt": "see ![d](diagram.png)",
             "answer": True}]}]})
    assert made.status_code == 201, made.text
    original = await course_lessons(client, BASE, "py")
    r = await export(client)
    assert (await client.post(f"{BASE}/courses", json={"id": "copy", "title": "Copie"})
            ).status_code == 201
    done = await import_zip(client, BASE, "copy", r.content)
    assert done.status_code == 201, done.text
    assert await course_lessons(client, BASE, "copy") == original

    plain = await client.post(f"{BASE}/courses/copy/uploads", files=[
        ("files", ("x.md", b"[handout](handout.pdf)", "text/markdown"))])
    assert (plain.status_code, plain.json()["code"]) == (422, "missing_file")


async def test_links_in_angle_brackets_keep_them(client: httpx.AsyncClient) -> None:
    image = await upload(client, BASE, "a b.png", s.png(), "image/png")
    url = f"{BASE}/media/{image}/content"
    made = await client.post(f"{BASE}/courses/py/lessons", json={"title": "One", "blocks": [
        {"type": "markdown", "markdown": f"[l](<{url}>) and ![i]({url})"},
        {"type": "image", "media": image, "caption": f"[c](<{url}> \"t\")"}]})
    assert made.status_code == 201, made.text
    original = await course_lessons(client, BASE, "py")
    r = await export(client)
    text = zipfile.ZipFile(io.BytesIO(r.content)).read("0001-one.md").decode()
    assert f"[l](<media/{image}/a%20b.png>) and ![i](media/{image}/a%20b.png)" in text
    assert (await client.post(f"{BASE}/courses", json={"id": "copy", "title": "Copie"})
            ).status_code == 201
    done = await import_zip(client, BASE, "copy", r.content)
    assert done.status_code == 201, done.text
    assert await course_lessons(client, BASE, "copy") == original


async def test_a_block_that_does_not_read_is_named_by_its_line_in_the_file(
        client: httpx.AsyncClient) -> None:
    text = b"---\nformat: bloop-lesson/1\n---\n\nfirst\n\n<!-- bloop:block -->\n\n" \
           b"```bloop-block\ntype: code\nsource: [x\n```\n"
    r = await client.post(f"{BASE}/courses/py/uploads", files=[
        ("files", ("x.md", text, "text/markdown"))])
    assert (r.status_code, r.json()["code"], r.json()["line"], r.json()["block"]) == (
        422, "invalid_block", 9, 2)
    assert r.json()["detail"].startswith("x.md, line 9: block 2 of the lesson")


def replaced(data: bytes, name: str, content: bytes | None) -> bytes:
    """The zip `data` with its entry `name` holding `content` (left out when None)."""
    source = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for entry in source.namelist():
            if entry != name:
                zf.writestr(entry, source.read(entry))
        if content is not None:
            zf.writestr(name, content)
    return out.getvalue()


async def with_concepts(client: httpx.AsyncClient) -> bytes:
    """An export of `py` whose lesson teaches `loops` (described), requires `vars`, and is in
    the module `basics`."""
    assert (await client.patch(f"{BASE}/concepts/loops", json={
        "name": "Boucles", "description": "for et while"})).status_code == 200
    assert (await client.post(f"{BASE}/courses/py/lessons", json={
        "title": "One", "teaches": ["loops"], "requires": ["vars"], "module": "basics",
        "blocks": [{"type": "markdown", "markdown": "Un"}]})).status_code == 201
    r = await export(client)
    assert r.status_code == 200, r.text
    return r.content


async def other_tenant(app: FastAPI, client: httpx.AsyncClient,
                       **course: Any) -> dict[str, str]:
    other = await member(app, client, "globex", ["educator"])
    assert (await client.post(f"{OTHER}/courses", headers=other, json={
        "id": "py", "title": "Python", **course})).status_code == 201
    return other


async def carried(client: httpx.AsyncClient, other: dict[str, str]) -> tuple[list[str], list[str]]:
    """globex's concepts and the modules of its course `py`."""
    concepts = (await client.get(f"{OTHER}/concepts", headers=other)).json()["items"]
    head = (await client.get(f"{OTHER}/courses/py", headers=other)).json()
    return [c["id"] for c in concepts], [m["id"] for m in head["modules"]]


@pytest.mark.parametrize("step", ["modules", "lessons", "release"])
async def test_a_failed_import_takes_back_the_modules_it_added_and_keeps_the_concepts(
        client: httpx.AsyncClient, app: FastAPI, monkeypatch: pytest.MonkeyPatch,
        step: str) -> None:
    data = await with_concepts(client)
    other = await other_tenant(app, client)
    content: ContentService = app.state.content.state["service"]
    uploads = app.state.content.state["uploads"]
    target, name = {"modules": (content, "add_modules"), "lessons": (content.repo, "add_lessons"),
                    "release": (uploads.holds, "release")}[step]
    real = getattr(target, name)

    async def failing(*args: Any, **kwargs: Any) -> Any:
        if step == "release":  # the lessons stored: taken back
            await real(*args, **kwargs)
        raise ConnectionError("the store went away")

    monkeypatch.setattr(target, name, failing)
    r = await import_zip(client, OTHER, "py", data, **other)
    assert r.status_code == 500
    # another author may name a concept as soon as it is made: they stay, for a retry too
    assert await carried(client, other) == (["loops", "vars"], [])
    assert await course_lessons(client, OTHER, "py", **other) == []

    monkeypatch.setattr(target, name, real)
    r = await import_zip(client, OTHER, "py", data, **other)
    assert r.status_code == 201, r.text
    assert await carried(client, other) == (["loops", "vars"], ["basics"])
    [lesson] = await course_lessons(client, OTHER, "py", **other)
    assert (lesson["teaches"], lesson["requires"], lesson["module"]) == (
        ["loops"], ["vars"], "basics")


async def test_an_archive_without_course_yaml_imports_as_before(
        client: httpx.AsyncClient, app: FastAPI) -> None:
    data = replaced(await with_concepts(client), "course.yaml", None)
    other = await other_tenant(app, client)
    r = await import_zip(client, OTHER, "py", data, **other)
    assert (r.status_code, r.json()["code"], r.json()["concepts"]) == (
        422, "unknown_concepts", ["loops", "vars"])
    for concept in ("loops", "vars"):
        assert (await client.post(f"{OTHER}/concepts", headers=other,
                                  json={"id": concept, "name": concept})).status_code == 201
    r = await import_zip(client, OTHER, "py", data, **other)
    assert r.status_code == 201, r.text
    assert r.json()["notes"] == ["py.zip/0001-one.md: the course has no module 'basics'; the "
                                 "lesson is in none"]
    assert await carried(client, other) == (["loops", "vars"], [])


@pytest.mark.parametrize(("text", "field", "line"), [
    (b"format: bloop-course/1\ntitle: [x\n", None, 3),
    (b"- format\n", None, None),
    (b"format: bloop-course/2\ntitle: Python\n", "format", None),
    (b"format: bloop-course/1\n", "title", None),
    (b"format: bloop-course/1\ntitle: P\nowner: me\n", "owner", None),
    (b"format: bloop-course/1\ntitle: P\nmodules: [{id: Bad Id, title: B}]\n",
     "modules.0.id", None),
    (b"format: bloop-course/1\ntitle: P\nconcepts: [{id: a, name: A}, {id: a, name: B}]\n",
     "course", None),
    (b"format: bloop-course/1\ntitle: P\nconcepts: [{id: a}]\n", "concepts.0.name", None),
    # refused before it is parsed: a parse of megabytes held the process up for seconds
    (b"format: bloop-course/1\ntitle: P\ntags: [" + os.urandom(600_000).hex().encode() + b"]\n",
     None, None),
])
async def test_a_course_yaml_is_read_strictly(client: httpx.AsyncClient, app: FastAPI,
                                             text: bytes, field: str | None,
                                             line: int | None) -> None:
    data = replaced(await with_concepts(client), "course.yaml", text)
    other = await other_tenant(app, client)
    r = await import_zip(client, OTHER, "py", data, **other)
    assert r.status_code == 422, r.text
    assert r.headers["content-type"] == "application/problem+json"
    found = r.json()
    assert (found["code"], found["file"]) == ("invalid_course_file", "py.zip/course.yaml")
    assert (found.get("field"), found.get("line")) == (field, line)
    assert found["detail"].startswith("py.zip/course.yaml")
    assert await carried(client, other) == ([], [])


async def test_modules_past_the_limit_are_refused(client: httpx.AsyncClient,
                                                   app: FastAPI) -> None:
    data = await with_concepts(client)
    other = await other_tenant(app, client, modules=[
        {"id": f"m{n}", "title": f"M{n}"} for n in range(100)])
    r = await import_zip(client, OTHER, "py", data, **other)
    assert (r.status_code, r.json()["code"], r.json()["field"]) == (
        422, "too_many_modules", "modules")
    assert (await carried(client, other))[0] == []


async def test_a_module_the_course_has_keeps_its_title(client: httpx.AsyncClient,
                                                      app: FastAPI) -> None:
    data = await with_concepts(client)
    other = await other_tenant(app, client, modules=[{"id": "basics", "title": "Mine"}])
    r = await import_zip(client, OTHER, "py", data, **other)
    assert r.status_code == 201, r.text
    head = (await client.get(f"{OTHER}/courses/py", headers=other)).json()
    assert head["modules"] == [{"id": "basics", "title": "Mine", "summary": ""}]


async def test_autolinks_and_html_links_to_media_go_out_and_back(
        client: httpx.AsyncClient, app: FastAPI) -> None:
    image = await upload(client, BASE, "a b.png", s.png(), "image/png")
    url = f"{BASE}/media/{image}/content"
    text = (f"Voir <{url}>, <a href=\"{url}\">ici</a>, <https://example.com/x> et "
            f"<A class='x' HREF='{url}'>là</A>.")
    assert (await client.post(f"{BASE}/courses/py/lessons", json={"title": "One", "blocks": [
        {"type": "markdown", "markdown": text}]})).status_code == 201
    r = await export(client)
    path = f"media/{image}/a%20b.png"
    written = zipfile.ZipFile(io.BytesIO(r.content)).read("0001-one.md").decode()
    assert (f"Voir <{path}>, <a href=\"{path}\">ici</a>, <https://example.com/x> et "
            f"<A class='x' HREF='{path}'>là</A>.") in written
    other = await other_tenant(app, client)
    done = await import_zip(client, OTHER, "py", r.content, **other)
    assert done.status_code == 201, done.text
    [moved] = done.json()["media"]
    [lesson] = await course_lessons(client, OTHER, "py", **other)
    assert lesson["blocks"] == [{"type": "markdown", "markdown": text.replace(
        url, f"{OTHER}/media/{moved['id']}/content")}]
