"""After a MongoDB-wire server was down, with `/readyz` asked often meanwhile, the client finds
the server again: the probe never cancels a ping, which on Python 3.11 could leave pymongo's
topology lock held for good (every later operation waiting without end). The lock is lost
only when a cancel lands in a narrow window, so the old probe failed here now and then, not
every time; tests/unit/test_health.py checks the probe itself."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from bloop.platform.app import create_app
from bloop.platform.demo import data
from bloop.platform.kit.health import Probe, run_probe
from bloop.platform.kit.settings import MongoSettings, RuntimeSettings, Settings
from tests.support import StallingRelay, api_client, bounded, eventually, login, require_server

STORE_VARS = ("BLOOP_STORE", "BLOOP_MONGO_ADAPTER", "BLOOP_NEO4J_ADAPTER", "BLOOP_KAFKA_ADAPTER",
              "BLOOP_REDIS_ADAPTER", "BLOOP_INFLUX_ADAPTER")
ROUTE = "/v1/tenants/demo/courses"


@pytest.fixture
async def relay() -> AsyncIterator[StallingRelay]:
    async with StallingRelay(require_server("mongo").address) as r:
        yield r


@pytest.fixture
async def app_and_client(tmp_path: Path, relay: StallingRelay, monkeypatch: pytest.MonkeyPatch
                         ) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    for var in STORE_VARS:
        monkeypatch.delenv(var, raising=False)
    # Server selection as long as the probe's 2 s: a probe that cancels its ping cancels it
    # while the driver itself ends one of its waits in there, the window where the lock is lost.
    mongo = MongoSettings(adapter="real", url=f"mongodb://127.0.0.1:{relay.port}",
                          timeout_ms=2000, socket_timeout_ms=3000)
    app = create_app(Settings(runtime=RuntimeSettings(data_dir=tmp_path, seed_demo=True),
                              mongo=mongo))
    async with app.router.lifespan_context(app), api_client(app) as c:
        grace = data.PEOPLE[1]
        c.headers.update(await login(c, data.TENANT_ID, grace.email, grace.password))
        yield app, c


async def test_mongodb_is_found_again_after_an_outage_probed_by_readyz(
        app_and_client: tuple[FastAPI, httpx.AsyncClient], relay: StallingRelay) -> None:
    app, client = app_and_client
    probe = next(p for p in app.state.platform.probes if p.name == "mongodb")

    async def served() -> bool:
        return (await client.get(ROUTE)).status_code == 200

    async def mongodb_up() -> bool:
        r = await client.get("/readyz")
        return bool(r.json()["checks"]["mongodb"]["state"] == "up")

    async def hammer(path: str, until: float) -> None:
        while time.monotonic() < until:
            await client.get(path)
            await asyncio.sleep(0.05)

    async def probed(variant: Probe, until: float) -> None:
        while time.monotonic() < until:
            await run_probe(variant)

    await bounded(eventually(served, timeout_s=30, interval_s=0.2, what=ROUTE), 60,
                  f"{ROUTE} before the outage")
    await relay.down()
    try:
        until = time.monotonic() + 10
        # Probes timed out at every phase of the driver's half-second waits in server selection.
        variants = [replace(probe, timeout_s=0.45 + i * 0.005) for i in range(20)]
        await bounded(asyncio.gather(*(hammer("/readyz", until) for _ in range(4)),
                                     *(hammer(ROUTE, until) for _ in range(4)),
                                     *(probed(v, until) for v in variants)),
                      40, "/readyz and a route during the outage")
        r = await bounded(client.get("/readyz"), 10, "/readyz during the outage")
        assert r.json()["checks"]["mongodb"]["state"] == "down"
    finally:
        with contextlib.suppress(OSError):
            await relay.up()
    await bounded(eventually(mongodb_up, timeout_s=30, interval_s=0.5, what="mongodb up"), 60,
                  "/readyz after the outage")
    await bounded(eventually(served, timeout_s=15, interval_s=0.2, what=ROUTE), 30,
                  f"{ROUTE} after the outage")
