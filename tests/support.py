"""Helpers shared by the test layers: test event types, real-server gating, waiting."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable

import pytest
from pydantic import BaseModel, ConfigDict

from bloop import infra
from bloop.platform.kit.events.types import event_type

TEST_TOPIC = "bloop.test.events"


@event_type("bloop.test.ping.sent", 1, TEST_TOPIC)
class PingSent(BaseModel):
    model_config = ConfigDict(extra="forbid")
    run: str
    n: int


def require_server(name: str) -> infra.Server:
    """The real server `name`, reachable. Under CI a missing server fails the test; elsewhere the
    test is reported as not run (xfail) with the command that would start it."""
    server = infra.servers()[name]
    if server.reachable():
        return server
    host, port = server.address
    message = f"{name} is not reachable at {host}:{port}; start it with `bloop infra up {name}`"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.xfail(message)


async def eventually(check: Callable[[], Awaitable[bool]], timeout_s: float = 30,
                     interval_s: float = 0.05, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout_s
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        await asyncio.sleep(interval_s)
