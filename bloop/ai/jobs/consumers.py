"""What the AI service consumes besides its own `ai.jobs` commands (those are the worker's):
`user.events`, where a deleted user's jobs are anonymised. Running it again changes nothing, so a
redelivered event is harmless."""

from __future__ import annotations

from bloop.ai.jobs.service import JobService
from bloop.platform.identity.events import TOPIC as USER_EVENTS
from bloop.platform.identity.events import UserDeleted
from bloop.platform.kit.events.bus.port import Subscription
from bloop.platform.kit.events.envelope import Envelope
from bloop.platform.kit.events.types import type_of


def subscriptions(service: JobService, group: str = "ai-worker.users") -> list[Subscription]:
    """The consumer group is the workers' own (`BLOOP_AI_WORKER_GROUP`) with `.users` after it,
    so each deployment sharing a Kafka cluster (and each test run) sees every deletion."""
    deleted = type_of(UserDeleted)

    async def forget(envelope: Envelope) -> None:
        await service.forget_requester(envelope.tenant, deleted.parse(envelope).user_id)

    return [Subscription(group, (USER_EVENTS,), forget, types=frozenset({deleted.type_id}))]
