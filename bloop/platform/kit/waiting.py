"""Waiting without losing a cancellation.

On Python 3.11, `asyncio.wait_for` swallows a cancellation that arrives in the same loop turn as
the awaited future completes (python/cpython#86296). A loop that waits for a wake-up between
polls then never stops, and whoever awaits its cancellation hangs. `asyncio.timeout` counts its
own cancellations apart from everyone else's, so `woken` has no such window. Libraries still
have it (redis-py sends every command under `wait_for` when it has a socket timeout), so
`stopped` cancels a task again for as long as it keeps running.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Collection
from typing import Any


async def woken(event: asyncio.Event, timeout_s: float) -> bool:
    """Waits until `event` is set or `timeout_s` has passed; returns whether it is set."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(timeout_s):
            await event.wait()
    return event.is_set()


async def stopped(task: asyncio.Task[Any], again_s: float = 5.0) -> None:
    """Cancels `task` and waits for its end, cancelling it again every `again_s` while it runs
    (long enough for its own clean-up, short enough that a lost cancellation does not hold up a
    shutdown for good). A cancellation of the caller itself still propagates."""
    while not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=again_s)
    if not task.cancelled():
        task.exception()  # retrieved: whatever it raised was answered by the cancel


def forget(task: asyncio.Task[Any]) -> None:
    """Lets `task` end unobserved: whatever it ends with is retrieved, so asyncio never logs it
    as an exception nobody retrieved. For a task already answered by a cancel or a timeout."""
    if task.done():
        _retrieve(task)
    else:
        task.add_done_callback(_retrieve)


def _retrieve(task: asyncio.Task[Any]) -> None:
    if not task.cancelled():
        task.exception()


async def stop_all(tasks: Collection[asyncio.Task[Any]], wait_s: float = 5.0) -> None:
    """Cancels `tasks` and waits up to `wait_s` for them; one still running is left behind.
    A driver call cancelled mid-way may end in an error of its own instead of the cancellation
    (pymongo's server selection raises RuntimeError("Lock is not acquired") on Python 3.11):
    it is the cancel's doing, so it is retrieved here, not logged."""
    for task in tasks:
        task.cancel()
    if tasks:
        await asyncio.wait(tasks, timeout=wait_s)
    for task in tasks:
        forget(task)
