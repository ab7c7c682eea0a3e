"""The event bus port: ordered publishing, and consumer groups that commit after their handler."""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol

from bloop.platform.kit.events.envelope import Envelope
from bloop.platform.kit.metrics import Metrics

Handler = Callable[[Envelope], Awaitable[None]]

DLQ_SUFFIX = ".dlq"


class Message(NamedTuple):
    """Immutable, and a tuple so it is cheap to make: one is made for every event sent and
    every event received."""

    topic: str
    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, bytes], ...] = ()
    partition: int = 0
    offset: int = -1

    @classmethod
    def of(cls, envelope: Envelope, topic: str) -> Message:
        return cls.event(topic, envelope.key, envelope.type, envelope.to_bytes())

    @classmethod
    def event(cls, topic: str, key: bytes, type_id: str, value: bytes) -> Message:
        """An event's message: its type travels in the `type` header too."""
        headers = _type_headers.get(type_id)
        if headers is None:
            headers = _type_headers[type_id] = (("type", type_id.encode()),)
        return new_tuple(cls, (topic, key, value, headers, 0, -1))


_type_headers: dict[str, tuple[tuple[str, bytes], ...]] = {}
# What a NamedTuple's own constructor does, without its Python-level __new__: for the messages
# made once per event, with every field given.
new_tuple = tuple.__new__


def record_published(metrics: Metrics, messages: Sequence[Message]) -> None:
    for (topic, headers), n in Counter((m.topic, m.headers) for m in messages).items():
        metrics.events_published.labels(topic, dict(headers).get("type", b"").decode()).inc(n)


@dataclass(frozen=True)
class Subscription:
    """A consumer group reading `topics`; only events whose type is in `types` reach the
    handler (all registered types when `types` is empty), the rest are committed and skipped
    unchecked, whatever they hold. A group with no `types` dead-letters unknown ones."""

    group: str
    topics: tuple[str, ...]
    handler: Handler
    types: frozenset[str] = field(default_factory=frozenset)


class EventBus(Protocol):
    async def start(self) -> None:
        """Connects and starts the consumers of every subscription made so far."""

    async def close(self) -> None: ...

    async def publish(self, messages: Sequence[Message]) -> None:
        """Publishes in order and returns once every message is durably stored; raises if not."""

    def subscribe(self, subscription: Subscription) -> None: ...

    async def ping(self) -> None: ...

    async def drained(self, group: str) -> bool:
        """True when `group` has processed everything published to its topics so far."""

    async def dead_letters(self, topic: str) -> list[Message]:
        """Every record still kept on `topic`'s dead-letter topic, in order (per partition)."""
