"""A service's setup runs again when its store comes back (it may come back empty); a store
that failed requests is checked until it answers, and its return logged."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from bloop.platform.kit.errors import StoreUnavailable
from bloop.platform.kit.health import Probe
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
                   outages: StoreOutages | None = None) -> AsyncIterator[None]:
    task = asyncio.create_task(watch_stores(probes, ready, interval_s=0.01,
                                            outages=outages or StoreOutages()))
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
        settled = setup.runs
        await asyncio.sleep(0.1)
        assert (setup.runs, setup.done) == (settled, 1)


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


async def test_stores_without_setup_to_redo_are_checked_only_once_they_failed(
        caplog: pytest.LogCaptureFixture) -> None:
    checks: list[str] = []
    redis = Server()
    redis.up = False

    def ping(name: str) -> Callable[[], Awaitable[None]]:
        async def check() -> None:
            checks.append(name)
            await redis.ping()
        return check

    outages = StoreOutages()
    probes = [Probe("redis", ping("redis")), Probe("sqlite:content", ping("sqlite:content"))]
    async with watching(probes, [], outages):
        await asyncio.sleep(0.1)
        assert checks == []
        outages.failed("redis", ConnectionRefusedError("connection refused"))
        await asyncio.sleep(0.1)
        assert set(checks) == {"redis"}
        with caplog.at_level(logging.INFO, logger="bloop.errors"):
            redis.up = True

            async def back() -> bool:
                return not outages.down()

            await eventually(back, timeout_s=2, what="redis answering again")
        checked = len(checks)
        await asyncio.sleep(0.1)
        assert len(checks) == checked  # not checked once it answers
    [line] = [r for r in caplog.records if r.getMessage() == "store answers again"]
    assert (getattr(line, "store", None), getattr(line, "failures", None)) == ("redis", 1)
