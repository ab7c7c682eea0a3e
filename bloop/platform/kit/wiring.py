"""The one place that picks an adapter for each port and builds every client.

`BLOOP_STORE=embedded` (the default) runs on SQLite files and in-process adapters under
`BLOOP_DATA_DIR`; `BLOOP_STORE=real` uses the servers at the configured URLs. Each store can be
switched on its own with `BLOOP_<STORE>_ADAPTER`.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Sequence
from typing import Any, Literal

from influxdb_client.client.influxdb_client_async import InfluxDBClientAsync
from neo4j import AsyncDriver
from pymongo import AsyncMongoClient
from redis.asyncio import Redis

from bloop.platform.kit import stores
from bloop.platform.kit.auth import Auth, RemoteJwks
from bloop.platform.kit.auth.remote_keys import RemoteApiKeys
from bloop.platform.kit.auth.revocations import MirroredRevocations, StoredRevocations
from bloop.platform.kit.cache import Cache, MemoryCache, RedisCache
from bloop.platform.kit.events.bus.embedded import EmbeddedEventBus
from bloop.platform.kit.events.bus.kafka import KafkaEventBus
from bloop.platform.kit.events.bus.port import EventBus, Subscription
from bloop.platform.kit.events.dedupe import (
    ProcessedEvents,
    RedisProcessedEvents,
    SqliteProcessedEvents,
)
from bloop.platform.kit.events.outbox import OutboxRelay, OutboxStore
from bloop.platform.kit.events.types import EventRegistry, registry
from bloop.platform.kit.health import Probe
from bloop.platform.kit.idempotency import IdempotencyStore, RedisIdempotency, SqliteIdempotency
from bloop.platform.kit.metrics import Metrics
from bloop.platform.kit.settings import Settings, development_credential
from bloop.platform.kit.sqlite import SqliteDB

log = logging.getLogger("bloop.wiring")
COUNTER_ENTRIES = 500_000


class StoreMissing(RuntimeError):
    pass


class Platform:
    """Every client and adapter of one process. Built in the app's lifespan, closed at its end."""

    def __init__(self, settings: Settings, events: EventRegistry = registry, *,
                 one_off: bool = False) -> None:
        self.settings = settings
        # A command that runs to its end (`bloop seed`) beside the servers: services leave out
        # what one serving process holds alone (content's search index).
        self.one_off = one_off
        self.events = events
        self.metrics = Metrics()
        self.probes: list[Probe] = []
        self.relays: list[OutboxRelay] = []
        # Each service's state (`Mounted.state`) once it is mounted in this process, for the
        # services beside it that use its public surface in process rather than over HTTP.
        self.services: dict[str, dict[str, object]] = {}
        self._sqlite: dict[str, SqliteDB] = {}
        self._closers: list[Callable[[], Any]] = []

        # A store's client (and its `/readyz` probe) is made when a service this process runs
        # first asks for it (`require_*`), so readiness follows only the stores in use here.
        self.mongo: AsyncMongoClient[dict[str, Any]] | None = None
        self.neo4j: AsyncDriver | None = None
        self.influx: InfluxDBClientAsync | None = None
        # Redis, when configured, holds what every process shares: the cache, revoked tokens,
        # the events already handled and the POSTs' Idempotency-Keys.
        self.redis: Redis | None = None
        if settings.mode("redis") == "real":
            self.redis = stores.redis_client(settings.redis)
            red = self.redis
            self._probe("redis", lambda: stores.ping_redis(red))
            self._closers.append(red.aclose)

        # `cache` holds state that must last its ttl (sign-in counters, rate limits, revocation
        # marks, OIDC states); `copies` what can be read again from its store (published
        # lessons). In process they are two caches, so a flood of large copies never pushes a
        # counter out (which would reset it); Redis holds both under its own memory policy.
        self.cache: Cache
        self.copies: Cache
        if self.redis is not None:
            self.cache = self.copies = redis_cache = RedisCache(self.redis)
            self._closers.append(redis_cache.close)
            self.auth = Auth(settings.auth, redis_cache, MirroredRevocations(redis_cache))
        else:
            max_bytes = settings.runtime.cache_memory_max_bytes
            # Counters are small: their bytes bound them, so an attacker spreading guesses over
            # many addresses cannot push one out by number alone.
            self.cache = MemoryCache(max_entries=COUNTER_ENTRIES, max_bytes=max_bytes)
            self.copies = MemoryCache(max_bytes=max_bytes)
            self.auth = Auth(settings.auth, self.cache,
                             StoredRevocations(self.cache, self.sqlite("auth")))
        if settings.auth.jwks_url:
            self.auth.verifier.use_keys(RemoteJwks(settings.auth.jwks_url))
        if settings.auth.api_keys_url:
            remote_keys = RemoteApiKeys(settings.auth.api_keys_url, settings.auth.api_key_cache_s)
            self.auth.use_api_keys(remote_keys)
            self._closers.append(remote_keys.close)
        # Not probed: a store of keys that is down fails only the POSTs that carry a key.
        self.idempotency: IdempotencyStore
        # Redis expires keys itself; in SQLite a serving process drops the expired ones.
        self._pruned_keys: SqliteIdempotency | None = None
        if self.redis is not None:
            self.idempotency = RedisIdempotency(self.redis)
        else:
            self.idempotency = kept = SqliteIdempotency(self.sqlite("idempotency", probed=False))
            self._pruned_keys = None if one_off else kept
        self.processed: ProcessedEvents
        if self.redis is not None:
            self.processed = RedisProcessedEvents(self.redis)
        else:
            self.processed = SqliteProcessedEvents(self.sqlite("events"))
        self.bus: EventBus
        if settings.mode("kafka") == "real":
            self.bus = KafkaEventBus(settings.kafka, events, self.processed, self.metrics)
        else:
            self.bus = EmbeddedEventBus(
                self.sqlite("events"), events, self.processed, self.metrics,
                max_attempts=settings.kafka.max_attempts, backoff_s=settings.kafka.retry_backoff_s,
                poll_interval_s=settings.outbox.poll_interval_s, lease_s=settings.outbox.lease_s)

    @property
    def cache_shared(self) -> bool:
        """Whether every process reads and drops the same cache (Redis), not a copy of its own."""
        return self.redis is not None

    def _probe(self, name: str, check: Callable[[], Any], cancellable: bool = True) -> None:
        self.probes.append(Probe(name, check, cancellable=cancellable))

    def sqlite(self, name: str, probed: bool = True) -> SqliteDB:
        """The embedded database `name` (one file per service under the data dir); `probed`:
        whether `/readyz` follows it."""
        if name not in self._sqlite:
            db = SqliteDB(self.settings.runtime.data_dir / f"{name}.sqlite3")
            self._sqlite[name] = db
            if probed:
                self._probe(f"sqlite:{name}", db.ping)
        return self._sqlite[name]

    def require_mongo(self) -> AsyncMongoClient[dict[str, Any]]:
        if self.mongo is None:
            self._real("mongo")
            self.mongo = mongo = stores.mongo_client(self.settings.mongo)
            self._probe("mongodb", lambda: stores.ping_mongo(mongo), cancellable=False)
            self._closers.append(mongo.close)
        return self.mongo

    def _real(self, store: Literal["mongo", "neo4j", "influx"]) -> None:
        """StoreMissing unless `store` is configured as its real server."""
        if self.settings.mode(store) != "real":
            raise StoreMissing(f"this adapter needs BLOOP_STORE=real or "
                               f"BLOOP_{store.upper()}_ADAPTER=real")

    def _warn_of_development_credential(self, store: Literal["neo4j", "influx"]) -> None:
        if name := development_credential(self.settings, store):
            log.warning(f"{name} is the built-in development value: {store} is given the "
                        f"credential of infra/'s local server; set the real server's",
                        extra={"setting": name})

    def require_neo4j(self) -> AsyncDriver:
        if self.neo4j is None:
            self._real("neo4j")
            self._warn_of_development_credential("neo4j")
            self.neo4j = neo = stores.neo4j_driver(self.settings.neo4j)
            self._probe("neo4j", lambda: stores.ping_neo4j(neo))
            self._closers.append(neo.close)
        return self.neo4j

    def require_influx(self) -> InfluxDBClientAsync:
        if self.influx is None:
            self._real("influx")
            self._warn_of_development_credential("influx")
            self.influx = influx = stores.influx_client(self.settings.influx)
            self._probe("influxdb", lambda: stores.ping_influx(influx))
            self._closers.append(influx.close)
        return self.influx

    def add_outbox(self, outbox: OutboxStore) -> OutboxRelay:
        self._uses_bus()
        relay = OutboxRelay(outbox, self.bus, self.metrics, self.settings.outbox)
        self.relays.append(relay)
        return relay

    def _uses_bus(self) -> None:
        """Kafka is probed once a service here publishes (an outbox) or consumes on it."""
        if isinstance(self.bus, KafkaEventBus) and all(p.name != "kafka" for p in self.probes):
            self._probe("kafka", self.bus.ping)

    async def start(self) -> None:
        """Starts the bus. Each service's relays and consumers are started once its stores are
        set up (`activate`), so nothing reads a table before it exists."""
        if isinstance(self.processed, SqliteProcessedEvents):
            await self.processed.setup()
        await self.auth.start()
        await self.bus.start()
        if self._pruned_keys is not None:
            self._pruned_keys.start()

    def activate(self, relays: Sequence[OutboxRelay], subscriptions: Sequence[Subscription]) -> None:
        if subscriptions:
            self._uses_bus()
        for sub in subscriptions:
            self.bus.subscribe(sub)
        for relay in relays:
            relay.start()

    async def stop_work(self) -> None:
        """Stops the outbox relays and the consumers, so that no handler runs while the
        services close what they hold (a search index, clients); `close` does it too."""
        for relay in self.relays:
            await relay.stop()
        if self._pruned_keys is not None:
            await self._pruned_keys.stop()
        with contextlib.suppress(Exception):
            await self.bus.close()

    async def close(self) -> None:
        await self.stop_work()
        await self.auth.close()
        await stores.close_all(*(close() for close in reversed(self._closers)))
        for db in self._sqlite.values():
            await db.close()
