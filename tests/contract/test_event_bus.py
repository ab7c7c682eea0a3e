"""The EventBus contract, run against the embedded (SQLite) bus and Kafka."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import orjson
import pytest

from bloop.platform.kit.errors import StoreUnavailable
from bloop.platform.kit.events.bus.kafka import KafkaEventBus
from bloop.platform.kit.events.bus.port import EventBus, Message, Subscription
from bloop.platform.kit.events.envelope import Envelope
from bloop.platform.kit.events.outbox.port import MAX_EVENT_BYTES
from bloop.platform.kit.events.redrive import redrive
from tests.contract.conftest import LAG_EVERY_S, BusHarness, headers_of, unique
from tests.support import PingSent, eventually, require_server

PING = PingSent.event_type  # type: ignore[attr-defined]


def ping(run: str, n: int, subject: str = "agg-1", tenant: str = "t1") -> Envelope:
    return PING.envelope(PingSent(run=run, n=n), tenant=tenant, subject=subject)  # type: ignore[no-any-return]


def msg(topic: str, env: Envelope) -> Message:
    return Message.of(env, topic)


async def test_events_reach_the_handler_in_order_per_aggregate(harness: BusHarness, topic: str) -> None:
    bus = await harness.new_bus()
    seen: dict[str, list[int]] = defaultdict(list)

    async def handler(env: Envelope) -> None:
        seen[env.subject].append(env.data["n"])

    bus.subscribe(Subscription(unique("g"), (topic,), handler))
    await bus.start()
    run = uuid.uuid4().hex
    await bus.publish([msg(topic, ping(run, n, subject=f"agg-{n % 3}")) for n in range(60)])

    async def all_seen() -> bool:
        return sum(len(v) for v in seen.values()) == 60

    await eventually(all_seen, what="60 events")
    for subject, numbers in seen.items():
        assert numbers == sorted(numbers), subject
        assert len(numbers) == 20


async def test_malformed_events_are_dead_lettered_with_a_reason(harness: BusHarness, topic: str) -> None:
    bus = await harness.new_bus()
    handled: list[int] = []

    async def handler(env: Envelope) -> None:
        handled.append(env.data["n"])

    group = unique("g")
    bus.subscribe(Subscription(group, (topic,), handler))
    await bus.start()
    run = uuid.uuid4().hex
    good = ping(run, 1)
    no_tenant = {k: v for k, v in orjson.loads(good.to_bytes()).items() if k != "tenant"}
    unknown = orjson.loads(good.to_bytes()) | {"type": "bloop.test.never.declared.v1",
                                               "id": str(uuid.uuid4())}
    violating = orjson.loads(good.to_bytes()) | {"data": {"run": run, "n": "many"},
                                                 "id": str(uuid.uuid4())}
    bad = [b"{not json", orjson.dumps(no_tenant), orjson.dumps(unknown), orjson.dumps(violating)]
    await bus.publish([Message(topic, b"agg-1", raw) for raw in bad] + [msg(topic, good)])

    async def good_handled() -> bool:
        return handled == [1]

    await eventually(good_handled, what="the good event")
    dead = await harness.dead_letters(bus, topic, 4)
    reasons = [headers_of(m)["dlq.reason"] for m in dead]
    assert reasons == ["bad_envelope", "bad_envelope", "unknown_type", "schema_violation"]
    assert all(headers_of(m)["dlq.group"] == group for m in dead)
    assert "tenant" in headers_of(dead[1])["dlq.detail"]
    assert dead[0].value == b"{not json"
    text = harness.metrics.render().decode()
    labels = f'group="{group}",reason="bad_envelope",topic="{topic}"'
    assert f"bloop_events_dead_lettered_total{{{labels}}} 2.0" in text


async def test_a_failing_handler_is_retried_then_dead_lettered(harness: BusHarness, topic: str) -> None:
    bus = await harness.new_bus()
    names = {1: "flaky", 2: "broken", 3: "after"}
    calls: dict[str, int] = defaultdict(int)
    done: list[str] = []

    async def handler(env: Envelope) -> None:
        name = names[env.data["n"]]
        calls[name] += 1
        if name == "broken" or (name == "flaky" and calls["flaky"] == 1):
            raise RuntimeError(f"cannot handle {name}")
        done.append(name)

    bus.subscribe(Subscription(unique("g"), (topic,), handler))
    await bus.start()
    run = uuid.uuid4().hex
    await bus.publish([msg(topic, ping(run, n, "one-aggregate")) for n in names])

    async def finished() -> bool:
        return "after" in done

    await eventually(finished, what="the event after the broken one")
    assert calls == {"flaky": 2, "broken": 3, "after": 1}
    assert done == ["flaky", "after"]
    dead = await harness.dead_letters(bus, topic, 1)
    assert len(dead) == 1
    h = headers_of(dead[0])
    assert h["dlq.reason"] == "handler_failed"
    assert h["dlq.attempts"] == "3"
    assert "cannot handle broken" in h["dlq.detail"]


async def test_a_store_down_is_waited_for_not_dead_lettered(harness: BusHarness, topic: str) -> None:
    """A handler whose store is down for longer than the attempts would last: the event waits
    for the store and is handled, in its place, with nothing dead-lettered."""
    bus = await harness.new_bus()
    calls: list[int] = []
    done: list[int] = []

    async def handler(env: Envelope) -> None:
        calls.append(env.data["n"])
        if env.data["n"] == 1 and len(calls) <= 5:
            raise StoreUnavailable("neo4j", "restarting")
        done.append(env.data["n"])

    bus.subscribe(Subscription(unique("g"), (topic,), handler))
    await bus.start()
    run = uuid.uuid4().hex
    await bus.publish([msg(topic, ping(run, n, "one-aggregate")) for n in (1, 2)])

    async def finished() -> bool:
        return done == [1, 2]

    await eventually(finished, what="both events, the first once its store is back")
    assert calls.count(1) == 6  # past the three attempts a failing handler gets


async def test_a_redelivered_event_is_handled_once(harness: BusHarness, topic: str) -> None:
    bus = await harness.new_bus()
    handled: list[uuid.UUID] = []

    async def handler(env: Envelope) -> None:
        handled.append(env.id)

    group = unique("g")
    bus.subscribe(Subscription(group, (topic,), handler))
    await bus.start()
    env, other = ping(uuid.uuid4().hex, 1), ping("x", 2)
    await bus.publish([msg(topic, env), msg(topic, env), msg(topic, other)])

    duplicate = (f'bloop_events_consumed_total{{group="{group}",outcome="duplicate",'
                 f'topic="{topic}"}} 1.0')

    async def counted() -> bool:
        # A batch's outcomes are counted once all of it is handled and marked.
        return duplicate in harness.metrics.render().decode() and len(handled) >= 2

    await eventually(counted, what="two distinct events and the duplicate counted")
    assert sorted(handled) == sorted([env.id, other.id])


async def test_a_group_resumes_after_its_last_commit(harness: BusHarness, topic: str) -> None:
    group = unique("g")
    run = uuid.uuid4().hex
    first: list[int] = []

    async def record_first(env: Envelope) -> None:
        first.append(env.data["n"])

    bus = await harness.new_bus()
    bus.subscribe(Subscription(group, (topic,), record_first))
    await bus.start()
    await bus.publish([msg(topic, ping(run, n, subject="same")) for n in range(5)])

    async def five() -> bool:
        return len(first) == 5 and await bus.drained(group)

    await eventually(five, what="the first five")
    await harness.close(bus)

    second: list[int] = []

    async def record_second(env: Envelope) -> None:
        second.append(env.data["n"])

    bus2 = await harness.new_bus()
    await bus2.publish([msg(topic, ping(run, n, subject="same")) for n in range(5, 10)])
    bus2.subscribe(Subscription(group, (topic,), record_second))
    await bus2.start()

    async def rest() -> bool:
        return len(second) >= 5

    await eventually(rest, what="the next five")
    assert first == [0, 1, 2, 3, 4]
    assert second == [5, 6, 7, 8, 9]


async def test_a_subscription_sees_only_the_types_it_asks_for(harness: BusHarness, topic: str) -> None:
    bus = await harness.new_bus()
    handled: list[int] = []

    async def handler(env: Envelope) -> None:
        handled.append(env.data["n"])

    group = unique("g")
    bus.subscribe(Subscription(group, (topic,), handler, types=frozenset({"bloop.test.other.v1"})))
    await bus.start()
    await bus.publish([msg(topic, ping("r", 1))])

    async def drained() -> bool:
        return await bus.drained(group)

    await eventually(drained, what="the group to pass the event")
    assert handled == []


async def test_a_publish_larger_than_a_record_batch_keeps_each_aggregates_order(
        harness: BusHarness, topic: str) -> None:
    bus = await harness.new_bus()
    seen: dict[str, list[int]] = defaultdict(list)

    async def handler(env: Envelope) -> None:
        seen[env.subject].append(env.data["n"])

    bus.subscribe(Subscription(unique("g"), (topic,), handler))
    await bus.start()
    filler = uuid.uuid4().hex * 40  # about 1.3 KB an event: 2,400 events fill several 1 MB batches
    await bus.publish([msg(topic, ping(filler, n, subject=f"agg-{n % 5}")) for n in range(2400)])

    async def all_seen() -> bool:
        return sum(len(v) for v in seen.values()) == 2400

    await eventually(all_seen, what="2400 events")
    assert {s: len(v) for s, v in seen.items()} == {f"agg-{i}": 480 for i in range(5)}
    for subject, numbers in seen.items():
        assert numbers == sorted(numbers), subject


async def test_the_largest_event_an_outbox_takes_is_carried_and_dead_lettered_whole(
        harness: BusHarness, topic: str) -> None:
    """Outboxes refuse events past MAX_EVENT_BYTES; one at the limit crosses the bus, and its
    dead-letter record (the event with the reason's headers) does too."""
    bus = await harness.new_bus()
    handled: list[int] = []

    async def handler(env: Envelope) -> None:
        if env.data["n"] == 1:
            raise RuntimeError("cannot handle " + "it " * 2000)
        handled.append(env.data["n"])

    bus.subscribe(Subscription(unique("g"), (topic,), handler))
    await bus.start()
    largest = ping("x" * MAX_EVENT_BYTES, 1)
    largest = ping("x" * (2 * MAX_EVENT_BYTES - len(largest.to_bytes())), 1)
    assert len(largest.to_bytes()) == MAX_EVENT_BYTES
    await bus.publish([msg(topic, largest), msg(topic, ping("after", 2))])

    async def after_handled() -> bool:
        return handled == [2]

    await eventually(after_handled, what="the event after the largest one")
    [dead] = await harness.dead_letters(bus, topic, 1)
    assert dead.value == largest.to_bytes()
    assert headers_of(dead)["dlq.reason"] == "handler_failed"


async def test_dead_letters_are_redriven_once_the_fault_is_fixed(harness: BusHarness,
                                                                  topic: str) -> None:
    bus = await harness.new_bus()
    fixed = False
    fussy_saw: list[int] = []
    calm_saw: list[int] = []

    async def fussy(env: Envelope) -> None:
        if env.data["n"] == 2 and not fixed:
            raise RuntimeError("a bug, fixed later")
        fussy_saw.append(env.data["n"])

    async def calm(env: Envelope) -> None:
        calm_saw.append(env.data["n"])

    fussy_group, calm_group = unique("fussy"), unique("calm")
    bus.subscribe(Subscription(fussy_group, (topic,), fussy))
    bus.subscribe(Subscription(calm_group, (topic,), calm))
    await bus.start()
    run = uuid.uuid4().hex
    await bus.publish([msg(topic, ping(run, n)) for n in (1, 2, 3)]
                      + [Message(topic, b"agg-1", b"{not json")])

    async def dead_lettered() -> bool:
        return len(await bus.dead_letters(topic)) == 3  # the failure, and the bad one twice

    await eventually(dead_lettered, what="three dead letters")
    assert (fussy_saw, calm_saw) == ([1, 3], [1, 2, 3])

    listed = await redrive(bus, topic, dry_run=True)
    assert [(d.group, d.reason, d.type) for d in listed.chosen] == [
        (fussy_group, "handler_failed", ping(run, 2).type)]
    assert listed.left == {"bad_envelope": 2}
    only_calm = await redrive(bus, topic, groups=[calm_group], dry_run=True)
    assert (only_calm.chosen, only_calm.left) == ([], {"bad_envelope": 2, "handler_failed": 1})

    fixed = True
    for _ in range(2):  # twice: the second changes nothing
        sent = await redrive(bus, topic, groups=[fussy_group])
        assert [d.message.value for d in sent.chosen] == [listed.chosen[0].message.value]

        async def both_drained() -> bool:
            return await bus.drained(fussy_group) and await bus.drained(calm_group)

        await eventually(both_drained, what="the redriven event")
    assert fussy_saw == [1, 3, 2]
    assert calm_saw == [1, 2, 3]  # it handled the event the first time: a duplicate now
    assert len(await bus.dead_letters(topic)) == 3


async def test_lag_shows_while_a_handler_waits(harness: BusHarness, topic: str) -> None:
    bus = await harness.new_bus()
    entered, release = asyncio.Event(), asyncio.Event()

    async def handler(env: Envelope) -> None:
        entered.set()
        await release.wait()  # as a handler waiting for its store

    group = unique("g")
    bus.subscribe(Subscription(group, (topic,), handler))
    await bus.start()
    run = uuid.uuid4().hex
    await bus.publish([msg(topic, ping(run, n)) for n in range(3)])

    def lag() -> float:
        return sum(s.value for m in harness.metrics.registry.collect() for s in m.samples
                   if s.name == "bloop_consumer_lag" and s.labels["group"] == group)

    await asyncio.wait_for(entered.wait(), 30)
    assert lag() == 3
    release.set()

    async def caught_up() -> bool:
        return lag() == 0

    await eventually(caught_up, what="no lag")


async def test_lag_grows_while_a_handler_is_stuck_and_the_last_processed_time_stays(
        harness: BusHarness, topic: str) -> None:
    """Events published while the handler is stuck on one show as lag within the counting
    period, not only at the next batch; the group's last-processed time stays put meanwhile."""
    bus = await harness.new_bus()
    entered, release = asyncio.Event(), asyncio.Event()

    async def handler(env: Envelope) -> None:
        entered.set()
        await release.wait()

    group = unique("g")
    bus.subscribe(Subscription(group, (topic,), handler))
    await bus.start()
    run = uuid.uuid4().hex

    def gauge(name: str) -> float:
        return sum(s.value for m in harness.metrics.registry.collect() for s in m.samples
                   if s.name == name and s.labels["group"] == group)

    def lag() -> float:
        return gauge("bloop_consumer_lag")

    def last_processed() -> float:
        return gauge("bloop_consumer_last_processed_timestamp_seconds")

    await bus.publish([msg(topic, ping(run, 0))])
    await asyncio.wait_for(entered.wait(), 30)
    stuck_since = last_processed()
    assert 0 < stuck_since <= time.time()  # from when it began reading
    await bus.publish([msg(topic, ping(run, n)) for n in range(1, 51)])

    async def all_behind() -> bool:
        return lag() == 51

    await eventually(all_behind, what="the whole backlog as lag")
    await asyncio.sleep(3 * LAG_EVERY_S)
    assert lag() == 51
    assert last_processed() == stuck_since
    release.set()

    async def caught_up() -> bool:
        return lag() == 0 and last_processed() > stuck_since

    await eventually(caught_up, what="no lag, and a later last-processed time")


async def test_a_group_passes_by_what_it_does_not_consume_whatever_it_holds(
        harness: BusHarness, topic: str) -> None:
    """A type a group does not consume is skipped before it is checked: a type added, or a
    `.v2` during a rolling upgrade, was dead-lettered `unknown_type` by every group of its
    topic. Groups that do consume it still dead-letter it; an envelope field a later version
    adds is left aside."""
    bus = await harness.new_bus()
    handled: list[int] = []

    async def handler(env: Envelope) -> None:
        handled.append(env.data["n"])

    narrow, wide = unique("narrow"), unique("wide")
    bus.subscribe(Subscription(narrow, (topic,), handler, types=frozenset({"bloop.test.other.v1"})))
    bus.subscribe(Subscription(wide, (topic,), handler))
    await bus.start()
    run = uuid.uuid4().hex
    good = orjson.loads(ping(run, 1).to_bytes())
    newer = good | {"type": "bloop.test.ping.sent.v2", "id": str(uuid.uuid4())}
    violating = good | {"data": {"run": run, "n": "many"}, "id": str(uuid.uuid4())}
    no_tenant = {k: v for k, v in newer.items() if k != "tenant"}
    later_field = good | {"correlation_id": "c-1", "data": {"run": run, "n": 2},
                          "id": str(uuid.uuid4())}
    await bus.publish([*(Message(topic, b"agg-1", orjson.dumps(raw))
                         for raw in (newer, violating, no_tenant, later_field)),
                       Message(topic, b"agg-1", b"no type can be read here")])

    async def both_drained() -> bool:
        return await bus.drained(narrow) and await bus.drained(wide)

    await eventually(both_drained, what="both groups past the events")
    dead = await harness.dead_letters(bus, topic, 5)
    assert sorted((headers_of(m)["dlq.group"], headers_of(m)["dlq.reason"]) for m in dead) == sorted([
        (wide, "unknown_type"), (wide, "schema_violation"), (wide, "bad_envelope"),
        (wide, "bad_envelope"), (narrow, "bad_envelope")])  # what names no type: every group's
    assert len(await bus.dead_letters(topic)) == 5
    assert handled == [2]  # by the wide group; its `correlation_id` left aside


async def test_a_stopping_consumer_ends_after_the_event_in_hand_and_commits_it(
        harness: BusHarness, topic: str) -> None:
    """Stopped mid-batch, a consumer finishes the event in hand, marks and commits what it
    handled and leaves: the next one goes on from there, and handles none of it again."""
    group = unique("g")
    run = uuid.uuid4().hex
    bus = await harness.new_bus()
    first: list[int] = []
    closing: list[asyncio.Task[None]] = []

    async def stopped_midway(env: Envelope) -> None:
        if len(first) == 20 and not closing:
            closing.append(asyncio.create_task(harness.close(bus)))
            await asyncio.sleep(0.2)  # the event in hand, still being handled
        first.append(env.data["n"])

    bus.subscribe(Subscription(group, (topic,), stopped_midway))
    await bus.start()
    await bus.publish([msg(topic, ping(run, n, subject=f"agg-{n % 5}")) for n in range(300)])
    await eventually(lambda: _true(bool(closing)), what="the stop mid-batch")
    await asyncio.wait_for(closing[0], 30)

    second: list[int] = []

    async def record(env: Envelope) -> None:
        second.append(env.data["n"])

    bus2 = await harness.new_bus()
    bus2.subscribe(Subscription(group, (topic,), record))
    await bus2.start()

    async def all_handled() -> bool:
        return len(set(first) | set(second)) == 300

    await eventually(all_handled, what="the rest of the events")
    assert set(first) & set(second) == set()
    assert 20 < len(first) < 300  # the event in hand was handled, and nothing past it


async def _true(value: bool) -> bool:
    return value


@pytest.fixture
async def kafka(tmp_path: Path) -> AsyncIterator[BusHarness]:
    """Kafka alone: the embedded bus has no partitions to move between processes."""
    require_server("kafka")
    h = BusHarness("kafka", tmp_path)
    yield h
    for bus, _ in list(h.opened):
        await h.close(bus)


def assigned(bus: EventBus, group: str) -> int:
    assert isinstance(bus, KafkaEventBus)
    consumer = bus._consumers.get(group)
    return 0 if consumer is None else len(consumer.assignment())


async def test_a_member_losing_its_partitions_mid_batch_leaves_the_rest_to_their_new_owner(
        kafka: BusHarness, topic: str) -> None:
    """A second member joins while the first is in a long batch: the first ends after its
    event in hand and commits, so no event is handled by both (its batch used to run to its
    end, while the new owner read the same partitions from the last commit)."""
    group = unique("g")
    run = uuid.uuid4().hex
    handled: dict[int, list[str]] = defaultdict(list)

    def handler(name: str, delay_s: float) -> Callable[[Envelope], Awaitable[None]]:
        async def handle(env: Envelope) -> None:
            # Slow until the second member has its share, however long the rebalance takes.
            if not any("second" in names for names in handled.values()):
                await asyncio.sleep(delay_s)
            handled[env.data["n"]].append(name)
        return handle

    first = await kafka.new_bus()
    first.subscribe(Subscription(group, (topic,), handler("first", 0.05)))
    await first.start()
    await first.publish([msg(topic, ping(run, n, subject=f"agg-{n % 12}")) for n in range(400)])
    await eventually(lambda: _true(len(handled) >= 10), what="the first member's batch begun")
    second = await kafka.new_bus()
    second.subscribe(Subscription(group, (topic,), handler("second", 0)))
    await second.start()

    async def all_handled() -> bool:
        return len(handled) == 400

    await eventually(all_handled, timeout_s=60, what="every event")
    assert {n: names for n, names in handled.items() if len(names) > 1} == {}
    assert {"first", "second"} == {name for names in handled.values() for name in names}


async def test_lag_counts_from_the_commit_of_partitions_that_come_back(
        kafka: BusHarness, topic: str) -> None:
    """Partitions another member read meanwhile show no lag once back: their lag counts from
    the group's commit, not from where this member had left them."""
    group = unique("g")
    run = uuid.uuid4().hex

    async def handle(env: Envelope) -> None:
        del env

    first = await kafka.new_bus()
    first.subscribe(Subscription(group, (topic,), handle))
    await first.start()
    await first.publish([msg(topic, ping(run, n, subject=f"agg-{n % 12}")) for n in range(30)])
    await eventually(lambda: first.drained(group), what="the first events")
    second = await kafka.new_bus()
    second.subscribe(Subscription(group, (topic,), handle))
    await second.start()

    async def shared() -> bool:
        return 0 < assigned(first, group) < 3 and assigned(second, group) > 0

    await eventually(shared, what="the partitions shared")
    await first.publish([msg(topic, ping(run, n, subject=f"agg-{n % 12}")) for n in range(30, 60)])

    async def both_drained() -> bool:
        return await first.drained(group) and await second.drained(group)

    await eventually(both_drained, what="both members drained")
    await kafka.close(second)
    await eventually(lambda: _true(assigned(first, group) == 3), what="every partition back")

    def lag() -> float:
        return sum(s.value for m in kafka.metrics.registry.collect() for s in m.samples
                   if s.name == "bloop_consumer_lag" and s.labels["group"] == group)

    assert isinstance(first, KafkaEventBus)
    await first.count_lag()
    assert lag() == 0
    assert await first.drained(group)


async def test_lag_of_an_idle_partition_asks_the_group_for_its_commit_once(
        kafka: BusHarness, topic: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A member that took over partitions already read counts their lag from the group's
    commit, fetched once: an idle partition costs no request every count."""
    group = unique("g")
    run = uuid.uuid4().hex

    async def handle(env: Envelope) -> None:
        del env

    first = await kafka.new_bus()
    first.subscribe(Subscription(group, (topic,), handle))
    await first.start()
    await first.publish([msg(topic, ping(run, n, subject=f"agg-{n % 12}")) for n in range(30)])
    await eventually(lambda: first.drained(group), what="the events")
    await kafka.close(first)
    second = await kafka.new_bus()
    second.subscribe(Subscription(group, (topic,), handle))
    await second.start()
    await eventually(lambda: _true(assigned(second, group) == 3), what="every partition")
    assert isinstance(second, KafkaEventBus)
    consumer = second._consumers[group]
    fetched: list[object] = []
    committed = consumer.committed

    async def counted(tp: object) -> object:
        fetched.append(tp)
        return await committed(tp)

    monkeypatch.setattr(consumer, "committed", counted)

    async def kept() -> bool:
        """Once a count ran across no rebalance (the timer's counts run beside these)."""
        await second.count_lag()
        return len(second._members[group].positions) == 3

    await eventually(kept, what="the commits fetched")
    assert fetched
    fetched.clear()
    for _ in range(3):
        await second.count_lag()
    assert fetched == []
    assert sum(s.value for m in kafka.metrics.registry.collect() for s in m.samples
               if s.name == "bloop_consumer_lag" and s.labels["group"] == group) == 0
