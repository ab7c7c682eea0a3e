"""kit.every: background work at start and at an interval."""

from __future__ import annotations

import asyncio
import logging

import pytest

from bloop.platform.kit.every import Every

log = logging.getLogger("bloop.test.every")


async def test_a_run_that_took_something_is_followed_at_once_and_failures_wait_their_turn(
        caplog: pytest.LogCaptureFixture) -> None:
    left = [2, 1, 0]
    runs: list[int] = []
    failed_once = asyncio.Event()
    again = asyncio.Event()

    async def sweep() -> int:
        if failed_once.is_set():
            again.set()
            return 0
        if not left:
            failed_once.set()
            raise OSError("the disk went away")
        runs.append(left.pop(0))
        return runs[-1]

    every = Every("test:sweeper", sweep, 0.01, log=log, failed="could not sweep")
    every.start()
    every.start()  # started once
    await asyncio.wait_for(again.wait(), 5)
    await every.stop()
    assert runs == [2, 1, 0]
    assert [r.getMessage() for r in caplog.records if r.name == log.name] == ["could not sweep"]
    await every.stop()  # stopping twice is fine
