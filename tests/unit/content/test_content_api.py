"""content's routes: status codes and problem+json bodies, through the real app, signed in as
an educator of the tenant (and as a learner where drafts are concerned)."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from tests.support import NESTED_CURSOR, embedded_app, eventually, member, pages_of


@pytest.fixture
async def app_client(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                     ) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    async with embedded_app(tmp_path, monkeypatch, ["identity", "content"]) as (app, c):
        c.headers.update(await member(app, c, "acme", ["educator"]))
        c.headers["X-Learner"] = (await member(app, c, "acme", ["learner"]))["Authorization"]
        yield app, c


@pytest.fixture
def client(app_client: tuple[FastAPI, httpx.AsyncClient]) -> httpx.AsyncClient:
    return app_client[1]


def as_learner(client: httpx.AsyncClient) -> dict[str, str]:
    return {"Authorization": client.headers["X-Learner"]}


BASE = "/v1/tenants/acme"


async def test_author_and_publish_a_course(client: httpx.AsyncClient) -> None:
    r = await client.post(f"{BASE}/concepts", json={"id": "loops", "name": "Loops"})
    assert r.status_code == 201, r.text
    r = await client.post(f"{BASE}/courses", json={"id": "py", "title": "Python", "tags": ["x"]})
    assert r.status_code == 201, r.text
    r = await client.post(f"{BASE}/courses/py/lessons", json={
        "title": "Loops", "estimated_minutes": 5, "teaches": ["loops"],
        "blocks": [{"type": "markdown", "markdown": "A `for` loop repeats."}]})
    assert r.status_code == 201, r.text
    lesson = r.json()
    assert (await client.get(f"{BASE}/courses")).json()["items"] == []

    r = await client.post(f"{BASE}/courses/py/publish")
    assert r.status_code == 200
    assert r.json()["version"] == 1
    [listed] = (await client.get(f"{BASE}/courses")).json()["items"]
    assert listed["id"] == "py"
    detail = (await client.get(f"{BASE}/courses/py")).json()
    assert [x["id"] for x in detail["lessons"]] == [lesson["id"]]
    assert (await client.get(f"{BASE}/lessons/{lesson['id']}")).json() == lesson
    assert [c["id"] for c in (await client.get(f"{BASE}/concepts")).json()["items"]] == ["loops"]


async def test_a_tag_too_long_once_canonical_is_refused(client: httpx.AsyncClient) -> None:
    """Lowercasing `İ` and putting U+0958 in NFC double them: checked before, 500."""
    r = await client.post(f"{BASE}/courses", json={"id": "py", "title": "Python"})
    assert r.status_code == 201, r.text
    for tag in ("\u0958" * 40, "\u0130" * 40):
        for url, body in ((f"{BASE}/courses/py/lessons", {"title": "t", "blocks": []}),
                          (f"{BASE}/courses", {"title": "t"})):
            r = await client.post(url, json=body | {"tags": ["ok", tag]})
            assert (r.status_code, r.json()["code"]) == (422, "validation_failed"), r.text
            assert [e["loc"] for e in r.json()["errors"]] == [["body", "tags", "1"]]
        r = await client.patch(f"{BASE}/courses/py", json={"tags": [tag]})
        assert r.status_code == 422, r.text


async def test_a_concept_is_renamed_and_keeps_its_id(client: httpx.AsyncClient) -> None:
    await client.post(f"{BASE}/concepts", json={"id": "loops", "name": "Lopos"})
    r = await client.patch(f"{BASE}/concepts/loops", json={"name": "Loops"})
    assert (r.status_code, r.json()) == (200, {
        "id": "loops", "tenant": "acme", "name": "Loops", "description": "", "version": 2})
    assert r.headers["ETag"] == '"2"'
    r = await client.patch(f"{BASE}/concepts/loops", json={"description": "Repeating."})
    assert r.json()["name"] == "Loops"
    assert (await client.get(f"{BASE}/concepts")).json()["items"] == [r.json()]
    for bad in ({}, {"name": " "}, {"id": "other"}):
        r = await client.patch(f"{BASE}/concepts/loops", json=bad)
        assert (r.status_code, r.json()["code"]) == (422, "validation_failed"), bad
    r = await client.patch(f"{BASE}/concepts/ghost", json={"name": "G"})
    assert (r.status_code, r.json()["code"]) == (404, "not_found")
    r = await client.patch(f"{BASE}/concepts/loops", json={"name": "X"}, headers=as_learner(client))
    assert r.status_code == 403


async def test_concept_edits_racing_each_other_lose_nothing(client: httpx.AsyncClient) -> None:
    await client.post(f"{BASE}/concepts", json={"id": "loops", "name": "Lopos"})
    url = f"{BASE}/concepts/loops"
    # each side of a concept fixed at once: both stay
    both = await asyncio.gather(*(client.patch(url, json=body) for body in (
        {"name": "Loops"}, {"description": "Repeating."}) * 3))
    assert [r.status_code for r in both] == [200] * 6
    r = await client.get(f"{BASE}/concepts")
    [concept] = r.json()["items"]
    assert (concept["name"], concept["description"], concept["version"]) == (
        "Loops", "Repeating.", 7)
    # two editors who read version 7 and each rewrite the name: the second is told, not lost
    rivals = await asyncio.gather(*(client.patch(url, json={"name": n}, headers={
        "If-Match": '"7"'}) for n in ("Loops and iteration", "Iteration")))
    assert sorted(r.status_code for r in rivals) == [200, 409]
    [lost] = [r.json() for r in rivals if r.status_code == 409]
    assert (lost["code"], lost["current_version"]) == ("stale_version", 8)
    r = await client.patch(url, json={"name": "x"}, headers={"If-Match": "eight"})
    assert (r.status_code, r.json()["code"]) == (400, "bad_if_match")


async def test_concepts_come_a_page_at_a_time(client: httpx.AsyncClient) -> None:
    """They came all at once whatever `limit` said, with `next` null: one answer for a tenant
    with 50,000 concepts."""
    for cid in ("c3", "c0", "c4", "c1", "c2"):
        assert (await client.post(f"{BASE}/concepts", json={"id": cid, "name": cid})
                ).status_code == 201
    pages = await pages_of(client, f"{BASE}/concepts", 2, as_learner(client))
    assert [[c["id"] for c in page] for page in pages] == [["c0", "c1"], ["c2", "c3"], ["c4"]]
    assert len((await client.get(f"{BASE}/concepts")).json()["items"]) == 5
    for params, code in (({"limit": 201}, "validation_failed"), ({"limit": 0}, "validation_failed"),
                         ({"after": "not-a-cursor"}, "bad_cursor"),
                         ({"after": NESTED_CURSOR}, "bad_cursor")):
        r = await client.get(f"{BASE}/concepts", params=params)
        assert (r.status_code, r.json()["code"]) == (422, code), params
        assert r.headers["content-type"].startswith("application/problem+json")
    # added between two pages, before the cursor and after it: nothing twice or left out
    first = (await client.get(f"{BASE}/concepts", params={"limit": 2})).json()
    for cid in ("c0a", "c5"):
        await client.post(f"{BASE}/concepts", json={"id": cid, "name": cid})
    rest = await pages_of(client, f"{BASE}/concepts", 2, after=first["next"])
    assert [c["id"] for page in [first["items"], *rest] for c in page] == [
        "c0", "c1", "c2", "c3", "c4", "c5"]


async def test_stale_edits_and_bad_input_are_problems(client: httpx.AsyncClient) -> None:
    await client.post(f"{BASE}/courses", json={"id": "py", "title": "Python"})
    lesson = (await client.post(f"{BASE}/courses/py/lessons", json={"title": "One"})).json()
    url = f"{BASE}/lessons/{lesson['id']}"
    r = await client.patch(url, json={"version": 1, "title": "One, edited"})
    assert r.status_code == 200
    assert r.json()["version"] == 2
    r = await client.patch(url, json={"version": 1, "title": "Late"})
    assert r.status_code == 409
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["code"] == "stale_version"
    assert r.json()["current_version"] == 2

    r = await client.post(f"{BASE}/courses", json={"title": "X", "secret": 1})
    assert r.status_code == 422
    assert r.json()["code"] == "validation_failed"
    r = await client.post(f"{BASE}/courses/py/lessons", json={"title": "L", "teaches": ["nope"]})
    assert r.status_code == 422
    assert r.json()["code"] == "unknown_concepts"
    r = await client.post(f"{BASE}/courses", json={"id": "py", "title": "Again"})
    assert r.status_code == 409
    assert (await client.post(f"{BASE}/courses/none/publish")).status_code == 404
    assert (await client.get(f"{BASE}/courses?status=retired")).status_code == 422
    assert (await client.get("/v1/tenants/other/courses/py")).status_code == 403


async def listed(client: httpx.AsyncClient, query: str, size: int,
                 headers: dict[str, str] | None = None) -> tuple[list[str], int]:
    """Every course id `GET …/courses` lists, following `next`; and how many pages it took."""
    ids: list[str] = []
    url, pages = f"{BASE}/courses?{query}&limit={size}", 0
    while True:
        r = await client.get(url, headers=headers)
        assert r.status_code == 200, r.text
        pages += 1
        ids += [c["id"] for c in r.json()["items"]]
        if r.json()["next"] is None:
            return ids, pages
        assert len(r.json()["items"]) == size
        url = f"{BASE}/courses?{query}&limit={size}&after={r.json()['next']}"


async def test_courses_come_a_page_at_a_time(app_client: tuple[FastAPI, httpx.AsyncClient]) -> None:
    """Past the first page too (there was none: a tenant's 201st course could not be listed),
    and full pages even where the caller may not see every course in between."""
    app, client = app_client
    other = await member(app, client, "acme", ["educator"])
    for n in range(7):
        r = await client.post(f"{BASE}/courses", json={"id": f"c{n}", "title": f"Course {n % 3}"})
        assert r.status_code == 201, r.text
        if n % 2 == 0:
            await client.post(f"{BASE}/courses/c{n}/lessons", json={"title": "One"})
            assert (await client.post(f"{BASE}/courses/c{n}/publish")).status_code == 200
    for n in range(3):  # drafts the other educator may not see
        await client.post(f"{BASE}/courses", json={"id": f"d{n}", "title": "Course 1"})
    published = ["c0", "c6", "c4", "c2"]  # by title, then id
    for size in (1, 3, 4, 100):
        assert (await listed(client, "status=published", size, as_learner(client)))[0] == published
    assert await listed(client, "status=all", 3) == (
        ["c0", "c3", "c6", "c1", "c4", "d0", "d1", "d2", "c2", "c5"], 4)
    assert await listed(client, "status=all", 2, other) == (published, 2)
    assert await listed(client, "status=draft", 2, other) == ([], 1)

    for after in ("not-a-cursor", NESTED_CURSOR):
        r = await client.get(f"{BASE}/courses", params={"after": after})
        assert (r.status_code, r.json()["code"]) == (422, "bad_cursor")


async def test_courses_of_the_longest_titles_page_on_over_http_and_graphql(
        client: httpx.AsyncClient) -> None:
    """Before, a cursor held its title's JSON in ASCII (12 bytes an emoji, 18 for "ΐ", which
    casefolds to three characters) and `after` took 1,000 characters: a course of 120 Cyrillic
    letters ending a page gave a `next` the list then refused (422)."""
    titles = {"emoji": "🐍" * 200, "iota": "ΐ" * 200, "ffi": "ﬃ" * 200,
              "ru-" + "x" * 60: ("Программирование на Python: " * 8)[:200].strip(), "a": "A"}
    for cid, title in titles.items():
        r = await client.post(f"{BASE}/courses", json={"id": cid, "title": title})
        assert r.status_code == 201, r.text
    order = sorted(titles, key=lambda cid: (titles[cid].casefold(), cid))
    assert await listed(client, "status=all", 1) == (order, len(order))
    after, seen = None, []
    while True:
        r = await client.post("/graphql", json={"query": """query ($after: String) {
            courses(tenant: "acme", status: ALL, first: 1, after: $after) { items { id } next }
        }""", "variables": {"after": after}})
        assert "errors" not in r.json(), r.json()
        page = r.json()["data"]["courses"]
        seen += [c["id"] for c in page["items"]]
        if (after := page["next"]) is None:
            break
    assert seen == order


async def test_learners_page_by_the_titles_they_read(client: httpx.AsyncClient) -> None:
    """Before, courses were listed by their drafts' titles: a learner read an unpublished title
    in the cursor (base64 of its JSON), and the order followed titles they cannot see, with
    "Zeta" before "alpha"."""
    for cid, title in (("algo-101", "Algorithms"), ("zeta", "Zeta"), ("alpha", "alpha")):
        await client.post(f"{BASE}/courses", json={"id": cid, "title": title})
        await client.post(f"{BASE}/courses/{cid}/lessons", json={"title": "One"})
        assert (await client.post(f"{BASE}/courses/{cid}/publish")).status_code == 200
    r = await client.patch(f"{BASE}/courses/zeta", json={"title": "Aaa unreleased: merger"})
    assert r.status_code == 200, r.text

    learner = as_learner(client)
    seen, url = [], f"{BASE}/courses?limit=1"
    while url:
        r = await client.get(url, headers=learner)
        assert r.status_code == 200, r.text
        seen += [c["title"] for c in r.json()["items"]]
        after = r.json()["next"]
        if after is not None:
            assert "unreleased" not in base64.urlsafe_b64decode(after + "==").decode()
        url = after and f"{BASE}/courses?limit=1&after={after}"
    assert seen == ["Algorithms", "alpha", "Zeta"]
    assert (await listed(client, "status=all", 1))[0] == ["algo-101", "alpha", "zeta"]


async def test_a_draft_course_can_be_deleted_a_published_one_stays(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Before, a course made by mistake stayed for good. Its draft lessons go with it; learning
    never knew them (it knows published lessons only)."""
    async with embedded_app(tmp_path, monkeypatch, ["identity", "content", "learning"]) as (app, c):
        owner = await member(app, c, "acme", ["educator"])
        co_author = await member(app, c, "acme", ["educator"])
        admin = await member(app, c, "acme", ["tenant_admin"])
        learner = await member(app, c, "acme", ["learner"])
        await c.post(f"{BASE}/concepts", json={"id": "loops", "name": "Loops"}, headers=owner)
        for cid in ("oops", "kept", "admins"):
            r = await c.post(f"{BASE}/courses", json={"id": cid, "title": cid}, headers=owner)
            assert r.status_code == 201, r.text
        lessons = []
        for cid in ("oops", "kept"):
            r = await c.post(f"{BASE}/courses/{cid}/lessons", headers=owner,
                             json={"title": "Loops", "teaches": ["loops"]})
            lessons.append(r.json())
            r = await c.patch(f"{BASE}/lessons/{r.json()['id']}", headers=owner,
                              json={"version": 1, "title": "Loops, again"})
            assert r.status_code == 200, r.text
        learning = app.state.learning.state["service"]

        async def projected(lesson_id: str) -> bool:
            return await learning.repo.get_lesson("acme", lesson_id) is not None

        async def learning_caught_up() -> bool:
            for relay in app.state.platform.relays:
                await relay.flush()
            return bool(await app.state.platform.bus.drained("learning"))

        await eventually(learning_caught_up, timeout_s=15, what="learning read the edits")
        assert [await projected(x["id"]) for x in lessons] == [False, False]
        co_author_id = (await c.get("/v1/tenants/acme/me", headers=co_author)).json()["id"]
        r = await c.put(f"{BASE}/courses/oops/co-authors/{co_author_id}", headers=owner)
        assert r.status_code == 200, r.text
        assert (await c.post(f"{BASE}/courses/kept/publish", headers=owner)).status_code == 200

        def problem(r: httpx.Response, status: int, code: str) -> None:
            assert (r.status_code, r.json()["code"]) == (status, code), r.text

        problem(await c.delete(f"{BASE}/courses/oops", headers=co_author), 403, "not_the_owner")
        problem(await c.delete(f"{BASE}/courses/oops", headers=learner), 403, "missing_role")
        problem(await c.delete(f"{BASE}/courses/oops?revision=0", headers=owner), 409,
                "stale_version")
        problem(await c.delete(f"{BASE}/courses/kept", headers=owner), 409, "course_published")
        problem(await c.delete(f"{BASE}/courses/none", headers=owner), 404, "not_found")

        assert (await c.delete(f"{BASE}/courses/oops", headers=owner)).status_code == 204
        assert (await c.delete(f"{BASE}/courses/admins", headers=admin)).status_code == 204
        problem(await c.get(f"{BASE}/courses/oops", headers=owner), 404, "not_found")
        problem(await c.get(f"{BASE}/lessons/{lessons[0]['id']}", headers=owner), 404, "not_found")
        listed = (await c.get(f"{BASE}/courses?status=all", headers=owner)).json()["items"]
        assert [x["id"] for x in listed] == ["kept"]

        await eventually(learning_caught_up, timeout_s=15, what="learning read the publication")
        assert [await projected(x["id"]) for x in lessons] == [False, True]


