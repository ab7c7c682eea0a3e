"""Event ids (UUIDv7) and the Kafka partition chosen for a key."""

from __future__ import annotations

import time
import uuid

from aiokafka.partitioner import DefaultPartitioner

from bloop.platform.kit.events.bus.kafka import partition_of
from bloop.platform.kit.ids import new_id


def test_ids_are_version_7_unique_and_later_ids_sort_later() -> None:
    first = [new_id() for _ in range(5000)]
    time.sleep(0.002)
    later = new_id()
    assert all(i.version == 7 and i.variant == uuid.RFC_4122 for i in first)
    assert len(set(first)) == len(first)
    assert later > max(first)
    stamp_ms = first[0].int >> 80
    assert abs(stamp_ms - time.time() * 1000) < 60_000


def test_a_key_goes_to_the_partition_aiokafkas_default_partitioner_picks() -> None:
    default = DefaultPartitioner()
    for count in (1, 3, 7, 12):
        partitions = list(range(count))
        for n in range(300):
            key = f"learner-{n}".encode()
            assert partition_of(key, partitions) == default(key, partitions, partitions)
            assert partition_of(key, partitions) == default(key, partitions, partitions)  # cached


def test_a_message_without_a_key_goes_to_some_partition() -> None:
    assert {partition_of(None, [0, 1, 2]) for _ in range(200)} <= {0, 1, 2}
