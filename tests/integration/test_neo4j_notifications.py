"""Queries naming what no node has yet do not fill the log; notifications worth reading still
reach it."""

from __future__ import annotations

import logging

import pytest

from bloop.platform.kit import stores
from bloop.platform.kit.settings import Neo4jSettings
from tests.support import require_server

pytestmark = pytest.mark.real


async def test_unknown_labels_and_properties_are_not_notified(caplog: pytest.LogCaptureFixture) -> None:
    require_server("neo4j")
    driver = stores.neo4j_driver(Neo4jSettings())
    try:
        with caplog.at_level(logging.DEBUG, logger="neo4j.notifications"):
            unknown = await driver.execute_query(
                "MATCH (n:BloopNeverLabel) RETURN n.bloop_never_property AS p")
            cartesian = await driver.execute_query(
                "MATCH (a:BloopNeverLabel), (b:BloopNeverLabel) RETURN a, b")
    finally:
        await driver.close()
    assert [g.gql_status for g in unknown.summary.gql_status_objects if g.is_notification] == []
    # A cartesian product is a performance notification: it is still sent and logged.
    assert [g.classification.value for g in cartesian.summary.gql_status_objects
            if g.is_notification] == ["PERFORMANCE"]
    assert [r.levelname for r in caplog.records if r.name == "neo4j.notifications"] == ["INFO"]
