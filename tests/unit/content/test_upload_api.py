"""Imports through the real app on the embedded stores: Markdown with front matter, Markdown
with its images, a zip of lessons and images, a PDF, media alone; every bad input refused with a
problem naming the file and nothing kept; and an import failing at its last step undone."""

from __future__ import annotations

import errno
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from bloop.platform.app import create_app
from bloop.platform.content.media.service import MediaService
from bloop.platform.content.service import ContentService
from bloop.platform.content.uploads.service import UploadService
from bloop.platform.kit.settings import HttpSettings, RuntimeSettings, Settings
from tests.support import api_client, member
from tests.unit.content import media_samples as s

BASE = "/v1/tenants/acme"
UPLOAD = f"{BASE}/courses/py/uploads"
Files = list[tuple[str, tuple[str, bytes, str]]]


@pytest.fixture
async def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FastAPI]:
    for var in ("BLOOP_STORE", "BLOOP_MONGO_ADAPTER", "BLOOP_KAFKA_ADAPTER", "BLOOP_REDIS_ADAPTER"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("BLOOP_MEDIA_IMAGE_MAX_BYTES", "20000")
    monkeypatch.setenv("BLOOP_MEDIA_TENANT_QUOTA_BYTES", "150000")
    monkeypatch.setenv("BLOOP_MEDIA_PUBLISHED_CACHE_S", "0")
    monkeypatch.setenv("BLOOP_UPLOAD_ZIP_MAX_UNPACKED_BYTES", "300000")
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
        assert (await c.post(f"{BASE}/concepts", json={"id": "loops", "name": "Loops"})
                ).status_code == 201
        assert (await c.post(f"{BASE}/courses", json={"id": "py", "title": "Python"})
                ).status_code == 201
        yield c


def files(*items: tuple[str, bytes, str]) -> Files:
    return [("files", item) for item in items]


def disk(app: FastAPI) -> set[str]:
    """Every file under media/ and spool/."""
    data_dir: Path = app.state.platform.settings.runtime.data_dir
    return {str(p.relative_to(data_dir)) for p in data_dir.rglob("*")
            if p.is_file() and ("media" in p.parts or "spool" in p.parts)}


async def state(app: FastAPI) -> tuple[list[str], list[str], set[str]]:
    """The course's lessons, the tenant's media, and the files on disk."""
    content: ContentService = app.state.content.state["service"]
    media: MediaService = app.state.content.state["media"]
    return ([x.id for x in await content.repo.list_lessons("acme", "py")],
            [m.id for m in (await media.media("acme")).items], disk(app))


async def holds(app: FastAPI) -> list[str]:
    """The ids of the import holds kept (each taken for good, as a sweep would)."""
    uploads: UploadService = app.state.content.state["uploads"]
    later = datetime.now(UTC) + timedelta(days=30)
    return [h.id for h in await uploads.holds.take_expired(later, later + timedelta(days=1))]


async def test_a_markdown_lesson_with_front_matter(client: httpx.AsyncClient) -> None:
    r = await client.post(UPLOAD, files=files(("loops.md", s.MARKDOWN, "text/markdown")))
    assert r.status_code == 201, r.text
    [lesson] = r.json()["lessons"]
    assert r.json()["media"] == []
    assert lesson["title"] == "Loops"
    assert lesson["estimated_minutes"] == 7
    assert lesson["teaches"] == ["loops"]
    assert [b["markdown"] for b in lesson["blocks"]] == [
        "# Loops\n\nA `for` loop repeats.",
        "## While\n\nA `while` loop repeats until its condition is false."]
    stored = (await client.get(f"{BASE}/lessons/{lesson['id']}")).json()
    assert stored == lesson


async def test_markdown_with_its_images_links_the_stored_media(client: httpx.AsyncClient,
                                                               app: FastAPI) -> None:
    text = b"---\ntitle: Shapes\n---\nA dot: ![dot](dot.png)\n"
    r = await client.post(UPLOAD, files=files(("shapes.md", text, "text/markdown"),
                                              ("dot.png", s.png(), "image/png")))
    assert r.status_code == 201, r.text
    [lesson], [media] = r.json()["lessons"], r.json()["media"]
    assert media["content_type"] == "image/png"
    assert media["url"] == f"{BASE}/media/{media['id']}/content"
    assert lesson["blocks"][0]["markdown"] == f"A dot: ![dot]({media['url']})"

    learner = {"Authorization": client.headers["X-Learner"]}
    url = f"{BASE}/media/{media['id']}/content"
    assert (await client.get(url, headers=learner)).status_code == 404
    assert (await client.post(f"{BASE}/courses/py/publish")).status_code == 200
    r = await client.get(url, headers=learner)
    assert (r.status_code, r.content) == (200, s.png())


async def test_an_html_link_to_a_page_the_upload_lacks_is_kept_as_written(
        client: httpx.AsyncClient) -> None:
    """Markdown written for a site links its pages with `<a href>`: since HTML links to media
    are rewritten, a page the upload lacked refused the whole upload 422 `missing_file`."""
    text = (b'# Site\n\nSee <a href="page.html">the page</a> and '
            b'<a href="dot.png">the dot</a>.\n')
    r = await client.post(UPLOAD, files=files(("site.md", text, "text/markdown"),
                                              ("dot.png", s.png(), "image/png")))
    assert r.status_code == 201, r.text
    [lesson], [media] = r.json()["lessons"], r.json()["media"]
    assert lesson["blocks"][0]["markdown"].endswith(
        f'See <a href="page.html">the page</a> and <a href="{media["url"]}">the dot</a>.')


async def test_a_zip_of_lessons_and_images(client: httpx.AsyncClient) -> None:
    pack = s.zip_of({
        "course/01-intro.md": b"# Intro\n\n![logo](img/logo.png)\n\nSee [the next one](02-loops.md).",
        "course/02-loops.md": s.MARKDOWN + b"\n![tone](../media/tone%20one.wav)\n",
        "course/img/logo.png": s.png(),
        "media/tone one.wav": s.wav(),
        "__MACOSX/course/._01-intro.md": b"\x00\x05\x16\x07",
    })
    r = await client.post(UPLOAD, files=files(("course.zip", pack, "application/zip")))
    assert r.status_code == 201, r.text
    body = r.json()
    assert [x["title"] for x in body["lessons"]] == ["Intro", "Loops"]
    assert [x["position"] for x in body["lessons"]] == [0, 1]
    by_name = {m["filename"]: m for m in body["media"]}
    assert set(by_name) == {"logo.png", "tone one.wav"}
    assert body["lessons"][0]["blocks"] == [
        {"type": "markdown", "markdown": "# Intro"},
        {"type": "image", "media": by_name["logo.png"]["id"], "title": "", "caption": "",
         "alt": "logo"},
        {"type": "markdown", "markdown": "See [the next one](02-loops.md)."}]
    loops = "\n".join(b["markdown"] for b in body["lessons"][1]["blocks"])
    assert f"![tone]({BASE}/media/{by_name['tone one.wav']['id']}/content)" in loops
    r = await client.get(f"{BASE}/media/{by_name['tone one.wav']['id']}/content")
    assert r.content == s.wav()


SHOW_LESSON = """
query ($l: String!) {
  lesson(tenant: "acme", id: $l) {
    blocks {
      __typename
      ... on MarkdownBlock { markdown mediaLinks { media link { url expiresAt } } }
      ... on ImageBlock { media alt title link { url expiresAt } }
    }
  }
}"""


async def test_an_image_alone_in_its_paragraph_becomes_an_image_block_a_page_can_show(
        client: httpx.AsyncClient, app: FastAPI) -> None:
    """Before, it stayed in the Markdown as the URL that needs a token: a page rendering the
    lesson showed a broken image."""
    pack = s.zip_of({
        "shapes.md": b"# Shapes\n\nA dot: ![dot](img/dot.png) in the text.\n\n"
                     b"![A \\*big\\* square](img/square.png \"The square\")\n\n"
                     b"```\n![code](img/dot.png)\n```\n\nThat is all.\n",
        "img/dot.png": s.png(),
        "img/square.png": s.png(8, 8),
    })
    r = await client.post(UPLOAD, files=files(("shapes.zip", pack, "application/zip")))
    assert r.status_code == 201, r.text
    [lesson] = r.json()["lessons"]
    by_name = {m["filename"]: m["id"] for m in r.json()["media"]}
    dot, square = by_name["dot.png"], by_name["square.png"]
    assert lesson["blocks"] == [
        {"type": "markdown", "markdown": f"# Shapes\n\nA dot: ![dot]({BASE}/media/{dot}/content)"
                                        " in the text."},
        {"type": "image", "media": square, "alt": "A *big* square", "title": "The square",
         "caption": ""},
        {"type": "markdown", "markdown": "```\n![code](img/dot.png)\n```\n\nThat is all."}]
    assert (await client.post(f"{BASE}/courses/py/publish")).status_code == 200

    r = await client.post("/graphql", json={"query": SHOW_LESSON, "variables": {
        "l": lesson["id"]}}, headers={"Authorization": client.headers["X-Learner"]})
    assert r.status_code == 200, r.text
    assert "errors" not in r.json(), r.text
    intro, image, code = r.json()["data"]["lesson"]["blocks"]
    assert image["__typename"] == "ImageBlock"
    assert (image["media"], image["alt"], image["title"]) == (square, "A *big* square",
                                                               "The square")
    assert [x["media"] for x in intro["mediaLinks"]] == [dot]
    assert code["mediaLinks"] == []  # code is shown as written
    anonymous = api_client(app)
    async with anonymous:
        for url, data in ((image["link"]["url"], s.png(8, 8)),
                          (intro["mediaLinks"][0]["link"]["url"], s.png())):
            assert "reach=published" in url
            r = await anonymous.get(url)
            assert (r.status_code, r.headers["content-type"], r.content) == (
                200, "image/png", data), url


async def test_links_inside_code_are_neither_checked_nor_rewritten(
        client: httpx.AsyncClient) -> None:
    """Code showing Markdown (a fenced block, a code span, a `~~~` block with HTML) was read as
    links to files: refused as missing (422 `missing_file`), or, with the file in the upload,
    rewritten to the media's URL inside the code."""
    text = (b"# Syntax\n\nAn image is written\n\n```markdown\n![alt text](images/cat.png)\n```\n\n"
            b"or inline, `![x](cat.png)`, or as HTML:\n\n~~~html\n<img src=\"cat.png\">\n~~~\n")
    r = await client.post(UPLOAD, files=files(("mdsyntax.md", text, "text/markdown")))
    assert r.status_code == 201, r.text
    [lesson] = r.json()["lessons"]
    assert "\n\n".join(b["markdown"] for b in lesson["blocks"]) == text.decode().strip("\n")

    code = b"```python\n# ![not an image](img/diagram.png)\nprint(1)\n```\n"
    pack = s.zip_of({"draw.md": b"# Draw\n\n" + code + b"\n![the diagram](img/diagram.png) here",
                     "img/diagram.png": s.png()})
    r = await client.post(UPLOAD, files=files(("draw.zip", pack, "application/zip")))
    assert r.status_code == 201, r.text
    [lesson], [media] = r.json()["lessons"], r.json()["media"]
    assert [b["markdown"] for b in lesson["blocks"]] == [
        f"# Draw\n\n{code.decode()}\n![the diagram]({media['url']}) here"]


async def test_images_stay_in_the_markdown_when_blocks_would_not_fit_or_links_need_them(
        client: httpx.AsyncClient) -> None:
    """An image block for each picture refused a tutorial of 101 screenshots (422 "needs more
    than the -2 blocks", it imported before), and the split left reference links apart from
    their definitions, which then resolved nowhere."""
    steps = b"".join(b"Step %d.\n\n![step](img/dot.png)\n\n" % n for n in range(101))
    pack = s.zip_of({"steps.md": b"# Steps\n\n" + steps, "img/dot.png": s.png()})
    r = await client.post(UPLOAD, files=files(("steps.zip", pack, "application/zip")))
    assert r.status_code == 201, r.text
    [lesson] = r.json()["lessons"]
    assert {b["type"] for b in lesson["blocks"]} == {"markdown"}
    assert "".join(b["markdown"] for b in lesson["blocks"]).count("/content)") == 101

    pack = s.zip_of({"refs.md": b"# Refs\n\nSee [the diagram][d].\n\n![dot](img/dot.png)\n\n"
                                b"More text.\n\n[d]: img/dot.png\n", "img/dot.png": s.png()})
    r = await client.post(UPLOAD, files=files(("refs.zip", pack, "application/zip")))
    assert r.status_code == 201, r.text
    [lesson] = r.json()["lessons"]
    [block] = lesson["blocks"]
    assert block["type"] == "markdown"
    assert "[the diagram][d]" in block["markdown"]
    assert "\n[d]: " in block["markdown"]


async def test_a_pdf_becomes_a_lesson_and_is_kept(client: httpx.AsyncClient) -> None:
    data = s.pdf("Loops repeat work.", "While loops wait.", title="Loops in PDF")
    r = await client.post(UPLOAD, files=files(("loops.pdf", data, "application/pdf")))
    assert r.status_code == 201, r.text
    [lesson], [media] = r.json()["lessons"], r.json()["media"]
    assert lesson["title"] == "Loops in PDF"
    assert media["content_type"] == "application/pdf"
    text = [b.get("markdown", "") for b in lesson["blocks"]]
    assert "Loops repeat work." in text
    assert "While loops wait." in text
    first = lesson["blocks"][0]
    assert media["id"] in (first.get("media") or first.get("media_id") or first["markdown"])
    assert (await client.get(f"{BASE}/media/{media['id']}/content")).content == data


async def test_ordinary_pdfs_become_lessons(client: httpx.AsyncClient) -> None:
    """Each was refused 422, with nothing the educator could change in the PDF: `$$` in its
    text (read as display math never closed), a metadata title over 200 characters, and more
    pages than a lesson has blocks, though the import takes up to 1,000 pages."""
    pages = [f"Page {n}." for n in range(1, 251)]
    r = await client.post(UPLOAD, files=files(
        ("bash.pdf", s.pdf("In bash, echo $$ prints the PID of the shell."), "application/pdf"),
        ("thesis.pdf", s.pdf("Abstract.", title="A" * 120 + " " + "B" * 100), "application/pdf"),
        ("book.pdf", s.pdf(*pages), "application/pdf")))
    assert r.status_code == 201, r.text
    bash, thesis, book = r.json()["lessons"]
    assert bash["blocks"][1]["markdown"] == "In bash, echo \\$\\$ prints the PID of the shell."
    assert thesis["title"] == ("A" * 120 + " " + "B" * 100)[:200]
    assert book["title"] == "Book"
    assert len(book["blocks"]) == 1 + 125
    assert "\n\n".join(b["markdown"] for b in book["blocks"][1:]).split("\n\n") == pages


async def test_a_pdf_title_with_control_characters_is_cleaned(client: httpx.AsyncClient) -> None:
    """A control character in the metadata title, which the educator cannot see, refused the
    whole import (422 "title: … may not hold the control character U+0007"); so would a title
    of zero-width characters, which no lesson's title may be."""
    r = await client.post(UPLOAD, files=files(
        ("title.pdf", s.pdf("Text.", title="Bells\x07 and\x01\x02whistles"), "application/pdf"),
        ("blank-title.pdf", s.pdf("Text.", title="\x07\x08"), "application/pdf"),
        ("turned.pdf", s.pdf("Text.", title="\u202eTurned\u202c"), "application/pdf"),
        ("unseen-title.pdf", s.pdf("Text.", title="\u200b\u3164\ufffe"), "application/pdf")))
    assert r.status_code == 201, r.text
    assert [x["title"] for x in r.json()["lessons"]] == ["Bells and whistles", "Blank title",
                                                         "Turned", "Unseen title"]


async def test_media_alone(client: httpx.AsyncClient, app: FastAPI) -> None:
    r = await client.post(UPLOAD, files=files(("a.mp3", s.mp3(), "audio/mpeg"),
                                              ("b.webm", s.webm(), "video/webm")))
    assert r.status_code == 201, r.text
    assert r.json()["lessons"] == []
    assert sorted(m["content_type"] for m in r.json()["media"]) == ["audio/mpeg", "video/webm"]
    assert (await state(app))[0] == []


async def test_near_the_quota_media_the_tenant_keeps_add_nothing(client: httpx.AsyncClient,
                                                                 app: FastAPI) -> None:
    """The same bytes are one file: a zip whose only media the tenant already keeps, or that
    holds one file twice, fits though the quota has less room left than their sizes summed."""
    tone = s.wav(seconds=5.0)  # 80,044 bytes of a quota of 150,000
    kept = await client.post(f"{BASE}/media", content=tone, params={"filename": "tone.wav"})
    assert kept.status_code == 201
    pack = s.zip_of({"week1.md": b"# Week 1\n\nListen: [tone](tone.wav)", "tone.wav": tone},
                     compression=0)
    r = await client.post(UPLOAD, files=files(("week1.zip", pack, "application/zip")))
    assert r.status_code == 201, r.text
    assert [m["id"] for m in r.json()["media"]] == [kept.json()["id"]]

    other = s.wav(seconds=3.0)  # 48,044 new bytes: room for them once, not twice
    pack = s.zip_of({"week2.md": b"# Week 2\n\n[a](a.wav) [b](b.wav)", "a.wav": other,
                     "b.wav": other}, compression=0)
    r = await client.post(UPLOAD, files=files(("week2.zip", pack, "application/zip")))
    assert r.status_code == 201, r.text
    assert len(r.json()["media"]) == 1
    usage = (await client.get(f"{BASE}/media/usage")).json()
    assert usage["used_bytes"] == len(tone) + len(other)

    r = await client.post(UPLOAD, files=files(("c.wav", s.wav(seconds=1.5), "audio/wav")))
    assert (r.status_code, r.json()["code"]) == (413, "quota_exceeded")
    assert r.json()["upload_bytes"] == len(s.wav(seconds=1.5))


BAD: list[Any] = [
    pytest.param(files(("a.md", b"---\ntitle: [oops\n---\n", "text/markdown")),
                 422, "invalid_front_matter", "a.md", id="invalid-yaml"),
    pytest.param(files(("a.md", b"---\ntitle: A\nauthor: me\n---\n", "text/markdown")),
                 422, "invalid_front_matter", "author", id="unknown-key"),
    pytest.param(files(("a.md", b"---\nestimated_minutes: soon\n---\n", "text/markdown")),
                 422, "invalid_front_matter", "estimated_minutes", id="wrong-type"),
    pytest.param(files(("a.md", b"---\nteaches: [loops]\nrequires: [loops]\n---\n",
                        "text/markdown")), 422, "invalid_lesson", "both teach and require",
                 id="teaches-and-requires"),
    pytest.param(files(("a.md", b"---\nteaches: [recursion]\n---\n", "text/markdown")),
                 422, "unknown_concepts", "recursion", id="unknown-concept"),
    pytest.param(files(("a.md", b"Text\n\n```\ncode\n", "text/markdown")),
                 422, "invalid_markdown", "code fence", id="unclosed-fence"),
    pytest.param(files(("a.md", b"![x](missing.png)", "text/markdown")),
                 422, "missing_file", "missing.png", id="missing-image"),
    pytest.param(files(("a.md", b"![x](../../secret.png)", "text/markdown")),
                 422, "missing_file", "secret.png", id="link-outside"),
    pytest.param(files(("z.zip", s.zip_of({"../evil.md": b"# x"}), "application/zip")),
                 422, "unsafe_archive", "outside", id="zip-traversal"),
    pytest.param(files(("z.zip", s.zip_of({"/etc/evil.md": b"# x"}), "application/zip")),
                 422, "unsafe_archive", "absolute", id="zip-absolute"),
    pytest.param(files(("z.zip", s.zip_with_symlink("a.png", "/etc/passwd"), "application/zip")),
                 422, "unsafe_archive", "symbolic link", id="zip-symlink"),
    pytest.param(files(("z.zip", s.zip_bomb(2_000_000), "application/zip")),
                 422, "zip_bomb", "zip bomb", id="zip-bomb-ratio"),
    pytest.param(files(("z.zip", s.zip_of({f"{n}.txt": bytes(range(256)) * 400 for n in range(4)},
                                          compression=0), "application/zip")),
                 413, "archive_too_large", "unpacks", id="zip-bomb-size"),
    pytest.param(files(("z.zip", s.zip_of({"a.md": b"![i](i.png)", "i.png": s.mp3()}),
                        "application/zip")), 415, "type_mismatch", "i.png", id="zip-mismatch"),
    pytest.param(files(("z.zip", s.zip_of({"a.md": b"# A", "in.zip": s.zip_of({"b": b"c"})}),
                        "application/zip")), 422, "unsafe_archive", "inside an archive",
                 id="zip-in-zip"),
    pytest.param(files(("photo.png", s.mp3(), "image/png")), 415, "type_mismatch",
                 "MP3 audio", id="mismatch"),
    pytest.param(files(("a.pdf", b"%PDF-1.4\nnot really", "application/pdf")),
                 422, "unreadable_pdf", "a.pdf", id="broken-pdf"),
    pytest.param(files(("big.png", s.png(extra=30_000), "image/png")), 413, "too_large",
                 "at most", id="oversize"),
    pytest.param(files(("z.zip", s.zip_of({"a.md": b"# A", "big.png": s.png(extra=30_000)}),
                        "application/zip")), 413, "too_large", "at most", id="oversize-in-zip"),
    pytest.param(files(*[(f"{n}.wav", s.wav(seconds=1.0) + bytes([n]), "audio/wav")
                         for n in range(10)]), 413, "quota_exceeded", "quota", id="quota"),
    pytest.param(files(("a.md", s.MARKDOWN, "text/markdown"), ("a.md", s.MARKDOWN, "text/markdown")),
                 422, "duplicate_file", "a.md", id="duplicate-name"),
]


@pytest.mark.parametrize(("sent", "status", "code", "says"), BAD)
async def test_bad_input_is_refused_and_changes_nothing(client: httpx.AsyncClient, app: FastAPI,
                                                        sent: Files, status: int, code: str,
                                                        says: str) -> None:
    # A good file beside the bad one: it must not be kept either.
    before = await state(app)
    r = await client.post(UPLOAD, files=[("files", ("good.gif", s.gif(), "image/gif")), *sent])
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["code"] == code
    assert says in r.json()["detail"]
    assert await state(app) == before


@pytest.mark.parametrize(("bad", "status", "code", "where"), [
    (("week6.md", "Café crème".encode("latin-1"), "text/markdown"), 415,
     "unsupported_media_type", {"file": "week6.md"}),
    (("week6.md", b"", "text/markdown"), 422, "empty_file", {"file": "week6.md"}),
    (("week6.md", s.png(), "text/markdown"), 415, "type_mismatch", {"file": "week6.md"}),
    (("big.png", s.png(extra=30_000), "image/png"), 413, "too_large", {"file": "big.png"}),
    (("z.zip", s.zip_of({"a.md": b"# A", "i.png": s.mp3()}), "application/zip"), 415,
     "type_mismatch", {"file": "z.zip", "entry": "i.png"}),
], ids=["not-utf8", "empty", "claims-another-type", "oversize", "zip-entry"])
async def test_a_file_of_the_wrong_type_or_size_is_named(
        client: httpx.AsyncClient, app: FastAPI, bad: tuple[str, bytes, str], status: int,
        code: str, where: dict[str, str]) -> None:
    """Among several files, which one was refused went unsaid for these (no `file`, no name in
    the detail), as the route promises for every refusal."""
    before = await state(app)
    good = [(f"week{n}.md", f"# Week {n}\n\nNotes.".encode(), "text/markdown") for n in range(1, 6)]
    r = await client.post(UPLOAD, files=files(*good[:3], bad, *good[3:]))
    assert (r.status_code, r.json()["code"]) == (status, code), r.text
    assert {k: r.json().get(k) for k in where} == where
    assert r.json()["detail"].startswith(f"{'/'.join(where.values())}: ")
    if code == "unsupported_media_type":
        assert "save it as UTF-8" in r.json()["detail"]
    assert await state(app) == before


async def test_file_names_lose_bidirectional_controls(client: httpx.AsyncClient) -> None:
    """U+202E (right-to-left override) and its kin were kept in a file's name, which then read
    as another (`photo\u202egpj.exe` shows as "photoexe.jpg")."""
    r = await client.post(UPLOAD, files=files(
        ("\u202eevil\u202dgvs.exe.svg", s.SVG, "image/svg+xml"),
        ("\u2067notes\u2069\u200f.md", b"No heading here.", "text/markdown")))
    assert r.status_code == 201, r.text
    assert [m["filename"] for m in r.json()["media"]] == ["evilgvs.exe.svg"]
    assert [x["title"] for x in r.json()["lessons"]] == ["Notes"]


async def test_refusals_say_what_is_wrong(client: httpx.AsyncClient) -> None:
    """A stray control character in Markdown read "the bytes are none of the accepted types
    (PNG, JPEG, …)"; a byte over the limit "at most 2.0 MiB; this one has 2.0 MiB"; a PDF past
    one of pypdf's limits `unreadable_pdf`."""
    r = await client.post(UPLOAD, files=files(("week1.md", b"# Week 1\n\nA\x0bB", "text/markdown")))
    assert (r.status_code, r.json()["code"]) == (415, "unsupported_media_type"), r.text
    assert r.json()["detail"] == ("week1.md: the file holds bytes that text does not (control "
                                  "characters): U+000B on line 3")
    r = await client.post(UPLOAD, files=files(("week1.md", b"# Week 1\n\nA\x7fB", "text/markdown")))
    assert r.json()["detail"] == ("week1.md: the file holds bytes that text does not (control "
                                  "characters): U+007F on line 3"), r.text
    # a page break (form feed), which a lesson does not hold either, ends a line instead
    r = await client.post(UPLOAD, files=files(("pages.md", b"# Pages\n\nOne.\x0cTwo.", "text/markdown")))
    assert r.status_code == 201, r.text
    assert r.json()["lessons"][0]["blocks"][0]["markdown"].endswith("One.\nTwo.")
    big = b"# Big\n\n" + b"x" * (2 * 1024 * 1024 - 6)
    r = await client.post(UPLOAD, files=files(("big.md", big, "text/markdown")))
    assert (r.status_code, r.json()["code"]) == (413, "too_large"), r.text
    assert r.json()["detail"] == ("big.md: Markdown text may hold at most 2097152 bytes; this one "
                                  "has at least 2097153 bytes")
    deep = re.sub(rb"xref\n0 \d+\n", b"xref\n0 99999999\n", s.pdf("text"))
    r = await client.post(UPLOAD, files=files(("deep.pdf", deep, "application/pdf")))
    assert (r.status_code, r.json()["code"]) == (422, "pdf_too_complex"), r.text
    assert r.json()["detail"].startswith("deep.pdf: the PDF is too complex to read (")


async def test_requests_that_are_not_imports(client: httpx.AsyncClient, app: FastAPI) -> None:
    r = await client.post(UPLOAD, json={"files": []})
    assert (r.status_code, r.json()["code"]) == (422, "no_files")
    r = await client.post(UPLOAD, data={"files": "text"})
    assert (r.status_code, r.json()["code"]) == (422, "invalid_multipart")
    broken = (b'--XyZ\r\nContent-Disposition: form-data; name="files"; filename="a.md"\r\n'
              b"X[bad]: 1\r\n\r\nhello\r\n--XyZ--\r\n")
    for kind in ("multipart/form-data; boundary=XyZ", "multipart/form-data"):
        r = await client.post(UPLOAD, content=broken, headers={"Content-Type": kind})
        assert (r.status_code, r.json()["code"]) == (422, "invalid_multipart"), r.text
        assert r.json()["detail"].startswith("the multipart body cannot be read: ")
    r = await client.post(UPLOAD, files=files(("empty.zip", s.zip_of({}), "application/zip")))
    assert (r.status_code, r.json()["code"], r.json()["file"]) == (
        422, "nothing_to_import", "empty.zip"), r.text
    r = await client.post(f"{BASE}/courses/none/uploads",
                          files=files(("a.md", s.MARKDOWN, "text/markdown")))
    assert r.status_code == 404
    r = await client.post(UPLOAD, files=files(("a.md", s.MARKDOWN, "text/markdown")),
                          headers={"Authorization": client.headers["X-Learner"]})
    assert r.status_code == 403
    assert await state(app) == ([], [], set())


@pytest.mark.parametrize("step", ["lessons", "release"])
async def test_a_failure_at_the_last_step_undoes_the_import(
        client: httpx.AsyncClient, app: FastAPI, monkeypatch: pytest.MonkeyPatch,
        step: str) -> None:
    uploads: UploadService = app.state.content.state["uploads"]
    content: ContentService = app.state.content.state["service"]
    before = await state(app)
    pack = s.zip_of({"one.md": b"# One\n\n![a](a.png)", "a.png": s.png(), "b.wav": s.wav()})
    sent = files(("pack.zip", pack, "application/zip"),
                 ("doc.pdf", s.pdf("text"), "application/pdf"))
    # The last steps store the lessons (in one write) and release the import's hold; failing at
    # either, the lessons stored are taken back and all three media deleted.
    target, name = (content.repo, "add_lessons") if step == "lessons" else (uploads.holds,
                                                                           "release")
    real, calls = getattr(target, name), 0

    async def failing(*args: Any) -> Any:
        nonlocal calls
        calls += 1
        if step == "release":
            await real(*args)
        raise ConnectionError("the store went away")

    monkeypatch.setattr(target, name, failing)
    failed = await client.post(UPLOAD, files=sent)
    assert (failed.status_code, failed.json()["code"]) == (500, "internal_error")
    assert calls == 1
    assert await state(app) == before
    assert await holds(app) == []  # it was kept a day, for a sweep with nothing left to do

    monkeypatch.setattr(target, name, real)
    r = await client.post(UPLOAD, files=sent)
    assert r.status_code == 201, r.text
    assert len(r.json()["lessons"]) == 2
    assert len(r.json()["media"]) == 3


async def test_a_failure_storing_the_last_media_deletes_the_others(
        client: httpx.AsyncClient, app: FastAPI, monkeypatch: pytest.MonkeyPatch) -> None:
    media: MediaService = app.state.content.state["media"]
    before = await state(app)
    real_put = media.store.put
    puts = 0

    async def put(info: Any, source: Path) -> Any:
        nonlocal puts
        puts += 1
        if puts == 3:
            raise ConnectionError("disk went away")
        return await real_put(info, source)

    monkeypatch.setattr(media.store, "put", put)
    failed = await client.post(UPLOAD, files=files(("a.png", s.png(), "image/png"),
                                                   ("b.gif", s.gif(), "image/gif"),
                                                   ("c.wav", s.wav(), "audio/wav"),
                                                   ("d.md", b"# D\n![a](a.png)", "text/markdown")))
    assert failed.status_code == 500
    assert puts == 3
    assert await state(app) == before
    assert await holds(app) == []


async def test_a_failed_import_whose_media_cannot_be_deleted_leaves_its_hold_for_the_sweep(
        client: httpx.AsyncClient, app: FastAPI, monkeypatch: pytest.MonkeyPatch) -> None:
    content: ContentService = app.state.content.state["service"]
    media: MediaService = app.state.content.state["media"]

    async def failing(*_: Any, **__: Any) -> Any:
        raise ConnectionError("the store went away")

    monkeypatch.setattr(content.repo, "add_lessons", failing)
    monkeypatch.setattr(media.store, "delete", failing)
    failed = await client.post(UPLOAD, files=files(("a.png", s.png(), "image/png"),
                                                   ("d.md", b"# D\n![a](a.png)", "text/markdown")))
    assert failed.status_code == 500
    assert len((await state(app))[1]) == 1
    monkeypatch.undo()
    uploads: UploadService = app.state.content.state["uploads"]
    uploads.clock = lambda: datetime.now(UTC) + timedelta(days=2)
    assert await uploads.sweep() == 1  # the hold, kept: the sweep deletes the media
    assert (await state(app))[:2] == ([], [])
    assert await holds(app) == []


async def test_a_full_disk_while_the_files_arrive_answers_503_and_keeps_nothing(
        client: httpx.AsyncClient, app: FastAPI, monkeypatch: pytest.MonkeyPatch) -> None:
    from bloop.platform.content.uploads import form

    def full(*_: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    before = await state(app)
    monkeypatch.setattr(form._File, "write", full)
    r = await client.post(UPLOAD, files=files(("loops.md", s.MARKDOWN, "text/markdown")))
    assert r.status_code == 503, r.text
    assert (r.json()["code"], r.json()["store"]) == ("store_unavailable", "disk")
    assert int(r.headers["Retry-After"]) > 0
    assert await state(app) == before
    assert await holds(app) == []


async def test_a_lesson_goes_in_the_module_its_front_matter_names_when_the_course_has_it(
        client: httpx.AsyncClient) -> None:
    assert (await client.post(f"{BASE}/courses/py/modules", json={"id": "basics",
                                                                  "title": "Basics"})
            ).status_code == 201
    r = await client.post(UPLOAD, files=files(
        ("a.md", b"---\nmodule: basics\n---\nIn it", "text/markdown"),
        ("b.md", b"---\nmodule: advanced\n---\nIn none", "text/markdown")))
    assert r.status_code == 201, r.text
    assert [x["module"] for x in r.json()["lessons"]] == ["basics", None]
    assert r.json()["notes"] == ["b.md: the course has no module 'advanced'; the lesson is in none"]
