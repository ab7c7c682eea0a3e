"""The process's shutdown as a long-lived response sees it.

uvicorn, told to stop, closes its listening sockets and then waits for the open connections to
end before it runs the app's lifespan shutdown. A response that only ends by itself (an event
stream) would hold it there, so the server tells the app first (`bloop.platform.kit.serving`),
and such a response ends once `Draining` is set. The lifespan sets it too, for other servers.
"""

from __future__ import annotations

import asyncio

from starlette.applications import Starlette

from bloop.platform.kit.waiting import woken


class Draining:
    def __init__(self) -> None:
        self._event = asyncio.Event()

    def start(self) -> None:
        self._event.set()

    @property
    def started(self) -> bool:
        return self._event.is_set()

    async def wait(self, timeout_s: float) -> bool:
        """Waits until the shutdown starts or `timeout_s` has passed; True once it started."""
        return await woken(self._event, timeout_s)


def draining(app: Starlette) -> Draining:
    """The app's `Draining`, made by its lifespan."""
    found: Draining = app.state.draining
    return found


def start_draining(app: Starlette) -> None:
    """Tells the app's long-lived responses to end (nothing before its lifespan started)."""
    found: Draining | None = getattr(app.state, "draining", None)
    if found is not None:
        found.start()
