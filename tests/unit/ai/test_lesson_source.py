"""Where the AI service reads a lesson: content's service in one process, content's HTTP API in
another. Both give the same lesson text, in the lesson's language (its course's unless it names
one), and that language is what the model is told to write in."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from bloop.ai.jobs.lessons import HttpLessons, InProcessLessons
from bloop.ai.jobs.ports import NO_RIGHTS, LessonRights
from bloop.platform.content.service import ContentService
from bloop.platform.kit.auth import SCOPES, Principal
from bloop.platform.kit.errors import NotFound, Problem, StoreUnavailable
from bloop.platform.kit.settings import AiSettings
from tests.support import api_client, embedded_app, member
from tests.unit.ai.fake_openai import FakeOpenAI
from tests.unit.ai.test_ai_api import BASE, LESSON, build, follow


def principal(user_id: str, *roles: str) -> Principal:
    return Principal(user_id=user_id, tenant="acme", roles=frozenset(roles),
                     scopes=frozenset(SCOPES), token_id="t", session_id="s", expires_at=2**31)


async def whoami(client: httpx.AsyncClient, headers: dict[str, str], *roles: str) -> Principal:
    me = (await client.get("/v1/tenants/acme/me", headers=headers)).json()
    return principal(me["id"], *roles)


class Rig:
    def __init__(self, app: FastAPI, client: httpx.AsyncClient, educator: dict[str, str],
                 author: Principal) -> None:
        self.app, self.client, self.educator, self.author = app, client, educator, author
        content: ContentService = app.state.content.state["service"]
        self.in_process = InProcessLessons(content)
        self.over_http = HttpLessons("http://bloop.test", client=client)

    async def lesson(self, course: str, **fields: object) -> str:
        r = await self.client.post(f"{BASE}/courses/{course}/lessons", headers=self.educator,
                                   json={"title": "Les noms", "blocks": [
                                       {"type": "markdown", "markdown": "Un nom désigne une valeur."}],
                                         **fields})
        assert r.status_code == 201, r.text
        lesson_id: str = r.json()["id"]
        return lesson_id


@pytest.fixture
async def rig(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Rig]:
    async with embedded_app(tmp_path, monkeypatch, ["identity", "content"]) as (app, client):
        educator = await member(app, client, "acme", ["educator"])
        r = await client.post(f"{BASE}/courses", headers=educator,
                              json={"id": "py-fr", "title": "Python", "language": "fr"})
        assert r.status_code == 201, r.text
        yield Rig(app, client, educator, await whoami(client, educator, "educator"))


async def test_both_sources_read_the_lesson_in_its_own_or_its_courses_language(rig: Rig) -> None:
    french = await rig.lesson("py-fr")
    german = await rig.lesson("py-fr", language="de")
    for lesson_id, language in ((french, "fr"), (german, "de")):
        here = await rig.in_process.lesson("acme", lesson_id, rig.author, {})
        there = await rig.over_http.lesson("acme", lesson_id, rig.author, rig.educator)
        assert here == there
        assert (there.language, there.course, there.text) == (
            language, "py-fr", "Un nom désigne une valeur.")
        # what content checks before it attaches a narration or a video of it
        content: ContentService = rig.app.state.content.state["service"]
        assert there.made_from == await content.made_from(await content.lesson("acme",
                                                                               lesson_id))


async def test_an_api_key_sent_as_x_api_key_reaches_content_too(rig: Rig) -> None:
    lesson = await rig.lesson("py-fr")
    r = await rig.client.post(f"{BASE}/courses/py-fr/publish", headers=rig.educator)
    assert r.status_code == 200, r.text
    admin = await member(rig.app, rig.client, "acme", ["tenant_admin"])
    r = await rig.client.post(f"{BASE}/api-keys", headers=admin, json={
        "name": "catalogue sync", "scopes": ["content:read"]})
    assert r.status_code == 201, r.text
    key = {"X-API-Key": r.json()["key"]}
    assert (await rig.over_http.lesson("acme", lesson, rig.author, key)).language == "fr"
    r = await rig.client.delete(f"{BASE}/api-keys/{r.json()['id']}", headers=admin)
    assert r.status_code == 204, r.text
    with pytest.raises(Problem) as refused:
        await rig.over_http.lesson("acme", lesson, rig.author, key)
    assert refused.value.code == "content_forbidden"


async def test_content_over_http_refuses_as_it_refuses_the_caller(rig: Rig) -> None:
    draft = await rig.lesson("py-fr")
    learner = await member(rig.app, rig.client, "acme", ["learner"])
    with pytest.raises(NotFound):
        await rig.over_http.lesson("acme", "no-such-lesson", rig.author, rig.educator)
    with pytest.raises(NotFound):  # a learner is never shown a draft
        await rig.over_http.lesson("acme", draft, rig.author, learner)
    for credential in ({}, {"Authorization": "Bearer not-a-token"}):
        with pytest.raises(Problem) as refused:
            await rig.over_http.lesson("acme", draft, rig.author, credential)
        assert (refused.value.status, refused.value.code) == (403, "content_forbidden")
    with socket.socket() as held:  # bound and never listening: every connection is refused
        held.bind(("127.0.0.1", 0))
        down = HttpLessons(f"http://127.0.0.1:{held.getsockname()[1]}")
        try:
            with pytest.raises(StoreUnavailable):
                await down.lesson("acme", draft, rig.author, rig.educator)
        finally:
            await down.close()


async def test_another_educator_reads_what_was_published_and_may_not_edit(rig: Rig) -> None:
    """Both sources show a course's draft to its authors alone: another educator gets the
    lesson as published (none while it never was), and may not edit it."""
    lesson = await rig.lesson("py-fr")
    other_headers = await member(rig.app, rig.client, "acme", ["educator"])
    other = await whoami(rig.client, other_headers, "educator")
    for source, headers in ((rig.in_process, {}), (rig.over_http, other_headers)):
        with pytest.raises(NotFound):
            await source.lesson("acme", lesson, other, headers)
    r = await rig.client.post(f"{BASE}/courses/py-fr/publish", headers=rig.educator)
    assert r.status_code == 200, r.text
    r = await rig.client.patch(f"{BASE}/lessons/{lesson}", headers=rig.educator, json={
        "version": 1, "blocks": [{"type": "markdown", "markdown": "Un brouillon secret."}]})
    assert r.status_code == 200, r.text
    for source, mine, theirs in ((rig.in_process, {}, {}),
                                 (rig.over_http, rig.educator, other_headers)):
        assert (await source.lesson("acme", lesson, rig.author, mine)).text == (
            "Un brouillon secret.")
        assert (await source.lesson("acme", lesson, other, theirs)).text == (
            "Un nom désigne une valeur.")
        assert await source.rights("acme", [lesson], rig.author, mine) == {
            lesson: LessonRights(version=2, may_edit=True)}
        assert await source.rights("acme", [lesson], other, theirs) == {
            lesson: LessonRights(version=1, may_edit=False)}


async def test_both_sources_answer_for_many_lessons_at_once(rig: Rig) -> None:
    """What the caller may do with each lesson: one call to content over HTTP for up to 200
    lessons; nothing of a draft they may not read, of no lesson, or when content refuses
    them."""
    published = await rig.lesson("py-fr")
    r = await rig.client.post(f"{BASE}/courses/py-fr/publish", headers=rig.educator)
    assert r.status_code == 200, r.text
    draft = await rig.lesson("py-fr")
    other_headers = await member(rig.app, rig.client, "acme", ["educator"])
    other = await whoami(rig.client, other_headers, "educator")
    asked = [draft, published, "ghost", *(f"l{n}" for n in range(250))]
    sent: list[httpx.Request] = []

    async def count(request: httpx.Request) -> None:
        sent.append(request)

    rig.client.event_hooks["request"].append(count)
    for source, mine, theirs in ((rig.in_process, {}, {}),
                                 (rig.over_http, rig.educator, other_headers)):
        sent.clear()
        assert await source.rights("acme", asked, rig.author, mine) == {
            draft: LessonRights(version=1, may_edit=True),
            published: LessonRights(version=1, may_edit=True),
            **dict.fromkeys(asked[2:], NO_RIGHTS)}
        assert await source.rights("acme", asked, other, theirs) == {
            published: LessonRights(version=1, may_edit=False),
            **dict.fromkeys([draft, *asked[2:]], NO_RIGHTS)}
        assert len(sent) == (4 if source is rig.over_http else 0)
    refused = await rig.over_http.rights("acme", [published], rig.author,
                                         {"Authorization": "Bearer not-a-token"})
    assert refused == {published: NO_RIGHTS}


async def test_the_model_is_told_to_write_in_the_lessons_language(
        tmp_path: Path, fake_openai: FakeOpenAI, monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("BLOOP_STORE", "BLOOP_MONGO_ADAPTER", "BLOOP_KAFKA_ADAPTER"):
        monkeypatch.delenv(var, raising=False)
    app = build(tmp_path, AiSettings(openai_base_url=fake_openai.base_url, model="gpt-4o-mini"))
    async with app.router.lifespan_context(app), api_client(app) as c:
        c.headers.update(await member(app, c, "acme", ["educator"]))
        r = await c.post(f"{BASE}/courses", json={"id": "py", "title": "Python",
                                                   "language": "fr"})
        assert r.status_code == 201, r.text
        r = await c.post(f"{BASE}/courses/py/lessons", json={
            "title": "Noms et valeurs", "blocks": [{"type": "markdown", "markdown": LESSON}]})
        assert r.status_code == 201, r.text
        r = await c.post(f"{BASE}/ai/jobs", json={"kind": "quiz", "lesson_id": r.json()["id"],
                                                  "params": {"count": 3}})
        assert r.status_code == 201, r.text
        final = (await follow(c, r.json()["id"]))[-1][1]
        assert final["status"] == "succeeded", final
    [request] = fake_openai.requests
    system = request["messages"][0]
    assert system["role"] == "system"
    assert "Write in the lesson's language (fr)." in system["content"]
