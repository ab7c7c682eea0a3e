"""A loop that sleeps until woken must stop when cancelled, whenever the wake-up lands; a task
that loses a cancellation is still stopped."""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from collections.abc import Awaitable, Callable

import pytest

from bloop.platform.kit.waiting import stop_all, stopped, woken
from tests.support import unretrieved

Wait = Callable[[asyncio.Event, float], Awaitable[object]]


async def wait_for_wake(event: asyncio.Event, timeout_s: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(event.wait(), timeout_s)


async def stops_at_every_offset(wait: Wait) -> list[int]:
    """Cancels a wake-up loop in the loop turn its event is set, `ticks` turns after it began
    waiting; returns the offsets at which the cancellation was lost."""
    lost = []
    for ticks in range(6):
        event = asyncio.Event()

        async def loop(event: asyncio.Event) -> None:
            while True:
                event.clear()
                await wait(event, 10)

        task = asyncio.create_task(loop(event))
        for _ in range(ticks):
            await asyncio.sleep(0)
        event.set()
        task.cancel()
        done, _ = await asyncio.wait({task}, timeout=0.2)
        if not done:
            lost.append(ticks)
            task.cancel()
            await asyncio.wait({task}, timeout=1)
    return lost


async def test_woken_never_loses_a_cancellation() -> None:
    assert await stops_at_every_offset(woken) == []


async def test_the_harness_sees_asyncio_wait_for_lose_cancellations_before_python_3_12() -> None:
    lost = await stops_at_every_offset(wait_for_wake)
    assert (lost != []) == (sys.version_info < (3, 12))


async def test_woken_says_whether_the_event_was_set() -> None:
    event = asyncio.Event()
    assert await woken(event, 0.01) is False
    asyncio.get_running_loop().call_soon(event.set)
    assert await woken(event, 5) is True


async def test_stopped_ends_a_task_that_lost_its_first_cancellation() -> None:
    lost = 0

    async def careless() -> None:
        nonlocal lost
        while True:
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError:
                if lost == 0:  # as a library racing wait_for can
                    lost += 1
                    asyncio.current_task().uncancel()  # type: ignore[union-attr]
                    continue
                raise

    task = asyncio.create_task(careless())
    await asyncio.sleep(0)
    await asyncio.wait_for(stopped(task, again_s=0.05), 5)
    assert task.cancelled()
    assert lost == 1


async def test_stopped_lets_a_task_finish_its_clean_up_and_keeps_the_callers_cancellation() -> None:
    cleaned = asyncio.Event()

    async def tidy() -> None:
        try:
            await asyncio.sleep(10)
        finally:
            await asyncio.sleep(0.05)
            cleaned.set()

    task = asyncio.create_task(tidy())
    await asyncio.sleep(0)
    await stopped(task, again_s=1)
    assert cleaned.is_set()

    slow = asyncio.create_task(asyncio.sleep(10))
    caller = asyncio.create_task(stopped(slow, again_s=60))
    await asyncio.sleep(0)
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller


async def fails_when_cancelled() -> None:
    try:
        await asyncio.sleep(60)
    except asyncio.CancelledError:
        raise RuntimeError("Lock is not acquired") from None


async def test_the_harness_sees_a_cancelled_task_that_failed_go_unretrieved() -> None:
    with unretrieved() as seen:
        task = asyncio.create_task(fails_when_cancelled())
        await asyncio.sleep(0)
        task.cancel()
        await asyncio.sleep(0.01)
        del task
    assert [c["message"] for c in seen] == ["Task exception was never retrieved"]


async def test_stop_all_retrieves_what_cancelled_tasks_end_with_and_leaves_the_slow_behind() -> None:
    finished = asyncio.Event()

    async def slow_to_stop() -> None:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            await asyncio.sleep(0.3)
            finished.set()
            raise RuntimeError("cleaning up failed") from None

    with unretrieved() as seen:
        tasks = [asyncio.create_task(fails_when_cancelled()), asyncio.create_task(slow_to_stop()),
                 asyncio.create_task(asyncio.sleep(60))]
        await asyncio.sleep(0)
        started = time.monotonic()
        await stop_all(tasks, wait_s=0.1)
        assert time.monotonic() - started < 0.25
        assert [t.done() for t in tasks] == [True, False, True]
        await finished.wait()
        await asyncio.sleep(0.01)
        del tasks
    assert seen == []
