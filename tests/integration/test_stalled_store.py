"""A store that stalls (its connections stay open, no answer comes) degrades the routes that
need it with a 503 within its socket timeout, like one that is down, and they recover with it."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from bloop.platform.app import create_app
from bloop.platform.demo import data
from bloop.platform.kit.settings import MongoSettings, RuntimeSettings, Settings
from tests.support import StallingRelay, bounded, eventually, login, require_server

STORE_VARS = ("BLOOP_STORE", "BLOOP_MONGO_ADAPTER", "BLOOP_NEO4J_ADAPTER", "BLOOP_KAFKA_ADAPTER",
              "BLOOP_REDIS_ADAPTER", "BLOOP_INFLUX_ADAPTER")


@pytest.fixture
async def relay() -> AsyncIterator[StallingRelay]:
    async with StallingRelay(require_server("mongo").address) as r:
        yield r


@pytest.fixture
async def client(tmp_path: Path, relay: StallingRelay,
                 monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[httpx.AsyncClient]:
    """The platform with MongoDB, through the relay, as its only real store."""
    for var in STORE_VARS:
        monkeypatch.delenv(var, raising=False)
    settings = Settings(
        runtime=RuntimeSettings(data_dir=tmp_path, seed_demo=True),
        mongo=MongoSettings(adapter="real", url=f"mongodb://127.0.0.1:{relay.port}",
                            timeout_ms=1000, socket_timeout_ms=1000))
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bloop") as c:
            grace = data.PEOPLE[1]
            c.headers.update(await login(c, data.TENANT_ID, grace.email, grace.password))
            yield c


async def test_a_stalled_mongodb_answers_503_in_bounded_time_and_recovers(
        client: httpx.AsyncClient, relay: StallingRelay) -> None:
    courses = "/v1/tenants/demo/courses"
    assert (await client.get(courses)).status_code == 200
    relay.stall()
    try:
        started = time.monotonic()
        r = await bounded(client.get(courses), 30, "the course list with MongoDB stalled")
        took = time.monotonic() - started
        assert r.status_code == 503, r.text
        assert r.headers["content-type"] == "application/problem+json"
        assert r.json()["store"] == "mongodb"
        # The socket timeout ends the wait; the driver's monitor, finding the server silent too,
        # would end it a little later (about 3 s).
        assert took < 8, took
        ready = await bounded(client.get("/readyz"), 10, "/readyz with MongoDB stalled")
        assert ready.status_code == 503
        assert ready.json()["checks"]["mongodb"]["state"] == "down"
        assert (await client.get("/healthz")).status_code == 200
    finally:
        relay.resume()

    async def served() -> bool:
        return (await client.get(courses)).status_code == 200

    await bounded(eventually(served, timeout_s=30, interval_s=0.2, what="the course list"), 60,
                  "the course list after MongoDB resumed")
