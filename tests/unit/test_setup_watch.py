"""A service's setup runs again when its store comes back (it may come back empty); a store
that failed requests is over its outage once a check answers, and its return logged; every
store's state is kept in the metrics."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from bloop.platform.kit.errors import StoreUnavailable
from bloop.platform.kit.health import Probe
from bloop.platform.kit.metrics import Metrics
from bloop.platform.kit.outages import StoreOutages
from bloop.platform.services import Mounted
from bloop.platform.setup_watch import watch_stores
from tests.support import eventually


class Server:
    def __init__(self) -> None:
        self.up = True

    async def ping(self) -> None:
        if not self.up:
            raise ConnectionRefusedError("connection refused")


class Setups:
    """A service's setup that counts its runs and fails as its store does."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.runs = 0
        self.done = 0
        self.refuse: Exception | None = None

    async def __call__(self) -> None:
        self.runs += 1
        if not self.server.up:
            raise StoreUnavailable("neo4j")
        if self.refuse is not None:
            raise self.refuse
        self.done += 1


def ran(setup: Setups, times: int) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return setup.runs >= times
    return check


def succeeded(setup: Setups) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return setup.done > 0
    return check


@contextlib.asynccontextmanager
async def watching(probes: list[Probe], ready: list[tuple[str, Mounted]],
                   outages: StoreOutages | None = None,
                   metrics: Metrics | None = None) -> AsyncIterator[None]:
    task = asyncio.create_task(watch_stores(probes, ready, interval_s=0.01,
                                            outages=outages or StoreOutages(), metrics=metrics))
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_setup_runs_again_once_when_the_store_comes_back() -> None:
    server = Server()
    setup = Setups(server)
    async with watching([Probe("neo4j", server.ping)], [("learning", Mounted(setup=setup))]):
        await asyncio.sleep(0.1)
        assert setup.runs == 0  # up all along: nothing to do
        server.up = False
        await asyncio.sleep(0.1)
        assert setup.runs == 0
        server.up = True
        await eventually(ran(setup, 1), timeout_s=2, what="setup run again")
        await asyncio.sleep(0.1)
        assert setup.runs == 1


async def test_a_setup_that_finds_a_store_down_is_tried_again_at_the_next_check() -> None:
    neo4j, mongodb = Server(), Server()
    setup = Setups(neo4j)
    probes = [Probe("neo4j", neo4j.ping), Probe("mongodb", mongodb.ping)]
    async with watching(probes, [("learning", Mounted(setup=setup))]):
        mongodb.up = neo4j.up = False
        await asyncio.sleep(0.1)
        mongodb.up = True  # back first: the setup runs, and finds Neo4j still down
        await eventually(ran(setup, 1), timeout_s=2, what="setup run")
        assert setup.done == 0
        neo4j.up = True
        await eventually(succeeded(setup), timeout_s=2, what="setup done")
        # A setup may already have found Neo4j up between a check that saw it down and the
        # next, which sees it back and sets up once more: then it stops.
        await asyncio.sleep(0.05)
        settled = (setup.runs, setup.done)
        await asyncio.sleep(0.1)
        assert (setup.runs, setup.done) == settled
        assert 1 <= setup.done <= 2


async def test_a_setup_failing_otherwise_is_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    server = Server()
    setup = Setups(server)
    setup.refuse = RuntimeError("constraint cannot be made: duplicate concepts")
    async with watching([Probe("neo4j", server.ping)], [("learning", Mounted(setup=setup))]):
        server.up = False
        await asyncio.sleep(0.05)
        with caplog.at_level(logging.ERROR, logger="bloop.app"):
            server.up = True
            await eventually(ran(setup, 1), timeout_s=2, what="setup run again")
            await asyncio.sleep(0.1)
    assert setup.runs == 1
    failures = [r for r in caplog.records if r.getMessage() == "setting the service up again failed"]
    assert [getattr(r, "service", None) for r in failures] == ["learning"]


async def test_a_store_that_failed_requests_is_over_its_outage_once_a_check_answers(
        caplog: pytest.LogCaptureFixture) -> None:
    redis = Server()
    redis.up = False
    outages = StoreOutages()
    probes = [Probe("redis", redis.ping), Probe("sqlite:content", Server().ping)]
    async with watching(probes, [], outages):
        outages.failed("redis", ConnectionRefusedError("connection refused"))
        await asyncio.sleep(0.1)
        assert outages.down() == {"redis"}
        with caplog.at_level(logging.INFO, logger="bloop.errors"):
            redis.up = True

            async def back() -> bool:
                return not outages.down()

            await eventually(back, timeout_s=2, what="redis answering again")
            await asyncio.sleep(0.1)
    [line] = [r for r in caplog.records if r.getMessage() == "store answers again"]
    assert (getattr(line, "store", None), getattr(line, "failures", None)) == ("redis", 1)


async def test_every_store_s_state_is_in_the_metrics() -> None:
    """Before, /metrics said nothing of the stores: only /readyz did, when asked."""
    redis, kafka = Server(), Server()
    metrics = Metrics()

    def up(store: str) -> Callable[[], Awaitable[bool]]:
        async def check() -> bool:
            value = metrics.registry.get_sample_value("bloop_store_up", {"store": store})
            return value == (1 if {"redis": redis, "kafka": kafka}[store].up else 0)
        return check

    async with watching([Probe("redis", redis.ping), Probe("kafka", kafka.ping)], [],
                        metrics=metrics):
        await eventually(up("redis"), timeout_s=2, what="redis up")
        kafka.up = False
        await eventually(up("kafka"), timeout_s=2, what="kafka down")
        assert metrics.registry.get_sample_value("bloop_store_up", {"store": "redis"}) == 1
        kafka.up = True
        await eventually(up("kafka"), timeout_s=2, what="kafka up again")
