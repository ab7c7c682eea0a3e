"""With every store real, `/readyz` turns a dependency red when its server stops and green when
it returns; routes that need the store answer 503 meanwhile, the others keep serving."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bloop import infra
from bloop.platform.app import create_app
from bloop.platform.demo import data
from bloop.platform.kit.settings import RuntimeSettings, Settings
from tests.support import api_client, bounded, eventually, login, require_server

SERVERS = ["redis", "mongo", "neo4j", "kafka"]
CHECK = {"redis": "redis", "mongo": "mongodb", "neo4j": "neo4j", "kafka": "kafka"}


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    for name in SERVERS:
        require_server(name)
    settings = Settings(runtime=RuntimeSettings(store="real", data_dir=tmp_path, seed_demo=True))
    app = create_app(settings)
    async with app.router.lifespan_context(app), api_client(app) as c:
        yield c


@pytest.fixture
async def signed_in(client: httpx.AsyncClient) -> httpx.AsyncClient:
    grace = data.PEOPLE[1]
    client.headers.update(await login(client, data.TENANT_ID, grace.email, grace.password))
    return client


async def checks(client: httpx.AsyncClient) -> tuple[int, dict[str, Any]]:
    r = await client.get("/readyz")
    return r.status_code, r.json()["checks"]


async def test_every_real_store_is_checked(client: httpx.AsyncClient) -> None:
    status, found = await checks(client)
    assert status == 200, found
    for name in SERVERS:
        assert found[CHECK[name]]["state"] == "up"
        assert found[CHECK[name]]["latency_ms"] >= 0
    assert "influxdb" not in found  # configured, but no service writes to it yet


@pytest.mark.parametrize("name", SERVERS)
async def test_a_stopped_store_turns_red_then_green(signed_in: httpx.AsyncClient,
                                                    name: str) -> None:
    client = signed_in
    if not infra.servers()[name].managed():
        pytest.fail(f"this test stops {name}, so it needs one started by `bloop infra up {name}`")
    await asyncio.to_thread(infra.stop, name)
    try:
        await bounded(red(client, name), 60, f"/readyz and routes with {name} stopped")
    finally:
        await asyncio.to_thread(infra.start, name)

    async def green() -> bool:
        status, found = await checks(client)
        return status == 200 and found[CHECK[name]]["state"] == "up"

    await bounded(eventually(green, timeout_s=60, interval_s=0.5, what=f"{name} to be ready"),
                  90, f"/readyz with {name} started again")
    if name == "mongo":
        r = await bounded(client.get("/v1/tenants/demo/courses"), 30, "the course list")
        assert r.status_code == 200


async def red(client: httpx.AsyncClient, name: str) -> None:
    status, found = await checks(client)
    assert status == 503
    assert found[CHECK[name]]["state"] == "down"
    assert found[CHECK[name]]["error"]
    others = [CHECK[n] for n in SERVERS if n != name]
    assert all(found[o]["state"] == "up" for o in others), found
    assert (await client.get("/healthz")).status_code == 200
    if name == "mongo":
        r = await client.get("/v1/tenants/demo/courses")
        assert r.status_code == 503
        assert r.headers["content-type"].startswith("application/problem+json")
        assert int(r.headers["retry-after"]) > 0
