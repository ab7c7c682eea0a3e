"""`/graphql` through the real app: the composed schema, its DataLoader batching, and its errors."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import re
from collections.abc import AsyncIterator, Callable, MutableMapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from fastapi import FastAPI
from graphql import GraphQLError, Source, get_introspection_query
from strawberry.types import ExecutionResult

from bloop.graphql.errors import in_the_query
from bloop.graphql.fields import MAX_PAGE
from bloop.graphql.limits import MAX_BLOCKS, MAX_LESSONS
from bloop.graphql.outcomes import NAME_LENGTH, OTHER, code, operation_name, outcome
from bloop.graphql.schema import build_schema
from bloop.platform.app import create_app
from bloop.platform.content.graphql import reads as content_graphql
from bloop.platform.content.model import (
    AudioBlock,
    Captions,
    CodeBlock,
    ConceptEdit,
    CourseEdit,
    FileBlock,
    ImageBlock,
    Lesson,
    LessonEdit,
    MarkdownBlock,
    NewConcept,
    NewCourse,
    NewLesson,
    VideoBlock,
)
from bloop.platform.content.quiz import Option, QuizBlock, SingleChoice
from bloop.platform.content.service import ContentService
from bloop.platform.content.stores.embedded import EmbeddedContentStore
from bloop.platform.content.wiring import SERVICE as CONTENT
from bloop.platform.demo import data
from bloop.platform.kit.auth import Forbidden
from bloop.platform.kit.errors import Problem, StoreUnavailable
from bloop.platform.kit.pagination import cursor
from bloop.platform.kit.settings import RuntimeSettings, Settings
from tests.support import NESTED_CURSOR, api_client, member

Json = dict[str, Any]
Running = tuple[FastAPI, httpx.AsyncClient]
Start = Callable[..., AbstractAsyncContextManager[Running]]


@pytest.fixture
def start(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Start:
    for var in ("BLOOP_STORE", "BLOOP_MONGO_ADAPTER", "BLOOP_KAFKA_ADAPTER", "BLOOP_REDIS_ADAPTER"):
        monkeypatch.delenv(var, raising=False)

    @asynccontextmanager
    async def running(services: Sequence[str] | None = None, seed: bool = True,
                      signed_in: bool = True) -> AsyncIterator[Running]:
        """The app, and a client signed in as a platform admin (who may read any tenant,
        drafts included) unless `signed_in` is False."""
        settings = Settings(runtime=RuntimeSettings(data_dir=tmp_path, seed_demo=seed))
        app = create_app(settings, services=services)
        async with app.router.lifespan_context(app), api_client(app) as c:
            if signed_in:
                c.headers.update(await member(app, c, tenant="ops", roles=("platform_admin",)))
            yield app, c

    return running


async def query(client: httpx.AsyncClient, text: str, **variables: object) -> Json:
    r = await client.post("/graphql", json={"query": text, "variables": variables})
    assert r.status_code == 200, r.text
    body: Json = r.json()
    return body


def content_service(app: FastAPI) -> ContentService:
    service: ContentService = app.state.content.state["service"]
    return service


COURSES_WITH_LESSONS = """
query ($tenant: Slug!) {
  courses(tenant: $tenant, status: ALL) {
    items {
      id title status lessonCount
      lessons { id courseId position title estimatedMinutes blocks { ... on MarkdownBlock { markdown } } }
    }
    next
  }
}"""


async def test_the_demo_course_comes_with_its_lessons(start: Start) -> None:
    async with start() as (_, client):
        body = await query(client, COURSES_WITH_LESSONS, tenant=data.TENANT_ID)
        assert "errors" not in body
        [course] = body["data"]["courses"]["items"]
        assert course["title"] == "Thinking in Python"
        assert course["status"] == "published"
        assert course["lessonCount"] == 4
        assert [x["position"] for x in course["lessons"]] == [0, 1, 2, 3]
        assert [x["title"] for x in course["lessons"]] == [x.title for x in data.LESSONS]
        assert all(x["courseId"] == data.COURSE_ID and x["blocks"] for x in course["lessons"])

        lesson_id = course["lessons"][1]["id"]
        body = await query(client, """query ($t: Slug!, $c: Slug!, $l: String!) {
            course(tenant: $t, id: $c) { id version lessons { id } }
            lesson(tenant: $t, id: $l) { id title teaches requires }
            concepts(tenant: $t) { items { id name } next }
            tenant(id: $t) { id name }
          }""", t=data.TENANT_ID, c=data.COURSE_ID, l=lesson_id)
        assert "errors" not in body
        got = body["data"]
        assert got["course"]["version"] == 1
        assert [x["id"] for x in got["course"]["lessons"]] == [x["id"] for x in course["lessons"]]
        assert got["lesson"]["title"] == data.LESSONS[1].title
        assert {c["id"] for c in got["concepts"]["items"]} == {c.id for c in data.CONCEPTS}
        assert got["concepts"]["next"] is None
        assert got["tenant"] == {"id": data.TENANT_ID, "name": data.TENANT_NAME}


async def test_a_lesson_builds_its_blocks_only_when_they_are_asked_for(
        start: Start, monkeypatch: pytest.MonkeyPatch) -> None:
    built: list[str] = []
    block = content_graphql._block

    def counted(tenant: str, b: Any) -> Any:
        built.append(b.type)
        return block(tenant, b)

    monkeypatch.setattr(content_graphql, "_block", counted)
    async with start() as (_, client):
        listed = """{ courses(tenant: "demo") { items { lessons { id title } } } }"""
        assert "errors" not in await query(client, listed)
        assert built == []
        body = await query(client, COURSES_WITH_LESSONS, tenant=data.TENANT_ID)
        assert "errors" not in body
        assert len(built) == sum(len(x.blocks) for x in data.LESSONS)


async def test_a_request_lists_so_many_lessons_and_no_more(
        start: Start, monkeypatch: pytest.MonkeyPatch) -> None:
    text = f'{{ course(tenant: "demo", id: "{data.COURSE_ID}") {{ lessons {{ id }} }} }}'
    async with start() as (_, client):
        monkeypatch.setattr(content_graphql, "MAX_LESSONS", len(data.LESSONS))
        body = await query(client, text)
        assert len(body["data"]["course"]["lessons"]) == len(data.LESSONS)
        monkeypatch.setattr(content_graphql, "MAX_LESSONS", len(data.LESSONS) - 1)
        body = await query(client, text)
        assert body["data"]["course"] == {"lessons": None}
        [error] = body["errors"]
        assert (error["extensions"]["code"], error["extensions"]["status"]) == (
            "query_too_large", 422)


async def test_a_request_makes_so_many_blocks_and_no_more(
        start: Start, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two aliases of a course of 595 lessons of 8 blocks (9,520 blocks, under the 10,000 a
    request could make) held the event loop 2.5 s; 33 aliases listing its lessons (19,635, under
    20,000) 1.7 s. A course's lessons count the blocks they will make before any is made, so a
    list past the limit makes none."""
    built: list[str] = []
    block = content_graphql._block

    def counted(tenant: str, b: Any) -> Any:
        built.append(b.type)
        return block(tenant, b)

    assert (MAX_LESSONS, MAX_BLOCKS) == (1_500, 3_000)
    monkeypatch.setattr(content_graphql, "_block", counted)
    text = "{ " + " ".join(
        f'a{i}: course(tenant: "acme", id: "big") {{ lessons {{ id blocks {{ __typename }} }} }}'
        for i in range(2)) + " }"
    async with start(seed=False) as (app, client):
        service = content_service(app)
        await service.create_course("acme", NewCourse(id="big", title="Big"))
        new = NewLesson(title="Lesson", blocks=[MarkdownBlock(markdown="Text.")] * 8)
        await service.add_lessons("acme", "big", [new] * 200, ids=[f"l{n}" for n in range(200)])
        await service.publish("acme", "big")
        body = await query(client, text)
        assert len(body["data"]["a0"]["lessons"]) == 200
        assert body["data"]["a1"] == {"lessons": None}
        [error] = body["errors"]
        assert (error["path"], error["extensions"]["code"], error["extensions"]["status"]) == (
            ["a1", "lessons"], "query_too_large", 422)
        assert "more than 3000 blocks" in error["message"]
        assert len(built) == 1_600  # the first list's blocks, none of the second's
        # 8 lists of its lessons without their blocks: 1,600 lessons
        text = "{ " + " ".join(f'a{i}: course(tenant: "acme", id: "big") {{ lessons {{ id }} }}'
                               for i in range(8)) + " }"
        body = await query(client, text)
        assert [body["data"][f"a{i}"]["lessons"] is None for i in range(8)] == [False] * 7 + [True]
        assert [e["extensions"]["code"] for e in body["errors"]] == ["query_too_large"]


async def test_a_quiz_counts_its_questions_and_choices_as_blocks(start: Start) -> None:
    """A quiz of 100 questions of 30 choices counted as one block, so 100 aliases of a lesson of
    200 of them made 60 million choices within the limit."""
    questions = [SingleChoice(id=f"q{n}", prompt="Which?", options=[
        Option(id=f"o{k}", text=f"Option {k}", correct=k == 0) for k in range(30)])
        for n in range(100)]
    text = '{ lesson(tenant: "acme", id: "$id") { blocks { __typename } } }'
    async with start(seed=False) as (app, client):
        service = content_service(app)
        await service.create_course("acme", NewCourse(id="c", title="Quizzes"))
        [small, big] = await service.add_lessons("acme", "c", ids=["small", "big"], new=[
            NewLesson(title="Small", blocks=[QuizBlock(id="s", title="S",
                                                       questions=questions[:10])]),
            NewLesson(title="Big", blocks=[QuizBlock(id="b", title="B", questions=questions)])])
        body = await query(client, text.replace("$id", small.id))
        assert "errors" not in body, body["errors"]
        body = await query(client, text.replace("$id", big.id))  # 1 + 100 * 31 blocks
        assert body["data"] == {"lesson": None}
        assert [e["extensions"]["code"] for e in body["errors"]] == ["query_too_large"]


