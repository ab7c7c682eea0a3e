"""The Kafka adapter: an idempotent producer (acks=all) keyed by aggregate id, and consumer
groups that commit offsets only after the handler (or the dead-letter topic) took the event.

A consumer commits each chunk of a fetched batch once it is marked processed. Told to stop, it
ends after the event in hand, marks and commits what it handled, and leaves its group. A
partition taken from it mid-batch (a rebalance, or a process paused past its session) is left
at the next event: its new owner reads it from the last commit, and drops by id what this one
marked."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import random
from collections.abc import Sequence
from typing import Any

from aiokafka import (
    AIOKafkaConsumer,
    AIOKafkaProducer,
    ConsumerRebalanceListener,
    ConsumerRecord,
    TopicPartition,
)
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import (
    CommitFailedError,
    IllegalStateError,
    KafkaError,
    KafkaTimeoutError,
    MessageSizeTooLargeError,
    TopicAlreadyExistsError,
    for_code,
)
from aiokafka.partitioner import murmur2

from bloop.platform.kit.deadline import store_deadline
from bloop.platform.kit.errors import StoreUnavailable
from bloop.platform.kit.events.bus.port import (
    DLQ_SUFFIX,
    Message,
    Subscription,
    new_tuple,
    record_published,
)
from bloop.platform.kit.events.bus.processor import EventProcessor
from bloop.platform.kit.events.dedupe import ProcessedEvents
from bloop.platform.kit.events.types import EventRegistry
from bloop.platform.kit.every import Every
from bloop.platform.kit.metrics import Metrics
from bloop.platform.kit.settings import KafkaSettings
from bloop.platform.kit.waiting import forget, stopped, woken

log = logging.getLogger("bloop.events.kafka")


class KafkaEventBus:
    def __init__(self, settings: KafkaSettings, registry: EventRegistry,
                 processed: ProcessedEvents, metrics: Metrics, *, lag_every_s: float = 5,
                 stop_s: float = 5) -> None:
        self.settings, self.registry, self.processed, self.metrics = (
            settings, registry, processed, metrics)
        self._lag_counter = Every("bus:lag", self.count_lag, lag_every_s, log=log,
                                  failed="Kafka consumer lag cannot be counted yet")
        self._lag_shown: dict[str, set[TopicPartition]] = {}
        self._producer: AIOKafkaProducer | None = None
        self._producer_lock = asyncio.Lock()
        self._subs: list[Subscription] = []
        self._consumers: dict[str, AIOKafkaConsumer] = {}
        # Each group's member here: the committed offsets of the partitions assigned to it now.
        self._members: dict[str, _Revocations] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._started = False
        self._stopping = False
        self.stop_s = stop_s
        self._topics_ready: set[str] = set()

    # -- lifecycle -------------------------------------------------------------------------
    async def start(self) -> None:
        self._started = True
        self._lag_counter.start()
        for sub in self._subs:
            self._launch(sub)

    def subscribe(self, subscription: Subscription) -> None:
        self._subs.append(subscription)
        if self._started:
            self._launch(subscription)

    def _launch(self, sub: Subscription) -> None:
        self._tasks.append(asyncio.create_task(self._consume(sub), name=f"consume:{sub.group}"))

    async def close(self) -> None:
        """Lets each consumer end after the event in hand, commit and leave its group, for at
        most `stop_s`; then cancels what is still running (a handler still waiting)."""
        self._stopping = True
        await self._lag_counter.stop()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=self.stop_s)
        await asyncio.gather(*(stopped(task) for task in self._tasks))
        self._tasks.clear()
        if self._producer is not None:
            await self._stop(self._producer)
            self._producer = None

    async def ping(self) -> None:
        """A metadata round trip to the cluster through the producer's connection."""
        producer = await self._get_producer()
        await producer.client.fetch_all_metadata()

    # -- topics -----------------------------------------------------------------------------
    async def ensure_topics(self, topics: Sequence[str]) -> None:
        missing = [t for t in topics if t not in self._topics_ready]
        if not missing:
            return
        admin = AIOKafkaAdminClient(bootstrap_servers=self.settings.bootstrap,
                                    client_id=f"{self.settings.client_id}-admin",
                                    request_timeout_ms=self.settings.request_timeout_ms)
        try:
            await admin.start()
            existing = set(await admin.list_topics())
            new = [self._new_topic(t) for t in missing if t not in existing]
            if new:
                with contextlib.suppress(TopicAlreadyExistsError):
                    answer = await admin.create_topics(new)
                    # A topic refused (more copies than brokers) is in the answer, not raised:
                    # left so, the first send would have the broker make it with its defaults.
                    for topic, code, *why in answer.topic_errors:
                        if code not in (0, TopicAlreadyExistsError.errno):
                            raise for_code(code)(f"cannot create topic {topic}: "
                                                 f"{why[0] if why and why[0] else ''}")
        finally:
            await admin.close()
        self._topics_ready.update(missing)

    def _new_topic(self, name: str) -> NewTopic:
        # aiokafka takes -1 (the brokers' default) only beside replica assignments, yet sends it
        # as is with none: an empty mapping passes its check.
        factor = self.settings.replication_factor
        return NewTopic(name, num_partitions=self.settings.partitions, replication_factor=factor,
                        replica_assignments={} if factor == -1 else None)

    # -- producing --------------------------------------------------------------------------
    async def _get_producer(self) -> AIOKafkaProducer:
        async with self._producer_lock:
            if self._producer is None:
                producer = AIOKafkaProducer(
                    bootstrap_servers=self.settings.bootstrap, client_id=self.settings.client_id,
                    enable_idempotence=True, acks="all", linger_ms=2,
                    request_timeout_ms=self.settings.request_timeout_ms,
                    max_batch_size=1_048_576,
                )
                try:
                    await producer.start()
                except BaseException as exc:
                    # A start cancelled (a /readyz probe's bound) must close what it opened too,
                    # even if its caller is cancelled again meanwhile.
                    closing = asyncio.ensure_future(producer.stop())
                    forget(closing)
                    with contextlib.suppress(Exception):
                        await asyncio.shield(closing)
                    if not isinstance(exc, Exception):
                        raise
                    raise StoreUnavailable("kafka", type(exc).__name__) from exc
                self._producer = producer
            return self._producer

    async def _reset_producer(self) -> None:
        async with self._producer_lock:
            producer, self._producer = self._producer, None
        if producer is not None:
            await self._stop(producer)

    async def _stop(self, producer: AIOKafkaProducer) -> None:
        """Stops `producer`, waiting for its queued batches at most the request timeout: while
        the broker is away aiokafka would wait for them as long as the outage lasts. Batches
        given up were never acknowledged, so their events are still pending in an outbox (or a
        consumer's offset is not committed) and are sent again."""
        stopping = asyncio.ensure_future(producer.stop())
        done, _ = await asyncio.wait({stopping}, timeout=self.settings.request_timeout_ms / 1000)
        if not done:
            _give_up_batches(producer)
            log.warning("Kafka producer stopped with batches unsent; they are sent again")
        with contextlib.suppress(Exception):
            await stopping

    async def publish(self, messages: Sequence[Message]) -> None:
        if not messages:
            return
        await self.ensure_topics(sorted({m.topic for m in messages}))
        producer = await self._get_producer()
        try:
            # aiokafka never expires a batch while it knows the partition's leader, however long
            # the broker is away. A batch cut off here may still be delivered later, before
            # anything sent after it: this producer keeps each partition's batches in order,
            # and the outbox sends the events again (consumers drop them by id).
            async with store_deadline("kafka", self.settings.request_timeout_ms / 1000):
                await asyncio.gather(*await self._send(producer, messages))
        except KafkaError as exc:
            # The idempotent producer's sequence state may be stale after a broker failure;
            # a fresh producer (new producer id) is the safe way on, duplicates are dropped
            # by consumers.
            await self._reset_producer()
            raise StoreUnavailable("kafka", type(exc).__name__) from exc
        record_published(self.metrics, messages)

    @staticmethod
    async def _send(producer: AIOKafkaProducer, messages: Sequence[Message]) -> list[asyncio.Future[object]]:
        """Queues the messages as one record batch per partition, in order; returns the
        batches' delivery futures. Same partitions as the producer's own per-message `send`."""
        partitions: dict[str, list[int]] = {}
        by_partition: dict[tuple[str, int], list[Message]] = {}
        for m in messages:
            parts = partitions.get(m.topic)
            if parts is None:
                parts = partitions[m.topic] = sorted(await producer.partitions_for(m.topic))
            by_partition.setdefault((m.topic, partition_of(m.key, parts)), []).append(m)
        futures: list[asyncio.Future[object]] = []
        for (topic, partition), batch_messages in by_partition.items():
            batch = producer.create_batch()
            for m in batch_messages:
                headers = list(m.headers)
                if batch.append(key=m.key, value=m.value, timestamp=None, headers=headers) is None:
                    futures.append(await producer.send_batch(batch, topic, partition=partition))
                    batch = producer.create_batch()
                    if batch.append(key=m.key, value=m.value, timestamp=None, headers=headers) is None:
                        raise MessageSizeTooLargeError(f"an event on {topic} is larger than a batch")
            batch.close()
            futures.append(await producer.send_batch(batch, topic, partition=partition))
        return futures

    # -- consuming --------------------------------------------------------------------------
    def joined(self, group: str) -> bool:
        """True once `group`'s consumer has partitions assigned."""
        consumer = self._consumers.get(group)
        return consumer is not None and bool(consumer.assignment())

    async def drained(self, group: str) -> bool:
        consumer = self._consumers.get(group)
        if consumer is None:
            return False
        assignment = consumer.assignment()
        if not assignment:
            return False
        ends = await consumer.end_offsets(list(assignment))
        for tp, end in ends.items():
            if end > 0 and await self._position(consumer, group, tp) < end:
                return False
        return True

    async def dead_letters(self, topic: str) -> list[Message]:
        dlq = topic + DLQ_SUFFIX
        cluster = await (await self._get_producer()).client.fetch_all_metadata()
        wanted = [TopicPartition(dlq, p) for p in sorted(cluster.partitions_for_topic(dlq) or ())]
        if not wanted:
            return []
        reader = AIOKafkaConsumer(bootstrap_servers=self.settings.bootstrap,
                                  client_id=f"{self.settings.client_id}-dead-letters",
                                  enable_auto_commit=False,
                                  request_timeout_ms=max(self.settings.request_timeout_ms, 40_000))
        found: list[Message] = []
        try:
            await reader.start()
            reader.assign(wanted)
            await reader.seek_to_beginning(*wanted)
            ends = await reader.end_offsets(wanted)
            while True:
                for tp in list(ends):
                    if await reader.position(tp) >= ends[tp]:
                        del ends[tp]
                if not ends:
                    break
                for tp, records in (await reader.getmany(*ends, timeout_ms=1000)).items():
                    found += [Message(r.topic, r.key, r.value, tuple(r.headers), r.partition,
                                      r.offset) for r in records if r.offset < ends[tp]]
        finally:
            with contextlib.suppress(Exception):
                await reader.stop()
        return found

    async def _consume(self, sub: Subscription) -> None:
        processor = EventProcessor(sub, self.registry, self.processed, self.publish, self.metrics,
                                   max_attempts=self.settings.max_attempts,
                                   backoff_s=self.settings.retry_backoff_s)
        delay = 0.5
        while not self._stopping:
            try:
                await self.ensure_topics([*sub.topics, *(t + DLQ_SUFFIX for t in sub.topics)])
                await self._run_consumer(sub, processor)
                delay = 0.5
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if self._stopping:
                    return
                log.warning("consumer stopped; restarting", extra={
                    "group": sub.group, "error": repr(exc)})
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)

    async def _run_consumer(self, sub: Subscription, processor: EventProcessor) -> None:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.settings.bootstrap, group_id=sub.group,
            client_id=f"{self.settings.client_id}-{sub.group}", enable_auto_commit=False,
            auto_offset_reset="earliest", request_timeout_ms=max(self.settings.request_timeout_ms, 40_000),
            max_poll_records=2000, session_timeout_ms=self.settings.session_timeout_ms,
            heartbeat_interval_ms=self.settings.heartbeat_interval_ms,
            # Time for a member to hear of a rebalance, let its batch end (`_Revocations`) and
            # join again; past it the group goes on without the member.
            rebalance_timeout_ms=max(self.settings.session_timeout_ms, int(
                self.stop_s * 1000) + self.settings.heartbeat_interval_ms + 2000),
        )
        positions: dict[TopicPartition, int] = {}
        revoked: set[TopicPartition] = set()
        member = self._members[sub.group] = _Revocations(positions, revoked, self.stop_s)
        consumer.subscribe(list(sub.topics), listener=member)
        try:
            await consumer.start()
            self._consumers[sub.group] = consumer
            for topic in sub.topics:
                self.metrics.began_reading(topic, sub.group)
            while not self._stopping:
                batches = await consumer.getmany(timeout_ms=500)
                if not batches or self._stopping:
                    continue
                self._count_lag(consumer, sub.group, {
                    tp: records[0].offset for tp, records in batches.items()})
                member.idle.clear()
                try:
                    await self._process(consumer, sub.group, processor, batches, positions,
                                        revoked)
                finally:
                    member.idle.set()
        finally:
            if self._members.get(sub.group) is member:
                del self._members[sub.group]
            self._consumers.pop(sub.group, None)
            with contextlib.suppress(Exception):
                await consumer.stop()

    async def _process(self, consumer: AIOKafkaConsumer, group: str, processor: EventProcessor,
                       batches: dict[TopicPartition, list[ConsumerRecord]],
                       positions: dict[TopicPartition, int], revoked: set[TopicPartition]) -> None:
        """Processes one fetch of every partition's records as one batch, committing each
        chunk's offsets while the next chunk is handled. The rest of a partition revoked
        meanwhile is left, and so is all of it once stopping or once a commit finds the group
        rebalanced without this member."""
        committing: asyncio.Future[None] | None = None
        refused = False

        def go_on(m: Message) -> bool:
            return not (self._stopping or refused
                        or (revoked and (m.topic, m.partition) in revoked))

        async def commit(offsets: dict[TopicPartition, int]) -> None:
            nonlocal refused
            try:
                await self._commit(consumer, offsets)
            except (CommitFailedError, IllegalStateError) as exc:
                log.warning("consumer group rebalanced; leaving the rest of the batch", extra={
                    "group": group, "error": repr(exc)})
                refused = True
                return
            for tp, offset in offsets.items():
                if tp not in revoked:
                    positions[tp] = offset
            self._count_lag(consumer, group, offsets)

        async def done(messages: Sequence[Message]) -> None:
            nonlocal committing
            if committing is not None:
                await committing
                committing = None
            assigned = consumer.assignment()
            offsets = {tp: m.offset + 1 for m in messages
                       if (tp := TopicPartition(m.topic, m.partition)) in assigned}
            if offsets:
                committing = asyncio.ensure_future(commit(offsets))

        try:
            # Each partition's records stay in order, and the dedupe store sees one read and
            # one write for each chunk of all of them.
            await processor.process([
                new_tuple(Message, (r.topic, r.key, r.value, tuple(r.headers), r.partition, r.offset))
                for records in batches.values() for r in records], go_on=go_on, done=done)
        except BaseException:
            # Cancelled (a stop past `stop_s`) or failed: the chunk in flight is left, as its
            # marks are written, to whoever reads the partition next, and not waited for (a
            # commit retries while the coordinator cannot be found).
            if committing is not None:
                committing.add_done_callback(_retrieved)
                committing.cancel()
            raise
        if committing is not None:
            await committing

    def _count_lag(self, consumer: AIOKafkaConsumer, group: str,
                   positions: dict[TopicPartition, int]) -> None:
        """The records from each position to the partition's end: counted before a batch is
        handled too, so a handler waiting for its store shows as lag."""
        for tp, position in positions.items():
            end = consumer.highwater(tp)
            if end is not None:
                self._show_lag(group, tp, end - position)

    def _show_lag(self, group: str, tp: TopicPartition, lag: int) -> None:
        self._lag_shown.setdefault(group, set()).add(tp)
        self.metrics.consumer_lag.labels(tp.topic, str(tp.partition), group).set(max(lag, 0))

    async def count_lag(self) -> None:
        """Counts each group's lag on the partitions assigned to it here, from its committed
        offset to the partition's end (one request a group, and one the first time for a
        partition whose commit this member has not seen since it was assigned here), whatever
        its handler is doing: the count before a batch only comes with a batch. Partitions no
        longer assigned here drop their series."""
        for group, consumer in list(self._consumers.items()):
            assigned = consumer.assignment()
            for tp in self._lag_shown.get(group, set()) - assigned:
                self._lag_shown[group].discard(tp)
                with contextlib.suppress(KeyError):
                    self.metrics.consumer_lag.remove(tp.topic, str(tp.partition), group)
            try:
                ends = await consumer.end_offsets(list(assigned)) if assigned else {}
                for tp, end in ends.items():
                    position = await self._position(consumer, group, tp) if end > 0 else 0
                    self._show_lag(group, tp, end - position)
            except KafkaError:
                continue  # the consumer is restarting: its own warning says so

    async def _position(self, consumer: AIOKafkaConsumer, group: str, tp: TopicPartition) -> int:
        """Where `group` goes on reading `tp`: the offset it committed (as this consumer last
        committed it, or as the group's coordinator has it, kept until the partition moves),
        else the partition's beginning."""
        member = self._members.get(group)
        position = None if member is None else member.positions.get(tp)
        if position is None:
            moves = None if member is None else member.moves
            position = await consumer.committed(tp)
            if member is not None and position is not None and member.moves == moves:
                # A commit of this member's that ended meanwhile is newer.
                position = member.positions.setdefault(tp, position)
        if position is None:
            position = (await consumer.beginning_offsets([tp]))[tp]
        return int(position or 0)

    @staticmethod
    async def _commit(consumer: AIOKafkaConsumer, offsets: dict[TopicPartition, int]) -> None:
        delay = 0.2
        for _ in range(20):
            try:
                await consumer.commit(offsets)
                return
            except KafkaError as exc:
                if not getattr(exc, "retriable", False) and "Rebalance" not in type(exc).__name__:
                    raise
                log.warning("offset commit failed; retrying", extra={"error": repr(exc)})
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
        raise RuntimeError("could not commit offsets")


