"""What identity consumes of its own events, for the platform: a deleted user's tenant has every
answer kept under an Idempotency-Key dropped (`kit.idempotency`), those of the person and those
about them (an admin's `POST …/users`), which cannot be told apart. One group does it for every
process, as they all share the store; dropping again drops nothing more, so a redelivered event
is harmless."""

from __future__ import annotations

from bloop.platform.identity.events import TOPIC, UserDeleted
from bloop.platform.kit.events.bus.port import Subscription
from bloop.platform.kit.events.envelope import Envelope
from bloop.platform.kit.events.types import type_of
from bloop.platform.kit.idempotency import IdempotencyStore

GROUP = "identity.kept-answers"


def subscriptions(kept: IdempotencyStore) -> list[Subscription]:
    async def drop(envelope: Envelope) -> None:
        await kept.drop_tenant(envelope.tenant)

    return [Subscription(GROUP, (TOPIC,), drop, types=frozenset({type_of(UserDeleted).type_id}))]