async def test_blocks_are_counted_however_their_lessons_are_asked_for(
        start: Start, monkeypatch: pytest.MonkeyPatch) -> None:
    lesson = 'lesson(tenant: "demo", id: "$id") { blocks { __typename } }'
    async with start() as (app, client):
        stored = (await content_service(app).course_detail("demo", data.COURSE_ID)).lessons
        blocks = sum(content_graphql._weight(x) for x in stored)
        monkeypatch.setattr(content_graphql, "MAX_BLOCKS", blocks)
        course = f'course(tenant: "demo", id: "{data.COURSE_ID}") {{ lessons {{ blocks {{ __typename }} }} }}'
        body = await query(client, f"{{ {course} }}")
        assert "errors" not in body, body["errors"]
        body = await query(client, f"{{ a: {course} b: {course} }}")
        assert body["data"]["a"]["lessons"] is not None
        assert body["data"]["b"] == {"lessons": None}
        [error] = body["errors"]
        assert (error["path"][0], error["extensions"]["code"]) == ("b", "query_too_large")
        # one lesson asked for again and again
        first = stored[0]
        monkeypatch.setattr(content_graphql, "MAX_BLOCKS", content_graphql._weight(first) * 3)
        many = " ".join(f"a{i}: {lesson.replace('$id', first.id)}" for i in range(4))
        body = await query(client, f"{{ {many} }}")
        assert [body["data"][f"a{i}"] is None for i in range(4)] == [False, False, False, True]
        # media links read every block too: 100 aliases of them walked 4 million blocks
        links = many.replace("blocks { __typename }", "mediaLinks { __typename }")
        body = await query(client, f"{{ {links} }}")
        assert [body["data"][f"a{i}"] is None for i in range(4)] == [False, False, False, True]


async def test_a_failing_field_leaves_the_other_fields_their_data(
        start: Start, monkeypatch: pytest.MonkeyPatch) -> None:
    """Before, `courses` and learning's fields were non-null: one of them failing answered
    `data: null`, losing every field that had worked."""
    course = f'course(tenant: "demo", id: "{data.COURSE_ID}") {{ title }}'
    async with start(signed_in=False) as (app, client):
        learner = await member(app, client, tenant="demo", roles=("learner",))
        admin = await member(app, client, tenant="demo", roles=("tenant_admin",))

        async def ask(headers: dict[str, str], text: str) -> Json:
            r = await client.post("/graphql", json={"query": text}, headers=headers)
            assert r.status_code == 200, r.text
            body: Json = r.json()
            return body

        # a learner's page that also asks for the drafts
        body = await ask(learner, f"""{{ {course} myNext(tenant: "demo") {{ kind }}
            published: courses(tenant: "demo") {{ items {{ title }} }}
            drafts: courses(tenant: "demo", status: DRAFT) {{ items {{ id }} }} }}""")
        assert body["data"] == {"course": {"title": "Thinking in Python"},
                                "myNext": {"kind": "nothing"},
                                "published": {"items": [{"title": "Thinking in Python"}]},
                                "drafts": None}
        assert [(e["path"], e["extensions"]["code"]) for e in body["errors"]] == [
            (["drafts"], "missing_role")]

        # an app's key that reads content only, asking for the learner's fields too
        r = await client.post("/v1/tenants/demo/api-keys", headers=admin, json={
            "name": "catalogue", "scopes": ["content:read"]})
        assert r.status_code == 201, r.text
        key = {"Authorization": f"Bearer {r.json()['key']}"}
        learning = ("myNext", "myPaths", "myMastery", "myDueReviews", "prerequisiteGraph")
        body = await ask(key, "{ courses(tenant: \"demo\") { items { title } } "
                         "concepts(tenant: \"demo\", first: 1) { items { id } } "
                         "myNext(tenant: \"demo\") { kind } myPaths(tenant: \"demo\") { next } "
                         "myMastery(tenant: \"demo\") { next } "
                         "myDueReviews(tenant: \"demo\") { next } "
                         "prerequisiteGraph(tenant: \"demo\") { edges { concept } } }")
        assert body["data"]["courses"] == {"items": [{"title": "Thinking in Python"}]}
        assert len(body["data"]["concepts"]["items"]) == 1
        assert {name: body["data"][name] for name in learning} == dict.fromkeys(learning)
        # the graph, as `GET …/learning/graph`, is for the tenant's educators and admins
        r = await client.get("/v1/tenants/demo/learning/graph", headers=key)
        assert r.json()["code"] == "missing_role"
        assert sorted((e["path"][0], e["extensions"]["code"]) for e in body["errors"]) == sorted(
            (name, "missing_role" if name == "prerequisiteGraph" else "insufficient_scope")
            for name in learning)

        # the lessons past what a request may list: only the lists asking for them are null
        monkeypatch.setattr(content_graphql, "MAX_LESSONS", len(data.LESSONS))
        lessons = '{ items { title lessons { id } } }'
        body = await ask(admin, f'{{ {course} a: courses(tenant: "demo") {lessons} '
                                f'b: courses(tenant: "demo") {lessons} }}')
        assert body["data"]["course"] == {"title": "Thinking in Python"}
        assert len(body["data"]["a"]["items"][0]["lessons"]) == len(data.LESSONS)
        assert body["data"]["b"] == {"items": [{"title": "Thinking in Python", "lessons": None}]}
        assert [(e["path"], e["extensions"]["code"]) for e in body["errors"]] == [
            (["b", "items", 0, "lessons"], "query_too_large")]


async def test_a_failing_item_of_a_list_leaves_the_loads_other_fields_share(
        start: Start, monkeypatch: pytest.MonkeyPatch) -> None:
    """graphql-core cancels the other items of a list when one fails: their lessons are a batch
    other aliases wait for too, which must not be cancelled under them."""
    async with start(seed=False) as (app, client):
        service = content_service(app)
        for n in range(3):
            await service.create_course("acme", NewCourse(id=f"c{n}", title=f"Course {n}"))
            for i in range(2):
                await service.add_lesson("acme", f"c{n}", NewLesson(
                    title=f"Lesson {n}.{i}", blocks=[MarkdownBlock(markdown="Text.")]))
        monkeypatch.setattr(content_graphql, "MAX_LESSONS", 9)
        text = " ".join(f'a{i}: courses(tenant: "acme", status: ALL) {{ items {{ lessons {{ id }} }} }}'
                        for i in range(3))
        body = await query(client, "{ " + text + " }")
        assert {e["extensions"]["code"] for e in body["errors"]} == {"query_too_large"}


async def test_lessons_of_many_courses_load_in_one_read(
        start: Start, monkeypatch: pytest.MonkeyPatch) -> None:
    async with start(seed=False) as (app, client):
        service = content_service(app)
        made: dict[str, list[str]] = {}
        for n in range(5):
            course = await service.create_course("acme", NewCourse(id=f"c{n}", title=f"Course {n}"))
            made[course.id] = [(await service.add_lesson("acme", course.id, NewLesson(
                title=f"Lesson {n}.{i}", blocks=[MarkdownBlock(markdown="Text.")]))).id
                for i in range(n % 3 + 1)]
        await service.create_course("acme", NewCourse(id="empty", title="Empty"))
        made["empty"] = []

        repo = service.repo
        bulk_reads: list[list[str]] = []
        single_reads: list[str] = []
        bulk, single = repo.lessons_of_courses, repo.list_lessons

        async def counting_bulk(tenant: str, ids: Sequence[str]) -> dict[str, list[Lesson]]:
            bulk_reads.append(list(ids))
            return await bulk(tenant, ids)

        async def counting_single(tenant: str, course_id: str) -> list[Lesson]:
            single_reads.append(course_id)
            return await single(tenant, course_id)

        monkeypatch.setattr(repo, "lessons_of_courses", counting_bulk)
        monkeypatch.setattr(repo, "list_lessons", counting_single)

        body = await query(client, COURSES_WITH_LESSONS, tenant="acme")
        assert "errors" not in body
        got = {c["id"]: [x["id"] for x in c["lessons"]] for c in body["data"]["courses"]["items"]}
        assert got == made
        assert len(bulk_reads) == 1
        assert sorted(bulk_reads[0]) == sorted(made)
        assert single_reads == []

        # the loader lives for one request: the next query reads again, once
        await query(client, COURSES_WITH_LESSONS, tenant="acme")
        assert len(bulk_reads) == 2


async def test_the_courses_a_query_names_load_in_one_read(
        start: Start, monkeypatch: pytest.MonkeyPatch) -> None:
    """Before, each `course` read its head and its lessons on its own: 20 courses, 41 reads
    (to their author)."""
    async with start(seed=False, signed_in=False) as (app, client):
        service = content_service(app)
        author = await member(app, client, tenant="acme", roles=("educator",))
        learner = await member(app, client, tenant="acme", roles=("learner",))
        for n in range(20):
            r = await client.post("/v1/tenants/acme/courses",
                                  json={"id": f"c{n:02}", "title": f"Course {n:02}"},
                                  headers=author)
            assert r.status_code == 201, r.text
            for i in range(3):
                await service.add_lesson("acme", f"c{n:02}", NewLesson(title=f"L{n}.{i}"))
            if n % 4:
                await service.publish("acme", f"c{n:02}")
                await service.edit_course("acme", f"c{n:02}", CourseEdit(title="Draft title"))
        text = "{ " + " ".join(
            f'c{n:02}: course(tenant: "acme", id: "c{n:02}") {{ title lessonCount lessons {{ title }} }}'
            for n in range(20)) + ' ghost: course(tenant: "acme", id: "ghost") { id } }'
        expected: dict[str, Json | None] = {}
        for headers in (author, learner):
            for n in range(20):
                r = await client.get(f"/v1/tenants/acme/courses/c{n:02}", headers=headers)
                course = r.json()
                expected[f"c{n:02}"] = None if r.status_code == 404 else {
                    "title": course["title"], "lessonCount": course["lesson_count"],
                    "lessons": [{"title": x["title"]} for x in course["lessons"]]}
            expected["ghost"] = None

            reads: list[str] = []
            assert isinstance(service.repo, EmbeddedContentStore)
            monkeypatch.setattr(service.repo.db, "run", counting(reads, service.repo.db.run))
            body = await ask(client, text, headers)
            monkeypatch.undo()
            assert "errors" not in body, body
            assert body["data"] == expected
            # the heads and the drafts' lessons; to a learner, the published lessons too
            assert len(reads) == (2 if headers is author else 3)
        assert (expected["c01"] or {})["title"] == "Course 01"  # the learner's: the publication
        assert expected["c00"] is None  # never published: nothing to learners


ASKING: ContextVar[bool] = ContextVar("asking", default=False)


def counting(reads: list[str], run: Callable[..., Any]) -> Callable[..., Any]:
    """An SQLite store's `run`, noting each query a request `ask` sent makes (not those of the
    app's consumers at work meanwhile)."""

    async def counted(query: Callable[..., Any]) -> Any:
        if ASKING.get():
            reads.append(getattr(query, "__qualname__", "query"))
        return await run(query)

    return counted


async def ask(client: httpx.AsyncClient, text: str, headers: dict[str, str]) -> Json:
    token = ASKING.set(True)
    try:
        r = await client.post("/graphql", json={"query": text}, headers=headers)
    finally:
        ASKING.reset(token)
    assert r.status_code == 200, r.text
    body: Json = r.json()
    return body


