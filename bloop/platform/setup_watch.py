"""Sets the services up again when a store comes back. A server restarted on an empty data
directory (a wiped volume, a restore from before the indexes) has lost the indexes and
constraints made at start-up; without them MongoDB takes duplicates its unique indexes refuse
and Neo4j duplicate concepts, after which the next start fails on the constraint. A store that
failed requests (`StoreOutages`) is checked too, so that its return is logged; every store is
checked, for `bloop_store_up`."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from bloop.platform.kit.errors import is_store_down
from bloop.platform.kit.health import Probe, record, run_probe
from bloop.platform.kit.metrics import Metrics
from bloop.platform.kit.outages import StoreOutages
from bloop.platform.services import Mounted

log = logging.getLogger("bloop.app")

WATCHED = frozenset({"mongodb", "neo4j"})
"""The stores whose setup makes indexes or constraints (SQLite's go with its file)."""


async def watch_stores(probes: Sequence[Probe], ready: Sequence[tuple[str, Mounted]],
                       interval_s: float, outages: StoreOutages,
                       metrics: Metrics | None = None) -> None:
    """Checks every store every `interval_s`, its state kept in `metrics`; a store down in
    `outages` that answers is over its outage; when a watched one was down and is up again,
    runs the setup of each service in `ready` (those set up already; the others are still
    retrying theirs), again at each check until no store is down for it."""
    up = {p.name: True for p in probes if p.name in WATCHED}
    pending = False
    while True:
        await asyncio.sleep(interval_s)
        results = await asyncio.gather(*(run_probe(p) for p in probes))
        if metrics is not None:
            record(metrics, results)
        for result in results:
            if result.up:
                outages.answered(result.name)
            if result.name not in up:
                continue
            if result.up and not up[result.name]:
                log.info("store back; services set up again", extra={"store": result.name})
                pending = True
            up[result.name] = result.up
        if pending:
            pending = not await set_up_again(ready)


async def set_up_again(ready: Sequence[tuple[str, Mounted]]) -> bool:
    """False when a store was down for some service's setup (to be tried again). A setup that
    fails otherwise is logged and not retried until its store comes back once more."""
    done = True
    for name, mounted in list(ready):
        if mounted.setup is None:
            continue
        try:
            await mounted.setup()
        except Exception as exc:
            if is_store_down(exc):
                done = False
            else:
                log.exception("setting the service up again failed", extra={"service": name})
    return done
