"""The topics the Kafka bus creates have as many copies as `BLOOP_KAFKA_REPLICATION_FACTOR` says,
the brokers' `default.replication.factor` by default (they were made with one copy, whatever the
cluster, while the producer waits for every in-sync copy); a factor the cluster cannot have stops
the bus instead of leaving the broker to make the topic with its defaults on the first send."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import InvalidReplicationFactorError

from bloop.platform.kit.events.bus import kafka as kafka_bus
from bloop.platform.kit.events.bus.kafka import KafkaEventBus
from bloop.platform.kit.events.dedupe import SqliteProcessedEvents
from bloop.platform.kit.events.types import registry
from bloop.platform.kit.metrics import Metrics
from bloop.platform.kit.settings import KafkaSettings, SettingsError, read
from bloop.platform.kit.sqlite import SqliteDB
from tests.support import require_server


@pytest.fixture
async def admin() -> AsyncIterator[AIOKafkaAdminClient]:
    require_server("kafka")
    client = AIOKafkaAdminClient(bootstrap_servers=KafkaSettings().bootstrap)
    await client.start()
    yield client
    await client.close()


async def copies(admin: AIOKafkaAdminClient, topic: str) -> set[int]:
    [described] = await admin.describe_topics([topic])
    return {len(p["replicas"]) for p in described["partitions"]}


async def default_factor(admin: AIOKafkaAdminClient) -> int:
    broker = (await admin.describe_cluster())["brokers"][0]["node_id"]
    [answer] = await admin.describe_configs(
        [ConfigResource(ConfigResourceType.BROKER, str(broker))])
    values = {entry[0]: entry[1] for entry in answer.resources[0][4]}
    return int(values["default.replication.factor"])


async def made(tmp_path: Path, settings: KafkaSettings, topic: str) -> list[NewTopic]:
    """What the bus asked the cluster for, to make `topic`."""
    asked: list[NewTopic] = []

    class Recorded(AIOKafkaAdminClient):  # type: ignore[misc]
        async def create_topics(self, new_topics: list[NewTopic], *args: Any, **kwargs: Any
                                ) -> Any:
            asked.extend(new_topics)
            return await super().create_topics(new_topics, *args, **kwargs)

    db = SqliteDB(tmp_path / "processed.sqlite3")
    bus = KafkaEventBus(settings, registry, SqliteProcessedEvents(db), Metrics())
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(kafka_bus, "AIOKafkaAdminClient", Recorded)
            await bus.ensure_topics([topic])
    finally:
        await bus.close()
        await db.close()
    return asked


async def test_topics_get_the_brokers_default_replication_factor(
        tmp_path: Path, admin: AIOKafkaAdminClient) -> None:
    topic = f"rf-default-{uuid.uuid4().hex[:8]}"
    asked = await made(tmp_path, KafkaSettings(), topic)
    try:
        assert [t.replication_factor for t in asked] == [-1]
        assert await copies(admin, topic) == {await default_factor(admin)}
    finally:
        await admin.delete_topics([topic])


async def test_a_factor_the_cluster_cannot_have_is_an_error(
        tmp_path: Path, admin: AIOKafkaAdminClient) -> None:
    brokers = len((await admin.describe_cluster())["brokers"])
    topic = f"rf-many-{uuid.uuid4().hex[:8]}"
    with pytest.raises(InvalidReplicationFactorError, match=topic):
        await made(tmp_path, KafkaSettings(replication_factor=brokers + 1), topic)
    assert topic not in await admin.list_topics()


def test_a_factor_of_zero_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BLOOP_KAFKA_REPLICATION_FACTOR", "0")
    with pytest.raises(SettingsError, match="BLOOP_KAFKA_REPLICATION_FACTOR"):
        read(KafkaSettings)