async def test_what_is_missing_is_null(start: Start) -> None:
    async with start() as (_, client):
        body = await query(client, """{
            course(tenant: "demo", id: "no-such-course") { id }
            other: course(tenant: "elsewhere", id: "thinking-in-python") { id }
            lesson(tenant: "demo", id: "no-such-lesson") { id }
            tenant(id: "no-such-tenant") { id }
            users(tenant: "no-such-tenant") { next }
            courses(tenant: "no-such-tenant") { items { id } next }
          }""")
        assert "errors" not in body
        assert body["data"] == {"course": None, "other": None, "lesson": None, "tenant": None,
                                "users": None,
                                "courses": {"items": [], "next": None}}


async def test_users_come_a_page_at_a_time(start: Start) -> None:
    async with start() as (_, client):
        page = "query ($after: String) { users(tenant: \"demo\", first: 2, after: $after) " \
               "{ items { email displayName roles } next } }"
        pages: list[list[str]] = []
        after: str | None = None
        for _ in range(len(data.PEOPLE) + 1):
            got = (await query(client, page, after=after))["data"]["users"]
            pages.append([u["email"] for u in got["items"]])
            after = got["next"]
            if after is None:
                break
        emails = sorted(p.email.lower() for p in data.PEOPLE)
        # the last page says it is, full or not: before, a full one led to an empty one
        assert pages == [emails[n:n + 2] for n in range(0, len(emails), 2)]

        body = await query(client, '{ users(tenant: "demo", first: 0) { next } }')
        assert body["data"] == {"users": None}
        assert body["errors"][0]["extensions"]["code"] == "validation_failed"


async def test_courses_come_a_page_at_a_time_in_title_order(start: Start) -> None:
    async with start(seed=False) as (app, client):
        service = content_service(app)
        titles = [f"Course {n:02}" for n in range(7)]
        for n, title in enumerate(reversed(titles)):
            await service.create_course("acme", NewCourse(id=f"c{n}", title=title))
        text = """query ($after: String) {
            courses(tenant: "acme", status: ALL, first: 3, after: $after) { items { title } next }
        }"""
        pages: list[list[str]] = []
        after = None
        while True:
            body = await query(client, text, after=after)
            assert "errors" not in body, body
            page = body["data"]["courses"]
            pages.append([c["title"] for c in page["items"]])
            if (after := page["next"]) is None:
                break
        assert pages == [titles[:3], titles[3:6], titles[6:]]


async def test_concepts_come_a_page_at_a_time_as_the_http_api_pages_them(start: Start) -> None:
    """Before, `concepts` answered every concept of the tenant at once."""
    async with start(seed=False) as (app, client):
        service = content_service(app)
        ids = [f"k{n}" for n in range(7)]
        for cid in reversed(ids):
            await service.add_concept("acme", NewConcept(id=cid, name=cid.upper()))
        text = """query ($after: String) {
            concepts(tenant: "acme", first: 3, after: $after) { items { id name } next }
        }"""
        pages: list[list[str]] = []
        after = None
        while True:
            body = await query(client, text, after=after)
            assert "errors" not in body, body
            page = body["data"]["concepts"]
            pages.append([c["id"] for c in page["items"]])
            r = await client.get("/v1/tenants/acme/concepts", params={
                "limit": 3, **({"after": after} if after else {})})
            assert r.json()["next"] == page["next"]
            if (after := page["next"]) is None:
                break
        assert pages == [ids[:3], ids[3:6], ids[6:]]
        for bad, code in (("first: 201", "validation_failed"), ('after: "nonsense"', "bad_cursor"),
                          (f'after: "{NESTED_CURSOR}"', "bad_cursor")):
            body = await query(client, f'{{ concepts(tenant: "acme", {bad}) {{ next }} }}')
            assert body["errors"][0]["extensions"]["code"] == code, bad


async def test_a_course_list_is_one_store_read_however_few_courses_the_caller_may_read(
        start: Start, monkeypatch: pytest.MonkeyPatch) -> None:
    """Before, the courses were read `first` + 1 at a time until the page was full: an
    educator who authors none of 30 drafts made 16 reads for an empty page of one."""
    async with start(seed=False, signed_in=False) as (app, client):
        author = await member(app, client, tenant="acme", roles=("educator",))
        other = await member(app, client, tenant="acme", roles=("educator",))
        for n in range(30):
            r = await client.post("/v1/tenants/acme/courses",
                                  json={"id": f"c{n:02}", "title": f"Course {n:02}"},
                                  headers=author)
            assert r.status_code == 201, r.text
        r = await client.post("/v1/tenants/acme/courses", json={"id": "mine", "title": "Zed"},
                              headers=other)
        assert r.status_code == 201, r.text
        repo = content_service(app).repo
        reads: list[str | None] = []
        listing = repo.list_courses

        async def counted(tenant: str, status: Any = None, **kwargs: Any) -> Any:
            reads.append(status)
            return await listing(tenant, status, **kwargs)

        monkeypatch.setattr(repo, "list_courses", counted)
        text = """{ drafts: courses(tenant: "acme", status: DRAFT, first: 1) { items { id } next }
                    all: courses(tenant: "acme", status: ALL, first: 1) { items { id } next } }"""
        body = (await client.post("/graphql", json={"query": text}, headers=other)).json()
        assert "errors" not in body, body
        assert body["data"]["drafts"] == {"items": [{"id": "mine"}], "next": None}
        assert body["data"]["all"] == {"items": [{"id": "mine"}], "next": None}
        assert reads == ["draft", None]
        reads.clear()
        r = await client.get("/v1/tenants/acme/courses", params={"status": "draft", "limit": 1},
                             headers=other)
        assert [c["id"] for c in r.json()["items"]] == ["mine"]
        assert reads == ["draft"]


@pytest.mark.parametrize(("text", "code"), [
    ("{ courses(tenant: ", "validation_failed"),                                  # syntax
    ("{ nothing }", "validation_failed"),                                         # no such field
    ("{ course(tenant: \"demo\") { id } }", "validation_failed"),  # a required argument left out
    ("{ courses(tenant: \"Not A Slug!\") { next } }", "validation_failed"),     # a scalar's rule
    ("{ courses(tenant: \"demo\", status: RETIRED) { next } }", "validation_failed"),  # no such enum value
    ("{ courses(tenant: \"demo\", first: \"9\") { next } }", "validation_failed"),  # of another type
    ("query ($t: Slug!) { courses(tenant: $t) { next } }", "validation_failed"),  # a variable left out
    ("{ __schema { types { ...T } } } fragment T on __Type { ofType { ...T } }",
     "validation_failed"),                                                         # a fragment cycle
    ("{ courses(tenant: \"demo\", first: 0) { next } }", "validation_failed"),  # a page size out of range
    ("{ courses(tenant: \"demo\", after: \"nonsense\") { next } }", "bad_cursor"),  # not a cursor of the list
    (f'{{ courses(tenant: "demo", after: "{NESTED_CURSOR}") {{ next }} }}', "bad_cursor"),  # was a 500
])
async def test_a_bad_query_is_a_graphql_error_not_a_500(start: Start, text: str,
                                                        code: str) -> None:
    """Each error has the code and status the HTTP API would answer; before, those found
    before the query ran (all but the last two) had none."""
    async with start(seed=False) as (_, client):
        r = await client.post("/graphql", json={"query": text})
        assert r.status_code in (200, 400), r.text
        body = r.json()
        assert not any((body.get("data") or {}).values())
        assert body["errors"][0]["message"]
        assert [(e["extensions"]["code"], e["extensions"]["status"]) for e in body["errors"]] == [
            (code, 422)] * len(body["errors"])


async def test_a_document_of_several_operations_runs_the_one_named(start: Start) -> None:
    """Before, without `operationName` it ran the first."""
    text = "query A { a: __typename } query B { b: __typename }"
    async with start(seed=False) as (_, client):
        body = await query(client, text)
        assert body.get("data") is None
        [error] = body["errors"]
        assert "operationName" in error["message"]
        assert error["extensions"] == {"code": "validation_failed", "status": 422}
        r = await client.post("/graphql", json={"query": text, "operationName": "B"})
        assert r.json() == {"data": {"b": "Query"}}
        r = await client.get("/graphql", params={"query": text, "operationName": "A"})
        assert r.json() == {"data": {"a": "Query"}}


async def test_no_cache_keeps_an_answer_as_none_keeps_people_s_data_over_http(
        start: Start) -> None:
    """Before, a GraphQL answer carried no Cache-Control, over GET too, which browsers and
    proxies may keep: the tenant's users, a learner's paths and reviews, where the HTTP API's
    `…/users` and `…/learning/me/…` answer no-store."""
    users = '{ users(tenant: "demo", first: 5) { items { email } } }'
    async with start() as (_, client):
        rest = await client.get("/v1/tenants/demo/users")
        assert rest.headers["cache-control"] == "no-store"
        for r in (await client.post("/graphql", json={"query": users}),
                  await client.get("/graphql", params={"query": users})):
            assert r.status_code == 200, r.text
            assert r.json()["data"]["users"]["items"], r.text
            assert r.headers["cache-control"] == rest.headers["cache-control"]


@pytest.mark.parametrize(("text", "http"), [
    ('{{ courses(tenant: "demo", after: "{}") {{ next }} }}', "/v1/tenants/demo/courses?after={}"),
    ('{{ concepts(tenant: "demo", after: "{}") {{ next }} }}',
     "/v1/tenants/demo/concepts?after={}"),
    ('{{ users(tenant: "demo", after: "{}") {{ next }} }}', "/v1/tenants/demo/users?after={}"),
    ('{{ lesson(tenant: "demo", id: "{}") {{ id }} }}', "/v1/tenants/demo/lessons/{}"),
], ids=["courses", "concepts", "users", "lesson"])
async def test_a_cursor_or_an_id_is_held_to_the_length_the_http_api_takes(
        start: Start, text: str, http: str) -> None:
    """Before, GraphQL took any length (an id of 200 KB); and its refusal had no `errors`
    naming the argument, which the HTTP API's has."""
    argument = "id" if "lesson(" in text else "after"
    async with start() as (_, client):
        for length in (64, 65, 254, 255, 1000, 1001):
            r = await client.get(http.format("a" * length))
            body = await query(client, text.format("a" * length))
            if r.status_code == 422 and r.json()["code"] == "validation_failed":
                [error] = body["errors"]
                [rest] = r.json()["errors"]
                # the argument by its name in the schema, as the HTTP API names its parameter
                assert error["extensions"] == {"code": "validation_failed", "status": 422,
                                               "errors": [{"loc": [argument], "type": rest["type"],
                                                           "msg": error["message"]}]}, length
                assert "characters" in error["message"]
            else:
                assert all(e["extensions"]["code"] != "validation_failed"
                           for e in body.get("errors", ())), (length, body)
        assert r.status_code == 422  # the longest is too long for each