async def test_lessons_can_be_put_in_another_order(client: httpx.AsyncClient) -> None:
    """Before, lessons kept the order they were added in, for good."""
    await client.post(f"{BASE}/courses", json={"id": "py", "title": "Python"})
    ids = [(await client.post(f"{BASE}/courses/py/lessons", json={"title": t})).json()["id"]
           for t in ("Loops", "Names", "Values")]
    assert (await client.post(f"{BASE}/courses/py/publish")).status_code == 200
    order = f"{BASE}/courses/py/lesson-order"
    wanted = [ids[1], ids[2], ids[0]]
    loops = f"{BASE}/lessons/{ids[0]}"
    before = await client.get(loops)
    seen = (await client.get(loops, headers=as_learner(client))).json()["position"]
    r = await client.put(order, json={"lessons": wanted})
    assert (r.status_code, r.json()) == (200, {"lessons": wanted})
    r = await client.get(loops, headers={"If-None-Match": before.headers["etag"]})
    assert r.status_code == 200
    assert (r.json()["version"], r.json()["position"]) == (
        before.json()["version"] + 1, before.json()["position"] + 5)
    r = await client.patch(loops, json={"title": "Late"},
                           headers={"If-Match": before.headers["etag"]})
    assert (r.status_code, r.json()["code"]) == (409, "stale_version")
    draft = (await client.get(f"{BASE}/courses/py")).json()
    assert [x["title"] for x in draft["lessons"]] == ["Names", "Values", "Loops"]
    published = (await client.get(f"{BASE}/courses/py", headers=as_learner(client))).json()
    assert [x["title"] for x in published["lessons"]] == ["Loops", "Names", "Values"]
    assert (await client.get(loops, headers=as_learner(client))).json()["position"] == seen
    assert (await client.post(f"{BASE}/courses/py/publish")).status_code == 200
    published = (await client.get(f"{BASE}/courses/py", headers=as_learner(client))).json()
    assert [x["title"] for x in published["lessons"]] == ["Names", "Values", "Loops"]
    places = [(await client.get(f"{BASE}/lessons/{x}", headers=as_learner(client))).json()[
        "position"] for x in wanted]
    assert places == sorted(places) == [x["position"] for x in published["lessons"]]

    for bad in (ids[:2], [*ids, ids[0]], [*ids, "ghost"], []):
        r = await client.put(order, json={"lessons": bad})
        assert (r.status_code, r.json()["code"]) == (422, "lesson_order_mismatch"), bad
    r = await client.put(order, json={"lessons": [*ids, "ghost"]})
    assert (r.json()["missing"], r.json()["unknown"]) == ([], ["ghost"])
    r = await client.put(order, json={"lessons": ids}, headers=as_learner(client))
    assert r.status_code == 403
    r = await client.put(f"{BASE}/courses/nope/lesson-order", json={"lessons": []})
    assert r.status_code == 404
    assert [x["title"] for x in (await client.get(f"{BASE}/courses/py")).json()["lessons"]] == [
        "Names", "Values", "Loops"]


