"""The Neo4j outbox: `add` writes `:BloopOutbox` nodes in the caller's transaction. A sequence
node numbers them, so the relay publishes in commit order. The relay's own reads and writes are
bounded by `deadline_s`: on a server that stalls they fail as the store being unavailable, and
the relay backs off and tries again, as it does while the server is down."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any, Literal

from neo4j import AsyncDriver, AsyncManagedTransaction, Record

from bloop.platform.kit.events.envelope import Envelope
from bloop.platform.kit.events.outbox.port import Pending, entry_of, message_of
from bloop.platform.kit.events.types import EventRegistry
from bloop.platform.kit.stores import neo4j_records

ADD = """
MERGE (s:BloopOutboxSeq {name: $name})
SET s.n = coalesce(s.n, 0) + size($events)
WITH s.n - size($events) AS base
UNWIND range(0, size($events) - 1) AS i
WITH base, i, $events[i] AS e
CREATE (:BloopOutbox {name: $name, seq: base + i + 1, id: e.id, topic: e.topic, key: e.key,
                      type: e.type, value: e.value, created_at: timestamp()})
"""

# The lock property is set before the lease is read, so two relays claiming at once take turns
# on the node rather than both reading it free.
LEAD = """
MERGE (l:BloopOutboxLease {name: $name})
SET l._lock = true
WITH l, l.holder IS NULL OR l.holder IN [$holder, $replacing] OR l.until < timestamp() AS free
FOREACH (_ IN CASE WHEN free THEN [1] ELSE [] END |
  SET l.holder = $holder, l.until = timestamp() + $ttl_ms)
REMOVE l._lock
RETURN l.holder AS holder
"""


class Neo4jOutbox:
    def __init__(self, driver: AsyncDriver, registry: EventRegistry, database: str = "neo4j",
                 name: str = "neo4j-outbox", deadline_s: float = 15.0) -> None:
        self.driver, self.registry, self.database, self.name = driver, registry, database, name
        self.deadline_s = deadline_s

    async def _execute(self, cypher: str, routing: Literal["r", "w"] = "w", **params: Any) -> list[Record]:
        return await neo4j_records(self.driver, self.database, self.deadline_s, cypher, params,
                                   routing)

    async def setup(self) -> None:
        for q in (
            "CREATE CONSTRAINT bloop_outbox_id IF NOT EXISTS FOR (e:BloopOutbox) REQUIRE e.id IS UNIQUE",
            "CREATE INDEX bloop_outbox_seq IF NOT EXISTS FOR (e:BloopOutbox) ON (e.name, e.seq)",
            "CREATE INDEX bloop_outbox_sent IF NOT EXISTS FOR (e:BloopOutbox) ON (e.sent_at)",
            "CREATE CONSTRAINT bloop_outbox_seq_name IF NOT EXISTS "
            "FOR (s:BloopOutboxSeq) REQUIRE s.name IS UNIQUE",
            "CREATE CONSTRAINT bloop_outbox_lease_name IF NOT EXISTS "
            "FOR (l:BloopOutboxLease) REQUIRE l.name IS UNIQUE",
        ):
            await self.driver.execute_query(q, database_=self.database)

    async def add(self, tx: AsyncManagedTransaction, *envelopes: Envelope) -> None:
        """Call inside the transaction function that changes the state these events describe."""
        events = [entry_of(e, self.registry) for e in envelopes]
        result = await tx.run(ADD, name=self.name, events=events)
        await result.consume()

    async def pending(self, limit: int) -> list[Pending]:
        records = await self._execute(
            "MATCH (e:BloopOutbox {name: $name}) WHERE e.sent_at IS NULL "
            "RETURN e.seq AS seq, e.id AS id, e.topic AS topic, e.key AS key, e.type AS type, "
            "e.value AS value ORDER BY e.seq LIMIT $limit", "r", name=self.name, limit=limit)
        return [Pending(ref=r["id"], message=message_of(dict(r))) for r in records]

    async def mark_sent(self, sent: Sequence[Pending]) -> None:
        await self._execute("MATCH (e:BloopOutbox) WHERE e.id IN $ids SET e.sent_at = $now",
                            ids=[p.ref for p in sent], now=time.time())

    async def lead(self, holder: str, ttl_s: float, replacing: str | None = None) -> str | None:
        records = await self._execute(LEAD, name=self.name, holder=holder, replacing=replacing,
                                      ttl_ms=int(ttl_s * 1000))
        current = records[0]["holder"]
        return None if current is None else str(current)

    async def step_down(self, holder: str) -> None:
        await self._execute("MATCH (l:BloopOutboxLease {name: $name, holder: $holder}) "
                            "REMOVE l.holder, l.until", name=self.name, holder=holder)

    async def count_pending(self) -> int:
        records = await self._execute(
            "MATCH (e:BloopOutbox {name: $name}) WHERE e.sent_at IS NULL RETURN count(e) AS n",
            "r", name=self.name)
        return int(records[0]["n"])

    async def prune(self, older_than_s: float) -> int:
        records = await self._execute(
            "MATCH (e:BloopOutbox {name: $name}) WHERE e.sent_at < $cutoff "
            "WITH e LIMIT 10000 DELETE e RETURN count(*) AS n",
            name=self.name, cutoff=time.time() - older_than_s)
        return int(records[0]["n"])
