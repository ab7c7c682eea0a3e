"""A Neo4j server that went away and came back without the constraints the learning service
made at start (an empty data directory) gets them again from the running process, as a restart
would: without them it takes duplicate concepts, and the next start fails on the constraint."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from bloop.platform.app import create_app
from bloop.platform.kit import stores
from bloop.platform.kit.settings import Neo4jSettings, RuntimeSettings, Settings
from tests.support import StallingRelay, api_client, bounded, eventually, require_server

STORE_VARS = ("BLOOP_STORE", "BLOOP_MONGO_ADAPTER", "BLOOP_NEO4J_ADAPTER", "BLOOP_KAFKA_ADAPTER",
              "BLOOP_REDIS_ADAPTER", "BLOOP_INFLUX_ADAPTER")
CONSTRAINT = "learning_concept_key"


@pytest.fixture
async def relay() -> AsyncIterator[StallingRelay]:
    async with StallingRelay(require_server("neo4j").address) as r:
        yield r


@pytest.fixture
async def client(tmp_path: Path, relay: StallingRelay, monkeypatch: pytest.MonkeyPatch
                 ) -> AsyncIterator[httpx.AsyncClient]:
    for var in STORE_VARS:
        monkeypatch.delenv(var, raising=False)
    app: FastAPI = create_app(Settings(
        runtime=RuntimeSettings(data_dir=tmp_path, seed_demo=False, store_watch_s=0.2),
        neo4j=Neo4jSettings(adapter="real", url=f"bolt://127.0.0.1:{relay.port}", retry_s=0.5)),
        services=["learning"], http_routes=False)
    async with app.router.lifespan_context(app), api_client(app) as c:
        yield c


async def test_constraints_lost_while_neo4j_was_away_are_made_again(
        client: httpx.AsyncClient, relay: StallingRelay) -> None:
    direct = stores.neo4j_driver(Neo4jSettings(url=require_server("neo4j").url))

    async def neo4j(state: str) -> bool:
        r = await client.get("/readyz")
        return bool(r.json()["checks"]["neo4j"]["state"] == state)

    async def constrained() -> bool:
        records, _, _ = await direct.execute_query("SHOW CONSTRAINTS YIELD name RETURN name")
        return CONSTRAINT in {r["name"] for r in records}

    try:
        await bounded(eventually(lambda: neo4j("up"), timeout_s=30, interval_s=0.2,
                                 what="neo4j up"), 60, "/readyz before the outage")
        assert await constrained()
        await relay.down()
        try:
            await bounded(eventually(lambda: neo4j("down"), timeout_s=15, interval_s=0.2,
                                     what="neo4j down"), 30, "/readyz in the outage")
            await asyncio.sleep(1)  # the watch's own checks (every 0.2 s) see it down too
            await direct.execute_query(f"DROP CONSTRAINT {CONSTRAINT}")
            assert not await constrained()
        finally:
            with contextlib.suppress(OSError):
                await relay.up()
        await bounded(eventually(constrained, timeout_s=30, interval_s=0.2,
                                 what="constraint made again"), 60, "the constraint after")
    finally:
        if not await constrained():
            await direct.execute_query(
                f"CREATE CONSTRAINT {CONSTRAINT} IF NOT EXISTS "
                "FOR (n:Concept) REQUIRE (n.tenant, n.id) IS UNIQUE")
        await direct.close()
