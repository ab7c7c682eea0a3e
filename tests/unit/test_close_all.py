from __future__ import annotations

import asyncio
import logging
import time

import pytest

from bloop.platform.kit.stores import close_all


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
