"""Waiting on an event with a time limit, without losing a cancellation.

On Python 3.11, `asyncio.wait_for` swallows a cancellation that arrives in the same loop turn as
the awaited future completes (python/cpython#86296): a loop that waits for a wake-up between polls
then never stops, and whoever awaits its cancellation hangs. `asyncio.timeout` counts its own
cancellations apart from everyone else's, so it has no such window.
"""

from __future__ import annotations

import asyncio
import contextlib


async def woken(event: asyncio.Event, timeout_s: float) -> bool:
    """Waits until `event` is set or `timeout_s` has passed; returns whether it is set."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(timeout_s):
            await event.wait()
    return event.is_set()
