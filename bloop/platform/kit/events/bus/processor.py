"""What every consumer does with a batch of messages, whatever the bus: pass by the types its
group does not consume, validate the others, drop duplicates, run the handler with retries,
dead-letter what cannot be handled. No event makes `process` raise, so a bad event can never
stop a consumer (what its bus's `go_on` and `done` raise, a commit refused, goes on up).

A chunk of a batch (CHUNK events, or what was handled in CHUNK_S) costs two round trips to the
processed-events store (one read, one write), and its consumer commits once it is marked. A
process that dies after a handler ran but before its chunk was marked sees those events again:
handlers must tolerate a repeat (upserts, or their own check)."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

import orjson

from bloop.platform.kit.errors import is_store_down
from bloop.platform.kit.events.bus.port import DLQ_SUFFIX, Message, Subscription
from bloop.platform.kit.events.dedupe import ProcessedEvents
from bloop.platform.kit.events.envelope import Envelope, MalformedEvent, parse_envelope
from bloop.platform.kit.events.types import EventRegistry
from bloop.platform.kit.logging import request_id_var
from bloop.platform.kit.metrics import Metrics

log = logging.getLogger("bloop.events")

Publish = Callable[[Sequence[Message]], Awaitable[None]]
GoOn = Callable[[Message], bool]
Done = Callable[[Sequence[Message]], Awaitable[None]]
CHUNK = 500
CHUNK_S = 1.0
T = TypeVar("T")


def _named(raw: bytes) -> dict[str, str]:
    """The id, type and request id an envelope names as strings, however malformed the rest."""
    try:
        found = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return {}
    if not isinstance(found, dict):
        return {}
    return {key: value for key in ("id", "type", "request_id")
            if isinstance(value := found.get(key), str)}


class EventProcessor:
    def __init__(self, subscription: Subscription, registry: EventRegistry,
                 processed: ProcessedEvents, publish: Publish, metrics: Metrics, *,
                 max_attempts: int, backoff_s: float) -> None:
        self.sub = subscription
        self.registry = registry
        self.processed = processed
        self.publish = publish
        self.metrics = metrics
        self.max_attempts = max_attempts
        self.backoff_s = backoff_s

    async def process(self, messages: Sequence[Message], *, go_on: GoOn | None = None,
                      done: Done | None = None) -> list[str]:
        """Handles messages in order; returns each one's outcome: ok, duplicate, skipped,
        dead_lettered, or "" for one left to whoever reads its partition next. Works in chunks
        (CHUNK events, or fewer once CHUNK_S has passed), marking each chunk's handled ids, then
        awaiting `done` with the chunk's messages that have an outcome. Asks `go_on` before each
        message: once it refuses one, the rest of that partition's are left too, so `done` gets,
        per partition, the messages up to where its consumer may commit."""
        outcomes = [""] * len(messages)
        seen: set[int] = set()  # ids as their int: a UUID's own hash is computed in Python
        refused: set[tuple[str, int]] = set()
        start = 0
        while start < len(messages):
            end = await self._chunk(messages, start, outcomes, seen, refused, go_on)
            if done is not None:
                await done([m for m, o in zip(messages[start:end], outcomes[start:end],
                                              strict=True) if o])
            start = end
        return outcomes

    def _check(self, msg: Message) -> Envelope | str | tuple[str, str]:
        """The envelope to handle; or "skipped"; or why it is dead-lettered, and the detail."""
        types = self.sub.types
        try:
            envelope = parse_envelope(msg.value)
            if types and envelope.type not in types:
                # Checked only by the groups that consume it: a type added, or the `.v2` of
                # a newer version, passes the others by.
                return "skipped"
            self.registry.checked(envelope)
        except MalformedEvent as bad:
            named = _named(msg.value).get("type")
            if types and named is not None and named not in types:
                return "skipped"
            return bad.reason, bad.detail
        return envelope

    async def _chunk(self, messages: Sequence[Message], start: int, outcomes: list[str],
                     seen: set[int], refused: set[tuple[str, int]],
                     go_on: GoOn | None) -> int:
        """Handles a chunk from `start`, dead-letters and marks it; returns where it ended."""
        group = self.sub.group
        chunk = messages[start:start + CHUNK]
        # A partition left already needs nothing read or checked (all of them, once stopping).
        checked = [None if refused and (m.topic, m.partition) in refused else self._check(m)
                   for m in chunk]
        seen.update(i.int for i in await self._retrying(lambda: self.processed.seen(
            group, [c.id for c in checked if isinstance(c, Envelope)])))
        handled: list[uuid.UUID] = []
        dead: list[tuple[Message, str, str, int]] = []
        until = time.monotonic() + CHUNK_S
        end = start + len(chunk)
        for i, msg, found in zip(range(start, end), chunk, checked, strict=True):
            if found is None or (refused and (msg.topic, msg.partition) in refused):
                continue
            if go_on is not None and not go_on(msg):
                refused.add((msg.topic, msg.partition))
                continue
            if isinstance(found, str):
                outcomes[i] = found
            elif isinstance(found, tuple):
                dead.append((msg, *found, 0))
                outcomes[i] = "dead_lettered"
            elif found.id.int in seen:
                outcomes[i] = "duplicate"
            elif i > start and time.monotonic() > until:  # handled or failed: its time ran
                end = i
                break
            elif (error := await self._handle(found)) is None:
                outcomes[i] = "ok"
                handled.append(found.id)
                seen.add(found.id.int)
            else:
                outcomes[i] = "dead_lettered"
                dead.append((msg, "handler_failed", error, self.max_attempts))
        if dead:
            await self._dead_letter(dead)
        await self._retrying(lambda: self.processed.mark(group, handled))
        ended = [(m.topic, o) for m, o in zip(chunk, outcomes[start:end], strict=False) if o]
        for (topic, outcome), count in Counter(ended).items():
            self.metrics.events_consumed.labels(topic, group, outcome).inc(count)
        for topic in {topic for topic, _ in ended}:
            self.metrics.finished(topic, group)
        return end

    async def _handle(self, envelope: Envelope) -> str | None:
        """None once handled; else why it failed `max_attempts` times. A store that is down is
        waited for (capped backoff), not counted as an attempt: an outage of a few seconds
        would otherwise dead-letter every event it touched."""
        token = request_id_var.set(envelope.request_id)
        attempt, waited = 0, 0.1
        try:
            while True:
                try:
                    await self.sub.handler(envelope)
                    return None
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    down = is_store_down(exc)
                    attempt += 0 if down else 1
                    log.warning("handler failed", extra={
                        "group": self.sub.group, "event_id": str(envelope.id),
                        "type": envelope.type, "attempt": attempt, "store_down": down,
                        "error": repr(exc)})
                    if attempt >= self.max_attempts:
                        return f"{type(exc).__name__}: {exc}"
                    if down:
                        await asyncio.sleep(waited)
                        waited = min(waited * 2, 5.0)
                    else:
                        await asyncio.sleep(self.backoff_s * 2 ** (attempt - 1))
        finally:
            request_id_var.reset(token)

    async def _retrying(self, op: Callable[[], Awaitable[T]]) -> T:
        """A store call the consumer cannot go on without: wait for the store, lose nothing."""
        delay = 0.1
        while True:
            try:
                return await op()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("consumer store call failed; retrying", extra={
                    "group": self.sub.group, "error": repr(exc)})
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def _dead_letter(self, dead: Sequence[tuple[Message, str, str, int]]) -> None:
        out = []
        for msg, reason, detail, attempts in dead:
            named = {key: value[:200] for key, value in _named(msg.value).items()}
            token = request_id_var.set(named.get("request_id") or None)
            try:
                log.error("event dead-lettered", extra={
                    "group": self.sub.group, "topic": msg.topic, "offset": msg.offset,
                    "event_id": named.get("id"), "type": named.get("type"),
                    "reason": reason, "detail": detail})
            finally:
                request_id_var.reset(token)
            headers = (
                ("dlq.reason", reason.encode()), ("dlq.detail", detail[:2000].encode()),
                ("dlq.group", self.sub.group.encode()), ("dlq.topic", msg.topic.encode()),
                ("dlq.partition", str(msg.partition).encode()),
                ("dlq.offset", str(msg.offset).encode()), ("dlq.attempts", str(attempts).encode()),
            )
            out.append(Message(topic=msg.topic + DLQ_SUFFIX, key=msg.key, value=msg.value,
                               headers=msg.headers + headers))
        await self._retrying(lambda: self.publish(out))
        for msg, reason, _, _ in dead:
            self.metrics.dead_lettered.labels(msg.topic, self.sub.group, reason).inc()
