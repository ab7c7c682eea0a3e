"""A store that stalls (its connections stay open, no answer comes) degrades the routes that
need it with a 503 within its bound, like one that is down, and they recover with it. One that
goes away and comes back without what the services' setup made (an empty data directory) has
it made again by the running process."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from bloop.platform.app import create_app
from bloop.platform.demo import data
from bloop.platform.kit import stores
from bloop.platform.kit.errors import StoreUnavailable
from bloop.platform.kit.events.bus.port import Message
from bloop.platform.kit.events.outbox.neo4j import Neo4jOutbox
from bloop.platform.kit.events.outbox.port import Pending
from bloop.platform.kit.events.types import registry
from bloop.platform.kit.settings import MongoSettings, Neo4jSettings, RuntimeSettings, Settings
from tests.support import StallingRelay, api_client, bounded, eventually, login, require_server

STORE_VARS = ("BLOOP_STORE", "BLOOP_MONGO_ADAPTER", "BLOOP_NEO4J_ADAPTER", "BLOOP_KAFKA_ADAPTER",
              "BLOOP_REDIS_ADAPTER", "BLOOP_INFLUX_ADAPTER")


@dataclass(frozen=True)
class Case:
    server: str
    check: str  # its name in /readyz
    route: str  # one that needs it

    def settings(self, port: int, data_dir: Path) -> Settings:
        """It, through the relay, as the only real store, bounded at a second or two."""
        runtime = RuntimeSettings(data_dir=data_dir, seed_demo=True, store_watch_s=0.2)
        if self.server == "mongo":
            return Settings(runtime=runtime, mongo=MongoSettings(
                adapter="real", url=f"mongodb://127.0.0.1:{port}", timeout_ms=1000,
                socket_timeout_ms=1000))
        return Settings(runtime=runtime, neo4j=Neo4jSettings(
            adapter="real", url=f"bolt://127.0.0.1:{port}", query_timeout_s=2.0))


class MadeAtSetup:
    """One thing a service's setup makes in the server: an index of content's lessons in
    MongoDB, the concept key of learning's graph in Neo4j."""

    def __init__(self, server: str) -> None:
        self.server = server
        url = require_server(server).url
        self.mongo = stores.mongo_client(MongoSettings(url=url)) if server == "mongo" else None
        self.neo4j = stores.neo4j_driver(Neo4jSettings(url=url)) if server == "neo4j" else None

    async def present(self) -> bool:
        if self.mongo is not None:
            return "tenant_course_position" in await self.mongo.content.lessons.index_information()
        assert self.neo4j is not None
        records, _, _ = await self.neo4j.execute_query("SHOW CONSTRAINTS YIELD name RETURN name")
        return "learning_concept_key" in {r["name"] for r in records}

    async def drop(self) -> None:
        if self.mongo is not None:
            await self.mongo.content.lessons.drop_index("tenant_course_position")
        else:
            assert self.neo4j is not None
            await self.neo4j.execute_query("DROP CONSTRAINT learning_concept_key")

    async def close(self) -> None:
        """Makes it again if the test could not see it made, and closes the client."""
        if self.mongo is not None:
            if not await self.present():
                await self.mongo.content.lessons.create_index(
                    [("tenant", 1), ("course", 1), ("position", 1)],
                    name="tenant_course_position")
            await self.mongo.close()
        if self.neo4j is not None:
            if not await self.present():
                await self.neo4j.execute_query(
                    "CREATE CONSTRAINT learning_concept_key IF NOT EXISTS "
                    "FOR (n:Concept) REQUIRE (n.tenant, n.id) IS UNIQUE")
            await self.neo4j.close()


PING_MESSAGE = Message.event("bloop.stalled", b"none", "bloop.test.ping.v1", b"{}")
CASES = [Case("mongo", "mongodb", "/v1/tenants/demo/courses"),
         Case("neo4j", "neo4j", "/v1/tenants/demo/learning/concepts")]


@pytest.fixture(params=CASES, ids=[c.server for c in CASES])
def case(request: pytest.FixtureRequest) -> Case:
    chosen: Case = request.param
    return chosen


@pytest.fixture
async def relay(case: Case) -> AsyncIterator[StallingRelay]:
    async with StallingRelay(require_server(case.server).address) as r:
        yield r


