"""Publishes an outbox's pending events in order and marks them sent. While the bus is down
the events wait in the outbox; nothing is dropped. An outbox that can tell when events were
written (`Notifying`) wakes the relay at once; the others are polled.

Every process that writes to an outbox runs a relay for it, but only the one holding the
outbox's lease publishes; the others stand by and take the lease once it is given up or runs
out. Two relays sending the same events would send each twice, and could interleave one
aggregate's events out of order. A leader that has failed to publish for a whole lease (its bus
unreachable from this process) gives the lease up and stands by for at least half a lease, so one
that can publish takes over; it may lead again once its bus answers a ping, or after a lease.
What it sent unacknowledged may still arrive, as copies of what the next leader sends from the
same mark: consumers drop them by id, keeping each event's first copy in order."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from bloop.platform.kit.events.bus.port import EventBus
from bloop.platform.kit.events.lease import Lease
from bloop.platform.kit.events.outbox.port import Notifying, OutboxStore, Scanning
from bloop.platform.kit.metrics import Metrics
from bloop.platform.kit.settings import OutboxSettings
from bloop.platform.kit.waiting import stopped, woken

log = logging.getLogger("bloop.outbox")
IDLE_LOOK_MAX_S = 5.0
RETRY_MAX_S = 5.0  # the longest back-off between tries while publishing fails


class OutboxRelay:
    def __init__(self, outbox: OutboxStore, bus: EventBus, metrics: Metrics,
                 settings: OutboxSettings) -> None:
        self.outbox, self.bus, self.metrics, self.settings = outbox, bus, metrics, settings
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._last_prune = 0.0
        self._last_count = 0.0
        self.lease = Lease(outbox.lead, outbox.step_down, settings.lease_s,
                           {"outbox": outbox.name})
        self.holder = self.lease.holder
        self._said: bool | None = None
        self._failing_since: float | None = None
        self._stepped_down_at: float | None = None
        if isinstance(outbox, Notifying):
            outbox.notify(self.wake)

    def wake(self) -> None:
        """Called after a write so the event goes out now rather than at the next poll."""
        self._wake.set()

    @property
    def leads(self) -> bool:
        return self.lease.leads

    async def _lead(self) -> bool:
        """Whether this relay leads, renewing its lease once a quarter of it has passed."""
        leads = await self.lease.held()
        if leads != self._said:
            self._said = leads
            self.metrics.outbox_leading.labels(self.outbox.name).set(int(leads))
            log.info("outbox relay leads" if leads else "outbox relay stands by: another leads",
                     extra={"outbox": self.outbox.name, "this_process": self.holder})
        return leads

    async def run_once(self) -> int:
        """Publishes one batch if this relay leads; returns how many events it sent."""
        if not await self._lead():
            return 0
        batch = await self.outbox.pending(self.settings.batch_size)
        if batch:
            await self.bus.publish([p.message for p in batch])
            await self.outbox.mark_sent(batch)
        if time.monotonic() - self._last_prune > 60:
            self._last_prune = time.monotonic()
            await self.outbox.prune(self.settings.keep_sent_s)
        return len(batch)

    async def flush(self, timeout_s: float = 30) -> None:
        """Publishes until nothing is pending (for shutdown, seeding and tests). Under another
        process's lease it publishes nothing: that process sends the events."""
        deadline = time.monotonic() + timeout_s
        try:
            while await self.run_once():
                if time.monotonic() > deadline:
                    raise TimeoutError(f"outbox {self.outbox.name} still has pending events")
        finally:
            if self._task is None:
                await self._step_down()

    async def _step_down(self) -> None:
        if not self.leads:
            return
        self._said = False
        self.metrics.outbox_leading.labels(self.outbox.name).set(0)
        await self.lease.give_up()

    async def run(self) -> None:
        delay = idle = self.settings.poll_interval_s
        while True:
            self._wake.clear()
            try:
                if not await self._rested():
                    await asyncio.sleep(self.settings.lease_s / 4)
                    continue
                sent = await self.run_once()
                self._failing_since = None
                delay = self.settings.poll_interval_s
                if not self.leads:
                    await asyncio.sleep(self.settings.lease_s / 4)
                    continue
                if sent == self.settings.batch_size:
                    await self._count_pending()
                    continue
                self._drained()
                idle = await self.next_look(idle, sent)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("outbox relay cannot publish yet; events wait", extra={
                    "outbox": self.outbox.name, "error": repr(exc)})
                with contextlib.suppress(Exception):  # the outbox's own store may be down too
                    await self._count_pending()
                await self._failed()
                delay = min(max(delay, 0.2) * 2, RETRY_MAX_S)
                await asyncio.sleep(delay)
                continue
            await woken(self._wake, idle)

    async def _failed(self) -> None:
        """After a failed look: a leader that has failed for a whole lease gives it up (renewing
        it at every try, it would otherwise hold back every other process's events for good)."""
        if not self.leads:
            self._failing_since = None
            return
        now = time.monotonic()
        if self._failing_since is None:
            self._failing_since = now
        if now - self._failing_since < self.settings.lease_s:
            return
        log.warning("outbox relay steps down: it has not published for a lease", extra={
            "outbox": self.outbox.name, "this_process": self.holder})
        self._failing_since = None
        self._stepped_down_at = now
        await self._step_down()
        self.metrics.outbox_pending.labels(self.outbox.name).set(0)  # the next leader's to count

    async def _rested(self) -> bool:
        """Whether this relay may try to lead: not within half a lease of stepping down, which
        lets stand-bys (looking every quarter of one) take over; then once its bus answers a
        ping, or a lease after stepping down whatever the ping says."""
        if self._stepped_down_at is None:
            return True
        waited = time.monotonic() - self._stepped_down_at
        if waited < self.settings.lease_s / 2:
            return False
        if waited < self.settings.lease_s:
            try:
                async with asyncio.timeout(self.settings.lease_s / 4):
                    await self.bus.ping()
            except Exception:
                return False
        self._stepped_down_at = None
        return True

    async def next_look(self, after_s: float, sent: int) -> float:
        """How long the relay waits for a wake before it looks again, `after_s` having passed
        since the look before, which sent `sent`: the poll interval; where a look reads the
        whole outbox (`Scanning`: FerretDB), twice as long after each look that found nothing,
        up to `IDLE_LOOK_MAX_S` (its own writes still wake it at once)."""
        poll = self.settings.poll_interval_s
        if sent or not isinstance(self.outbox, Scanning) or not await self.outbox.looks_scan():
            return poll
        return min(after_s * 2, max(poll, IDLE_LOOK_MAX_S))

    def _drained(self) -> None:
        """The backlog gauge after a batch that was not full: nothing was left when it was read
        (counting again would read the outbox, on FerretDB every document of its collections,
        at each look)."""
        self.metrics.outbox_pending.labels(self.outbox.name).set(0)

    async def _count_pending(self) -> None:
        """The backlog gauge, at most once a second, while full batches go out or the bus is
        down: then it matters. A relay standing by counts nothing: the leader does."""
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
        await self._step_down()
