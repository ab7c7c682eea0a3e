"""What keeps the index in step: content's own events on `content.events`.

Events carry ids, not text, so each one makes the index read that course or lesson as published
now and store it (or drop it when it is gone). Handling an event twice, or late, is harmless:
a document is replaced only by one built from newer versions, and an event older than the
index's last complete build is skipped without a read.

Each process has its own index, so each has its own consumer group (named after the index) and
reads every partition of the topic. A new index gets a new group: it starts from the topic's
earliest event, after the build from the store has taken in everything up to then.
"""

from __future__ import annotations

from bloop.platform.content.events import TOPIC
from bloop.platform.content.search.service import SearchService
from bloop.platform.kit.events.bus.port import Subscription
from bloop.platform.kit.events.envelope import Envelope
from bloop.platform.kit.events.types import EventRegistry, registry

GROUP = "content.search"
COURSE_EVENTS = frozenset({"bloop.content.course.published"})
# These change whether a course and its lessons are listed at all.
LISTING_EVENTS = frozenset({"bloop.content.course.archived", "bloop.content.course.unarchived"})
LESSON_EVENTS = frozenset({"bloop.content.lesson.published", "bloop.content.lesson.updated",
                           "bloop.content.lesson.deleted"})


def _name(type_id: str) -> str:
    return type_id.rpartition(".v")[0]


def subscriptions(service: SearchService, events: EventRegistry = registry) -> list[Subscription]:
    """Every version of the event types named above, as registered now (those not yet
    registered are taken at v1)."""
    names = COURSE_EVENTS | LISTING_EVENTS | LESSON_EVENTS
    types = {t.type_id for t in events if t.name in names} | {f"{n}.v1" for n in names}

    async def handle(envelope: Envelope) -> None:
        if service.covers(envelope.time):
            return
        name = _name(envelope.type)
        if name in COURSE_EVENTS:
            await service.sync_course(envelope.tenant, envelope.subject)
        elif name in LISTING_EVENTS:
            await service.sync_course(envelope.tenant, envelope.subject)
            await service.sync_lessons(envelope.tenant, list(envelope.data.get("lesson_ids") or []))
        elif name in LESSON_EVENTS:
            await service.sync_lesson(envelope.tenant, envelope.subject)

    return [Subscription(f"{GROUP}.{service.index.index_id}", (TOPIC,), handle,
                         types=frozenset(types))]
