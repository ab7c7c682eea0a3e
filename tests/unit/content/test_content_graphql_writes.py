"""An educator's content writes over GraphQL: each does what its HTTP twin does (the same
records, the same events), refuses what it refuses (422 naming the argument and field, 409
stale versions) and is allowed to whom it is allowed."""

from __future__ import annotations

import copy
import json
from collections import defaultdict
from typing import Any

import httpx
from fastapi import FastAPI

from bloop.platform.content.events import TOPIC
from bloop.platform.kit.events.bus.embedded import EmbeddedEventBus
from tests.support import eventually, member
from tests.unit.content.test_quiz_api import BASE, QUIZ, app, assert_no_answers, client

__all__ = ["app", "client"]
Json = dict[str, Any]
COURSE = "id title status version revision lessonCount modules { id title } draft"
LESSON = "id title version module draft blocks { __typename ... on QuizBlock { id maxScore } }"


async def ask(client: httpx.AsyncClient, query: str, headers: dict[str, str] | None = None,
              **variables: Any) -> Json:
    r = await client.post("/graphql", headers=headers,
                          json={"query": query, "variables": variables})
    assert r.status_code == 200, r.text
    body: Json = r.json()
    return body


def problem(body: Json) -> tuple[int, str]:
    [error] = body["errors"]
    return error["extensions"]["status"], error["extensions"]["code"]


def locs(body: Json) -> list[list[str]]:
    [error] = body["errors"]
    assert error["extensions"]["code"] == "validation_failed", body
    return [e["loc"] for e in error["extensions"]["errors"]]


async def events_by_course(app: FastAPI) -> dict[str, list[str]]:
    """The types of the events `content.events` holds once the outbox is relayed, by course."""
    for relay in app.state.platform.relays:
        await relay.flush()
    bus = app.state.platform.bus
    assert isinstance(bus, EmbeddedEventBus)
    found: dict[str, list[str]] = defaultdict(list)
    for m in await bus.read(TOPIC):
        found[json.loads(m.value)["data"]["course_id"]].append(dict(m.headers)["type"].decode())
    return found


ADD_LESSON = """mutation($course: Slug!, $lesson: LessonInput!) {
    addLesson(tenant: "acme", courseId: $course, lesson: $lesson) { LESSON } }""".replace(
        "LESSON", LESSON)
EDIT_LESSON = """mutation($id: String!, $edit: LessonEditInput!, $version: Int) {
    editLesson(tenant: "acme", id: $id, edit: $edit, version: $version) { LESSON } }""".replace(
        "LESSON", LESSON)