@pytest.mark.parametrize("body", [b"5", b"null", b"true", b'"x"', b"[]"])
async def test_a_body_that_is_no_json_object_is_a_problem_not_a_500(
        start: Start, body: bytes) -> None:
    """Before, all but the list (refused as a batch) were a 500 and a logged traceback."""
    async with start(seed=False) as (_, client):
        r = await client.post("/graphql", content=body,
                              headers={"Content-Type": "application/json"})
        assert r.status_code == 400, r.text
        assert r.headers["content-type"] == "application/problem+json"
        assert r.json()["code"] == "bad_request"
        r = await client.get("/graphql", params={"query": "{ __typename }", "variables": "null"})
        assert r.json() == {"data": {"__typename": "Query"}}


async def test_a_websocket_upgrade_is_refused_not_a_500(start: Start) -> None:
    """There are no subscriptions. Before, the upgrade raised a TypeError (a 500, a logged
    traceback) for anyone, signed in or not."""

    async def upgrade(app: FastAPI, headers: list[tuple[bytes, bytes]]
                      ) -> list[MutableMapping[str, Any]]:
        sent: list[MutableMapping[str, Any]] = []

        async def receive() -> dict[str, Any]:
            return {"type": "websocket.connect"} if not sent else {
                "type": "websocket.disconnect", "code": 1000}

        async def send(message: MutableMapping[str, Any]) -> None:
            sent.append(message)

        await app({"type": "websocket", "asgi": {"version": "3.0"}, "scheme": "ws",
                   "path": "/graphql", "raw_path": b"/graphql", "root_path": "",
                   "query_string": b"", "headers": [(b"host", b"bloop.test"), *headers],
                   "subprotocols": ["graphql-transport-ws"], "client": ("127.0.0.1", 1),
                   "server": ("bloop.test", 80)}, receive, send)
        return sent

    async with start() as (app, client):
        token = client.headers["Authorization"].encode()
        for headers in ([], [(b"authorization", token)]):
            assert [m["type"] for m in await upgrade(app, headers)] == ["websocket.close"]


def deep_introspection(copies: int) -> str:
    one = ("__schema { types { name fields { name args { name type { name ofType { name } } } "
           "type { name ofType { name ofType { name } } } } } }")
    return "{ " + " ".join(f"a{i}: {one}" for i in range(copies)) + " }"


COURSE = 'course(tenant: "demo", id: "x")'


@pytest.mark.parametrize(("text", "code", "limit", "refusal"), [
    # 80 aliases of a fragment of 80 aliases: 6,400 introspections from 3.5 KB (78 s before)
    ("{ " + " ".join(f"s{i}: __schema {{...S}}" for i in range(80)) + " } fragment S on "
     "__Schema { " + " ".join(f"t{i}: types {{...T}}" for i in range(80)) + " } fragment T on "
     "__Type { name fields { name args { name type { name } } type { name } } }",
     "too_many_selections", 1000, "more than 1000 selections"),
    ("{ " + " ".join(f"a{i}: __typename" for i in range(101)) + " }",
     "too_many_aliases", 100, "101 aliases"),
    # graphql-core compares every two of them: 1-2 s of validation each (every request waited)
    (f"{{ {COURSE} {{ {' lessons { id }' * 400} }} }}", "query_too_repetitive", 1000,
     "`lessons` is selected 400 times in `course`"),
    (f"{{ {COURSE} {{ {' lessons { blocks { __typename } }' * 400} }} }}",
     "too_many_selections", 1000, "more than 1000 selections"),
    (f"{{ {COURSE} {{ {(' lessons {' + ' blocks { __typename }' * 20 + ' }') * 20} }} }}",
     "query_too_repetitive", 1000, "`blocks` is selected 400 times in `course.lessons`"),
    (f"{{ {COURSE} {{ {' ...L' * 2} }} }} fragment L on Course {{ {' lessons { id }' * 30} }}",
     "query_too_repetitive", 1000, "`lessons` is selected 60 times in `course`"),
    # few aliases, each selecting much
    (deep_introspection(18), "query_too_costly", 100_000, "the limit is 100000"),
    ("{ " + " ".join(f"a{i}: concepts(tenant: \"demo\") {{ next }}" for i in range(600)) + " }",
     "query_too_long", 5000, "more than 5000 tokens"),
    ("{ __typename }" + "\n# a comment" * 5000, "query_too_long", 5000, "more than 5000 tokens"),
    # one name or string may be 1 MB (0.4 s to read), 1 MB of unknown names seconds to validate
    ("{ __typename }" + " " * 65_536, "query_too_long", 65_536, "the limit is 65536"),
    ("{ " + "a" * 300 + " }", "query_too_long", 256, "a name of 300 characters"),
    ("query ($" + "v" * 257 + ": Int) { __typename }", "query_too_long", 256,
     "a name of 257 characters"),
])
async def test_a_query_past_the_limits_is_refused_before_it_runs(
        start: Start, text: str, code: str, limit: int, refusal: str) -> None:
    async with start(seed=False) as (_, client):
        r = await client.post("/graphql", json={"query": text})
        assert r.status_code in (200, 400), r.text
        body = r.json()
        assert body.get("data") is None
        [error] = body["errors"]
        assert refusal in error["message"]
        assert "Syntax Error" not in error["message"]
        assert error["extensions"] == {"code": code, "status": 422, "limit": limit}


async def test_errors_in_a_long_query_stay_short_and_few(start: Start) -> None:
    """Errors quoted a value whole (a 1 MB string made a 2 MB answer), and graphql-core scans
    the text for each error's line: 100 errors of two places each in 64 KiB of one line took
    350 ms."""
    async with start(seed=False) as (_, client):
        literal = await query(client, '{ course(tenant: "demo", id: "' + "A" * 60_000 + '") { id } }')
        [error] = literal["errors"]
        assert len(error["message"]) < 1_100
        assert "is not a slug" in error["message"]
        assert error["extensions"] == {"code": "validation_failed", "status": 422}
        given = await query(client, "query ($t: Slug!) { course(tenant: $t, id: \"x\") { id } }",
                            t="A" * 900_000)
        [error] = given["errors"]
        assert len(error["message"]) < 1_100
        assert "is not a slug" in error["message"]
        text = "{ " + " ".join(f"a{i}: __typename a{i}: __schema {{ description }}"
                               for i in range(100)) + " }"
        conflicts = await query(client, text + " #" + "x" * (60_000 - len(text)))
        assert len(conflicts["errors"]) == 21  # 20, and that it stopped
        assert conflicts["errors"][0]["locations"] == [{"line": 1, "column": 3},
                                                       {"line": 1, "column": 18}]


def test_a_position_is_found_on_its_line() -> None:
    from bloop.graphql.limits import _Source

    for text in ("a\nb\r\nc\rd\n\ne", "abc", "\n\n", "ab\r\n\r\ncd"):
        for position in range(len(text) + 1):
            assert _Source(text).get_location(position) == Source(text).get_location(position)


QUESTION = "id prompt points"
CHOICES = "{ id text }"
COURSE_PAGE = f"""query ($t: Slug!, $c: Slug!) {{
  course(tenant: $t, id: $c) {{
    id title summary lessonCount modules {{ id title }}
    lessons {{
      id title position module estimatedMinutes teaches requires
      blocks {{
        __typename
        ... on MarkdownBlock {{ markdown mediaLinks {{ media link {{ url expiresAt }} }} }}
        ... on CodeBlock {{ language source }}
        ... on ImageBlock {{ media alt title caption link {{ url expiresAt }} }}
        ... on AudioBlock {{ media title caption link {{ url expiresAt }} }}
        ... on VideoBlock {{ media title caption link {{ url expiresAt }} }}
        ... on FileBlock {{ media title caption link {{ url expiresAt }} }}
        ... on QuizBlock {{ id title maxScore questions {{
          __typename
          ... on SingleChoiceQuestion {{ {QUESTION} options {CHOICES} }}
          ... on MultipleChoiceQuestion {{ {QUESTION} options {CHOICES} }}
          ... on TrueFalseQuestion {{ {QUESTION} }}
          ... on NumericQuestion {{ {QUESTION} unit }}
          ... on ShortTextQuestion {{ {QUESTION} }}
          ... on OrderingQuestion {{ {QUESTION} items {CHOICES} }}
          ... on MatchingQuestion {{ {QUESTION} left {CHOICES} right {CHOICES} }}
        }} }}
      }}
    }}
  }}
}}"""


async def test_a_course_page_asking_for_every_block_type_is_within_the_limits(
        start: Start) -> None:
    """A block is of one type: the fragments for the others cost it nothing."""
    async with start() as (_, client):
        body = await query(client, COURSE_PAGE, t=data.TENANT_ID, c=data.COURSE_ID)
        assert "errors" not in body, body["errors"]
        lessons = body["data"]["course"]["lessons"]
        assert [x["title"] for x in lessons] == [x.title for x in data.LESSONS]
        assert all(x["blocks"] for x in lessons)


async def test_a_union_costs_what_its_costliest_member_does(start: Start) -> None:
    quiz = ("... on QuizBlock { questions { ... on MatchingQuestion { left { id text } } "
            "... on NumericQuestion { unit } } }")
    cheaper = "... on MarkdownBlock { markdown mediaLinks { media } } ... on ImageBlock { alt }"
    async with start(seed=False) as (_, client):

        async def cost(blocks: str) -> int:
            body = await query(client, '{ courses(tenant: "demo", first: 200) { items { '
                                       f"lessons {{ blocks {{ {blocks} }} }} }} }} }}")
            [error] = body["errors"]
            assert error["extensions"]["code"] == "query_too_costly"
            found = re.search(r"about (\d+) values", error["message"])
            assert found is not None, error
            return int(found[1])

        assert await cost(f"{cheaper} {quiz}") == await cost(quiz)


async def test_a_list_left_without_first_costs_its_default_page(start: Start) -> None:
    """`courses` gives 50 a page unless `first` says otherwise."""
    async with start(seed=False) as (_, client):

        async def refusal(page: str) -> str:
            body = await query(client, "{ " + " ".join(
                f'a{i}: courses(tenant: "demo"{page}) {{ items {{ lessons {{ blocks '
                "{ ... on MarkdownBlock { markdown } } } } }" for i in range(30)) + " }")
            [error] = body["errors"]
            assert error["extensions"]["code"] == "query_too_costly"
            message: str = error["message"]
            return message

        assert await refusal("") == await refusal(", first: 50")


TWINS = {"courses": "/courses", "concepts": "/concepts", "users": "/users",
         "myPaths": "/learning/me/paths", "myMastery": "/learning/me/mastery",
         "myDueReviews": "/learning/me/reviews/due", "aiJobs": "/ai/jobs"}


