"""The consumer groups the services subscribe, by topic, named without mounting anything (for
`bloop events redrive`, which refuses a group none of them has)."""

from __future__ import annotations

from bloop.ai.jobs.events import JOBS_TOPIC
from bloop.ai.jobs.events import TOPIC as AI_EVENTS
from bloop.platform.content.attempts.consumers import GROUP as ATTEMPTS
from bloop.platform.content.consumers import AI_MEDIA_GROUP, AUTHORS_GROUP, CACHE_GROUP
from bloop.platform.content.events import TOPIC as CONTENT_EVENTS
from bloop.platform.content.search.consumers import GROUP as SEARCH
from bloop.platform.identity.consumers import GROUP as KEPT_ANSWERS
from bloop.platform.identity.events import TOPIC as USER_EVENTS
from bloop.platform.learning.consumers import GROUP as LEARNING
from bloop.platform.learning.consumers import ZONES_GROUP as LEARNING_ZONES

SEARCH_GROUPS = f"{SEARCH}.<index id>"
"""Search's groups, one per index: `content.search.` and the index's id."""
CACHE_GROUPS = f"{CACHE_GROUP}.<index id>"
"""The groups that drop in-process caches' lessons, one per process: `content.cache.` and its
search index's id (with Redis, one group for all: `content.cache`)."""
PER_INDEX = (f"{SEARCH}.", f"{CACHE_GROUP}.")


def consumer_groups(topic: str, ai_worker_group: str) -> set[str]:
    """The groups reading `topic`, search's as `SEARCH_GROUPS`, the in-process caches' as
    `CACHE_GROUPS`."""
    by_topic = {
        CONTENT_EVENTS: {CACHE_GROUP, CACHE_GROUPS, SEARCH_GROUPS, LEARNING,
                         f"{ai_worker_group}.content", f"{ai_worker_group}.lessons"},
        USER_EVENTS: {AUTHORS_GROUP, ATTEMPTS, LEARNING, LEARNING_ZONES, KEPT_ANSWERS,
                      f"{ai_worker_group}.users"},
        AI_EVENTS: {AI_MEDIA_GROUP, LEARNING},
        JOBS_TOPIC: {ai_worker_group},
    }
    return by_topic.get(topic, set())


def subscribes(topic: str, group: str, ai_worker_group: str) -> bool:
    """Whether a service's consumer group `group` reads `topic`."""
    return group in consumer_groups(topic, ai_worker_group) or (
        topic == CONTENT_EVENTS and group.startswith(PER_INDEX))
