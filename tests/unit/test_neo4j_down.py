"""A Neo4j that refuses connections fails a query in seconds, after the driver's two retries,
instead of holding every learning request for the whole query deadline."""

from __future__ import annotations

import socket
import time

import pytest
from neo4j import AsyncManagedTransaction
from neo4j.exceptions import ServiceUnavailable

from bloop.platform.kit.errors import store_errors
from bloop.platform.kit.settings import Neo4jSettings
from bloop.platform.kit.stores import neo4j_driver, neo4j_records

DEADLINE_S = 15.0


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_a_refused_connection_fails_well_before_the_deadline() -> None:
    driver = neo4j_driver(Neo4jSettings(url=f"bolt://127.0.0.1:{closed_port()}",
                                        query_timeout_s=DEADLINE_S))

    async def work(tx: AsyncManagedTransaction) -> None:
        await (await tx.run("RETURN 1")).consume()

    try:
        started = time.monotonic()
        with pytest.raises(ServiceUnavailable) as query:
            await neo4j_records(driver, "neo4j", DEADLINE_S, "RETURN 1", {})
        read_s = time.monotonic() - started
        started = time.monotonic()
        with pytest.raises(ServiceUnavailable):
            async with driver.session(database="neo4j") as session:
                await session.execute_write(work)
        write_s = time.monotonic() - started
    finally:
        await driver.close()
    assert store_errors()[ServiceUnavailable] == "neo4j", query.value  # answered 503
    for took in (read_s, write_s):
        assert took < DEADLINE_S / 3, f"a call took {took:.1f}s against a {DEADLINE_S:g}s deadline"
