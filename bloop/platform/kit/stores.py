"""Clients of the real stores, built from settings. Constructing one does not connect."""

from __future__ import annotations

import asyncio
from typing import Any

from influxdb_client.client.influxdb_client_async import InfluxDBClientAsync
from neo4j import AsyncDriver, AsyncGraphDatabase, NotificationDisabledClassification
from pymongo import AsyncMongoClient
from redis.asyncio import Redis

from bloop.platform.kit.settings import InfluxSettings, MongoSettings, Neo4jSettings, RedisSettings


def mongo_client(s: MongoSettings) -> AsyncMongoClient[dict[str, Any]]:
    return AsyncMongoClient(s.url, serverSelectionTimeoutMS=s.timeout_ms,
                            connectTimeoutMS=s.timeout_ms, tz_aware=True, uuidRepresentation="standard")


def neo4j_driver(s: Neo4jSettings) -> AsyncDriver:
    # UNRECOGNIZED notifications name labels and properties no node has yet (a learner's first
    # progress, a tenant's first edge): the server would send them, and the driver log them, on
    # every such query. Performance and deprecation notifications still come.
    return AsyncGraphDatabase.driver(
        s.url, auth=(s.user, s.password), connection_timeout=s.timeout_s,
        connection_acquisition_timeout=s.timeout_s * 2,
        notifications_disabled_classifications=[NotificationDisabledClassification.UNRECOGNIZED])


def redis_client(s: RedisSettings) -> Redis:
    return Redis.from_url(s.url, socket_timeout=s.timeout_s, socket_connect_timeout=s.timeout_s,
                          health_check_interval=15)


def influx_client(s: InfluxSettings) -> InfluxDBClientAsync:
    return InfluxDBClientAsync(url=s.url, token=s.token, org=s.org, timeout=s.timeout_ms)


async def ping_mongo(client: AsyncMongoClient[dict[str, Any]]) -> None:
    await client.admin.command("ping")


async def ping_neo4j(driver: AsyncDriver) -> None:
    await driver.verify_connectivity()


async def ping_redis(redis: Redis) -> None:
    await redis.ping()


async def ping_influx(client: InfluxDBClientAsync) -> None:
    if not await client.ping():
        raise ConnectionError("influxdb did not answer /ping")


async def close_all(*closers: Any) -> None:
    await asyncio.gather(*(c for c in closers if c is not None), return_exceptions=True)
