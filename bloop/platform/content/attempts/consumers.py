"""What quiz attempts consume: a deleted user's attempts are deleted (not anonymised: an attempt
is the learner's answers, which say nothing once nobody's). Deleting again deletes nothing, so
a redelivered event is harmless. In the MongoDB store an attempt's event rides in its document:
an attempt erased before the relay published it takes its event along, which is what erasure
asks for."""

from __future__ import annotations

from bloop.platform.content.attempts.service import AttemptService
from bloop.platform.identity.events import TOPIC as USER_EVENTS
from bloop.platform.identity.events import UserDeleted
from bloop.platform.kit.events.bus.port import Subscription
from bloop.platform.kit.events.envelope import Envelope
from bloop.platform.kit.events.types import type_of

GROUP = "content.quiz-attempts"


def subscriptions(service: AttemptService) -> list[Subscription]:
    deleted = type_of(UserDeleted)

    async def erase(envelope: Envelope) -> None:
        await service.erase_learner(envelope.tenant, deleted.parse(envelope).user_id)

    return [Subscription(GROUP, (USER_EVENTS,), erase, types=frozenset({deleted.type_id}))]