async def test_an_educator_authors_a_course_over_graphql_that_learners_read(
        app: FastAPI, client: httpx.AsyncClient) -> None:
    body = await ask(client, """mutation {
        createConcept(tenant: "acme", concept: {id: "loops", name: "Lopos"}) { id version }
        editConcept(tenant: "acme", id: "loops", edit: {name: "Loops"}, version: 1) {
            name version }
        stale: editConcept(tenant: "acme", id: "loops", edit: {name: "X"}, version: 1) { name }
        createCourse(tenant: "acme", course: {id: "py", title: "Python", tags: ["x"]}) {
            COURSE }
        addModule(tenant: "acme", courseId: "py", module: {id: "basics", title: "Basics"}) {
            COURSE } }""".replace("COURSE", COURSE))
    data = body["data"]
    assert data["createConcept"] == {"id": "loops", "version": 1}
    assert data["editConcept"] == {"name": "Loops", "version": 2}
    assert (data["stale"], problem(body)) == (None, (409, "stale_version"))
    # the HTTP problem's other fields, spelt as its body spells them
    assert body["errors"][0]["extensions"]["current_version"] == 2
    assert data["createCourse"] == {"id": "py", "title": "Python", "status": "draft",
                                    "version": 0, "revision": 0, "lessonCount": 0,
                                    "modules": [], "draft": True}
    assert data["addModule"]["modules"] == [{"id": "basics", "title": "Basics"}]

    blocks = [{"type": "markdown", "markdown": "Loops repeat."}, QUIZ]
    body = await ask(client, ADD_LESSON, course="py", lesson={
        "title": "Loops", "estimatedMinutes": 5, "teaches": ["loops"], "module": "basics",
        "blocks": blocks})
    lesson = body["data"]["addLesson"]
    assert lesson["blocks"] == [{"__typename": "MarkdownBlock"},
                                {"__typename": "QuizBlock", "id": "check", "maxScore": 8}]
    assert (lesson["version"], lesson["module"], lesson["draft"]) == (1, "basics", True)
    # the blocks are kept as the HTTP API's body gives them: its author reads their answers
    stored = (await client.get(f"{BASE}/lessons/{lesson['id']}")).json()
    assert stored["blocks"][1]["questions"][0]["options"][0]["correct"] is True
    assert stored["blocks"][1]["questions"][2]["answer"] is False

    body = await ask(client, EDIT_LESSON, id=lesson["id"], edit={"title": "For loops"},
                     version=1)
    assert body["data"]["editLesson"]["title"] == "For loops"
    assert body["data"]["editLesson"]["version"] == 2
    stale = await ask(client, EDIT_LESSON, id=lesson["id"], edit={"title": "Again"}, version=1)
    assert (stale["data"]["editLesson"], problem(stale)) == (None, (409, "stale_version"))
    unnamed = await ask(client, EDIT_LESSON, id=lesson["id"], edit={"title": "Again"})
    assert problem(unnamed) == (428, "version_required")
    body = await ask(client, EDIT_LESSON, id=lesson["id"], edit={"module": None}, version=2)
    assert body["data"]["editLesson"]["module"] is None

    stale = await ask(client, """mutation { editCourse(tenant: "acme", id: "py",
        edit: {summary: "Loops"}, revision: 0) { revision } }""")
    assert problem(stale) == (409, "stale_version")
    revision = (await ask(client, '{ course(tenant: "acme", id: "py") { revision } }')
                )["data"]["course"]["revision"]
    assert revision == data["addModule"]["revision"] > 0
    body = await ask(client, """mutation($revision: Int) {
        editCourse(tenant: "acme", id: "py", edit: {summary: "All about loops"},
                   revision: $revision) { revision }
        publishCourse(tenant: "acme", id: "py") {
            COURSE lessons { title } } }""".replace("COURSE", COURSE), revision=revision)
    assert body["data"]["editCourse"] == {"revision": revision + 1}, body
    published = body["data"]["publishCourse"]
    assert (published["status"], published["version"]) == ("published", 1)
    assert published["lessons"] == [{"title": "For loops"}]

    learner = await member(app, client, "acme", ["learner"])
    r = await client.get(f"{BASE}/courses/py", headers=learner)
    assert (r.json()["summary"], [x["title"] for x in r.json()["lessons"]]) == (
        "All about loops", ["For loops"])
    seen = (await client.get(f"{BASE}/lessons/{lesson['id']}", headers=learner)).json()
    assert (seen["title"], seen["version"]) == ("For loops", 3)
    assert_no_answers(seen)
    body = await ask(client, """{ course(tenant: "acme", id: "py") { summary draft
        lessons { title blocks { __typename } } } }""", learner)
    assert body["data"]["course"] == {
        "summary": "All about loops", "draft": False,
        "lessons": [{"title": "For loops",
                     "blocks": [{"__typename": "MarkdownBlock"}, {"__typename": "QuizBlock"}]}]}


LIFE = """mutation($id: Slug!, $l1: String!, $l2: String!) {
    setLessonOrder(tenant: "acme", courseId: $id, lessons: [$l2, $l1]) { id }
    publishCourse(tenant: "acme", id: $id) { version }
    archiveCourse(tenant: "acme", id: $id) { status }
    unarchiveCourse(tenant: "acme", id: $id) { status }
    editLesson(tenant: "acme", id: $l1, edit: {title: "Changed"}, version: 2) { version }
    rollbackCourse(tenant: "acme", id: $id, version: 1, discardDraft: true) { version rollbackOf }
    deleteLesson(tenant: "acme", id: $l2)
}"""


async def life_over_http(client: httpx.AsyncClient, course: str, l1: str, l2: str) -> None:
    url = f"{BASE}/courses/{course}"
    for method, path, body in (
            ("PUT", f"{url}/lesson-order", {"lessons": [l2, l1]}),
            ("POST", f"{url}/publish", None), ("POST", f"{url}/archive", None),
            ("POST", f"{url}/unarchive", None),
            ("PATCH", f"{BASE}/lessons/{l1}", {"title": "Changed", "version": 2}),
            ("POST", f"{url}/rollback", {"version": 1, "discard_draft": True}),
            ("DELETE", f"{BASE}/lessons/{l2}", None)):
        r = await client.request(method, path, json=body)
        assert r.status_code < 300, r.text


