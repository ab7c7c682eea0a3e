"""Clients of the real stores, built from settings. Constructing one does not connect."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import Any, Literal

from influxdb_client.client.influxdb_client_async import InfluxDBClientAsync
from neo4j import AsyncDriver, AsyncGraphDatabase, NotificationDisabledClassification, Record
from pymongo import AsyncMongoClient
from redis.asyncio import Redis

from bloop.platform.kit.deadline import store_deadline
from bloop.platform.kit.settings import InfluxSettings, MongoSettings, Neo4jSettings, RedisSettings
from bloop.platform.kit.waiting import forget

log = logging.getLogger("bloop.stores")
CLOSE_WAIT_S = 5.0


def mongo_client(s: MongoSettings) -> AsyncMongoClient[dict[str, Any]]:
    return AsyncMongoClient(s.url, serverSelectionTimeoutMS=s.timeout_ms,
                            connectTimeoutMS=s.timeout_ms, socketTimeoutMS=s.socket_timeout_ms,
                            tz_aware=True, uuidRepresentation="standard")


def neo4j_driver(s: Neo4jSettings) -> AsyncDriver:
    # UNRECOGNIZED notifications name labels and properties no node has yet (a learner's first
    # progress, a tenant's first edge): the server would send them, and the driver log them, on
    # every such query. Performance and deprecation notifications still come.
    return AsyncGraphDatabase.driver(
        s.url, auth=(s.user, s.password), connection_timeout=s.timeout_s,
        connection_acquisition_timeout=s.timeout_s * 2, max_transaction_retry_time=s.retry_s,
        notifications_disabled_classifications=[NotificationDisabledClassification.UNRECOGNIZED])


def redis_client(s: RedisSettings) -> Redis:
    return Redis.from_url(s.url, socket_timeout=s.timeout_s, socket_connect_timeout=s.timeout_s,
                          health_check_interval=15)


def influx_client(s: InfluxSettings) -> InfluxDBClientAsync:
    return InfluxDBClientAsync(url=s.url, token=s.token, org=s.org, timeout=s.timeout_ms)


async def neo4j_records(driver: AsyncDriver, database: str, deadline_s: float, cypher: str,
                        params: dict[str, Any], routing: Literal["r", "w"] = "w") -> list[Record]:
    """One auto-commit query, bounded by `deadline_s`: the driver would wait for a silent server
    as long as the server's own hint says (120 s by default)."""
    async with store_deadline("neo4j", deadline_s):
        records, _, _ = await driver.execute_query(cypher, parameters_=params, database_=database,
                                                   routing_=routing)
    return records


async def ping_mongo(client: AsyncMongoClient[dict[str, Any]]) -> None:
    """Ends by itself within the client's server selection and socket timeouts: its probe
    must not cancel it (see `health.Probe`)."""
    await client.admin.command("ping")


async def ping_neo4j(driver: AsyncDriver) -> None:
    await driver.verify_connectivity()


REDIS_CHECK_KEY = "bloop:readyz"


async def ping_redis(redis: Redis) -> None:
    """A write of a tiny expiring key, not a PING: a Redis that answers PING may still refuse
    every write (out of memory under `noeviction`, MISCONF, a read-only replica)."""
    await redis.set(REDIS_CHECK_KEY, b"1", px=10_000)


async def ping_influx(client: InfluxDBClientAsync) -> None:
    if not await client.ping():
        raise ConnectionError("influxdb did not answer /ping")


async def close_all(*closers: Awaitable[Any] | None, wait_s: float = CLOSE_WAIT_S) -> None:
    """Closes clients together. One that has not closed after `wait_s` is left behind, with a
    warning, so that shutting down always ends: pymongo's async client can wait forever on its
    own server monitor when it is closed while its server is unreachable."""
    tasks = {asyncio.ensure_future(c): getattr(c, "__qualname__", repr(c))
             for c in closers if c is not None}
    if not tasks:
        return
    done, pending = await asyncio.wait(tasks, timeout=wait_s)
    for task in done:
        if not task.cancelled() and (error := task.exception()) is not None:
            log.warning("a store client failed to close", extra={
                "client": tasks[task], "error": repr(error)})
    for task in pending:
        log.warning("a store client did not close in time; left behind", extra={
            "client": tasks[task], "wait_s": wait_s})
        task.cancel()
        forget(task)
