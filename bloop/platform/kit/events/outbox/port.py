"""The outbox: events stored in the same atomic write as the state they describe, published
later by a relay. Each store has its own way to write them; all expose this port to the relay."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple, Protocol, runtime_checkable

from bloop.platform.kit.errors import Problem
from bloop.platform.kit.events.bus.port import Message
from bloop.platform.kit.events.envelope import Envelope
from bloop.platform.kit.events.types import EventRegistry
from bloop.platform.kit.ids import id_text

MAX_EVENT_BYTES = 900 * 1024  # Kafka's default record limit is 1 MiB; this leaves room for the rest


class EventTooLarge(Problem):
    status, code = 422, "change_too_large"


class Pending(NamedTuple):
    ref: Any
    message: Message


class OutboxStore(Protocol):
    name: str

    async def pending(self, limit: int) -> list[Pending]:
        """Unsent events, oldest first (per aggregate, in the order they were written)."""

    async def mark_sent(self, sent: Sequence[Pending]) -> None: ...

    async def count_pending(self) -> int: ...

    async def prune(self, older_than_s: float) -> int:
        """Forgets events sent more than `older_than_s` ago; returns how many."""

    async def lead(self, holder: str, ttl_s: float, replacing: str | None = None) -> str | None:
        """Takes the outbox's relay lease for `ttl_s`, or renews it, unless another holder's
        lease is still running (or that holder is `replacing`, known to be gone); returns who
        holds it now. One relay publishes at a time, however many processes share the outbox."""

    async def step_down(self, holder: str) -> None:
        """Gives up the lease if `holder` has it, so another relay takes over at once."""


@runtime_checkable
class Notifying(Protocol):
    def notify(self, listener: Callable[[], None]) -> None:
        """Calls `listener` on the event loop whenever newly written events are durable."""


@runtime_checkable
class Scanning(Protocol):
    async def looks_scan(self) -> bool:
        """Whether a look for pending events reads every document of the outbox (FerretDB v1
        serves no such query from an index): an idle relay then looks less often."""


def value_of(envelope: Envelope) -> bytes:
    """The event as it is stored and sent. One the bus could not carry is refused here, inside
    the write, so the change it describes is not made: stored, it would stop its outbox (the
    relay sends in order and Kafka would refuse it every time)."""
    value = envelope.to_bytes()
    if len(value) > MAX_EVENT_BYTES:
        raise EventTooLarge(
            f"this change is too large to announce: its {envelope.type} event would take "
            f"{len(value) // 1024} KiB, and events carry at most {MAX_EVENT_BYTES // 1024} KiB",
            extra={"event_type": envelope.type, "bytes": len(value),
                   "max_bytes": MAX_EVENT_BYTES})
    return value


def entry_of(envelope: Envelope, registry: EventRegistry) -> dict[str, Any]:
    """The stored form of an event: its topic comes from its registered type."""
    et = registry.checked(envelope)
    return {
        "id": id_text(envelope.id),
        "topic": et.topic,
        "key": envelope.subject,
        "type": envelope.type,
        "value": value_of(envelope).decode(),
    }


def message_of(entry: dict[str, Any]) -> Message:
    return Message.event(entry["topic"], str(entry["key"]).encode(), str(entry["type"]),
                         str(entry["value"]).encode())
