"""Work a service repeats in the background, at start and then at a fixed interval."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from bloop.platform.kit.waiting import stopped


class Every:
    """Runs `work` at `start` and every `interval_s` after each run ends, until `stop`. A run
    whose `work` returns something true (a count of what a sweep took: it may have left more)
    is followed at once by another. A failure is logged (`failed`, WARNING) and the next run
    comes at its time."""

    def __init__(self, name: str, work: Callable[[], Awaitable[object]], interval_s: float, *,
                 log: logging.Logger, failed: str) -> None:
        self.name, self.work, self.interval_s = name, work, interval_s
        self.log, self.failed = log, failed
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name=self.name)

    async def stop(self) -> None:
        if self._task is not None:
            await stopped(self._task)
            self._task = None

    async def _run(self) -> None:
        while True:
            try:
                while await self.work():
                    pass
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.log.warning(self.failed, extra={"error": repr(exc)})
            await asyncio.sleep(self.interval_s)