async def test_the_writes_emit_the_events_their_http_twins_emit(
        app: FastAPI, client: httpx.AsyncClient) -> None:
    for via in ("http", "graphql"):
        assert (await client.post(f"{BASE}/courses", json={"id": via, "title": via})
                ).status_code == 201
        made = [(await client.post(f"{BASE}/courses/{via}/lessons", json={
            "title": f"Lesson {n}", "blocks": [{"type": "markdown", "markdown": "Text."}]})
                 ).json()["id"] for n in (1, 2)]
        if via == "http":
            await life_over_http(client, via, *made)
        else:
            body = await ask(client, LIFE, id=via, l1=made[0], l2=made[1])
            assert "errors" not in body, body
            assert body["data"] == {
                "setLessonOrder": [{"id": made[1]}, {"id": made[0]}],
                "publishCourse": {"version": 1}, "archiveCourse": {"status": "archived"},
                "unarchiveCourse": {"status": "published"}, "editLesson": {"version": 3},
                "rollbackCourse": {"version": 2, "rollbackOf": 1}, "deleteLesson": True}
        r = await client.get(f"{BASE}/courses/{via}")
        assert [x["title"] for x in r.json()["lessons"]] == ["Lesson 1"]
    deleted = "bloop.content.lesson.deleted.v1"
    emitted: dict[str, list[str]] = {}

    async def relayed() -> bool:
        emitted.update(await events_by_course(app))
        return all(deleted in emitted[via] for via in ("http", "graphql"))

    await eventually(relayed, timeout_s=15, what="the lessons' deletions relayed")
    assert emitted["graphql"] == emitted["http"], emitted
    assert {"bloop.content.course.published.v1", "bloop.content.course.archived.v1",
            "bloop.content.course.unarchived.v1", deleted} <= set(emitted["graphql"])

    assert (await client.post(f"{BASE}/courses", json={"id": "gone", "title": "Gone"})
            ).status_code == 201
    body = await ask(client, """mutation {
        stale: deleteCourse(tenant: "acme", id: "gone", revision: 5)
        published: deleteCourse(tenant: "acme", id: "graphql")
        deleteCourse(tenant: "acme", id: "gone", revision: 0) }""")
    assert body["data"] == {"stale": None, "published": None, "deleteCourse": True}
    assert [(e["path"], e["extensions"]["code"]) for e in body["errors"]] == [
        (["stale"], "stale_version"), (["published"], "course_published")]
    assert (await client.get(f"{BASE}/courses/gone")).status_code == 404


async def test_inputs_the_http_api_refuses_are_refused_naming_argument_and_field(
        client: httpx.AsyncClient) -> None:
    body = await ask(client, """mutation { createCourse(tenant: "acme",
        course: {title: " ", level: "expert", modules: [{id: "A", title: "A"}]}) { id } }""")
    assert locs(body) == [["course", "title"], ["course", "level"], ["course", "modules", "0", "id"]]
    body = await ask(client, """mutation { createCourse(tenant: "acme", course: {title: "T",
        modules: [{id: "a", title: "A"}, {id: "a", title: "B"}]}) { id } }""")
    assert locs(body) == [["course"]]
    assert (await client.post(f"{BASE}/courses", json={"id": "py", "title": "Python"})
            ).status_code == 201

    quiz = copy.deepcopy(QUIZ)
    del quiz["questions"][0]["options"][0]["correct"]
    quiz["questions"][1]["options"][0]["bogus_field"] = 1
    blocks = [{"type": "markdown"}, quiz]
    body = await ask(client, ADD_LESSON, course="py", lesson={
        "title": "Loops", "estimatedMinutes": 0, "blocks": blocks})
    r = await client.post(f"{BASE}/courses/py/lessons", json={
        "title": "Loops", "estimated_minutes": 0, "blocks": blocks})
    over_http = [e["loc"] for e in r.json()["errors"]]
    assert over_http[0] == ["body", "estimated_minutes"]
    # a block's loc is spelt as the HTTP body's, which the block is
    assert locs(body) == [["lesson", "estimatedMinutes"]] + [
        ["lesson", *loc[1:]] for loc in over_http[1:]]
    assert ["lesson", "blocks", "0", "markdown", "markdown"] in locs(body)
    assert ["lesson", "blocks", "1", "quiz", "questions", "1", "multiple_choice", "options",
            "0", "bogus_field"] in locs(body)

    body = await ask(client, ADD_LESSON, course="py", lesson={"title": "Loops", "blocks": [
        {"type": "markdown", "markdown": "Text."}]})
    lesson = body["data"]["addLesson"]["id"]
    body = await ask(client, EDIT_LESSON, id=lesson, edit={"estimatedMinutes": 601},
                     version=0)
    assert locs(body) == [["edit", "estimatedMinutes"]]
    body = await ask(client, EDIT_LESSON, id=lesson, edit={"title": "T"}, version=0)
    assert locs(body) == [["version"]]
    body = await ask(client, """mutation {
        rollbackCourse(tenant: "acme", id: "py", version: 0) { id } }""")
    assert locs(body) == [["version"]]
    body = await ask(client, """mutation {
        publishCourse(tenant: "acme", id: "py", revision: -1) { id } }""")
    assert locs(body) == [["revision"]]
    body = await ask(client, """mutation {
        setLessonOrder(tenant: "acme", courseId: "py", lessons: ["nope"]) { id } }""")
    assert problem(body) == (422, "lesson_order_mismatch")
    body = await ask(client, """mutation { deleteLesson(tenant: "acme", id: "%s") }""" % (
        "x" * 65))
    assert locs(body) == [["id"]]


