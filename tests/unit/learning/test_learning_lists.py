"""learning's lists through the real app: the graph's concepts and edges, a concept's cards,
and a learner's enrolments and mastery, a page at a time."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from bloop.platform.kit.pagination import cursor
from tests.support import NESTED_CURSOR, embedded_app, member, pages_of
from tests.unit.learning.test_learning_api import BASE, attempt_event, deliver, learner, me

Json = dict[str, Any]


@pytest.fixture
async def running(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[
        tuple[FastAPI, httpx.AsyncClient]]:
    async with embedded_app(tmp_path, monkeypatch, ["identity", "learning"]) as (app, c):
        c.headers.update(await member(app, c, "acme", ["educator"]))
        yield app, c


async def refused(client: httpx.AsyncClient, url: str,
                  headers: dict[str, str] | None = None) -> None:
    """`limit` past 200 or below 1, and an `after` that is no cursor of the list, get 422
    problems."""
    for params, code in (({"limit": 201}, "validation_failed"),
                         ({"limit": 0}, "validation_failed"),
                         ({"after": "not-a-cursor"}, "bad_cursor"),
                         ({"after": cursor(1, 2, 3)}, "bad_cursor"),
                         ({"after": NESTED_CURSOR}, "bad_cursor")):
        r = await client.get(url, params=params, headers=headers)
        assert (r.status_code, r.json()["code"]) == (422, code), (url, params)
        assert r.headers["content-type"].startswith("application/problem+json")


def keys(pages: list[list[Json]], *fields: str) -> list[list[Any]]:
    """Each page's items as their `fields` (the one field's value, when one)."""
    return [[x[fields[0]] if len(fields) == 1 else tuple(x[f] for f in fields) for x in page]
            for page in pages]


async def walked(client: httpx.AsyncClient, url: str, add: str, body: Json, *fields: str,
                 headers: dict[str, str] | None = None) -> list[Any]:
    """Every item of `url` as `keys` gives them, 2 a page, with `body` POSTed to `add` after
    the first page."""
    first = (await client.get(url, params={"limit": 2}, headers=headers)).json()
    r = await client.post(add, json=body, headers=headers)
    assert r.status_code == 201, r.text
    rest = await pages_of(client, url, 2, headers, after=first["next"])
    return [x for page in keys([first["items"], *rest], *fields) for x in page]


async def test_the_graph_and_a_concepts_cards_come_a_page_at_a_time(running: tuple[
        FastAPI, httpx.AsyncClient]) -> None:
    """They answered every concept, edge or card at once whatever `limit` said, with `next`
    null: one answer for a tenant with 50,000 concepts."""
    _, client = running
    for cid in ("c3", "c0", "c4", "c1", "c2"):
        assert (await client.post(f"{BASE}/concepts", json={"id": cid, "name": cid})
                ).status_code == 201
    for concept, requires in (("c1", "c0"), ("c4", "c0"), ("c2", "c1"), ("c2", "c0"),
                              ("c3", "c2")):
        r = await client.post(f"{BASE}/edges", json={"concept": concept, "requires": requires})
        assert r.status_code == 201, r.text
    made = []
    for n in range(5):
        r = await client.post(f"{BASE}/concepts/c0/cards", json={"front": f"Q{n}?", "back": "A."})
        made.append(r.json()["id"])

    assert keys(await pages_of(client, f"{BASE}/concepts", 2), "id") == [
        ["c0", "c1"], ["c2", "c3"], ["c4"]]
    assert keys(await pages_of(client, f"{BASE}/edges", 2), "concept", "requires") == [
        [("c1", "c0"), ("c2", "c0")], [("c2", "c1"), ("c3", "c2")], [("c4", "c0")]]
    cards = await pages_of(client, f"{BASE}/concepts/c0/cards", 2)
    assert [len(p) for p in cards] == [2, 2, 1]
    assert [c["id"] for p in cards for c in p] == made  # oldest first
    for url in ("concepts", "edges", "concepts/c0/cards"):
        assert len((await client.get(f"{BASE}/{url}")).json()["items"]) == 5
        await refused(client, f"{BASE}/{url}")
    r = await client.get(f"{BASE}/concepts/ghost/cards", params={"limit": 2})
    assert (r.status_code, r.json()["code"]) == (404, "not_found")

    # added between two pages (before the cursor where the order allows): nothing comes twice
    # or is left out
    assert await walked(client, f"{BASE}/concepts", f"{BASE}/concepts",
                        {"id": "c0a", "name": "c0a"}, "id") == ["c0", "c1", "c2", "c3", "c4"]
    assert await walked(client, f"{BASE}/edges", f"{BASE}/edges",
                        {"concept": "c0a", "requires": "c0"}, "concept", "requires") == [
        ("c1", "c0"), ("c2", "c0"), ("c2", "c1"), ("c3", "c2"), ("c4", "c0")]
    url = f"{BASE}/concepts/c0/cards"
    found = await walked(client, url, url, {"front": "Late?", "back": "A."}, "id")
    assert found[:5] == made
    assert len(found) == 6


async def test_a_learners_enrolments_and_mastery_come_a_page_at_a_time(running: tuple[
        FastAPI, httpx.AsyncClient]) -> None:
    """They answered every enrolment and every concept's mastery at once, whatever `limit`
    said, with `next` null."""
    app, client = running
    concepts = ["c3", "c0", "c4", "c1", "c2", "c0a"]
    for cid in concepts:
        await client.post(f"{BASE}/concepts", json={"id": cid, "name": cid})
    pupil = await learner(app, client)
    uid = await me(client, pupil)
    for cid in concepts[:5]:
        r = await client.post(f"{BASE}/me/enrolments", json={"goal_concept": cid}, headers=pupil)
        assert r.status_code == 201, r.text
    await deliver(app, attempt_event(uid, concepts[:5], [True, False]))

    enrolments = await pages_of(client, f"{BASE}/me/enrolments", 2, pupil)
    assert keys(enrolments, "goal_concept") == [["c3", "c0"], ["c4", "c1"], ["c2"]]
    assert keys(await pages_of(client, f"{BASE}/me/mastery", 2, pupil), "concept") == [
        ["c0", "c1"], ["c2", "c3"], ["c4"]]
    for url in ("me/enrolments", "me/mastery"):
        assert len((await client.get(f"{BASE}/{url}", headers=pupil)).json()["items"]) == 5
        await refused(client, f"{BASE}/{url}", pupil)
    other = await learner(app, client)
    assert (await client.get(f"{BASE}/me/mastery", headers=other)).json() == {
        "items": [], "next": None}

    # added between two pages: nothing comes twice or is left out
    assert await walked(client, f"{BASE}/me/enrolments", f"{BASE}/me/enrolments",
                        {"goal_concept": "c0a"}, "goal_concept", headers=pupil) == [
        "c3", "c0", "c4", "c1", "c2", "c0a"]
    first = (await client.get(f"{BASE}/me/mastery", params={"limit": 2}, headers=pupil)).json()
    await deliver(app, attempt_event(uid, ["c0a"], [True]))
    rest = await pages_of(client, f"{BASE}/me/mastery", 2, pupil, after=first["next"])
    assert [m["concept"] for m in first["items"]] + [m["concept"] for p in rest for m in p] == [
        "c0", "c1", "c2", "c3", "c4"]