@pytest.fixture
async def client(case: Case, tmp_path: Path, relay: StallingRelay,
                 monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[httpx.AsyncClient]:
    for var in STORE_VARS:
        monkeypatch.delenv(var, raising=False)
    app = create_app(case.settings(relay.port, tmp_path))
    async with app.router.lifespan_context(app), api_client(app) as c:
        grace = data.PEOPLE[1]
        c.headers.update(await login(c, data.TENANT_ID, grace.email, grace.password))
        yield c


async def test_a_stalled_store_answers_503_in_bounded_time_and_recovers(
        case: Case, client: httpx.AsyncClient, relay: StallingRelay) -> None:
    async def served() -> bool:
        return (await client.get(case.route)).status_code == 200

    await bounded(eventually(served, timeout_s=30, interval_s=0.2, what=case.route), 60,
                  f"{case.route} before {case.server} stalls")
    relay.stall()
    try:
        started = time.monotonic()
        r = await bounded(client.get(case.route), 30, f"{case.route} with {case.server} stalled")
        took = time.monotonic() - started
        assert r.status_code == 503, r.text
        assert r.headers["content-type"] == "application/problem+json"
        assert r.json()["store"] == case.check
        # The bound ends the wait (MongoDB's driver retries a read once): about 5 s here with
        # the 1 s timeouts set above, 10 s seen on a loaded machine; the defaults (10 s a read,
        # retried) would take 20 s or more.
        assert took < 16, took
        ready = await bounded(client.get("/readyz"), 10, f"/readyz with {case.server} stalled")
        assert ready.status_code == 503
        assert ready.json()["checks"][case.check]["state"] == "down"
        assert (await client.get("/healthz")).status_code == 200
    finally:
        relay.resume()
    await bounded(eventually(served, timeout_s=30, interval_s=0.2, what=case.route), 60,
                  f"{case.route} after {case.server} resumed")


async def test_what_setup_made_is_made_again_when_the_store_comes_back(
        case: Case, client: httpx.AsyncClient, relay: StallingRelay) -> None:
    made = MadeAtSetup(case.server)

    async def readiness(state: str) -> bool:
        r = await client.get("/readyz")
        return bool(r.json()["checks"][case.check]["state"] == state)

    try:
        await bounded(eventually(lambda: readiness("up"), timeout_s=30, interval_s=0.2,
                                 what=f"{case.server} up"), 60, "/readyz before the outage")
        assert await made.present()
        await relay.down()
        try:
            await bounded(eventually(lambda: readiness("down"), timeout_s=15, interval_s=0.2,
                                     what=f"{case.server} down"), 30, "/readyz in the outage")
            await asyncio.sleep(1)  # the store watch's own checks (every 0.2 s) see it too
            await made.drop()
            assert not await made.present()
        finally:
            with contextlib.suppress(OSError):
                await relay.up()
        await bounded(eventually(made.present, timeout_s=30, interval_s=0.2,
                                 what="made again"), 60, f"setup after {case.server} is back")
    finally:
        await made.close()


async def test_a_stalled_neo4j_fails_the_outbox_relays_reads_within_their_bound() -> None:
    """The relay of a Neo4j outbox backs off and tries again, as for a store that is down,
    instead of waiting on the silent server as long as the driver would."""
    async with StallingRelay(require_server("neo4j").address) as relay:
        driver = stores.neo4j_driver(Neo4jSettings(url=f"bolt://127.0.0.1:{relay.port}"))
        outbox = Neo4jOutbox(driver, registry, name=f"stalled-{uuid.uuid4().hex[:8]}",
                             deadline_s=1.0)
        try:
            await bounded(outbox.setup(), 30, "outbox setup")
            assert await bounded(outbox.pending(10), 10, "pending before the stall") == []
            relay.stall()
            calls: dict[str, Callable[[], Awaitable[object]]] = {
                "pending": lambda: outbox.pending(10),
                "count_pending": outbox.count_pending,
                "mark_sent": lambda: outbox.mark_sent([Pending("none", PING_MESSAGE)]),
                "prune": lambda: outbox.prune(60),
            }
            for what, call in calls.items():
                started = time.monotonic()
                with pytest.raises(StoreUnavailable):
                    await bounded(call(), 20, f"{what} with neo4j stalled")
                assert time.monotonic() - started < 5, what
            relay.resume()
            assert await bounded(outbox.count_pending(), 20, "count after resume") == 0
        finally:
            relay.resume()
            await driver.close()