async def test_edits_name_their_version_in_if_match_or_the_body(client: httpx.AsyncClient) -> None:
    await client.post(f"{BASE}/courses", json={"id": "py", "title": "Python"})
    lesson = (await client.post(f"{BASE}/courses/py/lessons", json={"title": "One"})).json()
    url = f"{BASE}/lessons/{lesson['id']}"

    def problem(r: httpx.Response, status: int, code: str) -> None:
        assert r.status_code == status, r.text
        assert r.headers["content-type"].startswith("application/problem+json")
        assert r.json()["code"] == code

    r = await client.patch(url, json={"title": "Two"}, headers={"If-Match": '"1"'})
    assert (r.status_code, r.json()["version"], r.headers["etag"]) == (200, 2, '"2"')
    problem(await client.patch(url, json={"title": "Late"}, headers={"If-Match": '"1"'}),
            409, "stale_version")
    r = await client.patch(url, json={"title": "Three"}, headers={"If-Match": 'W/"2"'})
    assert (r.status_code, r.json()["version"]) == (200, 3)
    for bad in ('"3", "4"', '"three"', "*"):
        problem(await client.patch(url, json={"title": "X"}, headers={"If-Match": bad}),
                400, "bad_if_match")
    problem(await client.patch(url, json={"version": 2, "title": "X"}, headers={"If-Match": '"3"'}),
            422, "version_mismatch")
    problem(await client.patch(url, json={"title": "X"}), 428, "version_required")
    problem(await client.delete(url, headers={"If-Match": '"2"'}), 409, "stale_version")
    assert (await client.get(url)).json()["title"] == "Three"
    assert (await client.delete(url, headers={"If-Match": '"3"'})).status_code == 204


