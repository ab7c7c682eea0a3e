"""What every consumer does with a batch of messages, whatever the bus: pass by the types its
group does not consume, validate the others, drop duplicates, run the handler with retries,
dead-letter what cannot be handled. `process` never raises, so a bad event can never stop a
consumer.

A batch costs two round trips to the processed-events store (one read, one write) however many
events it holds. A process that dies after a handler ran but before the batch was marked sees
those events again: handlers must tolerate a repeat (upserts, or their own check)."""

from __future__ import annotations

import asyncio
import logging
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

    async def process(self, messages: Sequence[Message]) -> list[str]:
        """Handles messages in order; returns each one's outcome: ok, duplicate, skipped or
        dead_lettered. Returns only once every message has its outcome."""
        outcomes = [""] * len(messages)
        parsed: list[tuple[int, Envelope]] = []
        dead: list[tuple[Message, str, str, int]] = []
        types = self.sub.types
        for i, msg in enumerate(messages):
            try:
                envelope = parse_envelope(msg.value)
                if types and envelope.type not in types:
                    # Checked only by the groups that consume it: a type added, or the `.v2` of
                    # a newer version, passes the others by.
                    outcomes[i] = "skipped"
                    continue
                self.registry.checked(envelope)
            except MalformedEvent as bad:
                named = _named(msg.value).get("type")
                if types and named is not None and named not in types:
                    outcomes[i] = "skipped"
                    continue
                dead.append((msg, bad.reason, bad.detail, 0))
                outcomes[i] = "dead_lettered"
                continue
            parsed.append((i, envelope))
        group = self.sub.group
        seen = await self._retrying(lambda: self.processed.seen(group, [e.id for _, e in parsed]))
        handled: list[uuid.UUID] = []
        for i, envelope in parsed:
            if envelope.id in seen:
                outcomes[i] = "duplicate"
                continue
            error = await self._handle(envelope)
            if error is None:
                outcomes[i] = "ok"
                handled.append(envelope.id)
                seen.add(envelope.id)
            else:
                outcomes[i] = "dead_lettered"
                dead.append((messages[i], "handler_failed", error, self.max_attempts))
        if dead:
            await self._dead_letter(dead)
        await self._retrying(lambda: self.processed.mark(group, handled))
        for (topic, outcome), count in Counter(
                (m.topic, o) for m, o in zip(messages, outcomes, strict=True)).items():
            self.metrics.events_consumed.labels(topic, group, outcome).inc(count)
        for topic in {m.topic for m in messages}:
            self.metrics.finished(topic, group)
        return outcomes

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