# A page of 100 courses, as `…/courses` gives, would cost a query that asks for every course's
# lessons and blocks, left without `first`, past the cost limit it was within.
SMALLER = {"courses": 50}


async def test_a_catalogue_left_without_first_is_within_the_cost_limit(start: Start) -> None:
    """A default page of 100 refused this query (107,501 values) that 50 answered."""
    async with start(seed=False) as (_, client):
        body = await query(client, '{ courses(tenant: "demo") { items { id title lessons { id '
                           "title blocks { __typename ... on MarkdownBlock { markdown } "
                           "... on QuizBlock { id title questions { __typename "
                           "... on SingleChoiceQuestion { id prompt } } } } } } next } }")
        assert "errors" not in body, body


async def test_each_list_gives_as_many_a_page_as_its_http_twin(start: Start) -> None:
    """Before, `courses` gave 50 a page and `…/courses` 100, without saying why."""
    async with start(seed=False) as (app, client):
        body = await query(client, '{ __type(name: "Query") { fields { name args { name '
                                   "defaultValue } } } }")
        defaults = {f["name"]: int(a["defaultValue"]) for f in body["data"]["__type"]["fields"]
                    for a in f["args"] if a["name"] == "first"}
        assert set(defaults) == set(TWINS)
        paths = app.openapi()["paths"]
        for name, path in TWINS.items():
            [limit] = [p["schema"] for p in paths["/v1/tenants/{tenant}" + path]["get"]["parameters"]
                       if p["name"] == "limit"]
            assert (defaults[name], MAX_PAGE) == (SMALLER.get(name, limit["default"]),
                                                  limit["maximum"]), name


CATALOGUE = """items { id title lessons { id title blocks { __typename
  ... on MarkdownBlock { markdown mediaLinks { media link { url expiresAt } } }
  ... on CodeBlock { language source }
  ... on ImageBlock { media alt link { url expiresAt } }
  ... on VideoBlock { media link { url } }
  ... on QuizBlock { id title questions {
    __typename ... on SingleChoiceQuestion { id prompt options { id text } } } } } } } next"""


def catalogue(page: str, copies: int = 1) -> str:
    variables = "($n: Int!) " if page == "$n" else ""
    return f"query {variables}{{ " + " ".join(
        f'a{i}: courses(tenant: "demo", first: {page}) {{ {CATALOGUE} }}'
        for i in range(copies)) + " }"


async def test_a_catalogue_page_with_every_lesson_and_quiz_is_within_the_limits(
        start: Start) -> None:
    """Each block costs its costliest type, a quiz, as a lesson's content typically has it."""
    async with start() as (_, client):
        for page in ("20", "$n"):
            body = await query(client, catalogue(page), n=20)
            assert "errors" not in body, body["errors"]
            [course] = body["data"]["a0"]["items"]
            assert [x["title"] for x in course["lessons"]] == [x.title for x in data.LESSONS]


async def test_a_page_given_as_a_variable_costs_its_value(start: Start) -> None:
    async with start(seed=False) as (_, client):

        async def refusal(page: str, n: int) -> str | None:
            body = await query(client, catalogue(page), n=n)
            if "errors" not in body:
                return None
            [error] = body["errors"]
            assert error["extensions"]["code"] == "query_too_costly"
            message: str = error["message"]
            return message

        assert await refusal("$n", 1) is None
        assert await refusal("$n", 150) == await refusal("150", 1) is not None
        assert await refusal("$n", 500) == await refusal("200", 1)  # at most 200 a page


async def test_a_named_fragment_on_a_page_costs_what_the_page_costs_written_out(
        start: Start) -> None:
    """Measured as if it stood outside any page, a fragment on `CoursePage` counted its
    `items` as a list of 10 and the page of 20 again: 934,641 values, refused, where the same
    selection written out or as an inline fragment passes (as Apollo and Relay clients write
    them)."""
    async with start() as (_, client):
        for text in (f'{{ courses(tenant: "demo", first: 20) {{ {CATALOGUE} }} }}',
                     f'{{ courses(tenant: "demo", first: 20) {{ ... on CoursePage '
                     f'{{ {CATALOGUE} }} }} }}',
                     f'{{ courses(tenant: "demo", first: 20) {{ ...P }} }} '
                     f'fragment P on CoursePage {{ {CATALOGUE} }}'):
            body = await query(client, text)
            assert "errors" not in body, body["errors"]
            assert body["data"]["courses"]["items"]


async def test_many_aliases_of_a_costly_page_are_refused(start: Start) -> None:
    async with start(seed=False) as (_, client):
        body = await query(client, catalogue("$n", copies=3), n=20)
        [error] = body["errors"]
        assert error["extensions"]["code"] == "query_too_costly"
        assert body.get("data") is None


async def test_a_fragment_spreading_itself_is_refused_as_graphql_says(start: Start) -> None:
    """It would expand without end: the error is graphql's own, not a limit's."""
    async with start(seed=False) as (_, client):
        body = await query(client, "{ __schema { types { ...T } } } "
                                   "fragment T on __Type { name ofType { ...T } }")
        assert [e["message"] for e in body["errors"]] == [
            "Cannot spread fragment 'T' within itself."]


async def test_the_full_introspection_and_a_deep_one_stay_within_the_limits(start: Start) -> None:
    async with start(seed=False) as (_, client):
        for text in (get_introspection_query(descriptions=True), deep_introspection(17)):
            body = await query(client, text)
            assert "errors" not in body, body["errors"]


async def test_text_with_an_unpaired_surrogate_is_refused_not_a_500(start: Start) -> None:
    """JSON may escape half a surrogate pair ("\\ud800"), which no store takes."""
    async with start(seed=False) as (_, client):
        r = await client.post("/graphql", headers={"Content-Type": "application/json"},
                              content=json.dumps({  # escaped: httpx would write UTF-8
                                  "query": "query ($id: String!) { lesson(tenant: \"demo\", "
                                           "id: $id) { id } }", "variables": {"id": "\ud800"}}))
        assert r.status_code == 200, r.text
        body = r.json()
        assert [(e["extensions"]["code"], e["extensions"]["status"]) for e in body["errors"]] == [
            ("invalid_text", 422)]
        forged = cursor("\ud800", "x")
        body = await query(client, "query ($after: String!) { courses(tenant: \"demo\", "
                                   "after: $after) { next } }", after=forged)
        assert body["errors"][0]["extensions"]["code"] == "bad_cursor"
        r = await client.get("/v1/tenants/demo/courses", params={"after": forged})
        assert (r.status_code, r.json()["code"]) == (422, "bad_cursor")


@pytest.mark.parametrize(("body", "says"), [
    (b'{"query": "{ __typename }", "variables": {"a": ' + b"[" * 3000 + b"]" * 3000 + b"}}",
     "nests too deeply"),
    (b'{"query": "{ __typename }", "variables": {"a": ' + b"9" * 5000 + b"}}", "digits"),
    (b'{"query": "{ __typename }", "variables": {"a": "\xff"}}', "not UTF-8"),
], ids=["deep", "long-number", "not-utf8"])
async def test_json_the_parser_cannot_read_is_a_problem_not_a_500(
        start: Start, body: bytes, says: str) -> None:
    async with start(seed=False) as (_, client):
        answers = [await client.post("/graphql", content=body,
                                     headers={"Content-Type": "application/json"})]
        if says != "not UTF-8":  # a query string's bytes are always decoded
            answers.append(await client.get("/graphql", params={
                "query": "{ __typename }",
                "variables": body.split(b'"variables": ', 1)[1][:-1].decode()}))
        for r in answers:
            assert r.status_code == 400, r.text
            assert r.headers["content-type"] == "application/problem+json"
            assert says in r.json()["detail"]


async def test_learners_page_courses_by_the_titles_they_read(start: Start) -> None:
    """Before, `next` held a published course's unpublished draft title, and the order
    followed it."""
    async with start(seed=False) as (app, client):
        service = content_service(app)
        learner = await member(app, client, tenant="acme", roles=("learner",))
        for cid, title in (("algo-101", "Algorithms"), ("bio", "biology")):
            await service.create_course("acme", NewCourse(id=cid, title=title))
            await service.add_lesson("acme", cid, NewLesson(title="One"))
            await service.publish("acme", cid)
        await service.edit_course("acme", "bio", CourseEdit(title="Aaa unreleased: merger"))
        text = """query ($after: String) {
            courses(tenant: "acme", first: 1, after: $after) { items { title } next }
        }"""
        titles, after = [], None
        while True:
            r = await client.post("/graphql", json={"query": text, "variables": {"after": after}},
                                  headers=learner)
            page = r.json()["data"]["courses"]
            titles += [c["title"] for c in page["items"]]
            if (after := page["next"]) is None:
                break
            assert "unreleased" not in base64.urlsafe_b64decode(after + "==").decode()
        assert titles == ["Algorithms", "biology"]


async def test_a_course_says_whether_it_is_the_draft_and_gives_its_revision(
        start: Start) -> None:
    """Before, an author got a course's publication from `courses` and its draft from
    `course`, the same type and id with nothing to tell them apart, and no revision to edit
    it with."""
    async with start(seed=False, signed_in=False) as (app, client):
        service = content_service(app)
        author = await member(app, client, tenant="acme", roles=("educator",))
        learner = await member(app, client, tenant="acme", roles=("learner",))
        r = await client.post("/v1/tenants/acme/courses", json={"id": "py", "title": "Python"},
                              headers=author)
        assert r.status_code == 201, r.text
        lesson = await service.add_lesson("acme", "py", NewLesson(title="One"))
        await service.publish("acme", "py")
        await service.edit_course("acme", "py", CourseEdit(title="Python, again"))
        await service.edit_lesson("acme", lesson.id, LessonEdit(version=1, title="One, again"))
        text = """query ($l: String!) {
            courses(tenant: "acme") { items { title draft revision lessons { title draft } } }
            course(tenant: "acme", id: "py") { title draft revision lessons { title draft } }
            lesson(tenant: "acme", id: $l) { title draft } }"""

        async def ask(headers: dict[str, str], text: str = text) -> Json:
            r = await client.post("/graphql", json={"query": text, "variables": {
                "l": lesson.id}}, headers=headers)
            body: Json = r.json()
            assert "errors" not in body, body
            got: Json = body["data"]
            return got

        revision = (await client.get("/v1/tenants/acme/courses/py", headers=author)).json()[
            "revision"]
        published = {"title": "Python", "draft": False, "revision": revision,
                     "lessons": [{"title": "One", "draft": False}]}
        got = await ask(author)
        assert got["courses"]["items"] == [published]
        got_all = await ask(author, '{ courses(tenant: "acme", status: ALL) '
                                    '{ items { title draft lessons { draft } } } }')
        assert got_all["courses"]["items"] == [
            {"title": "Python, again", "draft": True, "lessons": [{"draft": True}]}]
        assert got["course"] == {"title": "Python, again", "draft": True, "revision": revision,
                                 "lessons": [{"title": "One, again", "draft": True}]}
        assert got["lesson"] == {"title": "One, again", "draft": True}
        got = await ask(learner)
        assert got["courses"]["items"] == [published]
        assert got["course"] == published
        assert got["lesson"] == {"title": "One", "draft": False}
        # the revision is the one an edit names
        r = await client.patch("/v1/tenants/acme/courses/py", json={"title": "Python 3"},
                               headers={**author, "If-Match": f'"{revision}"'})
        assert r.status_code == 200, r.text


