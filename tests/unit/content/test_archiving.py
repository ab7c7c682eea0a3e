"""Archiving a published course through the real app (embedded adapters): it leaves the
catalogue and search, learning refuses new enrolments in it, learners already enrolled keep it,
and putting it back undoes all of that."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support import embedded_app, eventually, member

BASE = "/v1/tenants/acme"
ENROLMENTS = f"{BASE}/learning/me/enrolments"


def problem(r: httpx.Response, status: int, code: str) -> None:
    assert r.headers["content-type"].startswith("application/problem+json"), r.text
    assert (r.status_code, r.json()["code"]) == (status, code), r.text


async def test_an_archived_course_leaves_the_catalogue_search_and_enrolment(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Before, a published course stayed listed, searchable and open to enrolment for good."""
    async with embedded_app(tmp_path, monkeypatch, ["identity", "content", "learning"]) as (app, c):
        owner = await member(app, c, "acme", ["educator"])
        co_author = await member(app, c, "acme", ["educator"])
        learner = await member(app, c, "acme", ["learner"])
        newcomer = await member(app, c, "acme", ["learner"])
        for cid in ("old", "draft"):
            r = await c.post(f"{BASE}/courses", json={"id": cid, "title": f"Quaternions, the {cid} course"},
                             headers=owner)
            assert r.status_code == 201, r.text
            r = await c.post(f"{BASE}/courses/{cid}/lessons", headers=owner,
                             json={"title": f"Quaternions {cid}"})
            assert r.status_code == 201, r.text
        lesson = (await c.get(f"{BASE}/courses/old", headers=owner)).json()["lessons"][0]["id"]
        co_author_id = (await c.get(f"{BASE}/me", headers=co_author)).json()["id"]
        r = await c.put(f"{BASE}/courses/old/co-authors/{co_author_id}", headers=owner)
        assert r.status_code == 200, r.text
        assert (await c.post(f"{BASE}/courses/old/publish", headers=owner)).status_code == 200

        async def hits(who: dict[str, str]) -> list[str]:
            r = await c.get(f"{BASE}/search", params={"q": "quaternions"}, headers=who)
            assert r.status_code == 200, r.text
            return sorted(h["title"] for h in r.json()["hits"])

        async def listed(who: dict[str, str], status: str = "published") -> list[str]:
            r = await c.get(f"{BASE}/courses", params={"status": status}, headers=who)
            assert r.status_code == 200, r.text
            return [x["id"] for x in r.json()["items"]]

        async def enrol(who: dict[str, str]) -> httpx.Response:
            return await c.post(ENROLMENTS, json={"course_id": "old"}, headers=who)

        async def indexed() -> bool:
            return await hits(learner) == ["Quaternions old", "Quaternions, the old course"]

        async def learning_has_it() -> bool:
            return (await enrol(learner)).status_code == 201

        await eventually(indexed, timeout_s=20, what="search to find the course")
        await eventually(learning_has_it, timeout_s=20, what="learning to know the course")

        archive = f"{BASE}/courses/old/archive"
        problem(await c.post(archive, headers=co_author), 403, "not_the_owner")
        problem(await c.post(archive, headers=learner), 403, "missing_role")
        problem(await c.post(archive, params={"revision": 0}, headers=owner), 409,
                "stale_version")
        problem(await c.post(f"{BASE}/courses/draft/archive", headers=owner), 409,
                "course_not_published")
        problem(await c.post(f"{BASE}/courses/ghost/archive", headers=owner), 404, "not_found")
        r = await c.post(archive, headers=owner)
        assert r.status_code == 200, r.text
        archived: dict[str, Any] = r.json()
        assert (archived["status"], archived["version"]) == ("archived", 1)
        assert archived["archived_at"] is not None
        again = await c.post(archive, headers=owner)
        assert (again.status_code, again.json()) == (200, archived)

        assert await listed(learner) == []
        assert await listed(owner, "archived") == ["old"]
        assert "old" in await listed(owner, "all")
        problem(await c.get(f"{BASE}/courses", params={"status": "archived"}, headers=learner),
                403, "missing_role")
        # learners already enrolled keep reading it
        r = await c.get(f"{BASE}/courses/old", headers=learner)
        assert (r.status_code, r.json()["status"]) == (200, "archived")
        assert (await c.get(f"{BASE}/lessons/{lesson}", headers=learner)).status_code == 200

        async def unlisted() -> bool:
            return await hits(learner) == []

        async def closed() -> bool:
            r = await enrol(newcomer)
            assert r.status_code in (201, 409), r.text
            if r.status_code == 201:  # learning had not seen the archiving yet: leave again
                await c.delete(ENROLMENTS, params={"course_id": "old"}, headers=newcomer)
                return False
            problem(r, 409, "course_archived")
            return True

        await eventually(unlisted, timeout_s=20, what="search to drop the archived course")
        await eventually(closed, timeout_s=20, what="learning to refuse new enrolments")
        r = await enrol(learner)  # enrolling again answers the enrolment held
        assert r.status_code == 200, r.text
        mine = (await c.get(ENROLMENTS, headers=learner)).json()["items"]
        assert [x["course_id"] for x in mine] == ["old"]
        problem(await c.post(f"{BASE}/courses/old/publish", headers=owner), 409,
                "course_archived")
        problem(await c.post(f"{BASE}/courses/old/rollback", json={"version": 1},
                             headers=owner), 409, "course_archived")

        r = await c.post(f"{BASE}/courses/old/unarchive", headers=owner)
        assert r.status_code == 200, r.text
        assert (r.json()["status"], r.json()["archived_at"]) == ("published", None)
        assert r.json()["revision"] == archived["revision"] + 1
        assert await listed(learner) == ["old"]
        await eventually(indexed, timeout_s=20, what="search to find the course again")

        async def open_again() -> bool:
            return (await enrol(newcomer)).status_code == 201

        await eventually(open_again, timeout_s=20, what="learning to take enrolments again")
        assert (await c.post(f"{BASE}/courses/old/publish", headers=owner)).status_code == 200
