from __future__ import annotations

import asyncio
import logging
import time

import pytest

from bloop.platform.kit.stores import close_all
from tests.support import unretrieved


async def test_a_client_that_never_closes_is_left_behind_with_a_warning(
        caplog: pytest.LogCaptureFixture) -> None:
    closed: list[str] = []

    async def stuck() -> None:
        await asyncio.Event().wait()

    async def quick() -> None:
        closed.append("quick")

    async def failing() -> None:
        raise ConnectionError("gone")

    caplog.set_level(logging.WARNING, "bloop.stores")
    started = time.monotonic()
    await close_all(stuck(), None, quick(), failing(), wait_s=0.2)
    assert time.monotonic() - started < 2
    assert closed == ["quick"]
    messages = {(r.getMessage(), getattr(r, "client", "")) for r in caplog.records}
    assert any(m == "a store client did not close in time; left behind" and "stuck" in c
               for m, c in messages), messages
    assert any(m == "a store client failed to close" and "failing" in c
               for m, c in messages), messages


async def test_a_client_left_behind_that_fails_on_its_cancel_is_not_logged_as_unretrieved() -> None:
    ended = asyncio.Event()

    async def stuck_then_failing() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            ended.set()
            raise RuntimeError("Lock is not acquired") from None

    with unretrieved() as seen:
        await close_all(stuck_then_failing(), wait_s=0.1)
        await ended.wait()
        await asyncio.sleep(0.01)
    assert seen == []