async def test_a_course_list_counts_the_lessons_learners_read(start: Start) -> None:
    """Before, `lessonCount` in `courses` counted a publication's lessons deleted since, which
    the course's own `lessons` (and its `course`) leave out."""
    async with start(seed=False) as (app, client):
        service = content_service(app)
        learner = await member(app, client, tenant="acme", roles=("learner",))
        await service.create_course("acme", NewCourse(id="py", title="Python"))
        lessons = [await service.add_lesson("acme", "py", NewLesson(title=t))
                   for t in ("One", "Two", "Three")]
        await service.publish("acme", "py")
        await service.delete_lesson("acme", lessons[0].id)
        text = """{ courses(tenant: "acme") { items { lessonCount lessons { title } } }
                    course(tenant: "acme", id: "py") { lessonCount } }"""
        for headers in (learner, {}):  # the publication, and (an admin's) the draft
            body = (await client.post("/graphql", json={"query": text}, headers=headers)).json()
            assert "errors" not in body, body
            [listed] = body["data"]["courses"]["items"]
            assert listed == {"lessonCount": 2, "lessons": [{"title": "Two"}, {"title": "Three"}]}
            assert body["data"]["course"] == {"lessonCount": 2}


async def test_a_failing_store_is_an_error_in_the_result_not_a_500(
        start: Start, monkeypatch: pytest.MonkeyPatch) -> None:
    async with start(seed=False) as (app, client):
        async def broken(tenant: str, **_: object) -> None:
            raise RuntimeError("secret internals")

        monkeypatch.setattr(content_service(app).repo, "page_concepts", broken)
        body = await query(client, '{ concepts(tenant: "demo") { items { id } } }')
        assert body["data"] == {"concepts": None}
        [error] = body["errors"]
        assert error["path"] == ["concepts"]
        assert error["extensions"]["code"] == "internal_error"
        assert "secret" not in error["message"]


async def test_a_store_that_is_down_says_when_to_try_again(
        start: Start, monkeypatch: pytest.MonkeyPatch) -> None:
    """Before, GraphQL dropped the Retry-After the HTTP API answers a store that is down
    with."""
    async with start(seed=False) as (app, client):
        raised: list[Exception] = [StoreUnavailable("mongo", retry_after_s=7),
                                   Problem("slow down", status=429, code="rate_limited",
                                           headers={"Retry-After": "2.5"}),
                                   Problem("slow down", status=429, code="rate_limited",
                                           headers={"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"})]

        async def broken(tenant: str, **_: object) -> None:
            raise raised.pop(0)

        monkeypatch.setattr(content_service(app).repo, "page_concepts", broken)
        found = []
        for _ in range(3):
            [error] = (await query(client, '{ concepts(tenant: "demo") { next } }'))["errors"]
            found.append((error["extensions"]["code"], error["extensions"].get("retryAfter")))
        assert found == [("store_unavailable", 7), ("rate_limited", 3), ("rate_limited", None)]
        assert app.state.platform.metrics.registry.get_sample_value(
            "bloop_rate_limited_total", {"limit": "rate_limited", "route": "/graphql"}) == 2


async def test_graphql_has_the_fields_its_http_twins_give(start: Start) -> None:
    """Before, a concept had no `version` (an edit's If-Match), a course no `owner`,
    `coAuthors` or `archivedAt`, and a user none of their profile."""
    async with start(signed_in=False) as (app, client):
        admin = await member(app, client, tenant="demo", roles=("tenant_admin",))
        educator = await member(app, client, tenant="demo", roles=("educator",))
        me = (await client.get("/v1/tenants/demo/me", headers=educator)).json()
        admin_id = (await client.get("/v1/tenants/demo/me", headers=admin)).json()["id"]
        r = await client.post("/v1/tenants/demo/courses", headers=educator,
                              json={"id": "mine", "title": "Mine"})
        assert r.status_code == 201, r.text
        r = await client.put(f"/v1/tenants/demo/courses/mine/co-authors/{admin_id}",
                             headers=educator)
        assert r.status_code in (200, 201, 204), r.text
        r = await client.post("/v1/tenants/demo/courses/thinking-in-python/archive",
                              headers=admin)
        assert r.status_code == 200, r.text
        service = content_service(app)
        [concept, *_] = await service.concepts("demo")
        await service.edit_concept("demo", concept.id, ConceptEdit(description="Again."))
        r = await client.patch("/v1/tenants/demo/me", headers=educator, json={
            "locale": "pt-BR", "time_zone": "Europe/Lisbon", "bio": "Teaches.",
            "avatar_url": "https://example.com/me.png"})
        assert r.status_code == 200, r.text
        body = (await client.post("/graphql", headers=admin, json={"query": """{
            concepts(tenant: "demo") { items { id version } }
            courses(tenant: "demo", status: ALL) { items { id owner coAuthors archivedAt } }
            users(tenant: "demo") { items { id avatarUrl locale timeZone bio emailVerified } }
        }"""})).json()
        assert "errors" not in body, body
        http = (await client.get("/v1/tenants/demo/concepts", headers=admin)).json()["items"]
        assert body["data"]["concepts"]["items"] == [
            {"id": c["id"], "version": c["version"]} for c in http]
        assert any(c["version"] == 2 for c in http)
        for course in body["data"]["courses"]["items"]:
            r = await client.get(f"/v1/tenants/demo/courses/{course['id']}", headers=admin)
            got = r.json()
            assert course == {"id": got["id"], "owner": got["owner"],
                              "coAuthors": got["co_authors"],
                              "archivedAt": got["archived_at"]}
        assert {c["id"]: c["archivedAt"] is not None
                for c in body["data"]["courses"]["items"]}["thinking-in-python"]
        http = (await client.get("/v1/tenants/demo/users", headers=admin)).json()["items"]
        assert body["data"]["users"]["items"] == [
            {"id": u["id"], "avatarUrl": u["avatar_url"], "locale": u["locale"],
             "timeZone": u["time_zone"], "bio": u["bio"], "emailVerified": u["email_verified"]}
            for u in http]
        assert {"locale": "pt-BR", "timeZone": "Europe/Lisbon", "bio": "Teaches.",
                "avatarUrl": "https://example.com/me.png"}.items() <= {
            u["id"]: u for u in body["data"]["users"]["items"]}[me["id"]].items()


def counted(app: FastAPI, name: str, **labels: str) -> float:
    value = app.state.platform.metrics.registry.get_sample_value(name, labels)
    return float(value or 0)


def access_line(caplog: pytest.LogCaptureFixture) -> logging.LogRecord:
    [line] = [r for r in caplog.records if r.name == "bloop.http" and r.getMessage() == "request"]
    return line


async def broken_concepts(app: FastAPI, monkeypatch: pytest.MonkeyPatch) -> None:
    async def broken(tenant: str, **_: object) -> None:
        raise RuntimeError("no such table: concepts")

    monkeypatch.setattr(content_service(app).repo, "page_concepts", broken)


