"""A job worker stopped while it waits for one of its own tasks to wind down stops: the
consumer that runs it is cancelled at shutdown, and a swallowed cancellation would keep it (and
the shutdown) going forever."""

from __future__ import annotations

import asyncio

import pytest

from bloop.platform.kit.waiting import stopped


async def _slow_to_stop() -> None:
    try:
        await asyncio.sleep(3600)
    except asyncio.CancelledError:
        await asyncio.sleep(0.2)  # a last store write, as the lease keeper makes
        raise


async def test_the_callers_cancellation_is_not_swallowed() -> None:
    async def caller() -> str:
        inner = asyncio.create_task(_slow_to_stop())
        await asyncio.sleep(0)
        await stopped(inner)
        return "went on"

    outer = asyncio.create_task(caller())
    await asyncio.sleep(0.05)  # the caller is now waiting for `inner` to end
    outer.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(outer, 5)


async def test_the_task_ends_and_its_failure_is_retrieved() -> None:
    async def fails() -> None:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            raise RuntimeError("while stopping") from None

    task = asyncio.create_task(fails())
    await asyncio.sleep(0)
    await stopped(task)
    assert task.done()
    assert isinstance(task.exception(), RuntimeError)
