"""Mounts learning in a process: picks its store, sets it up, registers its outbox and its
consumers, and seeds the demo tenant's prerequisite graph and review cards."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from fastapi import APIRouter

from bloop.platform.kit.wiring import Platform
from bloop.platform.learning import events as _events  # noqa: F401  (registers the event types)
from bloop.platform.learning.consumers import subscriptions
from bloop.platform.learning.model import Edge, GraphDocument, NewCard, NewConcept
from bloop.platform.learning.ports import LearningRepository
from bloop.platform.learning.service import LearningService
from bloop.platform.services import Mounted, Service

log = logging.getLogger("bloop.learning")

DEMO_CARDS = {
    "variables": [("What does `count = count + 1` do?",
                   "Reads `count`, adds one, and rebinds the name `count` to the result.")],
    "expressions": [("What does `0 and 1 / 0` evaluate to, and why no error?",
                     "`0`: `and` stops at the first false operand, so `1 / 0` never runs.")],
    "functions": [("What does a function without a `return` statement return?", "`None`.")],
    "recursion": [("What two cases does a recursive definition need?",
                   "A base case answered directly, and a recursive case that moves towards it.")],
}


def repository(platform: Platform) -> LearningRepository:
    if platform.settings.mode("neo4j") == "real":
        from bloop.platform.learning.stores.neo4j import Neo4jLearningStore

        return Neo4jLearningStore(platform.require_neo4j(), platform.events,
                                  deadline_s=platform.settings.neo4j.query_timeout_s)
    from bloop.platform.learning.stores.embedded import EmbeddedLearningStore

    return EmbeddedLearningStore(platform.sqlite("learning"), platform.events)


async def mount(platform: Platform) -> Mounted:
    repo = repository(platform)
    relay = platform.add_outbox(repo.outbox)
    service = LearningService(repo, on_write=relay.wake)

    async def seed() -> None:
        await seed_demo(service)

    return Mounted(setup=repo.setup, seed=seed, subscriptions=subscriptions(service),
                   close=service.close, personal_data=service.personal_data,
                   state={"service": service})


def demo_graph() -> GraphDocument:
    """The demo course's concepts, each requiring what the lesson teaching it requires."""
    from bloop.platform.demo import data

    edges = {(t, r) for lesson in data.LESSONS for t in lesson.teaches for r in lesson.requires}
    return GraphDocument(
        concepts=[NewConcept(id=c.id, name=c.name, description=c.description)
                  for c in data.CONCEPTS],
        edges=[Edge(concept=t, requires=r) for t, r in sorted(edges)])


async def seed_demo(service: LearningService) -> None:
    """The demo tenant's prerequisite edges and cards, on first start only (nothing happens
    once the tenant has an edge)."""
    from bloop.platform.demo import data

    if await service.edges(data.TENANT_ID):
        return
    await service.import_graph(data.TENANT_ID, demo_graph())
    for concept, cards in DEMO_CARDS.items():
        if not await service.cards(data.TENANT_ID, concept):
            for front, back in cards:
                await service.add_card(data.TENANT_ID, concept, NewCard(front=front, back=back))
    log.info("seeded the demo prerequisite graph", extra={"tenant": data.TENANT_ID})


def routers() -> Sequence[APIRouter]:
    from bloop.platform.learning.api import router

    return (router,)


SERVICE = Service(name="learning", mount=mount, routers=routers)
