"""A course's versions through content's routes: modules, co-authors, the version history, an
old version as it was published, and rollback (which restores edited and deleted lessons, drops
lessons added since, and publishes the result as a new version)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from bloop.platform.content.model import Course, LessonEdit
from bloop.platform.content.service import ContentService
from tests.support import embedded_app, eventually, member

BASE = "/v1/tenants/acme"
COURSE = f"{BASE}/courses/py"
Json = dict[str, Any]


class People:
    def __init__(self, app: FastAPI, client: httpx.AsyncClient, owner: dict[str, str],
                 other: dict[str, str], learner: dict[str, str]) -> None:
        self.app, self.client = app, client
        self.owner, self.other, self.learner = owner, other, learner

    async def id_of(self, headers: dict[str, str]) -> str:
        user_id: str = (await self.client.get(f"{BASE}/me", headers=headers)).json()["id"]
        return user_id


@pytest.fixture
async def people(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[People]:
    async with embedded_app(tmp_path, monkeypatch, ["identity", "content"]) as (app, c):
        yield People(app, c, await member(app, c, "acme", ["educator"]),
                     await member(app, c, "acme", ["educator"]),
                     await member(app, c, "acme", ["learner"]))


def ok(r: httpx.Response, status: int = 200) -> Json:
    assert r.status_code == status, r.text
    body: Json = r.json()
    return body


def problem(r: httpx.Response, status: int, code: str) -> None:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["code"] == code


async def two_versions(p: People) -> dict[str, str]:
    """Version 1: lessons one and two in module basics. Version 2: the course renamed, lesson
    one edited, lesson two deleted, lesson three added in a new module. Lesson ids by name."""
    c, me = p.client, p.owner
    ok(await c.post(f"{BASE}/courses", json={"id": "py", "title": "Python"}, headers=me), 201)
    ok(await c.post(f"{COURSE}/modules", json={"id": "basics", "title": "Basics"}, headers=me),
       201)
    ids = {}
    for name in ("one", "two"):
        ids[name] = ok(await c.post(f"{COURSE}/lessons", headers=me, json={
            "title": f"Lesson {name}", "module": "basics",
            "blocks": [{"type": "markdown", "markdown": f"{name}, as first written"}]}), 201)["id"]
    assert ok(await c.post(f"{COURSE}/publish", headers=me))["version"] == 1

    ok(await c.patch(COURSE, json={"title": "Python, revised"}, headers=me))
    ok(await c.patch(f"{BASE}/lessons/{ids['one']}", headers=me, json={
        "version": 1, "title": "Lesson one, revised",
        "blocks": [{"type": "markdown", "markdown": "one, rewritten"}]}))
    assert (await c.delete(f"{BASE}/lessons/{ids['two']}", headers=me)).status_code == 204
    ok(await c.post(f"{COURSE}/modules", json={"id": "more", "title": "More"}, headers=me), 201)
    ids["three"] = ok(await c.post(f"{COURSE}/lessons", headers=me, json={
        "title": "Lesson three", "module": "more"}), 201)["id"]
    assert ok(await c.post(f"{COURSE}/publish", headers=me))["version"] == 2
    return ids


def titles(detail: Json) -> list[str]:
    return [lesson["title"] for lesson in detail["lessons"]]


async def test_the_history_and_each_version_as_it_was_published(people: People) -> None:
    c, me = people.client, people.owner
    ids = await two_versions(people)

    history = ok(await c.get(f"{COURSE}/versions", headers=me))["items"]
    assert [(h["version"], h["title"], h["lesson_count"], h["rollback_of"]) for h in history] == [
        (2, "Python, revised", 2, None), (1, "Python", 2, None)]
    assert history[0]["published_at"] >= history[1]["published_at"]

    first = ok(await c.get(f"{COURSE}/versions/1", headers=me))
    assert (first["title"], first["version"]) == ("Python", 1)
    assert titles(first) == ["Lesson one", "Lesson two"]
    assert first["lessons"][0]["blocks"][0]["markdown"] == "one, as first written"
    assert [m["id"] for m in first["modules"]] == ["basics"]
    second = ok(await c.get(f"{COURSE}/versions/2", headers=me))
    assert titles(second) == ["Lesson one, revised", "Lesson three"]
    assert [m["id"] for m in second["modules"]] == ["basics", "more"]
    assert [x["id"] for x in second["lessons"]] == [ids["one"], ids["three"]]

    problem(await c.get(f"{COURSE}/versions/3", headers=me), 404, "no_such_version")
    problem(await c.get(f"{COURSE}/versions/0", headers=me), 422, "validation_failed")
    problem(await c.get(f"{COURSE}/versions/two", headers=me), 422, "validation_failed")
    problem(await c.get(f"{BASE}/courses/none/versions/1", headers=me), 404, "not_found")


async def test_only_the_courses_authors_read_its_history(people: People) -> None:
    c = people.client
    await two_versions(people)
    for headers, code in ((people.learner, "missing_role"), (people.other, "not_an_author")):
        problem(await c.get(f"{COURSE}/versions", headers=headers), 403, code)
        problem(await c.get(f"{COURSE}/versions/1", headers=headers), 403, code)
        problem(await c.post(f"{COURSE}/rollback", json={"version": 1}, headers=headers),
                403, code)
    assert ok(await c.get(COURSE, headers=people.learner))["version"] == 2


async def test_a_rollback_restores_a_version_and_publishes_it_anew(people: People) -> None:
    c, me = people.client, people.owner
    ids = await two_versions(people)

    rolled = ok(await c.post(f"{COURSE}/rollback", json={"version": 1}, headers=me))
    assert (rolled["version"], rolled["title"], rolled["status"]) == (3, "Python", "published")
    draft = ok(await c.get(COURSE, headers=me))
    assert titles(draft) == ["Lesson one", "Lesson two"]
    assert [x["id"] for x in draft["lessons"]] == [ids["one"], ids["two"]]
    assert draft["lessons"][0]["blocks"][0]["markdown"] == "one, as first written"
    assert [m["id"] for m in draft["modules"]] == ["basics"]
    problem(await c.get(f"{BASE}/lessons/{ids['three']}", headers=me), 404, "not_found")

    seen = ok(await c.get(COURSE, headers=people.learner))
    assert (seen["title"], seen["version"]) == ("Python", 3)
    assert titles(seen) == ["Lesson one", "Lesson two"]
    revived = ok(await c.get(f"{BASE}/lessons/{ids['two']}", headers=people.learner))
    assert revived["blocks"][0]["markdown"] == "two, as first written"
    problem(await c.get(f"{BASE}/lessons/{ids['three']}", headers=people.learner),
            404, "not_found")

    history = ok(await c.get(f"{COURSE}/versions", headers=me))["items"]
    assert [(h["version"], h["rollback_of"]) for h in history] == [(3, 1), (2, None), (1, None)]
    assert titles(ok(await c.get(f"{COURSE}/versions/2", headers=me))) == [
        "Lesson one, revised", "Lesson three"]

    again = ok(await c.post(f"{COURSE}/rollback", json={"version": 2}, headers=me))
    assert (again["version"], again["title"]) == (4, "Python, revised")
    assert titles(ok(await c.get(COURSE, headers=people.learner))) == [
        "Lesson one, revised", "Lesson three"]


async def test_a_publication_retried_makes_no_second_version(people: People) -> None:
    """A client that lost the answer to its publication and sent it again (the same
    `If-Match`) made a second version, identical to the first."""
    c, me = people.client, people.owner
    await two_versions(people)
    course = ok(await c.get(COURSE, headers=me))
    for _ in range(2):
        r = await c.post(f"{COURSE}/publish", headers={**me, "If-Match": f'"{course["revision"]}"'})
        assert (ok(r)["version"], r.headers["etag"]) == (2, f'"{course["revision"]}"')
        assert ok(r)["updated_at"] == course["updated_at"]
    assert [v["version"] for v in ok(await c.get(f"{COURSE}/versions", headers=me))["items"]] == [
        2, 1]


async def test_a_rollback_to_what_cannot_be_restored_changes_nothing(people: People) -> None:
    c, me = people.client, people.owner
    await two_versions(people)
    before = ok(await c.get(COURSE, headers=me))
    problem(await c.post(f"{COURSE}/rollback", json={"version": 9}, headers=me),
            404, "no_such_version")
    for body in ({"version": 0}, {"version": "one"}, {}, {"version": 1, "force": True}):
        problem(await c.post(f"{COURSE}/rollback", json=body, headers=me),
                422, "validation_failed")
    problem(await c.post(f"{BASE}/courses/none/rollback", json={"version": 1}, headers=me),
            404, "not_found")
    assert ok(await c.get(COURSE, headers=me)) == before
    assert len(ok(await c.get(f"{COURSE}/versions", headers=me))["items"]) == 2


async def test_rollback_and_publish_keep_to_the_revision_they_name(people: People) -> None:
    """Before, both took no `If-Match` nor `?revision=`: a rollback made against an old
    revision went through."""
    c, me = people.client, people.owner
    ids = await two_versions(people)
    revision = ok(await c.get(COURSE, headers=me))["revision"]
    for action, body in (("rollback", {"version": 1}), ("publish", None)):
        stale = await c.post(f"{COURSE}/{action}", json=body, headers={**me, "If-Match": '"0"'})
        problem(stale, 409, "stale_version")
        assert stale.json()["current_revision"] == revision
        problem(await c.post(f"{COURSE}/{action}", json=body, params={"revision": 0},
                             headers=me), 409, "stale_version")
        problem(await c.post(f"{COURSE}/{action}", json=body, params={"revision": revision},
                             headers={**me, "If-Match": f'"{revision - 1}"'}),
                422, "version_mismatch")
        problem(await c.post(f"{COURSE}/{action}", json=body, headers={**me, "If-Match": "x"}),
                400, "bad_if_match")
    assert ok(await c.get(COURSE, headers=people.learner))["version"] == 2

    ok(await c.patch(f"{BASE}/lessons/{ids['one']}", headers=me, json={  # the revision stays
        "version": 2, "title": "Lesson one, again"}))
    r = await c.post(f"{COURSE}/publish", params={"revision": revision},
                     headers={**me, "If-Match": f'"{revision}"'})
    assert (ok(r)["version"], r.headers["etag"]) == (3, f'"{revision}"')
    r = await c.post(f"{COURSE}/rollback", json={"version": 1},
                     headers={**me, "If-Match": f'W/"{revision}"'})
    rolled = ok(r)
    assert (rolled["version"], rolled["title"]) == (4, "Python")
    assert r.headers["etag"] == f'"{rolled["revision"]}"' != f'"{revision}"'


async def test_a_rollback_never_discards_work_never_published_unless_told_to(
        people: People) -> None:
    """Before, a rollback deleted every draft lesson its version did not hold and restored every
    other: a lesson never published was gone for good (no version held it), an edit not yet
    published too."""
    c, me = people.client, people.owner
    ids = await two_versions(people)  # version 2 holds lessons one (at version 2) and three
    wip = ok(await c.post(f"{COURSE}/lessons", headers=me, json={
        "title": "WIP never published", "module": "basics"}), 201)["id"]
    ok(await c.patch(f"{BASE}/lessons/{ids['one']}", headers={**me, "If-Match": '"2"'},
                     json={"title": "Lesson one, unpublished"}))
    # lesson three deleted, which version 1 does not hold either: nothing of it is lost
    assert (await c.delete(f"{BASE}/lessons/{ids['three']}", headers=me)).status_code == 204
    before = ok(await c.get(COURSE, headers=me))

    refused = await c.post(f"{COURSE}/rollback", json={"version": 1}, headers=me)
    problem(refused, 409, "unpublished_changes")
    assert sorted(refused.json()["lessons"], key=lambda x: x["id"]) == sorted(
        [{"id": wip, "change": "added"}, {"id": ids["one"], "change": "changed"}],
        key=lambda x: x["id"])
    assert ok(await c.get(COURSE, headers=me)) == before
    assert len(ok(await c.get(f"{COURSE}/versions", headers=me))["items"]) == 2
    problem(await c.post(f"{COURSE}/rollback", json={"version": 1, "discard_draft": "yes"},
                         headers=me), 422, "validation_failed")

    rolled = ok(await c.post(f"{COURSE}/rollback", json={"version": 1, "discard_draft": True},
                             headers=me))
    assert (rolled["version"], rolled["title"]) == (3, "Python")
    assert titles(ok(await c.get(COURSE, headers=me))) == ["Lesson one", "Lesson two"]
    problem(await c.get(f"{BASE}/lessons/{wip}", headers=me), 404, "not_found")

    # published, the draft rolls back freely
    assert ok(await c.post(f"{COURSE}/rollback", json={"version": 2}, headers=me))[
        "version"] == 4


async def test_a_rollback_names_unpublished_course_edits_and_not_lessons_moved_back(
        people: People) -> None:
    """An unpublished title and summary were overwritten by a rollback without a word; and
    lessons moved away and back, in the order published, were taken for unpublished work."""
    c, me = people.client, people.owner
    ids = await two_versions(people)
    order = f"{COURSE}/lesson-order"
    for ranked in ([ids["three"], ids["one"]], [ids["one"], ids["three"]]):
        ok(await c.put(order, json={"lessons": ranked}, headers=me))
    ok(await c.patch(COURSE, json={"title": "Python, third try", "summary": "Unpublished."},
                     headers=me))
    refused = await c.post(f"{COURSE}/rollback", json={"version": 2}, headers=me)
    problem(refused, 409, "unpublished_changes")
    assert (refused.json()["course"], refused.json()["lessons"]) == (["title", "summary"], [])
    ok(await c.patch(COURSE, json={"title": "Python, revised", "summary": ""}, headers=me))
    assert ok(await c.post(f"{COURSE}/rollback", json={"version": 2}, headers=me))[
        "version"] == 3


async def test_a_rollback_stopped_part_way_completes_and_keeps_an_edit_racing_it(
        people: People, monkeypatch: pytest.MonkeyPatch) -> None:
    """An edit landing while a rollback restored the lessons was overwritten: each lesson was
    read again just before its restoration."""
    c, me = people.client, people.owner
    ids = await two_versions(people)
    service: ContentService = people.app.state.content.state["service"]
    store_head = service._store_head

    async def racing(head: Course, expected: Course) -> Course:
        stored = await store_head(head, expected)
        await service.edit_lesson("acme", ids["one"], LessonEdit(version=2, title="Racing"))
        return stored

    monkeypatch.setattr(service, "_store_head", racing)
    problem(await c.post(f"{COURSE}/rollback", json={"version": 1}, headers=me),
            409, "stale_version")
    monkeypatch.undo()
    assert ok(await c.get(f"{BASE}/lessons/{ids['one']}", headers=me))["title"] == "Racing"
    assert ok(await c.get(COURSE, headers=people.learner))["version"] == 2
    refused = await c.post(f"{COURSE}/rollback", json={"version": 1}, headers=me)
    problem(refused, 409, "unpublished_changes")
    assert refused.json()["lessons"] == [{"id": ids["one"], "change": "changed"}]

    # one stopped before its publication: what it restored is no unpublished work
    ok(await c.post(f"{COURSE}/publish", headers=me))
    publish_course = service.repo.publish_course

    async def stops(*args: Any) -> None:
        raise RuntimeError("the process stopped")

    monkeypatch.setattr(service.repo, "publish_course", stops)
    with pytest.raises(RuntimeError):
        await service.rollback("acme", "py", 1)
    monkeypatch.setattr(service.repo, "publish_course", publish_course)
    assert ok(await c.get(COURSE, headers=people.learner))["version"] == 3
    rolled = ok(await c.post(f"{COURSE}/rollback", json={"version": 1}, headers=me))
    assert (rolled["version"], rolled["rollback_of"]) == (4, 1)
    assert titles(ok(await c.get(COURSE, headers=people.learner))) == [
        "Lesson one", "Lesson two"]


async def test_modules_are_named_once_and_lessons_name_one_that_exists(people: People) -> None:
    c, me = people.client, people.owner
    ok(await c.post(f"{BASE}/courses", json={"id": "py", "title": "Python"}, headers=me), 201)
    course = ok(await c.post(f"{COURSE}/modules", headers=me, json={
        "id": "basics", "title": "Basics", "summary": "Where to start"}), 201)
    assert course["modules"] == [{"id": "basics", "title": "Basics", "summary": "Where to start"}]
    problem(await c.post(f"{COURSE}/modules", json={"id": "basics", "title": "Again"},
                         headers=me), 409, "module_exists")
    for bad in ({"id": "Not A Slug", "title": "X"}, {"id": "x"}, {"id": "x", "title": ""},
                {"id": "x", "title": "X", "extra": 1}):
        problem(await c.post(f"{COURSE}/modules", json=bad, headers=me), 422, "validation_failed")
    problem(await c.post(f"{COURSE}/lessons", json={"title": "L", "module": "advanced"},
                         headers=me), 422, "unknown_module")
    lesson = ok(await c.post(f"{COURSE}/lessons", json={"title": "L", "module": "basics"},
                             headers=me), 201)
    problem(await c.patch(f"{BASE}/lessons/{lesson['id']}", json={"version": 1, "module": "gone"},
                          headers=me), 422, "unknown_module")
    problem(await c.post(f"{COURSE}/modules", json={"id": "x", "title": "X"},
                         headers=people.other), 404, "not_found")
    assert [m["id"] for m in ok(await c.get(COURSE, headers=me))["modules"]] == ["basics"]


async def test_the_owner_chooses_co_authors_who_may_then_edit(people: People) -> None:
    c, me, other = people.client, people.owner, people.other
    ok(await c.post(f"{BASE}/courses", json={"id": "py", "title": "Python"}, headers=me), 201)
    other_id, owner_id = await people.id_of(other), await people.id_of(me)
    problem(await c.patch(COURSE, json={"title": "Mine now"}, headers=other), 404, "not_found")

    course = ok(await c.put(f"{COURSE}/co-authors/{other_id}", headers=me))
    assert course["co_authors"] == [other_id]
    assert ok(await c.put(f"{COURSE}/co-authors/{other_id}", headers=me))["co_authors"] == [
        other_id]
    ok(await c.patch(COURSE, json={"title": "Ours"}, headers=other))
    ok(await c.post(f"{COURSE}/lessons", json={"title": "L"}, headers=other), 201)
    assert ok(await c.post(f"{COURSE}/publish", headers=other))["version"] == 1
    assert len(ok(await c.get(f"{COURSE}/versions", headers=other))["items"]) == 1

    learner_id = await people.id_of(people.learner)
    problem(await c.put(f"{COURSE}/co-authors/{learner_id}", headers=other), 403, "not_the_owner")
    problem(await c.put(f"{COURSE}/co-authors/{learner_id}", headers=me), 422, "not_an_educator")
    problem(await c.put(f"{COURSE}/co-authors/no-such-user", headers=me), 422, "unknown_user")
    problem(await c.put(f"{COURSE}/co-authors/{owner_id}", headers=me), 409, "already_owner")

    assert ok(await c.delete(f"{COURSE}/co-authors/{other_id}", headers=me))["co_authors"] == []
    assert ok(await c.delete(f"{COURSE}/co-authors/{other_id}", headers=me))["co_authors"] == []
    problem(await c.patch(COURSE, json={"title": "Still ours?"}, headers=other),
            403, "not_an_author")
    assert ok(await c.get(COURSE, headers=me))["title"] == "Ours"


async def test_an_owner_deleting_their_account_opens_their_drafts_to_no_other_educator(
        people: People) -> None:
    """The owner's account deleted: another educator still gets 404 on the draft and cannot
    publish it; the tenant's admins still reach it; a co-author takes over a course they
    share."""
    c, carol, bob = people.client, people.owner, people.other
    admin = await member(people.app, c, "acme", ["tenant_admin"])
    dan = await member(people.app, c, "acme", ["educator"])
    dan_id = await people.id_of(dan)
    for cid in ("py", "go"):
        ok(await c.post(f"{BASE}/courses", json={"id": cid, "title": cid}, headers=carol), 201)
    lesson = ok(await c.post(f"{COURSE}/lessons", json={"title": "L"}, headers=carol), 201)
    ok(await c.put(f"{BASE}/courses/go/co-authors/{dan_id}", headers=carol))
    assert (await c.delete(f"{BASE}/me", headers=carol)).status_code == 204

    async def erased() -> bool:
        owners = [ok(await c.get(f"{BASE}/courses/{cid}", headers=admin))["owner"]
                  for cid in ("go", "py")]
        return owners == [dan_id, None]

    await eventually(erased, what="carol's courses without her")
    assert ok(await c.get(f"{BASE}/courses/go", headers=dan))["co_authors"] == []
    for url in (COURSE, f"{BASE}/lessons/{lesson['id']}"):
        assert (await c.get(url, headers=bob)).status_code == 404
    problem(await c.post(f"{COURSE}/publish", headers=bob), 404, "not_found")
    assert ok(await c.post(f"{COURSE}/publish", headers=admin))["version"] == 1


async def test_a_co_author_is_an_educator_of_the_tenant_looked_up_as_the_caller_may(
        people: People) -> None:
    app, c, me = people.app, people.client, people.owner
    ok(await c.post(f"{BASE}/courses", json={"id": "py", "title": "Python"}, headers=me), 201)
    elsewhere = await member(app, c, "globex", ["educator"])
    stranger = ok(await c.get("/v1/tenants/globex/me", headers=elsewhere))["id"]
    problem(await c.put(f"{COURSE}/co-authors/{stranger}", headers=me), 422, "unknown_user")
    admin = await member(app, c, "acme", ["tenant_admin"])
    admin_id = ok(await c.get(f"{BASE}/me", headers=admin))["id"]
    assert ok(await c.put(f"{COURSE}/co-authors/{admin_id}", headers=me))["co_authors"] == [
        admin_id]

    r = await c.post(f"{BASE}/api-keys", headers=admin, json={
        "name": "authoring tool", "scopes": ["content:read", "content:write"],
        "roles": ["educator"]})
    key = {"X-API-Key": ok(r, 201)["key"]}
    ok(await c.post(f"{BASE}/courses", json={"id": "go", "title": "Go"}, headers=key), 201)
    other_id = await people.id_of(people.other)
    problem(await c.put(f"{BASE}/courses/go/co-authors/{other_id}", headers=key),
            403, "identity_forbidden")
    assert ok(await c.get(f"{BASE}/courses/go", headers=key))["co_authors"] == []


async def test_the_tenants_admins_edit_any_course(people: People) -> None:
    """An admin who is no educator and no author of the course changes it, reads its drafts
    and publishes it."""
    c, me = people.client, people.owner
    admin = await member(people.app, c, "acme", ["tenant_admin"])
    ok(await c.post(f"{BASE}/courses", json={"id": "py", "title": "Python"}, headers=me), 201)
    ok(await c.patch(COURSE, json={"title": "Python, checked"}, headers=admin))
    lesson = ok(await c.post(f"{COURSE}/lessons", json={"title": "L"}, headers=admin), 201)
    assert [x["id"] for x in ok(await c.get(COURSE, headers=admin))["lessons"]] == [lesson["id"]]
    assert ok(await c.post(f"{COURSE}/publish", headers=admin))["version"] == 1
    assert ok(await c.get(COURSE, headers=me))["title"] == "Python, checked"


async def test_a_non_author_learns_nothing_of_what_was_never_published(people: People) -> None:
    """Another educator got 404 reading a course never published but 403 `not_an_author`
    changing it or listing its versions (and so for a lesson never published), where a made-up
    id is 404 everywhere: each answer told it exists. Now every answer is the made-up id's;
    once it is published, and so readable, changing it is 403."""
    c, me, other = people.client, people.owner, people.other
    ok(await c.post(f"{BASE}/courses", json={"id": "py", "title": "Python"}, headers=me), 201)
    first = ok(await c.post(f"{COURSE}/lessons", json={"title": "L"}, headers=me), 201)["id"]
    upload = {"files": ("a.md", b"# A\n\nSome text.\n", "text/markdown")}
    course_calls: list[tuple[str, str, Json | None]] = [
        ("GET", "", None), ("PATCH", "", {"title": "Mine"}), ("DELETE", "", None),
        ("GET", "/versions", None), ("GET", "/versions/1", None), ("POST", "/publish", None),
        ("POST", "/rollback", {"version": 1}), ("POST", "/archive", None),
        ("POST", "/modules", {"id": "x", "title": "X"}), ("POST", "/lessons", {"title": "L"}),
        ("PUT", "/lesson-order", {"lessons": [first]}), ("PUT", "/co-authors/someone", None),
        ("POST", "/uploads", None)]

    async def course_answers(course: str) -> list[tuple[int, str, str]]:
        out = []
        for method, path, body in course_calls:
            r = await c.request(method, f"{BASE}/courses/{course}{path}", json=body,
                                files=upload if path == "/uploads" else None, headers=other)
            out.append((r.status_code, r.json()["code"],
                        r.json()["detail"].replace(course, "<id>")))
        return out

    async def lesson_answers(lesson: str) -> list[tuple[int, str, str]]:
        out = []
        for method, body in (("GET", None), ("PATCH", {"version": 1, "title": "X"}),
                             ("DELETE", None)):
            r = await c.request(method, f"{BASE}/lessons/{lesson}", json=body, headers=other)
            out.append((r.status_code, r.json()["code"],
                        r.json()["detail"].replace(lesson, "<id>")))
        return out

    made_up = await course_answers("ghost")
    assert {a[:2] for a in made_up} == {(404, "not_found")}, made_up
    assert await course_answers("py") == made_up
    assert await lesson_answers(first) == await lesson_answers("ghost-lesson")
    assert {a[:2] for a in await lesson_answers(first)} == {(404, "not_found")}

    assert ok(await c.post(f"{COURSE}/publish", headers=me))["version"] == 1
    draft = ok(await c.post(f"{COURSE}/lessons", json={"title": "New"}, headers=me), 201)["id"]
    problem(await c.patch(COURSE, json={"title": "Mine"}, headers=other), 403, "not_an_author")
    problem(await c.get(f"{COURSE}/versions", headers=other), 403, "not_an_author")
    problem(await c.delete(COURSE, headers=other), 403, "not_the_owner")
    problem(await c.patch(f"{BASE}/lessons/{first}", json={"version": 1, "title": "X"},
                          headers=other), 403, "not_an_author")
    problem(await c.delete(f"{BASE}/lessons/{first}", headers=other), 403, "not_an_author")
    assert await lesson_answers(draft) == await lesson_answers("ghost-lesson")


async def test_a_non_author_s_lesson_edit_is_refused_before_its_version_is_asked_for(
        people: People) -> None:
    """Without a version another educator got 428 `version_required`, with one 403."""
    c, me, other = people.client, people.owner, people.other
    ok(await c.post(f"{BASE}/courses", json={"id": "py", "title": "Python"}, headers=me), 201)
    lesson = ok(await c.post(f"{COURSE}/lessons", json={"title": "L"}, headers=me), 201)["id"]
    ok(await c.post(f"{COURSE}/publish", headers=me))
    url = f"{BASE}/lessons/{lesson}"
    problem(await c.patch(url, json={"title": "X"}, headers=other), 403, "not_an_author")
    problem(await c.patch(url, json={"title": "X"}, headers={**other, "If-Match": '"1"'}),
            403, "not_an_author")
    r = await c.patch(url, json={"title": "X"}, headers=me)
    problem(r, 428, "version_required")
    assert "If-Match" in r.json()["detail"]
    assert ok(await c.get(url, headers=me))["title"] == "L"
