"""Work left to run after a request's answer, per tenant."""

from __future__ import annotations

import asyncio
import logging

import pytest

from bloop.platform.kit import backlog
from bloop.platform.kit.backlog import Backlog

log = logging.getLogger("bloop.test")


async def test_items_added_meanwhile_join_the_run_under_way_and_tenants_run_apart() -> None:
    release = asyncio.Event()
    runs: list[tuple[str, set[str]]] = []

    async def work(tenant: str, items: set[str]) -> None:
        runs.append((tenant, items))
        await release.wait()

    work_log = Backlog("test", work, failed="test work failed", log=log)
    work_log.add("t1", ["a"])
    work_log.add("t2", ["x"])
    await asyncio.sleep(0)
    work_log.add("t1", ["b"])
    work_log.add("t1", ["c", "b"])
    work_log.add("t1", [])
    assert len(work_log.running()) == 2
    release.set()
    await backlog.settled(work_log)
    assert sorted(runs) == [("t1", {"a"}), ("t1", {"b", "c"}), ("t2", {"x"})]
    assert work_log.running() == []


async def test_a_failed_run_is_logged_with_its_tenant_and_the_next_add_runs_again(
        caplog: pytest.LogCaptureFixture) -> None:
    done: list[set[str]] = []

    async def work(tenant: str, items: set[str]) -> None:
        if "bad" in items:
            raise RuntimeError("store gone")
        done.append(items)

    work_log = Backlog("test", work, failed="test work failed; the next read makes up", log=log)
    work_log.add("t1", ["bad"])
    await backlog.settled(work_log)
    [record] = [r for r in caplog.records if r.name == "bloop.test"]
    assert (record.getMessage(), getattr(record, "tenant", None)) == (
        "test work failed; the next read makes up", "t1")
    work_log.add("t1", ["good"])
    await backlog.settled(work_log)
    assert done == [{"good"}]


async def test_close_gives_runs_their_time_then_stops_them() -> None:
    stopped = asyncio.Event()

    async def work(tenant: str, items: set[str]) -> None:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            stopped.set()
            raise

    work_log = Backlog("test", work, failed="test work failed", log=log)
    work_log.add("t1", ["a"])
    await asyncio.wait_for(backlog.close(work_log, wait_s=0.05), 2)
    assert stopped.is_set()
    assert work_log.running() == []