async def test_a_course_edit_names_its_revision_in_if_match_or_the_body(
        client: httpx.AsyncClient) -> None:
    """Before, `If-Match` was ignored on a course: an edit made against an old revision
    silently overwrote the newer one, and a malformed one was taken too."""
    await client.post(f"{BASE}/courses", json={"id": "py", "title": "Python"})
    url = f"{BASE}/courses/py"

    def problem(r: httpx.Response, status: int, code: str) -> None:
        assert r.status_code == status, r.text
        assert r.headers["content-type"].startswith("application/problem+json")
        assert r.json()["code"] == code

    r = await client.patch(url, json={"title": "Python 3"}, headers={"If-Match": '"0"'})
    assert (r.status_code, r.json()["revision"]) == (200, 1)
    late = await client.patch(url, json={"title": "Late"}, headers={"If-Match": '"0"'})
    problem(late, 409, "stale_version")
    assert late.json()["current_revision"] == 1
    assert r.headers["etag"] == '"1"'
    r = await client.patch(url, json={"summary": "S"}, headers={"If-Match": 'W/"1"'})
    assert (r.status_code, r.json()["revision"]) == (200, 2)
    for bad in ("garbage", '"2", "3"', '"two"', "*"):
        problem(await client.patch(url, json={"title": "X"}, headers={"If-Match": bad}),
                400, "bad_if_match")
    problem(await client.patch(url, json={"revision": 1, "title": "X"},
                               headers={"If-Match": '"2"'}), 422, "version_mismatch")
    problem(await client.patch(url, json={"revision": 1, "title": "X"}), 409, "stale_version")
    r = await client.patch(url, json={"revision": 2, "title": "Python, again"},
                           headers={"If-Match": '"2"'})
    assert (r.status_code, r.json()["revision"]) == (200, 3)
    r = await client.patch(url, json={"level": "advanced"})  # naming none, it is applied
    assert (r.status_code, r.json()["revision"]) == (200, 4)
    assert (await client.get(url)).json()["title"] == "Python, again"


