"""Writes that name no version or revision, racing others through the real app (embedded
adapters): each is applied on top of the others, never refused 409 for another's write; one
that names a version or revision the record has left is still refused."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from bloop.platform.content.model import Course, NewLesson
from bloop.platform.content.service import ContentService
from tests.support import embedded_app, member

BASE = "/v1/tenants/acme"
COURSE = f"{BASE}/courses/py"


@pytest.fixture
async def app_client(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                     ) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    async with embedded_app(tmp_path, monkeypatch, ["identity", "content"]) as (app, c):
        c.headers.update(await member(app, c, "acme", ["educator"]))
        assert (await c.post(f"{BASE}/courses", json={"id": "py", "title": "Python"})
                ).status_code == 201
        yield app, c


def service(app: FastAPI) -> ContentService:
    svc: ContentService = app.state.content.state["service"]
    return svc


def codes(answers: list[httpx.Response]) -> list[tuple[int, str | None]]:
    return [(r.status_code, r.json().get("code") if r.status_code >= 400 else None)
            for r in answers]


async def test_modules_added_at_once_are_all_added(
        app_client: tuple[FastAPI, httpx.AsyncClient]) -> None:
    """Before, all but a few were refused 409 stale_version: each was stored against the
    revision it read, whatever the others added meanwhile."""
    app, c = app_client
    answers = await asyncio.gather(*(c.post(f"{COURSE}/modules", json={
        "id": f"m{i}", "title": f"Module {i}"}) for i in range(16)))
    assert codes(answers) == [(201, None)] * 16
    modules = (await c.get(COURSE)).json()["modules"]
    assert sorted(m["id"] for m in modules) == sorted(f"m{i}" for i in range(16))
    again = await asyncio.gather(*(c.post(f"{COURSE}/modules", json={
        "id": "twice", "title": "Twice"}) for _ in range(3)))
    assert sorted(codes(again)) == [(201, None), (409, "module_exists"), (409, "module_exists")]
    assert len(service(app)._turns) == 0


async def test_a_course_deleted_while_a_lesson_is_added_is_deleted(
        app_client: tuple[FastAPI, httpx.AsyncClient], monkeypatch: pytest.MonkeyPatch) -> None:
    """Before, the deletion was refused 409 stale_version for the lesson added between its read
    and its write, though it named no revision."""
    app, c = app_client
    svc = service(app)
    delete_draft_course = svc.repo.delete_draft_course
    added: list[str] = []

    async def racing(course: Course, *args: Any) -> None:
        if not added:
            added.append((await svc.add_lesson("acme", "py", NewLesson(title="Racing"))).id)
        await delete_draft_course(course, *args)

    monkeypatch.setattr(svc.repo, "delete_draft_course", racing)
    r = await c.delete(COURSE)
    assert r.status_code == 204, r.text
    assert (await c.get(COURSE)).status_code == 404
    assert (await c.get(f"{BASE}/lessons/{added[0]}")).status_code == 404


async def test_a_delete_naming_its_revision_is_refused_for_a_racing_lesson(
        app_client: tuple[FastAPI, httpx.AsyncClient], monkeypatch: pytest.MonkeyPatch) -> None:
    app, c = app_client
    svc = service(app)
    delete_draft_course = svc.repo.delete_draft_course

    async def racing(course: Course, *args: Any) -> None:
        await svc.add_lesson("acme", "py", NewLesson(title="Racing"))
        await delete_draft_course(course, *args)

    monkeypatch.setattr(svc.repo, "delete_draft_course", racing)
    revision = (await c.get(COURSE)).json()["revision"]
    r = await c.delete(COURSE, headers={"If-Match": f'"{revision}"'})
    assert (r.status_code, r.json()["code"]) == (409, "stale_version"), r.text
    assert (await c.get(COURSE)).status_code == 200


@pytest.mark.parametrize("named", [False, True])
async def test_an_archiving_racing_an_edit_applies_on_top_unless_it_names_a_revision(
        app_client: tuple[FastAPI, httpx.AsyncClient], monkeypatch: pytest.MonkeyPatch,
        named: bool) -> None:
    """Before, archiving (and putting back) was refused 409 stale_version for an edit landing
    between its read and its write, though it named no revision."""
    app, c = app_client
    svc = service(app)
    assert (await c.post(f"{COURSE}/lessons", json={"title": "One"})).status_code == 201
    assert (await c.post(f"{COURSE}/publish")).status_code == 200
    set_course_status = svc.repo.set_course_status
    edits: list[str] = []

    async def racing(course: Course, expected: Course, *args: Any) -> None:
        if edits:  # an edit from another process, which takes no turn here
            current = await svc.course("acme", "py")
            await svc.repo.update_course(current.changed(title=edits.pop()), current.revision)
        await set_course_status(course, expected, *args)

    monkeypatch.setattr(svc.repo, "set_course_status", racing)
    for action, status in (("archive", "archived"), ("unarchive", "published")):
        revision = (await c.get(COURSE)).json()["revision"]
        edits.append(f"Python, edited as it was {status}")
        r = await c.post(f"{COURSE}/{action}",
                         params={"revision": revision} if named else {})
        if named:
            assert (r.status_code, r.json()["code"]) == (409, "stale_version"), r.text
            assert r.json()["current_revision"] == revision + 1
            return
        assert (r.status_code, r.json()["status"]) == (200, status), r.text
        assert r.json()["title"] == f"Python, edited as it was {status}"
        assert r.json()["revision"] == revision + 2


async def test_a_rollback_racing_an_edit_of_its_course_restores_its_head_on_top(
        app_client: tuple[FastAPI, httpx.AsyncClient], monkeypatch: pytest.MonkeyPatch) -> None:
    """Before, a rollback naming no revision was refused 409 stale_version for a course edit
    landing between its read and its head's write."""
    app, c = app_client
    svc = service(app)
    assert (await c.post(f"{COURSE}/lessons", json={"title": "One"})).status_code == 201
    assert (await c.post(f"{COURSE}/publish")).status_code == 200
    assert (await c.patch(COURSE, json={"title": "Python 2"})).status_code == 200
    assert (await c.post(f"{COURSE}/publish")).status_code == 200
    update_course = svc.repo.update_course
    raced: list[bool] = []

    async def racing(course: Course, expected_revision: int) -> None:
        if not raced:  # a co-author added meanwhile (no publication holds them)
            raced.append(True)
            current = await svc.course("acme", "py")
            await update_course(current.changed(co_authors=["racer"]), current.revision)
        await update_course(course, expected_revision)

    monkeypatch.setattr(svc.repo, "update_course", racing)
    r = await c.post(f"{COURSE}/rollback", json={"version": 1})
    assert r.status_code == 200, r.text
    rolled = r.json()
    assert (rolled["title"], rolled["rollback_of"], rolled["version"]) == ("Python", 1, 3)
    assert (await c.get(COURSE)).json()["co_authors"] == ["racer"]


async def test_concept_edits_naming_no_version_all_apply_however_many_at_once(
        app_client: tuple[FastAPI, httpx.AsyncClient]) -> None:
    """Before, each was tried ten times against the others, one of which won each round: past
    ten at once, some were refused 409 busy ("kept changing")."""
    app, c = app_client
    assert (await c.post(f"{BASE}/concepts", json={"id": "loops", "name": "Loops"})
            ).status_code == 201
    answers = await asyncio.gather(*(c.patch(f"{BASE}/concepts/loops", json={
        "description": f"Edit {i}."}) for i in range(40)))
    assert codes(answers) == [(200, None)] * 40
    [concept] = (await c.get(f"{BASE}/concepts")).json()["items"]
    assert concept["version"] == 41
    assert len(service(app)._turns) == 0
