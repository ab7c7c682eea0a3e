"""A learner's completion by module, through the real app (identity, content and learning on
embedded stores): content's publication tells learning the course's modules, and `…/me/progress`
lists them in the course's order, those holding no lesson too."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from bloop.platform.content.events import CoursePublished
from bloop.platform.kit.events.types import type_of
from tests.support import embedded_app, eventually, member

BASE = "/v1/tenants/acme"
MODULES = [{"id": "m1", "title": "First"}, {"id": "m2", "title": "Second"},
           {"id": "m3", "title": "Third"}]


def ok(r: httpx.Response, status: int = 200) -> Any:
    assert r.status_code == status, r.text
    return r.json()


async def test_progress_lists_the_courses_modules_in_its_order(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Modules came in the order their lessons did (a lesson moved to a later module put that
    module first), and a module with no lesson was left out: the publication named no module."""
    async with embedded_app(tmp_path, monkeypatch, ["identity", "content", "learning"]) as (app, c):
        author = await member(app, c, "acme", ["educator"])
        pupil = await member(app, c, "acme", ["learner"])
        ok(await c.post(f"{BASE}/courses", json={"id": "py", "title": "Python",
                                                 "modules": MODULES}, headers=author), 201)
        lessons = {}
        for title, module in (("A", "m1"), ("B", "m2"), ("C", "m1")):
            made = ok(await c.post(f"{BASE}/courses/py/lessons", headers=author,
                                   json={"title": title, "module": module}), 201)
            lessons[title] = made
        ok(await c.post(f"{BASE}/courses/py/publish", headers=author))

        async def enrolled() -> bool:
            r = await c.post(f"{BASE}/learning/me/enrolments", json={"course_id": "py"},
                             headers=pupil)
            return r.status_code in (200, 201)

        await eventually(enrolled, timeout_s=20, what="learning to know the course")
        a = lessons["A"]
        ok(await c.patch(f"{BASE}/lessons/{a['id']}", headers=author,
                         json={"module": "m2", "version": a["version"]}))
        ok(await c.post(f"{BASE}/courses/py/publish", headers=author))
        ok(await c.post(f"{BASE}/learning/me/lessons/{a['id']}/progress",
                        json={"status": "completed"}, headers=pupil))

        async def modules() -> list[dict[str, Any]]:
            report = ok(await c.get(f"{BASE}/learning/me/progress", headers=pupil))
            found: list[dict[str, Any]] = report["courses"][0]["modules"]
            return found

        want = [{"id": "m1", "lessons": 1, "completed": 0},
                {"id": "m2", "lessons": 2, "completed": 1},
                {"id": "m3", "lessons": 0, "completed": 0}]

        async def republished() -> bool:
            return await modules() == want

        await eventually(republished, timeout_s=20, what="learning to know the republication")


def test_a_course_publication_names_its_modules_in_order() -> None:
    """`modules` is optional in course.published v1: an event without it reads as none."""
    data = {"course_id": "py", "version": 1, "title": "Python", "summary": "", "language": "en",
            "level": "beginner", "tags": [], "lesson_ids": [],
            "published_at": "2025-05-01T00:00:00Z"}
    assert type_of(CoursePublished).model.model_validate(data).modules == []
