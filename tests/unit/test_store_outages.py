"""A store that is down is logged at a rate an operator can read: its first failure at once,
then at most one line every 30 s naming how many went unlogged, over HTTP and GraphQL alike,
while every failure is still answered 503 and counted."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from pymongo.errors import AutoReconnect

from bloop.platform.content.service import ContentService
from bloop.platform.kit.outages import StoreOutages
from tests.support import embedded_app, member

BASE = "/v1/tenants/acme"
Running = tuple[FastAPI, httpx.AsyncClient]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def down(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
               ) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient, Clock]]:
    """An app whose content store fails every read as a MongoDB that went away."""
    async with embedded_app(tmp_path, monkeypatch, ["identity", "content"]) as (app, client):
        client.headers.update(await member(app, client, "acme", ["educator"]))
        clock = Clock()
        outages: StoreOutages = app.state.store_outages
        monkeypatch.setattr(outages, "clock", clock)

        async def gone(*args: object, **kwargs: object) -> None:
            raise AutoReconnect("connection refused")

        service: ContentService = app.state.content.state["service"]
        monkeypatch.setattr(service.repo, "list_courses", gone)
        monkeypatch.setattr(service.repo, "page_concepts", gone)
        yield app, client, clock


def warnings(caplog: pytest.LogCaptureFixture) -> list[tuple[str | None, int | None]]:
    return [(getattr(r, "store", None), getattr(r, "unlogged", None)) for r in caplog.records
            if r.getMessage() == "store unavailable"]


async def test_a_store_down_is_logged_once_then_every_30_s_with_what_went_unlogged(
        down: tuple[FastAPI, httpx.AsyncClient, Clock], caplog: pytest.LogCaptureFixture
        ) -> None:
    app, client, clock = down
    caplog.set_level(logging.WARNING, "bloop.errors")
    for _ in range(5):
        assert (await client.get(f"{BASE}/courses")).status_code == 503
    assert warnings(caplog) == [("mongodb", None)]
    clock.now += 29
    assert (await client.get(f"{BASE}/courses")).status_code == 503
    assert warnings(caplog) == [("mongodb", None)]
    clock.now += 1
    assert (await client.get(f"{BASE}/courses")).status_code == 503
    assert warnings(caplog) == [("mongodb", None), ("mongodb", 5)]
    assert app.state.platform.metrics.registry.get_sample_value(
        "bloop_http_requests_total",
        {"method": "GET", "route": "/v1/tenants/{tenant}/courses", "status": "503"}) == 7
    assert app.state.platform.metrics.registry.get_sample_value(
        "bloop_store_failures_total", {"store": "mongodb"}) == 7


async def test_a_graphql_query_failing_on_a_store_down_logs_one_line(
        down: tuple[FastAPI, httpx.AsyncClient, Clock], caplog: pytest.LogCaptureFixture
        ) -> None:
    """Before, each of its 30 fields logged its own line."""
    app, client, _ = down
    caplog.set_level(logging.WARNING, "bloop.errors")
    aliases = " ".join(f'a{i}: concepts(tenant: "acme") {{ next }}' for i in range(30))
    r = await client.post("/graphql", json={"query": "{ " + aliases + " }"})
    assert {e["extensions"]["code"] for e in r.json()["errors"]} == {"store_unavailable"}
    assert warnings(caplog) == [("mongodb", None)]
    assert app.state.platform.metrics.registry.get_sample_value(
        "bloop_graphql_errors_total", {"code": "store_unavailable"}) == 30
    assert app.state.platform.metrics.registry.get_sample_value(
        "bloop_store_failures_total", {"store": "mongodb"}) == 30


def test_a_store_that_answers_again_is_logged_and_its_next_failure_at_once(
        caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    outages = StoreOutages(every_s=30, clock=clock)
    caplog.set_level(logging.INFO, "bloop.errors")
    outages.failed("redis", ConnectionError("refused"))
    clock.now += 5
    outages.failed("neo4j", ConnectionError("refused"))
    outages.failed("redis", ConnectionError("refused"))
    assert outages.down() == {"redis", "neo4j"}
    clock.now += 10
    outages.answered("redis")
    outages.answered("redis")  # once
    outages.failed("redis", ConnectionError("refused"))
    assert [(r.getMessage(), getattr(r, "store", None), getattr(r, "down_s", None),
             getattr(r, "failures", None)) for r in caplog.records] == [
        ("store unavailable", "redis", None, None),
        ("store unavailable", "neo4j", None, None),
        ("store answers again", "redis", 15, 2),
        ("store unavailable", "redis", None, None)]


def test_a_store_no_check_watches_starts_a_new_outage_after_a_quiet_while(
        caplog: pytest.LogCaptureFixture) -> None:
    """The disk has no check to say it answers again: a failure weeks later was logged as the
    same outage's, with a `down_s` of weeks."""
    clock = Clock()
    outages = StoreOutages(every_s=30, clock=clock)
    caplog.set_level(logging.INFO, "bloop.errors")
    outages.failed("disk", OSError("no space"))
    clock.now += 10
    outages.failed("disk", OSError("no space"))
    clock.now += 7 * 86_400
    outages.failed("disk", OSError("no space"))
    assert [(r.getMessage(), getattr(r, "down_s", None), getattr(r, "unlogged", None))
            for r in caplog.records] == [("store unavailable", None, None),
                                         ("store unavailable", None, None)]
