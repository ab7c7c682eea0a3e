"""End to end: a fresh data dir, the whole app, and the demo tenant seeded on first start."""

from __future__ import annotations

import html
import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from bloop.platform.app import create_app
from bloop.platform.content.model import (
    Course,
    CourseOutline,
    CourseView,
    Lesson,
    LessonOutline,
    MarkdownBlock,
    NewConcept,
    NewCourse,
    NewLesson,
)
from bloop.platform.content.service import ContentService
from bloop.platform.content.stores.embedded import EmbeddedContentStore
from bloop.platform.content.wiring import seed_demo
from bloop.platform.demo import data, landing
from bloop.platform.demo.landing import render
from bloop.platform.kit.events.types import registry
from bloop.platform.kit.pagination import cursor
from bloop.platform.kit.read_back import STORED
from bloop.platform.kit.sqlite import SqliteDB
from tests.support import api_client, embedded_app, login, member


async def _get_all(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                   *paths: str) -> list[httpx.Response]:
    for var in ("BLOOP_STORE", "BLOOP_MONGO_ADAPTER", "BLOOP_KAFKA_ADAPTER", "BLOOP_REDIS_ADAPTER",
                "BLOOP_SEED_DEMO"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("BLOOP_DATA_DIR", str(tmp_path))
    app = create_app()
    async with app.router.lifespan_context(app), api_client(app) as c:
        ada = data.PEOPLE[0]
        signed_in = await login(c, data.TENANT_ID, ada.email, ada.password)
        return [await c.get(p, headers=signed_in) for p in paths]


async def test_first_start_seeds_the_demo_and_serves_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home, courses, course, users, tenant, concepts = await _get_all(
        tmp_path, monkeypatch, "/", "/v1/tenants/demo/courses",
        "/v1/tenants/demo/courses/thinking-in-python", "/v1/tenants/demo/users",
        "/v1/tenants/demo", "/v1/tenants/demo/concepts")

    assert tenant.json()["name"] == "Bloop Demo School"
    assert {(u["email"], tuple(u["roles"])) for u in users.json()["items"]} == {
        ("ada@demo.bloop.dev", ("educator",)), ("grace@demo.bloop.dev", ("learner",))}
    assert [c["id"] for c in concepts.json()["items"]] == sorted(c.id for c in data.CONCEPTS)

    [listed] = courses.json()["items"]
    assert (listed["id"], listed["status"], listed["version"]) == (
        "thinking-in-python", "published", 1)
    lessons = course.json()["lessons"]
    assert [x["title"] for x in lessons] == [x.title for x in data.LESSONS]
    assert all(x["blocks"] and "```python" in "".join(b["markdown"] for b in x["blocks"])
               for x in lessons)
    # every concept a lesson requires is taught by an earlier lesson
    taught: set[str] = set()
    for x in lessons:
        assert set(x["requires"]) <= taught
        taught |= set(x["teaches"])

    assert home.status_code == 200
    assert home.headers["content-type"].startswith("text/html")
    page = home.text
    assert "Thinking in Python" in page
    for x in lessons:
        assert f'/v1/tenants/demo/lessons/{x["id"]}' in page
    assert 'href="/docs"' in page
    assert 'href="/graphql"' in page
    # how to sign in, with the demo people and a token request to this very server
    assert "Sign in to try the API" in page
    for person in data.PEOPLE:
        assert f"<code>{person.email}</code>" in page
        assert f"<code>{person.password}</code>" in page
    assert "curl -s -X POST http://bloop.test/v1/auth/token" in page
    assert "-d grant_type=password -d tenant=demo" in page



async def test_pages_offer_only_demo_people_who_still_sign_in_that_way(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("BLOOP_STORE", "BLOOP_MONGO_ADAPTER", "BLOOP_KAFKA_ADAPTER", "BLOOP_REDIS_ADAPTER",
                "BLOOP_SEED_DEMO"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("BLOOP_DATA_DIR", str(tmp_path))
    app = create_app()
    ada, grace = data.PEOPLE
    html = {"accept": "text/html"}

    async def offered() -> tuple[set[str], set[str]]:
        home = (await c.get("/")).text
        ide = (await c.get("/graphql", headers=html)).text
        return ({p.email for p in data.PEOPLE if f"<code>{p.password}</code>" in home},
                {p.email for p in data.PEOPLE if f'"password": "{p.password}"' in ide})

    async with app.router.lifespan_context(app), api_client(app) as c:
        assert await offered() == ({ada.email, grace.email},) * 2
        as_grace = await login(c, data.TENANT_ID, grace.email, grace.password)
        changed = await c.put("/v1/tenants/demo/me/password", headers=as_grace, json={
            "current_password": grace.password, "new_password": "a quieter kettle at dawn"})
        assert changed.status_code == 204
        assert await offered() == ({ada.email},) * 2
        as_ada = await login(c, data.TENANT_ID, ada.email, ada.password)
        assert (await c.delete("/v1/tenants/demo/me", headers=as_ada)).status_code == 204
        assert await offered() == (set(), set())
        assert "Sign in to try the API" not in (await c.get("/")).text

async def test_the_landing_page_shows_the_catalogue_a_page_at_a_time(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """It showed every published course at once (250-300 ms of rendering with 300 courses, on a
    page anyone may ask for)."""
    monkeypatch.setattr(landing, "COURSES_A_PAGE", 3)
    async with embedded_app(tmp_path, monkeypatch, ["identity", "content"]) as (app, c):
        c.headers.update(await member(app, c, data.TENANT_ID, ["educator"]))
        base = f"/v1/tenants/{data.TENANT_ID}/courses"
        for n in range(8):
            assert (await c.post(base, json={"id": f"c{n}", "title": f"Course {n}"})).is_success
            await c.post(f"{base}/c{n}/lessons", json={"title": f"Lesson {n}"})
            if n != 4:
                assert (await c.post(f"{base}/c{n}/publish")).status_code == 200
        shown: list[list[str]] = []
        url: str | None = "/"
        while url is not None:
            page = (await c.get(url, headers={"authorization": ""})).text
            shown.append(re.findall(r"<h2 [^>]*><a [^>]*>(Course \d)</a>", page))
            assert page.count("1 lesson &middot; about 10 minutes") == len(shown[-1])
            assert ('href="/">First courses' in page) == (len(shown) > 1)
            more = re.search(r'<a href="(/\?after=[^"]+)" rel="next">More courses</a>', page)
            url = html.unescape(more[1]) if more else None
        assert shown == [["Course 0", "Course 1", "Course 2"], ["Course 3", "Course 5", "Course 6"],
                         ["Course 7"]]
        bad = await c.get("/?after=not-a-cursor")
        assert (bad.status_code, bad.json()["code"]) == (422, "bad_cursor")
        # a cursor at a title of 200 emoji (3,200 characters before 6 Dec), and none at all
        past = await c.get("/", params={"after": cursor("🐍" * 200, "c9")})
        assert past.status_code == 200, past.text
        assert re.findall(r"<h2 [^>]*><a [^>]*>(Course \d)</a>", past.text) == []
        first = await c.get("/?after=")
        assert re.findall(r"<h2 [^>]*><a [^>]*>(Course \d)</a>", first.text) == shown[0]


async def test_the_seed_runs_on_first_start_only(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    await _get_all(tmp_path, monkeypatch)
    courses, users = await _get_all(tmp_path, monkeypatch, "/v1/tenants/demo/courses",
                                    "/v1/tenants/demo/users")
    assert [(c["id"], c["version"]) for c in courses.json()["items"]] == [("thinking-in-python", 1)]
    assert len(users.json()["items"]) == 2


@pytest.fixture
async def content(tmp_path: Path) -> AsyncIterator[ContentService]:
    db = SqliteDB(tmp_path / "content.sqlite3")
    store = EmbeddedContentStore(db, registry)
    await store.setup()
    yield ContentService(store)
    await db.close()


async def test_an_interrupted_seed_is_completed(content: ContentService) -> None:
    first = data.LESSONS[0]
    await content.add_concept("demo", NewConcept(id="variables", name="Variables"))
    await content.create_course("demo", NewCourse(id=data.COURSE_ID, title=data.COURSE_TITLE))
    await content.add_lesson("demo", data.COURSE_ID, NewLesson(
        title=first.title, teaches=list(first.teaches),
        blocks=[MarkdownBlock(markdown=b) for b in first.blocks]))
    await seed_demo(content)
    detail = await content.course_detail("demo", data.COURSE_ID)
    assert detail.version == 1
    assert [x.title for x in detail.lessons] == [x.title for x in data.LESSONS]
    await seed_demo(content)
    assert (await content.course("demo", data.COURSE_ID)).version == 1


async def test_the_seed_leaves_a_tenant_with_courses_of_its_own_alone(
        content: ContentService) -> None:
    await content.create_course("demo", NewCourse(id="mine", title="Mine"))
    await seed_demo(content)
    assert [c.id for c in (await content.courses("demo", None)).items] == ["mine"]
    assert await content.concepts("demo") == []


def outline(course: Course, *lessons: Lesson) -> CourseOutline:
    """`course` and `lessons` as the landing page gets them."""
    return CourseOutline.of(CourseView.draft(course), [
        LessonOutline.model_validate(x.model_dump(), context=STORED) for x in lessons])


def test_the_landing_page_escapes_what_it_shows() -> None:
    course = Course.create("demo", NewCourse(
        id="xss", title="<script>alert(1)</script>", summary='"quoted" & <b>bold</b>'))
    page = render("demo", [outline(course)])
    assert "<script>alert" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&quot;quoted&quot; &amp; &lt;b&gt;bold&lt;/b&gt;" in page
    assert re.search(r"<style>.*</style>", page, re.S)


def test_the_landing_page_sets_each_course_in_its_own_language_and_direction() -> None:
    """An Arabic lesson row read `1. 10 المتغيرات والقيم min` in an English page: its
    title took the row's direction with it."""
    course = Course.create("demo", NewCourse(id="ar", title="مقدمة في بايثون",
                                             summary="دورة قصيرة.", language="ar"))
    lesson = Lesson.create("demo", "ar", NewLesson(title="المتغيرات والقيم", language="ar"))
    page = render("demo", [outline(course, lesson)])
    assert '<h2 lang="ar" dir="auto">' in page
    assert '<p lang="ar" dir="auto">دورة قصيرة.</p>' in page
    # its lessons are listed right to left, as its titles read (the list ran left to right)
    assert '<ol dir="rtl"><li>' in page
    assert '<bdi lang="ar">المتغيرات والقيم</bdi></a> <bdi class="meta">10 min</bdi>' in page


def test_a_lesson_without_a_language_of_its_own_is_in_its_course_s() -> None:
    """A lesson's `language` None (its course's) was written `lang="None"`, which a screen
    reader takes for a language; and one long word made the page scroll sideways on a phone."""
    course = Course.create("demo", NewCourse(id="ar", title="مقدمة في بايثون", language="ar"))
    lesson = Lesson.create("demo", "ar", NewLesson(title="Supercalifragilistic" * 4,
                                                   teaches=["x"]))
    assert lesson.language is None
    page = render("demo", [outline(course, lesson)],
                  paged=(True, None))
    assert 'lang="None"' not in page
    assert f'<bdi lang="ar">{"Supercalifragilistic" * 4}</bdi>' in page
    assert "h1,h2,p,li{overflow-wrap:anywhere}" in page
    assert '<p lang="ar" dir="auto"></p>' not in page, "no empty summary"
    assert '<span class="sr">teaches </span>x' in page
    assert "<title>Bloop: more courses</title>" in page
    assert '<nav aria-label="Site">' in page
    assert '<nav class="pages" aria-label="Pages">' in page


def test_the_landing_page_says_when_there_is_nothing_yet() -> None:
    assert "No published courses yet" in render("demo", [], with_users=False)


def test_the_landing_page_shows_sign_in_only_with_accounts_to_show() -> None:
    assert "Sign in" not in render("demo", [])
    shown = render("demo", [], accounts=[data.Person("o'brien@demo.dev", "<Pat>", ("learner",),
                                                      "a & b")], origin="https://bloop.example")
    assert "&lt;Pat&gt; (learner)" in shown
    assert "<code>a &amp; b</code>" in shown
    assert "curl -s -X POST https://bloop.example/v1/auth/token" in shown
    # quoted for a POSIX shell, then escaped for HTML
    assert ("-d &#x27;username=o&#x27;&quot;&#x27;&quot;&#x27;brien@demo.dev&#x27;"
            " -d &#x27;password=a &amp; b&#x27;") in shown
