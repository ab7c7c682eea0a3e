"""Mounts quiz attempts beside content: picks their store and outbox, and builds the service
that grades against content's published lessons."""

from __future__ import annotations

from dataclasses import dataclass

from bloop.platform.content.attempts import events as _events  # noqa: F401  (registers the event type)
from bloop.platform.content.attempts.consumers import subscriptions
from bloop.platform.content.attempts.ports import AttemptStore
from bloop.platform.content.attempts.service import AttemptService, ContentQuizzes
from bloop.platform.content.service import ContentService
from bloop.platform.kit.events.bus.port import Subscription
from bloop.platform.kit.wiring import Platform


def attempt_store(platform: Platform) -> AttemptStore:
    if platform.settings.mode("mongo") == "real":
        from bloop.platform.content.attempts.stores.mongo import MongoAttemptStore

        return MongoAttemptStore(platform.require_mongo(), platform.events)
    from bloop.platform.content.attempts.stores.embedded import EmbeddedAttemptStore

    return EmbeddedAttemptStore(platform.sqlite("content"), platform.events)


@dataclass(frozen=True)
class Attempts:
    service: AttemptService
    store: AttemptStore
    subscriptions: list[Subscription]


def mount_attempts(platform: Platform, content: ContentService) -> Attempts:
    store = attempt_store(platform)
    relay = platform.add_outbox(store.outbox)
    service = AttemptService(store, ContentQuizzes(content), on_write=relay.wake)
    return Attempts(service=service, store=store, subscriptions=subscriptions(service))
