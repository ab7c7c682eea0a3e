"""One holder at a time, across processes, of something they share: an outbox to publish, a
consumer group's topic to read on the embedded bus. A lease is taken for `ttl_s` and renewed once
a quarter of it has passed; a holder that stops gives it up, so another takes over at once; one
that dies leaves it to run out, unless it was a process on this machine that has ended, whose
lease is taken over at once."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable

log = logging.getLogger("bloop.lease")

# (holder, ttl_s, replacing) -> who holds the lease now: the store's take-or-renew.
Take = Callable[[str, float, str | None], Awaitable[str | None]]
GiveUp = Callable[[str], Awaitable[None]]


def new_holder() -> str:
    """A holder name unique to one taker: this machine, this process, and a random part."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def gone(holder: str) -> bool:
    """Whether a lease's holder was a process on this machine that has ended (a server killed
    and started again): its lease need not be waited out."""
    parts = holder.rsplit(":", 2)
    if len(parts) != 3 or parts[0] != socket.gethostname() or not parts[1].isdigit():
        return False
    pid = int(parts[1])
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:  # alive, under another user
        return False
    return False


class Lease:
    def __init__(self, take: Take, give_up: GiveUp, ttl_s: float, what: dict[str, str],
                 holder: str | None = None) -> None:
        self.take, self._give_up, self.ttl_s, self.what = take, give_up, ttl_s, what
        self.holder = holder or new_holder()
        self.leads = False
        self._renew_at = 0.0
        self._valid_until = 0.0

    def holds(self) -> bool:
        """Whether this holder leads, and its lease has not run out since it was last renewed
        (a renewal the store did not answer leaves it to run out here as it does there)."""
        return self.leads and time.monotonic() < self._valid_until

    async def held(self) -> bool:
        """Whether this holder leads, renewing its lease once a quarter of it has passed; a
        holder standing by asks again at every call."""
        if self.leads and time.monotonic() < self._renew_at:
            return True
        return await self.renew()

    async def renew(self) -> bool:
        """Takes or renews the lease unless another holder's is still running; returns whether
        this holder has it."""
        asked = time.monotonic()
        current = await self.take(self.holder, self.ttl_s, None)
        if current is not None and current != self.holder and gone(current):
            log.info("lease taken over from a process that has ended",
                     extra=self.what | {"holder": self.holder, "ended": current})
            current = await self.take(self.holder, self.ttl_s, current)
        self.leads = current == self.holder
        self._renew_at = time.monotonic() + self.ttl_s / 4
        self._valid_until = asked + self.ttl_s
        return self.leads

    async def give_up(self) -> None:
        """Gives the lease up if this holder has it, so another takes over at once."""
        if not self.leads:
            return
        self.leads = False
        # Left to run out if the store cannot be reached now: another holder waits a lease.
        with contextlib.suppress(Exception):
            async with asyncio.timeout(2):
                await self._give_up(self.holder)