async def test_deleting_or_archiving_a_course_names_its_revision_in_if_match_or_the_query(
        client: httpx.AsyncClient) -> None:
    """Before, they read `revision` from the query only: an `If-Match` naming an old revision,
    or a malformed one, was ignored, and the course deleted or archived all the same."""
    for cid in ("py", "gone"):
        await client.post(f"{BASE}/courses", json={"id": cid, "title": "Python"})
    await client.post(f"{BASE}/courses/py/lessons", json={"title": "One"})
    assert (await client.post(f"{BASE}/courses/py/publish")).status_code == 200
    url = f"{BASE}/courses/py"

    def problem(r: httpx.Response, status: int, code: str) -> None:
        assert r.status_code == status, r.text
        assert r.headers["content-type"].startswith("application/problem+json")
        assert r.json()["code"] == code

    revision = (await client.get(url)).json()["revision"]
    stale = await client.post(f"{url}/archive", headers={"If-Match": f'"{revision + 1}"'})
    problem(stale, 409, "stale_version")
    assert stale.json()["current_revision"] == revision
    problem(await client.post(f"{url}/archive", params={"revision": revision + 1},
                              headers={"If-Match": f'"{revision}"'}), 422, "version_mismatch")
    for bad in ("garbage", '"two"', f'"{revision}", "{revision + 1}"', "*"):
        problem(await client.post(f"{url}/archive", headers={"If-Match": bad}),
                400, "bad_if_match")
    r = await client.post(f"{url}/archive", headers={"If-Match": f'W/"{revision}"'})
    assert (r.status_code, r.json()["status"]) == (200, "archived"), r.text
    assert r.headers["etag"] == f'"{r.json()["revision"]}"' != f'"{revision}"'
    problem(await client.post(f"{url}/unarchive", headers={"If-Match": f'"{revision}"'}),
            409, "stale_version")
    r = await client.post(f"{url}/unarchive", headers={"If-Match": r.headers["etag"]},
                          params={"revision": r.json()["revision"]})
    assert (r.status_code, r.json()["status"]) == (200, "published"), r.text

    gone = f"{BASE}/courses/gone"
    revision = (await client.get(gone)).json()["revision"]
    problem(await client.delete(gone, headers={"If-Match": f'"{revision + 1}"'}),
            409, "stale_version")
    problem(await client.delete(gone, params={"revision": revision + 1},
                                headers={"If-Match": f'"{revision}"'}), 422, "version_mismatch")
    problem(await client.delete(gone, headers={"If-Match": "garbage"}), 400, "bad_if_match")
    assert (await client.get(gone)).status_code == 200
    r = await client.delete(gone, headers={"If-Match": f'"{revision}"'})
    assert r.status_code == 204, r.text
    assert (await client.get(gone)).status_code == 404