async def test_a_resolver_failing_inside_is_counted_and_names_the_request(
        start: Start, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """Before, such a request was only a 200 in the metrics and the access line, and its error
    bore no request id."""
    caplog.set_level(logging.INFO)
    async with start(seed=False) as (app, client):
        await broken_concepts(app, monkeypatch)
        caplog.clear()
        r = await client.post("/graphql", json={
            "query": 'query Concepts { concepts(tenant: "demo") { items { name } } }',
            "operationName": "Concepts"}, headers={"X-Request-ID": "report-7"})
        assert r.status_code == 200
        [error] = r.json()["errors"]
        assert error["extensions"] == {"code": "internal_error", "status": 500,
                                       "request_id": "report-7"}
        assert r.headers["x-request-id"] == "report-7"
        assert counted(app, "bloop_graphql_errors_total", code="internal_error") == 1
        assert counted(app, "bloop_graphql_operations_total", outcome="failed") == 1
        line = access_line(caplog)
        assert (line.status, line.graphql, line.operation) == (  # type: ignore[attr-defined]
            200, "failed", "Concepts")


async def test_fields_failing_inside_log_one_traceback_a_request(
        start: Start, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """Before, each alias logged its own traceback: 30 for this one request."""
    async with start(seed=False) as (app, client):
        await broken_concepts(app, monkeypatch)
        caplog.clear()
        aliases = " ".join(f'a{i}: concepts(tenant: "demo", first: 5) {{ items {{ name }} }}'
                           for i in range(30))
        body = await query(client, "{ " + aliases + " }")
        assert len(body["errors"]) == 30
        logged = [r for r in caplog.records if r.name == "bloop.graphql"]
        assert [(r.getMessage(), r.exc_info is not None, getattr(r, "more", None))
                for r in logged] == [
            ("unhandled error in a resolver", True, None),
            ("further unhandled errors in resolvers of this request", False, 29)]
        assert counted(app, "bloop_graphql_errors_total", code="internal_error") == 30


async def test_refusals_inside_graphql_are_counted_by_their_code(
        start: Start, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    async with start(signed_in=False) as (app, client):
        learner = await member(app, client, tenant="demo", roles=("learner",))
        stranger = await member(app, client, tenant="acme", roles=("learner",))

        async def ask(headers: dict[str, str], text: str, name: str | None = None) -> Json:
            caplog.clear()
            r = await client.post("/graphql", json={"query": text, "operationName": name},
                                  headers=headers)
            assert r.status_code == 200, r.text
            body: Json = r.json()
            return body

        body = await ask(learner, 'query Page { published: courses(tenant: "demo") { next } '
                                  'drafts: courses(tenant: "demo", status: DRAFT) { next } }',
                         "Page")
        assert body["errors"][0]["extensions"] == {"code": "missing_role", "status": 403}
        assert counted(app, "bloop_graphql_errors_total", code="missing_role") == 1
        assert counted(app, "bloop_graphql_operations_total", outcome="partial") == 1
        assert access_line(caplog).graphql == "partial"  # type: ignore[attr-defined]

        await ask(stranger, '{ courses(tenant: "demo") { next } }')
        await ask(learner, '{ concepts(tenant: "demo", first: 0) { next } }')
        await ask(learner, "{ courses(tenant: ")  # no query: refused before it runs
        assert counted(app, "bloop_graphql_errors_total", code="wrong_tenant") == 1
        assert counted(app, "bloop_graphql_errors_total", code="validation_failed") == 2
        assert counted(app, "bloop_graphql_operations_total", outcome="failed") == 3

        name = "A" * 100 + "_9"
        await ask(learner, f'query {name} {{ tenant(id: "demo") {{ id }} }}', name)
        assert counted(app, "bloop_graphql_operations_total", outcome="ok") == 1
        line = access_line(caplog)
        assert (line.graphql, line.operation) == ("ok", "A" * 64)  # type: ignore[attr-defined]

        # refused before any operation ran: answered 400, counted as failed all the same
        caplog.clear()
        r = await client.post("/graphql", headers=learner, json={
            "query": "query Ok { __typename }", "operationName": "Ok; rm -rf\nERROR x"})
        assert (r.status_code, r.json()["code"]) == (400, "bad_request")
        assert counted(app, "bloop_graphql_errors_total", code="bad_request") == 1
        assert counted(app, "bloop_graphql_operations_total", outcome="failed") == 4
        assert access_line(caplog).graphql == "failed"  # type: ignore[attr-defined]


def test_an_operation_name_is_logged_cut_short_and_only_when_it_is_a_name() -> None:
    assert operation_name("Page_2") == "Page_2"
    assert operation_name("A" * 100) == "A" * NAME_LENGTH
    for sent in (None, "", "not a name", "Page\n{\"x\": 1}"):
        assert operation_name(sent) is None


def test_an_error_code_outside_the_known_ones_is_counted_as_other() -> None:
    assert code(GraphQLError("x", extensions={"code": "missing_role"})) == "missing_role"
    for extensions in ({"code": "made_up_by_a_remote"}, {"code": ["x"]}, None):
        assert code(GraphQLError("x", extensions=extensions)) == OTHER


def test_an_operation_fails_when_every_field_is_null_by_its_error() -> None:
    def error(*path: str) -> GraphQLError:
        return GraphQLError("x", path=list(path))

    assert outcome(ExecutionResult(data={"a": 1}, errors=None)) == "ok"
    assert outcome(ExecutionResult(data=None, errors=[GraphQLError("x")])) == "failed"
    assert outcome(ExecutionResult(data={"a": None, "b": None},
                                   errors=[error("a"), error("b", "items", "0")])) == "failed"
    # a field null without an error of its own (nothing found) answered
    assert outcome(ExecutionResult(data={"a": None, "b": None}, errors=[error("b")])) == "partial"
    assert outcome(ExecutionResult(data={"a": {"b": None}}, errors=[error("a", "b")])) == "partial"


BLOCKS = """
query ($t: Slug!, $l: String!) {
  lesson(tenant: $t, id: $l) {
    title version
    blocks {
      __typename
      ... on MarkdownBlock { markdown }
      ... on CodeBlock { language source }
      ... on ImageBlock { media url alt caption link { url } }
      ... on AudioBlock { media url title captions { media link { url } } }
      ... on VideoBlock { media url link { url expiresAt } }
      ... on FileBlock { media url }
      ... on QuizBlock {
        id title maxScore
        questions {
          __typename
          ... on SingleChoiceQuestion { id prompt points options { id text } }
          ... on NumericQuestion { id unit }
          ... on OrderingQuestion { id items { id } }
        }
      }
    }
  }
}"""
QUIZ = QuizBlock.model_validate({"id": "check", "title": "Check yourself", "questions": [
    {"type": "single_choice", "id": "one", "prompt": "Pick one", "points": 2,
     "feedback": {"correct": "SECRET-FEEDBACK"},
     "options": [{"id": "a", "text": "A", "correct": True, "feedback": "SECRET-A"},
                 {"id": "b", "text": "B"}]},
    {"type": "numeric", "id": "pi", "prompt": "Pi", "answer": 3.14159, "tolerance": 0.01,
     "unit": "rad"},
    {"type": "ordering", "id": "steps", "prompt": "Order", "items": [
        {"id": "s1", "text": "first"}, {"id": "s2", "text": "second"},
        {"id": "s3", "text": "third"}]},
]})


VID = "3" * 32


async def test_blocks_of_every_type_and_quizzes_without_their_answers(start: Start) -> None:
    async with start(seed=False, signed_in=False) as (app, client):
        service = content_service(app)
        author = await member(app, client, tenant="acme", roles=("educator",))
        other = await member(app, client, tenant="acme", roles=("educator",))
        learner = await member(app, client, tenant="acme", roles=("learner",))
        r = await client.post("/v1/tenants/acme/courses", json={"id": "py", "title": "Python"},
                              headers=author)
        assert r.status_code == 201, r.text
        # stored as a lesson written before media blocks were checked could be: `img1`, and
        # its captions `subs1`, are no media ids
        blocks = [MarkdownBlock(markdown="Euler: $e^{i\\pi} + 1 = 0$"),
                  CodeBlock(language="python", source="print(1)"),
                  ImageBlock(media="img1", alt="a dot", caption="Fig. 1"),
                  AudioBlock(media="aud1", title="Narration",
                             captions=Captions(media="subs1", language="en")),
                  VideoBlock(media=VID), FileBlock(media="pdf1"), QUIZ]
        lesson = await service.repo.add_lesson(Lesson.create("acme", "py", NewLesson(
            title="All", blocks=blocks)))
        await service.publish("acme", "py")
        await service.edit_lesson("acme", lesson.id, LessonEdit(version=1, title="Draft title"))

        async def ask(headers: dict[str, str]) -> Json:
            r = await client.post("/graphql", json={"query": BLOCKS, "variables": {
                "t": "acme", "l": lesson.id}}, headers=headers)
            assert r.status_code == 200, r.text
            for secret in ("SECRET", "3.14159", "0.01"):
                assert secret not in r.text
            body: Json = r.json()
            assert "errors" not in body, body
            got: Json = body["data"]["lesson"]
            return got

        seen = await ask(learner)
        assert (seen["title"], seen["version"]) == ("All", 1)  # the publication, not the draft
        assert [b["__typename"] for b in seen["blocks"]] == [
            "MarkdownBlock", "CodeBlock", "ImageBlock", "AudioBlock", "VideoBlock", "FileBlock",
            "QuizBlock"]
        assert seen["blocks"][1] == {"__typename": "CodeBlock", "language": "python",
                                     "source": "print(1)"}
        assert seen["blocks"][2]["url"] == "/v1/tenants/acme/media/img1/content"
        # no link for what is no media id, as `…/media-links` gives none
        assert seen["blocks"][2]["link"] is None
        assert seen["blocks"][3]["captions"] == {"media": "subs1", "link": None}
        link = seen["blocks"][4]["link"]
        assert link["url"].startswith(f"/v1/tenants/acme/media/{VID}/signed?reach=published&expires=")
        assert datetime.fromisoformat(link["expiresAt"]) > datetime.now(UTC)
        query = parse_qs(urlsplit(link["url"]).query)
        expires, signature = int(query["expires"][0]), query["signature"][0]
        links = app.state.content.state["media"].links
        links.check(("media", "acme", VID, "published"), expires, signature)
        for forged in (("media", "acme", "img1", "published"), ("media", "acme", VID, "staff")):
            with pytest.raises(Forbidden):
                links.check(forged, expires, signature)
        assert seen["blocks"][2]["alt"] == "a dot"
        quiz = seen["blocks"][6]
        assert (quiz["id"], quiz["maxScore"]) == ("check", 4)
        assert quiz["questions"][0]["options"] == [{"id": "a", "text": "A"},
                                                   {"id": "b", "text": "B"}]
        assert quiz["questions"][1] == {"__typename": "NumericQuestion", "id": "pi",
                                        "unit": "rad"}
        assert [i["id"] for i in quiz["questions"][2]["items"]] != ["s1", "s2", "s3"]

        # an educator who is not one of the course's authors reads what learners read
        assert (await ask(other))["title"] == "All"
        drafted = await ask(author)
        assert (drafted["title"], drafted["version"]) == ("Draft title", 2)
        assert drafted["blocks"][6] == quiz  # answers stay out of GraphQL, drafts included
        assert f"/{VID}/signed?reach=staff&" in drafted["blocks"][4]["link"]["url"]

        # so do courses and their lessons: the publication to others, the draft to its authors
        listing = ('query { courses(tenant: "acme", status: ALL)'
                   ' { items { id status lessons { title } } } }')
        for headers, title in ((other, "All"), (author, "Draft title")):
            r = await client.post("/graphql", json={"query": listing}, headers=headers)
            assert r.json()["data"]["courses"]["items"] == [
                {"id": "py", "status": "published", "lessons": [{"title": title}]}], r.text


INTROSPECT = "{ __schema { queryType { fields { name } } } }"


async def query_fields(client: httpx.AsyncClient) -> set[str]:
    body = await query(client, INTROSPECT)
    return {f["name"] for f in body["data"]["__schema"]["queryType"]["fields"]}


async def test_the_schema_has_the_fields_of_the_services_the_process_runs(start: Start) -> None:
    async with start(services=["identity"], seed=False) as (_, client):
        assert await query_fields(client) == {"tenant", "users"}
        body = (await client.post("/graphql", json={"query": '{ courses(tenant: "demo") { next } }'}))
        assert body.json()["errors"]
    # A content-only process verifies tokens issued elsewhere: its schema is read directly.
    schema = build_schema([CONTENT])
    assert schema is not None
    result = await schema.execute(INTROSPECT)
    assert result.data is not None
    assert {f["name"] for f in result.data["__schema"]["queryType"]["fields"]} == {
        "courses", "course", "lesson", "concepts"}
    # Every service: identity's, content's, learning's and the AI service's fields.
    async with start(seed=False) as (_, client):
        assert await query_fields(client) == {
            "tenant", "users", "courses", "course", "lesson", "concepts", "prerequisiteGraph",
            "myPaths", "myPath", "myNext", "myMastery", "myDueReviews", "aiJob", "aiJobs"}
        # each may fail on its own: nullable, so that it leaves the others their data
        types = await query(client, "{ __schema { queryType { fields { name type { kind } } } } }")
        assert {f["name"]: f["type"]["kind"] for f in types["data"]["__schema"]["queryType"][
            "fields"] if f["type"]["kind"] == "NON_NULL"} == {}


async def test_a_worker_serves_no_graphql(tmp_path: Path) -> None:
    app = create_app(Settings(runtime=RuntimeSettings(data_dir=tmp_path)), http_routes=False)
    assert "/graphql" not in {getattr(r, "path", None) for r in app.routes}


async def test_an_anonymous_caller_is_refused_before_any_resolver(start: Start) -> None:
    async with start(signed_in=False) as (_, client):
        for method in ("GET", "POST"):
            r = await client.request(method, "/graphql", params={"query": INTROSPECT}
                                     if method == "GET" else None,
                                     json={"query": INTROSPECT} if method == "POST" else None)
            assert r.status_code == 401, r.text
            assert r.headers["content-type"] == "application/problem+json"
            assert r.headers["www-authenticate"] == "Bearer"


async def test_archived_courses_are_listed_on_request_only(start: Start) -> None:
    async with start(signed_in=False) as (app, client):
        admin = await member(app, client, tenant="demo", roles=("tenant_admin",))
        r = await client.post("/v1/tenants/demo/courses/thinking-in-python/archive",
                              headers=admin)
        assert r.status_code == 200, r.text
        for status, found in (("", []), ("status: ARCHIVED", ["archived"]),
                              ("status: ALL", ["archived"])):
            text = f'{{ courses(tenant: "demo" {status}) {{ items {{ status }} }} }}'
            r = await client.post("/graphql", json={"query": text}, headers=admin)
            assert [c["status"] for c in r.json()["data"]["courses"]["items"]] == found, r.text


async def test_fields_keep_to_the_callers_tenant_and_roles(start: Start) -> None:
    async with start(signed_in=False) as (app, client):
        learner = await member(app, client, tenant="demo", roles=("learner",))
        stranger = await member(app, client, tenant="acme", roles=("educator", "tenant_admin"))

        async def ask(headers: dict[str, str], text: str) -> Json:
            r = await client.post("/graphql", json={"query": text}, headers=headers)
            assert r.status_code == 200, r.text
            body: Json = r.json()
            return body

        published = await ask(learner, '{ courses(tenant: "demo") { items { title } } }')
        assert published["data"]["courses"]["items"] == [{"title": "Thinking in Python"}]

        for text in ('{ courses(tenant: "demo", status: ALL) { next } }',
                     '{ users(tenant: "demo") { next } }'):
            body = await ask(learner, text)
            assert not any((body["data"] or {}).values()), text
            assert body["errors"][0]["extensions"]["code"] == "missing_role", text
        # the roles it names are those `GET …/users` names (before, platform_admin too)
        r = await client.get("/v1/tenants/demo/users", headers=learner)
        assert body["errors"][0]["message"] == r.json()["detail"]

        for text in ('{ courses(tenant: "demo") { next } }', '{ tenant(id: "demo") { id } }',
                     '{ users(tenant: "demo") { next } }', '{ concepts(tenant: "demo") { next } }',
                     '{ course(tenant: "demo", id: "thinking-in-python") { id } }'):
            body = await ask(stranger, text)
            assert not any((body["data"] or {}).values()), text
            assert body["errors"][0]["extensions"]["code"] == "wrong_tenant", text
            assert body["errors"][0]["extensions"]["status"] == 403


def test_an_exception_of_ours_before_execution_is_not_called_the_callers_fault() -> None:
    ours = in_the_query(GraphQLError("boom", original_error=KeyError("x")))
    assert "code" not in (ours.extensions or {})
    source = Source("{ courses(tenant: 5) { next } }")
    theirs = in_the_query(GraphQLError("Expected a Slug", source=source, positions=[18],
                                       original_error=ValueError("not a slug")))
    assert theirs.extensions == {"code": "validation_failed", "status": 422}


async def test_an_introspection_asked_again_is_answered_without_running_again(
        start: Start, monkeypatch: pytest.MonkeyPatch) -> None:
    """The full introspection GraphiQL sends cost about 150 ms of the event loop each time; its
    answer is the same for every caller, so it is kept. Other operations, and introspections
    that fail, still run (and are checked) each time."""
    import strawberry

    runs: list[str | None] = []
    execute = strawberry.Schema.execute

    async def counted(self: strawberry.Schema, query: str | None, *args: Any,
                      **kwargs: Any) -> ExecutionResult:
        runs.append(query)
        return await execute(self, query, *args, **kwargs)

    monkeypatch.setattr(strawberry.Schema, "execute", counted)
    full = get_introspection_query(descriptions=True)
    async with start(seed=False) as (_, client):
        first, second = await query(client, full), await query(client, full)
        assert "errors" not in first
        assert first == second
        assert runs == [full]
        # so does the same text with other comments, commas or spacing (a comment made each
        # request new: 120 ms each)
        for other in (full + "\n# a comment", full + "\n# another", full.replace("\n", " ,\n")):
            assert await query(client, other) == first
        assert runs == [full]
        # another caller gets the same answer
        member_headers = await member(_, client, tenant="demo", roles=("learner",))
        r = await client.post("/graphql", json={"query": full}, headers=member_headers)
        assert r.json() == first
        assert runs == [full]
        # variables are part of what is asked
        by_name = "query ($n: String!) { __type(name: $n) { name } }"
        assert (await query(client, by_name, n="Query"))["data"] == {"__type": {"name": "Query"}}
        assert (await query(client, by_name, n="Nope"))["data"] == {"__type": None}
        assert (await query(client, by_name, n="Query"))["data"] == {"__type": {"name": "Query"}}
        assert runs.count(by_name) == 2
        # refused each time, never kept
        bad = "{ __schema { noSuchField } }"
        for _i in range(2):
            assert (await query(client, bad))["errors"]
        assert runs.count(bad) == 2
        # a mixed operation runs, and is measured, each time
        mixed = "{ __typename " + " ".join(f"a{i}: __schema {{ types {{ name }} }}"
                                           for i in range(101)) + " }"
        for _i in range(2):
            assert (await query(client, mixed))["errors"][0]["extensions"]["code"] == (
                "too_many_aliases")
        mixed_read = '{ __typename courses(tenant: "demo") { next } }'
        for _i in range(2):
            await query(client, mixed_read)
        assert runs.count(mixed_read) == 2


def test_introspections_are_kept_by_their_tokens() -> None:
    from bloop.graphql.introspection import key_of

    text = "{ __type(name: \"Query\") { name } }"
    assert key_of(text, None, None) == key_of("# hello\n" + text.replace(" ", " , "), None, None)
    assert key_of(text, None, None) != key_of(text.replace("Query", "Course"), None, None)
    assert key_of('{ __type(name: "a b") { name } }', None, None) != key_of(
        '{ __type(name: "a", b) { name } }', None, None)
    # what parsing refuses is never kept
    assert key_of("{ __typename " + "a" * 257 + " }", None, None) is None
    assert key_of("{ __typename }" + " " * 65_536, None, None) is None


def test_an_ordinary_query_is_not_lexed_for_a_key(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every document with `__` in it was lexed for a key, and clients put `__typename` in every
    selection: +50% of parsing's CPU for an ordinary query (145 us to its 296)."""
    from bloop.graphql import introspection

    lexed: list[str] = []

    def tokens(query: str) -> str:
        lexed.append(query)
        return "t"

    monkeypatch.setattr(introspection, "_tokens", tokens)
    ordinary = "{ courses { __typename id lessons { __typename title } } }"
    assert introspection.key_of(ordinary, None, None) is None
    assert introspection.key_of("{ __typename }", None, None) is None
    assert lexed == []
    for costly in ("{ __schema { types { name } } }", '{ __type(name: "Query") { name } }',
                   "{ a: __type (name: \"Query\") { name } __typename }"):
        assert introspection.key_of(costly, None, None) is not None
    assert len(lexed) == 3


def test_kept_introspections_count_their_keys_in_their_bytes() -> None:
    from bloop.graphql.introspection import Introspections

    kept = Introspections(size=3, budget=100)
    kept.keep(("x" * 90, None, "{}"), {"a": "b"})
    assert kept.get(("x" * 90, None, "{}")) is None


def test_kept_introspections_stay_within_their_count_and_bytes() -> None:
    from bloop.graphql.introspection import Introspections

    kept = Introspections(size=3, budget=100)
    for i in range(5):
        kept.keep((str(i), None, "{}"), {"a": "x" * 10})
    assert [k[0] for k in kept.kept] == ["2", "3", "4"]
    kept.keep(("big", None, "{}"), {"a": "x" * 200})
    assert kept.get(("big", None, "{}")) is None
    kept.keep(("half", None, "{}"), {"a": "x" * 60})
    assert [k[0] for k in kept.kept] == ["4", "half"]
    assert kept.used == sum(size for _, size in kept.kept.values()) <= 100


async def test_a_caller_runs_so_many_operations_at_once_and_no_more(
        start: Start, monkeypatch: pytest.MonkeyPatch) -> None:
    """Before, nothing held one caller's GraphQL requests running at once: 8 of one learner,
    each within every limit, stalled the event loop over 10 s and grew the process 150 MB."""
    monkeypatch.setenv("BLOOP_HTTP_GRAPHQL_MAX_CONCURRENT_PER_CALLER", "2")
    async with start(signed_in=False) as (app, client):
        learner = await member(app, client, tenant="demo", roles=("learner",))
        other = await member(app, client, tenant="demo", roles=("learner",))
        service = content_service(app)
        listed = service.readable_courses
        release = asyncio.Event()
        waiting = asyncio.Semaphore(0)

        async def held(*args: Any, **kwargs: Any) -> Any:
            waiting.release()
            await release.wait()
            return await listed(*args, **kwargs)

        monkeypatch.setattr(service, "readable_courses", held)
        text = {"query": '{ courses(tenant: "demo") { items { id } } }'}

        async def ask(headers: dict[str, str]) -> httpx.Response:
            return await client.post("/graphql", json=text, headers=headers)

        running = [asyncio.create_task(ask(learner)) for _ in range(2)]
        for _ in running:
            await waiting.acquire()
        refused = await asyncio.wait_for(ask(learner), 10)  # before, it waited for them
        assert (refused.status_code, refused.headers["content-type"]) == (
            429, "application/problem+json")
        assert refused.json()["code"] == "rate_limited"
        assert refused.headers["Retry-After"] == "1"
        assert "2 GraphQL requests" in refused.json()["detail"]
        someone_else = asyncio.create_task(ask(other))  # another caller is not held by theirs
        await waiting.acquire()
        release.set()
        for r in [*await asyncio.gather(*running), await someone_else]:
            assert r.status_code == 200, r.text
            assert "errors" not in r.json(), r.text
        after = await ask(learner)  # their slots are free again
        assert after.status_code == 200, after.text
        assert "errors" not in after.json(), after.text
        assert app.state.platform.metrics.registry.get_sample_value(
            "bloop_rate_limited_total", {"limit": "graphql_concurrent", "route": "/graphql"}) == 1
