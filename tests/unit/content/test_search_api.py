"""The search route through the real app (embedded adapters): content written and published by
an educator reaches the index through `content.events`, learners find only what is published in
their own tenant, and bad input is a 4xx problem, never a 500."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bloop.platform.content.search.index import TantivyIndex
from bloop.platform.content.search.model import SearchDoc
from tests.support import NESTED_CURSOR, embedded_app, eventually, member

# A sentence with a full-width comma, as written in Chinese.
CHINESE = "本课程是中文课程介绍\N{FULLWIDTH COMMA}欢迎大家来学习。"

BASE = "/v1/tenants/acme"


@pytest.fixture
async def client(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[httpx.AsyncClient]:
    async with embedded_app(tmp_path, monkeypatch, ["identity", "content"]) as (app, c):
        c.headers.update(await member(app, c, "acme", ["educator"]))
        c.headers["X-Learner"] = (await member(app, c, "acme", ["learner"]))["Authorization"]
        c.headers["X-Other"] = (await member(app, c, "umbrella", ["educator"]))[
            "Authorization"]
        yield c


def header(client: httpx.AsyncClient, who: str) -> dict[str, str]:
    return {"Authorization": client.headers[who]}


async def search(client: httpx.AsyncClient, who: str = "X-Learner", tenant: str = "acme",
                 **params: Any) -> dict[str, Any]:
    r = await client.get(f"/v1/tenants/{tenant}/search", params=params,
                         headers=header(client, who))
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def titles(body: dict[str, Any]) -> list[str]:
    return [h["title"] for h in body["hits"]]


async def found(client: httpx.AsyncClient, q: str, expected: list[str], **params: Any) -> None:
    async def check() -> bool:
        return sorted(titles(await search(client, q=q, **params))) == sorted(expected)
    await eventually(check, timeout_s=20, what=f"search {q!r} to find {expected}")


async def publish(client: httpx.AsyncClient, course: str, title: str, lessons: list[tuple[str, str]],
                  tenant: str = "acme", who: str | None = None, **fields: Any) -> list[str]:
    headers = header(client, who) if who else {}
    base = f"/v1/tenants/{tenant}"
    r = await client.post(f"{base}/courses", json={"id": course, "title": title, **fields},
                          headers=headers)
    assert r.status_code == 201, r.text
    ids = []
    for name, text in lessons:
        r = await client.post(f"{base}/courses/{course}/lessons", headers=headers, json={
            "title": name, "blocks": [{"type": "markdown", "markdown": text}]})
        assert r.status_code == 201, r.text
        ids.append(r.json()["id"])
    r = await client.post(f"{base}/courses/{course}/publish", headers=headers)
    assert r.status_code == 200, r.text
    return ids


async def test_published_content_is_found_and_kept_in_step(client: httpx.AsyncClient) -> None:
    [loops, gone] = await publish(client, "py", "Python", [
        ("Loops", "A for loop repeats a block."), ("Legacy", "Obsolete syntax, tabs.")],
        tags=["programming"], language="en", level="beginner")
    await found(client, "", ["Python", "Loops", "Legacy"])
    body = await search(client, q="programming")
    assert sorted(titles(body)) == ["Legacy", "Loops", "Python"]
    assert body["total"] == 3
    assert body["facets"]["tag"] == [{"value": "programming", "count": 3}]
    assert body["facets"]["language"] == [{"value": "en", "count": 3}]
    [hit] = (await search(client, q="repeats"))["hits"]
    assert (hit["kind"], hit["id"], hit["course_id"]) == ("lesson", loops, "py")
    assert [hit["snippet"][a:b] for a, b in hit["highlights"]] == ["repeats"]

    # a draft edit stays unseen until the course is published again
    r = await client.patch(f"{BASE}/lessons/{loops}",
                           json={"version": 1, "blocks": [{"type": "markdown",
                                                           "markdown": "A while loop waits."}]})
    assert r.status_code == 200, r.text
    await found(client, "repeats", ["Loops"])
    assert titles(await search(client, q="waits")) == []
    assert (await client.post(f"{BASE}/courses/py/publish")).status_code == 200
    await found(client, "waits", ["Loops"])
    await found(client, "repeats", [])

    assert (await client.delete(f"{BASE}/lessons/{gone}")).status_code == 204
    await found(client, "obsolete", [])
    assert sorted(titles(await search(client, q=""))) == ["Loops", "Python"]


async def test_learners_never_find_drafts_nor_another_tenants_content(
        client: httpx.AsyncClient) -> None:
    await publish(client, "theirs", "Umbrella secrets", [("Hidden", "umbrella only words")],
                  tenant="umbrella", who="X-Other")
    r = await client.post(f"{BASE}/courses", json={"id": "wip", "title": "Draft course"})
    assert r.status_code == 201
    r = await client.post(f"{BASE}/courses/wip/lessons", json={
        "title": "Unpublished", "blocks": [{"type": "markdown", "markdown": "draft words"}]})
    assert r.status_code == 201
    await publish(client, "py", "Python", [("Loops", "loop words")])
    await found(client, "words", ["Loops"])
    await found(client, "umbrella", ["Umbrella secrets", "Hidden"], tenant="umbrella",
                who="X-Other")

    for who in ("X-Learner", "Authorization"):  # the learner, and the course's educator
        for q in ("draft", "umbrella", "secrets", "", "words"):
            body = await search(client, who=who, q=q, limit=50)
            assert not {"Unpublished", "Draft course", "Hidden", "Umbrella secrets"} & set(
                titles(body)), (who, q)

    r = await client.get("/v1/tenants/umbrella/search", params={"q": "umbrella"},
                         headers=header(client, "X-Learner"))
    assert r.status_code == 403
    assert r.json()["code"] == "wrong_tenant"
    assert (await client.get(f"{BASE}/search", headers={"Authorization": ""})).status_code == 401


@pytest.mark.parametrize(("params", "code"), [
    ({"q": '"unclosed'}, "bad_query"),
    ({"q": "((( ***"}, "bad_query"),
    ({"q": "x" * 300}, "validation_failed"),
    ({"limit": 0}, "validation_failed"),
    ({"limit": 51}, "validation_failed"),
    ({"level": "wizard"}, "validation_failed"),
    ({"after": "not-a-cursor"}, "bad_cursor"),
    ({"cursor": "not-a-cursor"}, "bad_cursor"),
    ({"after": NESTED_CURSOR}, "bad_cursor"),
])
async def test_bad_input_is_a_422_problem(client: httpx.AsyncClient, params: dict[str, Any],
                                          code: str) -> None:
    r = await client.get(f"{BASE}/search", params=params, headers=header(client, "X-Learner"))
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["code"] == code


async def test_pages_through_cursors_and_filters(client: httpx.AsyncClient) -> None:
    await publish(client, "big", "Big", [(f"Part {i}", "shared text") for i in range(7)],
                  language="fr", level="advanced", tags=["maths"])
    await publish(client, "small", "Small", [("Alone", "shared text")])
    await found(client, "shared", [*(f"Part {i}" for i in range(7)), "Alone"])

    seen: list[str] = []
    params: dict[str, Any] = {"q": "shared", "limit": 3, "language": "fr"}
    while True:
        body = await search(client, **params)
        assert body["total"] == 7
        seen += titles(body)
        if body["next"] is None:
            break
        params["after"] = body["next"]
    assert sorted(seen) == [f"Part {i}" for i in range(7)]
    assert titles(await search(client, q="shared", level="advanced", tag="MATHS", limit=1)) != []
    assert titles(await search(client, q="shared", level="beginner")) == ["Alone"]


async def test_hits_show_no_score_and_a_language_filter_ignores_case(
        client: httpx.AsyncClient) -> None:
    """Each hit showed its BM25 score, counted over every tenant's documents: a learner could
    watch it change when another tenant published a word. `language=EN` found nothing."""
    await publish(client, "py", "Python", [("Loops", "A for loop repeats.")], language="en")
    await found(client, "loop", ["Loops"])
    body = await search(client, q="loop", language="EN")
    assert titles(body) == ["Loops"]
    assert "score" not in body["hits"][0]
    app = client._transport.app  # type: ignore[attr-defined]
    hit = app.openapi()["components"]["schemas"]["Hit"]
    assert "score" not in hit["properties"]
    assert "score" not in hit.get("required", [])


async def test_an_index_of_an_older_version_is_built_again_at_start(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An index kept from an older version (other words, quizzes as authored) is emptied and
    built again from the store when the process starts, under a new consumer group."""
    async with embedded_app(tmp_path, monkeypatch, ["identity", "content"]) as (app, c):
        c.headers.update(await member(app, c, "acme", ["educator"]))
        await publish(c, "zh", "中文课程", [("介绍", CHINESE)])
        first = app.state.content.state["search"].index.index_id

        async def indexed() -> bool:
            return titles(await search(c, who="Authorization", q="")) != []
        await eventually(indexed, timeout_s=20, what="the course to be indexed")
    directory = tmp_path / "search"
    stale = TantivyIndex(directory)  # a document the store does not hold, as if from before
    await stale.write([SearchDoc(tenant="acme", kind="lesson", id="ghost", course_id="zh",
                                 title="Ghost", body="grind boil steep pour", tags=[],
                                 language="en", level="beginner", course_version=9)])
    await stale.close()
    meta = json.loads((directory / "bloop-search.json").read_text())
    (directory / "bloop-search.json").write_text(json.dumps(meta | {"schema": 1}))

    async with embedded_app(tmp_path, monkeypatch, ["identity", "content"]) as (app, c):
        c.headers.update(await member(app, c, "acme", ["learner"]))
        index = app.state.content.state["search"].index
        assert index.index_id != first
        assert index.built_at is not None  # built before the app served
        assert titles(await search(c, who="Authorization", q="grind")) == []
        assert sorted(titles(await search(c, who="Authorization", q="中文"))) == ["中文课程", "介绍"]
        assert titles(await search(c, who="Authorization", q="课程介绍")) == ["介绍"]
