"""A loop that sleeps until woken must stop when cancelled, whenever the wake-up lands."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

import pytest

from bloop.platform.kit.waiting import woken

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


async def test_asyncio_wait_for_on_this_python_is_why_it_exists() -> None:
    import sys

    if sys.version_info >= (3, 12):
        pytest.skip("wait_for keeps cancellations from Python 3.12 on")
    assert await stops_at_every_offset(wait_for_wake) != []


async def test_woken_says_whether_the_event_was_set() -> None:
    event = asyncio.Event()
    assert await woken(event, 0.01) is False
    asyncio.get_running_loop().call_soon(event.set)
    assert await woken(event, 5) is True
