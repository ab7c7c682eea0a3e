"""One writer at a time per document on a MongoDB-wire server whose updates are not atomic.

FerretDB v1 (SQLite backend) applies an update as a query followed by a separate write of the
whole document (FerretDB issue #3040), so a filter such as `{_id, version: n}` is no
compare-and-set: two writers expecting the same version can both match, and a concurrent
`$push`/`$pullAll` can be overwritten. `MongoGuard.hold` makes a write exclusive per document
through a claims collection: inserting the claim (unique `_id`) takes it, deleting it releases
it, and a claim older than `stale_s` (left by a process that died holding it) is taken over.
Every writer of a guarded document must hold its guard, including the outbox relay.

On MongoDB, whose single-document updates are atomic, `hold` does nothing: the server is
recognised at setup from `buildInfo` (FerretDB adds `ferretdbVersion`/`ferretdbFeatures`).
`BLOOP_MONGO_GUARD=on|off` forces it either way.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Literal

from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from bloop.platform.kit.errors import StoreUnavailable
from bloop.platform.kit.settings import MongoSettings

Doc = dict[str, Any]
GuardMode = Literal["auto", "on", "off"]
COLLECTION = "guard_claims"
_FIRST_DELAY_S, _MAX_DELAY_S = 0.002, 0.05


class DocumentBusy(StoreUnavailable):
    """Another writer held the document for longer than the wait: 503, try again."""

    def __init__(self, key: str) -> None:
        super().__init__("mongodb", f"document {key} is being written by another request",
                         retry_after_s=1)
        self.key = key


def is_ferretdb(build_info: Doc) -> bool:
    return "ferretdbVersion" in build_info or "ferretdbFeatures" in build_info


class MongoGuard:
    def __init__(self, claims: AsyncCollection[Doc], *, mode: GuardMode | None = None,
                 stale_s: float | None = None, wait_s: float | None = None) -> None:
        """Unset arguments come from `MongoSettings` (`BLOOP_MONGO_GUARD*`)."""
        settings = MongoSettings() if None in (mode, stale_s, wait_s) else None
        self.claims = claims
        self.mode: GuardMode = mode or (settings.guard if settings else "auto")
        self.stale_s = stale_s if stale_s is not None else settings.guard_stale_s if settings else 20.0
        self.wait_s = wait_s if wait_s is not None else settings.guard_wait_s if settings else 5.0
        self._active: bool | None = None if self.mode == "auto" else self.mode == "on"

    @classmethod
    def of(cls, database: AsyncDatabase[Doc], *, mode: GuardMode | None = None,
           stale_s: float | None = None, wait_s: float | None = None) -> MongoGuard:
        """A guard keeping its claims in `database`."""
        return cls(database[COLLECTION], mode=mode, stale_s=stale_s, wait_s=wait_s)

    async def setup(self) -> None:
        await self.active()

    async def active(self) -> bool:
        if self._active is None:
            info = await self.claims.database.command("buildInfo")
            self._active = is_ferretdb(info)
        return self._active

    @asynccontextmanager
    async def hold(self, collection: AsyncCollection[Doc], doc_id: object, *,
                   always: bool = False) -> AsyncIterator[None]:
        """Exclusive use of one document for the writes in the block; `DocumentBusy` when
        another writer keeps it past `wait_s`. `always` takes the claim on MongoDB too: for a
        rule over several documents (a check of some, then a write of another), which no
        single-document update keeps; `doc_id` then names the rule."""
        if not always and not await self.active():
            yield
            return
        key = f"{collection.database.name}.{collection.name}/{doc_id}"
        owner = await self._take(key)
        try:
            yield
        finally:
            # Shielded: a cancelled request still releases the claim it took.
            await asyncio.shield(self.claims.delete_one({"_id": key, "owner": owner}))

    async def _take(self, key: str) -> str:
        owner = uuid.uuid4().hex
        deadline = time.monotonic() + self.wait_s
        delay = _FIRST_DELAY_S
        while True:
            try:
                await self.claims.insert_one({"_id": key, "owner": owner, "at": time.time()})
                return owner
            except DuplicateKeyError:
                pass
            held = await self.claims.find_one({"_id": key})
            if held is None:
                continue
            if time.time() - float(held.get("at", 0.0)) >= self.stale_s:
                # Two takers of one stale claim could both get it in this narrow window; a claim
                # only goes stale when its holder died, which makes that rare.
                await self.claims.delete_one({"_id": key, "owner": held.get("owner")})
                continue
            if time.monotonic() >= deadline:
                raise DocumentBusy(key)
            await asyncio.sleep(delay * (0.5 + random.random()))  # jitter
            delay = min(delay * 2, _MAX_DELAY_S)