async def test_a_lesson_not_changed_since_the_callers_copy_is_a_304(
        client: httpx.AsyncClient) -> None:
    await client.post(f"{BASE}/courses", json={"id": "py", "title": "Python"})
    lesson = (await client.post(f"{BASE}/courses/py/lessons", json={"title": "One"})).json()
    assert (await client.post(f"{BASE}/courses/py/publish")).status_code == 200
    url, learner = f"{BASE}/lessons/{lesson['id']}", as_learner(client)
    first = await client.get(url, headers=learner)
    etag = first.headers["etag"]
    for tags in (etag, f"W/{etag}", f'"other", {etag}', "*"):
        r = await client.get(url, headers={**learner, "If-None-Match": tags})
        assert (r.status_code, r.content, r.headers["etag"]) == (304, b"", etag), tags
    assert (await client.get(url, headers={**learner, "If-None-Match": '"other"'})).json() == (
        first.json())
    draft = await client.get(url)
    assert (await client.get(url, headers={"If-None-Match": draft.headers["etag"]})
            ).status_code == 304
    await client.patch(url, json={"version": 1, "title": "One, edited"})
    assert (await client.get(url, headers={"If-None-Match": draft.headers["etag"]})
            ).status_code == 200
    assert (await client.get(url, headers={**learner, "If-None-Match": etag})).status_code == 304


