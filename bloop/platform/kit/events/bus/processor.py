"""What every consumer does with a message, whatever the bus: validate, dedupe, retry,
dead-letter. `process` never raises, so a bad event can never stop a consumer."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence

from bloop.platform.kit.events.bus.port import DLQ_SUFFIX, Message, Subscription
from bloop.platform.kit.events.dedupe import ProcessedEvents
from bloop.platform.kit.events.envelope import Envelope, MalformedEvent, parse_envelope
from bloop.platform.kit.events.types import EventRegistry
from bloop.platform.kit.logging import request_id_var
from bloop.platform.kit.metrics import Metrics

log = logging.getLogger("bloop.events")

Publish = Callable[[Sequence[Message]], Awaitable[None]]


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

    async def process(self, msg: Message) -> str:
        """Handles one message and returns its outcome: ok, duplicate, skipped or dead_lettered."""
        outcome = await self._process(msg)
        self.metrics.events_consumed.labels(msg.topic, self.sub.group, outcome).inc()
        return outcome

    async def _process(self, msg: Message) -> str:
        try:
            envelope = parse_envelope(msg.value)
            event_type = self.registry.get(envelope.type)
            event_type.parse(envelope)
        except MalformedEvent as bad:
            await self.dead_letter(msg, bad.reason, bad.detail, attempts=0)
            return "dead_lettered"
        if self.sub.types and envelope.type not in self.sub.types:
            return "skipped"
        if await self._retrying(lambda: self.processed.seen(self.sub.group, envelope.id)):
            return "duplicate"
        error = await self._handle(envelope)
        if error is not None:
            await self.dead_letter(msg, "handler_failed", error, attempts=self.max_attempts)
            return "dead_lettered"
        await self._retrying(lambda: self.processed.mark(self.sub.group, envelope.id))
        return "ok"

    async def _handle(self, envelope: Envelope) -> str | None:
        token = request_id_var.set(envelope.request_id)
        try:
            for attempt in range(1, self.max_attempts + 1):
                try:
                    await self.sub.handler(envelope)
                    return None
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    log.warning("handler failed", extra={
                        "group": self.sub.group, "event_id": str(envelope.id),
                        "type": envelope.type, "attempt": attempt, "error": repr(exc)})
                    if attempt == self.max_attempts:
                        return f"{type(exc).__name__}: {exc}"
                    await asyncio.sleep(self.backoff_s * 2 ** (attempt - 1))
            return "no attempt made"
        finally:
            request_id_var.reset(token)

    async def _retrying(self, op: Callable[[], Awaitable[bool | None]]) -> bool:
        """Store calls of the dedupe step wait for their store rather than losing the event."""
        delay = self.backoff_s or 0.1
        while True:
            try:
                return bool(await op())
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("processed-events store unavailable", extra={"error": repr(exc)})
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def dead_letter(self, msg: Message, reason: str, detail: str, *, attempts: int) -> None:
        log.error("event dead-lettered", extra={
            "group": self.sub.group, "topic": msg.topic, "offset": msg.offset,
            "reason": reason, "detail": detail})
        headers = (
            ("dlq.reason", reason.encode()), ("dlq.detail", detail[:2000].encode()),
            ("dlq.group", self.sub.group.encode()), ("dlq.topic", msg.topic.encode()),
            ("dlq.partition", str(msg.partition).encode()), ("dlq.offset", str(msg.offset).encode()),
            ("dlq.attempts", str(attempts).encode()),
        )
        dlq = Message(topic=msg.topic + DLQ_SUFFIX, key=msg.key, value=msg.value,
                      headers=msg.headers + headers)
        delay = 0.1
        while True:
            try:
                await self.publish([dlq])
                break
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("dead-letter publish failed, retrying", extra={"error": repr(exc)})
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
        self.metrics.dead_lettered.labels(msg.topic, self.sub.group, reason).inc()
