"""The log of stores that are down, at a rate an operator can read while requests keep failing:
a store's first failure is logged at once, later ones at most once every `every_s` (with how
many went unlogged since), and its return, when a check of it answers again, once. Only the
log is thinned: every failure is still answered 503 and counted in the metrics
(`bloop_store_failures_total`, once the app's metrics are given)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from bloop.platform.kit.metrics import Metrics

log = logging.getLogger("bloop.errors")

LOG_EVERY_S = 30.0
QUIET_S = 300.0  # without a failure this long, an outage no check ended is over


@dataclass
class _Outage:
    since: float
    logged_at: float
    failed_at: float
    failures: int = 1
    unlogged: int = 0


class StoreOutages:
    """One app's stores that failed a request and have not answered a check since."""

    def __init__(self, every_s: float = LOG_EVERY_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.every_s, self.clock = every_s, clock
        self._down: dict[str, _Outage] = {}
        self.metrics: Metrics | None = None  # the app's, once its lifespan made them

    def down(self) -> frozenset[str]:
        return frozenset(self._down)

    def failed(self, store: str, error: BaseException, message: str = "store unavailable",
               **extra: object) -> None:
        if self.metrics is not None:
            self.metrics.store_failures.labels(store).inc()
        now = self.clock()
        outage = self._down.get(store)
        # A store no check watches (the disk) is over its outage once it fails nothing for a
        # while: a failure after that is a new outage's first.
        if outage is None or now - outage.failed_at > QUIET_S:
            self._down[store] = _Outage(since=now, logged_at=now, failed_at=now)
            log.warning(message, extra={"store": store, "error": repr(error), **extra})
            return
        outage.failures += 1
        outage.failed_at = now
        if now - outage.logged_at < self.every_s:
            outage.unlogged += 1
            return
        log.warning(message, extra={"store": store, "error": repr(error),
                                    "unlogged": outage.unlogged,
                                    "down_s": round(now - outage.since), **extra})
        outage.logged_at, outage.unlogged = now, 0

    def answered(self, store: str) -> None:
        """A check of `store` answered: its outage, if any, is over."""
        outage = self._down.pop(store, None)
        if outage is not None:
            log.info("store answers again", extra={
                "store": store, "down_s": round(self.clock() - outage.since),
                "failures": outage.failures})