def _retrieved(future: asyncio.Future[None]) -> None:
    if not future.cancelled():
        future.exception()


class _Revocations(ConsumerRebalanceListener):  # type: ignore[misc]
    """Tells a consumer's batch which partitions it is losing, and waits (at most `wait_s`) for
    the batch to end after its event in hand and commit, before the group moves them on; and
    forgets the offsets committed of partitions that move (back here too: another member may
    have committed meanwhile). A member that was paused past its session (its partitions
    already another's) stops likewise, its commit refused."""

    def __init__(self, positions: dict[TopicPartition, int], revoked: set[TopicPartition],
                 wait_s: float) -> None:
        self.positions, self.revoked, self.wait_s = positions, revoked, wait_s
        self.moves = 0  # rebalances seen: an offset fetched across one may be another's
        self.idle = asyncio.Event()
        self.idle.set()

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        self.moves += 1
        self.revoked.update(revoked)
        for tp in revoked:
            self.positions.pop(tp, None)
        await woken(self.idle, self.wait_s)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        # Records fetched from now on are this assignment's: a batch that was cut short keeps
        # leaving the rest of its partitions (the processor never goes back to one it left).
        self.moves += 1
        self.revoked.difference_update(assigned)
        for tp in assigned:
            self.positions.pop(tp, None)