async def test_a_course_list_counts_the_lessons_its_detail_shows(
        app_client: tuple[FastAPI, httpx.AsyncClient], monkeypatch: pytest.MonkeyPatch) -> None:
    """Before, a published course's list entry counted every lesson of its publication, those
    deleted since included, while its detail left them out."""
    app, client = app_client
    for cid in ("py", "js"):
        await client.post(f"{BASE}/courses", json={"id": cid, "title": cid})
        ids = [(await client.post(f"{BASE}/courses/{cid}/lessons", json={"title": t})).json()[
            "id"] for t in ("One", "Two", "Three")]
        assert (await client.post(f"{BASE}/courses/{cid}/publish")).status_code == 200
    assert (await client.delete(f"{BASE}/lessons/{ids[1]}")).status_code == 204
    details = {}
    for who, headers in (("learner", as_learner(client)), ("author", {})):
        for cid in ("py", "js"):
            detail = (await client.get(f"{BASE}/courses/{cid}", headers=headers)).json()
            assert detail["lesson_count"] == len(detail["lessons"])
            details[who, cid] = detail["lesson_count"]
    assert details == {("learner", "py"): 3, ("learner", "js"): 2,
                       ("author", "py"): 3, ("author", "js"): 2}

    async def per_course(*_: object) -> None:
        raise AssertionError("a course list reads no course's lessons on their own")

    service = app.state.content.state["service"]
    monkeypatch.setattr(service.repo, "list_lessons", per_course)
    for who, headers, status in (("learner", as_learner(client), "published"),
                                 ("author", {}, "all")):
        r = await client.get(f"{BASE}/courses?status={status}", headers=headers)
        assert r.status_code == 200, r.text
        listed = {(who, c["id"]): c["lesson_count"] for c in r.json()["items"]}
        assert listed == {k: v for k, v in details.items() if k[0] == who}


async def test_learners_read_published_content_and_never_drafts(client: httpx.AsyncClient) -> None:
    await client.post(f"{BASE}/courses", json={"id": "py", "title": "Python"})
    lesson = (await client.post(f"{BASE}/courses/py/lessons", json={"title": "One"})).json()
    learner = as_learner(client)
    assert (await client.get(f"{BASE}/courses/py", headers=learner)).status_code == 404
    assert (await client.get(f"{BASE}/lessons/{lesson['id']}", headers=learner)).status_code == 404
    r = await client.get(f"{BASE}/courses?status=draft", headers=learner)
    assert r.status_code == 403
    assert r.json()["code"] == "missing_role"
    assert (await client.get(f"{BASE}/courses?status=all")).json()["items"][0]["id"] == "py"

    r = await client.post(f"{BASE}/courses", json={"title": "Mine"}, headers=learner)
    assert r.status_code == 403
    r = await client.patch(f"{BASE}/lessons/{lesson['id']}", json={"version": 1, "title": "X"},
                           headers=learner)
    assert r.status_code == 403
    assert (await client.get(f"{BASE}/lessons/{lesson['id']}")).json()["title"] == "One"

    assert (await client.post(f"{BASE}/courses/py/publish")).status_code == 200
    assert (await client.get(f"{BASE}/courses/py", headers=learner)).status_code == 200
    assert (await client.get(f"{BASE}/lessons/{lesson['id']}", headers=learner)).status_code == 200
    [listed] = (await client.get(f"{BASE}/courses", headers=learner)).json()["items"]
    assert listed["id"] == "py"


async def test_what_a_caller_may_do_with_many_lessons_is_one_question(
        app_client: tuple[FastAPI, httpx.AsyncClient]) -> None:
    """`GET …/lesson-access` answers for many lessons as `GET …/lessons/{id}` answers for one:
    the version each caller reads (the draft's to the course's authors and the admins), left
    out where that answers 404."""
    app, client = app_client
    await client.post(f"{BASE}/courses", json={"id": "py", "title": "Python"})
    moved, same, gone = [(await client.post(f"{BASE}/courses/py/lessons", json={
        "title": t})).json()["id"] for t in ("Moved on", "Same", "Gone")]
    assert (await client.post(f"{BASE}/courses/py/publish")).status_code == 200
    fresh = (await client.post(f"{BASE}/courses/py/lessons", json={"title": "New"})).json()["id"]
    r = await client.patch(f"{BASE}/lessons/{moved}", json={"version": 1, "title": "Moved"})
    assert r.status_code == 200, r.text
    assert (await client.delete(f"{BASE}/lessons/{gone}")).status_code == 204
    asked = [fresh, moved, "ghost", same, gone, moved]
    callers = {"author": {}, "learner": as_learner(client),
               **{role: await member(app, client, "acme", [role])
                  for role in ("educator", "teaching_assistant", "tenant_admin")}}
    answers = {}
    for name, headers in callers.items():
        r = await client.get(f"{BASE}/lesson-access", params={"ids": ",".join(asked)},
                             headers=headers)
        assert r.status_code == 200, r.text
        answers[name] = [(x["id"], x["version"], x["may_edit"]) for x in r.json()["items"]]
        one_at_a_time = []
        for lesson_id in dict.fromkeys(asked):
            shown = await client.get(f"{BASE}/lessons/{lesson_id}", headers=headers)
            if shown.status_code == 200:
                one_at_a_time.append((lesson_id, shown.json()["version"]))
        assert [x[:2] for x in answers[name]] == one_at_a_time, name
    assert answers["author"] == answers["tenant_admin"] == [
        (fresh, 1, True), (moved, 2, True), (same, 1, True)]
    for name in ("learner", "educator", "teaching_assistant"):
        assert answers[name] == [(moved, 1, False), (same, 1, False)], name

    for ids, why in ((",".join(f"l{n}" for n in range(201)), "at most 200"),
                     (f"{same},{'x' * 65}", "1 to 64"), (f"{same},", "1 to 64"), ("", "")):
        r = await client.get(f"{BASE}/lesson-access", params={"ids": ids})
        assert r.status_code == 422, r.text
        assert r.headers["content-type"] == "application/problem+json"
        assert (r.json()["code"], why in r.json()["detail"]) == ("validation_failed", True)
    r = await client.get(f"{BASE}/lesson-access", params={"ids": same},
                         headers={"Authorization": ""})
    assert r.status_code == 401, r.text
    r = await client.get(f"{BASE}/lesson-access",
                         params={"ids": ",".join(f"l{n}" for n in range(199)) + f",{same},l0"})
    assert [x["id"] for x in r.json()["items"]] == [same], "200 different ids are answered"