async def test_an_edit_refused_once_applied_names_the_argument_as_its_twin_names_the_body(
        client: httpx.AsyncClient) -> None:
    assert (await client.post(f"{BASE}/courses", json={"id": "py", "title": "Python"})
            ).status_code == 201
    body = await ask(client, ADD_LESSON, course="py", lesson={"title": "Loops", "blocks": [
        {"type": "markdown", "markdown": "Text."}]})
    lesson = body["data"]["addLesson"]["id"]
    # null passes the edit's own rules and breaks the course's or lesson's once applied
    r = await client.patch(f"{BASE}/courses/py", json={"title": None})
    assert [e["loc"] for e in r.json()["errors"]] == [["body", "title"]]
    body = await ask(client, """mutation { editCourse(tenant: "acme", id: "py",
        edit: {title: null}) { id } }""")
    assert locs(body) == [["edit", "title"]]
    for field, spelt in (("blocks", "blocks"), ("estimated_minutes", "estimatedMinutes")):
        r = await client.patch(f"{BASE}/lessons/{lesson}", json={field: None, "version": 1})
        assert [e["loc"] for e in r.json()["errors"]] == [["body", field]]
        body = await ask(client, EDIT_LESSON, id=lesson, edit={spelt: None}, version=1)
        assert locs(body) == [["edit", spelt]]


CREATE = """mutation { createCourse(tenant: "acme", course: {title: "Mine"}) { id owner } }"""


async def test_writes_are_allowed_to_whom_their_http_twins_allow_them(
        app: FastAPI, client: httpx.AsyncClient) -> None:
    learner = await member(app, client, "acme", ["learner"])
    elsewhere = await member(app, client, "other", ["educator"])
    for headers, code in ((learner, "missing_role"), (elsewhere, "wrong_tenant")):
        body = await ask(client, CREATE, headers)
        assert (body["data"]["createCourse"], problem(body)[1]) == (None, code)
        r = await client.post(f"{BASE}/courses", json={"title": "Mine"}, headers=headers)
        assert r.json()["code"] == code

    admin = await member(app, client, "acme", ["tenant_admin"])
    body = await ask(client, CREATE, admin)
    assert body["data"]["createCourse"]["id"], body
    keys = {}
    for name, roles, scopes in (("writer", ["educator"], ["content:write"]),
                                ("no role", [], ["content:write"]),
                                ("reader", ["educator"], ["content:read"])):
        r = await client.post(f"{BASE}/api-keys", headers=admin, json={
            "name": name, "roles": roles, "scopes": scopes})
        assert r.status_code == 201, r.text
        keys[name] = {"Authorization": f"Bearer {r.json()['key']}"}
    r = await client.post(f"{BASE}/courses", json={"title": "Synced"}, headers=keys["writer"])
    assert r.status_code == 201, r.text
    body = await ask(client, CREATE, keys["writer"])
    assert body["data"]["createCourse"]["owner"] == r.json()["owner"], body
    for name, code in (("no role", "missing_role"), ("reader", "insufficient_scope")):
        body = await ask(client, CREATE, keys[name])
        assert problem(body)[1] == code
        r = await client.post(f"{BASE}/courses", json={"title": "Synced"}, headers=keys[name])
        assert r.json()["code"] == code