_key_hashes: dict[bytes, int] = {}


def partition_of(key: bytes | None, partitions: Sequence[int]) -> int:
    """aiokafka's default partitioner (murmur2 of the key), remembering each key's hash:
    aggregate ids recur, and the pure-Python hash costs more than the rest of a send."""
    if key is None:
        return random.choice(partitions)
    h = _key_hashes.get(key)
    if h is None:
        if len(_key_hashes) >= 100_000:
            _key_hashes.clear()
        h = _key_hashes[key] = murmur2(key) & 0x7FFFFFFF
    return partitions[h % len(partitions)]


def _give_up_batches(producer: AIOKafkaProducer) -> None:
    """Ends aiokafka's wait for batches the broker never took by failing them, and takes the
    errors no one waits for: the batches' own and that of the sender, which dies of them. Its
    clean-up would fail the batches again and then trip on the transaction state an idempotent
    producer without transactions lacks."""
    sender = producer._sender
    if sender.sender_task is not None and not sender.sender_task.done():
        sender.sender_task.remove_done_callback(sender._fail_all)
        sender.sender_task.add_done_callback(_take_error)
    accumulator = producer._message_accumulator
    batches = [*itertools.chain.from_iterable(accumulator._batches.values()),
               *accumulator._pending_batches]
    accumulator.fail_all(KafkaTimeoutError("the producer stopped before the broker took the batch"))
    for batch in batches:
        _take_error(batch.future)
        _take_error(batch._drain_waiter)


def _take_error(future: asyncio.Future[Any]) -> None:
    if future.done() and not future.cancelled():
        future.exception()