async def test_a_data_export_holds_the_users_courses_and_quiz_attempts(
        app_client: tuple[FastAPI, httpx.AsyncClient]) -> None:
    app, client = app_client
    quiz = {"type": "quiz", "id": "check", "title": "Check", "questions": [
        {"type": "true_false", "id": "tf", "prompt": "True?", "answer": True}]}
    for course in ("py", "go"):
        r = await client.post(f"{BASE}/courses", json={"id": course, "title": course.upper()})
        assert r.status_code == 201, r.text
    me = (await client.get(f"{BASE}/me")).json()["id"]
    r = await client.post(f"{BASE}/courses/py/lessons", json={"title": "One", "blocks": [quiz]})
    assert r.status_code == 201, r.text
    lesson = r.json()["id"]
    assert (await client.post(f"{BASE}/courses/py/publish")).status_code == 200
    learner = await member(app, client, "acme", ["learner", "educator"])
    learner_id = (await client.get(f"{BASE}/me", headers=learner)).json()["id"]
    assert (await client.put(f"{BASE}/courses/go/co-authors/{learner_id}")).status_code == 200
    r = await client.post(f"{BASE}/lessons/{lesson}/quizzes/check/attempts",
                          json={"answers": {"tf": True}}, headers=learner)
    assert r.status_code == 201, r.text

    r = await client.get(f"{BASE}/me/export", headers=learner)
    assert r.status_code == 200, r.text
    mine = r.json()["services"]["content"]
    assert mine["authored_courses"] == [{"id": "go", "title": "GO", "role": "co_author"}]
    [attempt] = mine["quiz_attempts"]
    assert (attempt["lesson_id"], attempt["quiz_id"], attempt["score"]) == (lesson, "check", 1)

    theirs = (await client.get(f"{BASE}/me/export")).json()["services"]["content"]
    assert theirs == {"authored_courses": [
        {"id": "go", "title": "GO", "role": "owner"},
        {"id": "py", "title": "PY", "role": "owner"}], "media_uploaded": [], "quiz_attempts": []}
    assert me != learner_id


async def test_deleting_a_lesson_names_its_version_in_if_match_or_the_query(
        client: httpx.AsyncClient) -> None:
    """Before, only `If-Match` was read: `?version=6` with the lesson at version 7 deleted it."""
    await client.post(f"{BASE}/courses", json={"id": "py", "title": "Python"})
    lesson = (await client.post(f"{BASE}/courses/py/lessons", json={"title": "One"})).json()
    url = f"{BASE}/lessons/{lesson['id']}"
    r = await client.patch(url, json={"title": "Two"}, headers={"If-Match": '"1"'})
    assert (r.status_code, r.json()["version"]) == (200, 2), r.text

    def problem(r: httpx.Response, status: int, code: str) -> None:
        assert r.status_code == status, r.text
        assert r.headers["content-type"].startswith("application/problem+json")
        assert r.json()["code"] == code

    stale = await client.delete(url, params={"version": 1})
    problem(stale, 409, "stale_version")
    assert stale.json()["current_version"] == 2
    problem(await client.delete(url, params={"version": 1}, headers={"If-Match": '"2"'}),
            422, "version_mismatch")
    problem(await client.delete(url, params={"version": 0}), 422, "validation_failed")
    assert (await client.get(url)).json()["title"] == "Two"
    assert (await client.delete(url, params={"version": 2},
                                headers={"If-Match": '"2"'})).status_code == 204
    assert (await client.get(url)).status_code == 404
