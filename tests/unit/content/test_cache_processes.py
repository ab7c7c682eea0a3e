"""Two content processes on one data dir without Redis, each with its own in-process cache: a
publication or a deletion made on one reaches the other's cache through `content.events`. The
cache drops rode one group shared by both, which the embedded bus leases to one process at a
time: the other served the lesson it had cached (and 304 for its old ETag) for 10 minutes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from bloop.platform.app import create_app
from bloop.platform.content.consumers import CACHE_GROUP
from bloop.platform.content.events import TOPIC
from bloop.platform.kit.events.bus.embedded import EmbeddedEventBus
from bloop.platform.kit.settings import RuntimeSettings, Settings
from tests.support import api_client, eventually, member

BASE = "/v1/tenants/acme"


@asynccontextmanager
async def process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                  name: str) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    """One `bloop serve identity content` on the data dir `tmp_path`, with a search index of its
    own, and a client to it."""
    monkeypatch.setenv("BLOOP_SEARCH_DIRECTORY", str(tmp_path / f"search-{name}"))
    app = create_app(Settings(runtime=RuntimeSettings(data_dir=tmp_path, seed_demo=False)),
                     services=["identity", "content"])
    async with app.router.lifespan_context(app), api_client(app) as client:
        yield app, client


async def reached(app: FastAPI, after: int, type_id: str) -> int:
    """Waits until `content.events` holds an event of `type_id` past position `after`, and each
    group of `app` that drops its cached lessons has handled it; returns its position."""
    bus = app.state.platform.bus
    assert isinstance(bus, EmbeddedEventBus)
    groups = [s.group for s in app.state.content.subscriptions
              if TOPIC in s.topics and (s.group == CACHE_GROUP or s.group.startswith(f"{CACHE_GROUP}."))]
    assert groups
    found: list[int] = []

    async def handled() -> bool:
        if not found:
            found.extend(m.offset for m in await bus.read(TOPIC, after)
                         if dict(m.headers).get("type") == type_id.encode())
        return bool(found) and all([await bus.drained(group) for group in groups])

    await eventually(handled, timeout_s=20, what=f"{type_id} handled by the cache's consumer")
    return found[0]


async def test_a_publication_on_one_process_reaches_the_others_cache(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("BLOOP_STORE", "BLOOP_MONGO_ADAPTER", "BLOOP_NEO4J_ADAPTER", "BLOOP_KAFKA_ADAPTER",
                "BLOOP_REDIS_ADAPTER"):
        monkeypatch.delenv(var, raising=False)
    async with process(tmp_path, monkeypatch, "a") as (app_a, a), \
            process(tmp_path, monkeypatch, "b") as (app_b, b):
        assert not app_b.state.platform.cache_shared
        educator = await member(app_a, a, "acme", ["educator"])
        learner = await member(app_a, a, "acme", ["learner"])
        assert (await a.post(f"{BASE}/courses", json={"id": "py", "title": "Python"},
                             headers=educator)).status_code == 201
        r = await a.post(f"{BASE}/courses/py/lessons", headers=educator, json={
            "title": "Loops", "blocks": [{"type": "markdown", "markdown": "Loops repeat."}]})
        assert r.status_code == 201, r.text
        url = f"{BASE}/lessons/{r.json()['id']}"
        assert (await a.post(f"{BASE}/courses/py/publish", headers=educator)).status_code == 200
        after = await reached(app_b, 0, "bloop.content.course.published.v1")

        first = await b.get(url, headers=learner)  # now in B's cache
        assert (first.status_code, first.json()["title"]) == (200, "Loops")
        etag = first.headers["etag"]
        assert (await b.get(url, headers=learner | {"If-None-Match": etag})).status_code == 304

        r = await a.patch(url, json={"version": 1, "title": "Loops, again"}, headers=educator)
        assert r.status_code == 200, r.text
        assert (await a.post(f"{BASE}/courses/py/publish", headers=educator)).status_code == 200
        after = await reached(app_b, after, "bloop.content.course.published.v1")
        assert (await b.get(url, headers=learner)).json()["title"] == "Loops, again"
        now = await b.get(url, headers=learner | {"If-None-Match": etag})
        assert now.status_code == 200
        assert (now.json()["title"], now.headers["etag"] != etag) == ("Loops, again", True)

        assert (await a.delete(url, headers=educator)).status_code == 204
        await reached(app_b, after, "bloop.content.lesson.deleted.v1")
        assert (await b.get(url, headers=learner)).status_code == 404
