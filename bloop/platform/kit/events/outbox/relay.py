"""Publishes an outbox's pending events in order and marks them sent. While the bus is down
the events wait in the outbox; nothing is dropped. An outbox that can tell when events were
written (`Notifying`) wakes the relay at once; the others are polled."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from bloop.platform.kit.events.bus.port import EventBus
from bloop.platform.kit.events.outbox.port import Notifying, OutboxStore
from bloop.platform.kit.metrics import Metrics
from bloop.platform.kit.settings import OutboxSettings
from bloop.platform.kit.waiting import stopped, woken

log = logging.getLogger("bloop.outbox")


class OutboxRelay:
    def __init__(self, outbox: OutboxStore, bus: EventBus, metrics: Metrics,
                 settings: OutboxSettings) -> None:
        self.outbox, self.bus, self.metrics, self.settings = outbox, bus, metrics, settings
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._last_prune = 0.0
        self._last_count = 0.0
        if isinstance(outbox, Notifying):
            outbox.notify(self.wake)

    def wake(self) -> None:
        """Called after a write so the event goes out now rather than at the next poll."""
        self._wake.set()

    async def run_once(self) -> int:
        batch = await self.outbox.pending(self.settings.batch_size)
        if batch:
            await self.bus.publish([p.message for p in batch])
            await self.outbox.mark_sent(batch)
        if time.monotonic() - self._last_prune > 60:
            self._last_prune = time.monotonic()
            await self.outbox.prune(self.settings.keep_sent_s)
        return len(batch)

    async def flush(self, timeout_s: float = 30) -> None:
        """Publishes until nothing is pending (for shutdown, seeding and tests)."""
        deadline = time.monotonic() + timeout_s
        while await self.run_once():
            if time.monotonic() > deadline:
                raise TimeoutError(f"outbox {self.outbox.name} still has pending events")

    async def run(self) -> None:
        delay = self.settings.poll_interval_s
        while True:
            self._wake.clear()
            try:
                sent = await self.run_once()
                await self._count_pending()
                delay = self.settings.poll_interval_s
                if sent == self.settings.batch_size:
                    continue
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("outbox relay cannot publish yet; events wait", extra={
                    "outbox": self.outbox.name, "error": repr(exc)})
                with contextlib.suppress(Exception):  # the outbox's own store may be down too
                    await self._count_pending()
                delay = min(max(delay, 0.2) * 2, 5.0)
                await asyncio.sleep(delay)
                continue
            await woken(self._wake, delay)

    async def _count_pending(self) -> None:
        """The backlog gauge, at most once a second: it matters most while the bus is down."""
        if time.monotonic() - self._last_count > 1:
            self._last_count = time.monotonic()
            self.metrics.outbox_pending.labels(self.outbox.name).set(
                await self.outbox.count_pending())

    def start(self) -> None:
        self._task = asyncio.create_task(self.run(), name=f"outbox:{self.outbox.name}")

    async def stop(self) -> None:
        if self._task is not None:
            await stopped(self._task)
            self._task = None
