"""Mounts identity in a process: picks its store, sets it up, and registers its outbox."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from fastapi import APIRouter

from bloop.platform.identity import events as _events  # noqa: F401  (registers the event types)
from bloop.platform.identity.model import NewTenant, NewUser
from bloop.platform.identity.ports import IdentityRepository
from bloop.platform.identity.service import IdentityService
from bloop.platform.kit.errors import Conflict
from bloop.platform.kit.wiring import Platform
from bloop.platform.services import Mounted, Service

log = logging.getLogger("bloop.identity")


def repository(platform: Platform) -> IdentityRepository:
    if platform.settings.mode("mongo") == "real":
        from bloop.platform.identity.stores.mongo import MongoIdentityStore

        return MongoIdentityStore(platform.require_mongo(), platform.events)
    from bloop.platform.identity.stores.embedded import EmbeddedIdentityStore

    return EmbeddedIdentityStore(platform.sqlite("identity"), platform.events)


async def mount(platform: Platform) -> Mounted:
    repo = repository(platform)
    relay = platform.add_outbox(repo.outbox)
    service = IdentityService(repo, on_write=relay.wake)

    async def seed() -> None:
        await seed_demo(service)

    return Mounted(setup=repo.setup, seed=seed, state={"service": service})


async def seed_demo(service: IdentityService) -> None:
    """The demo tenant and its people, on first start only: nothing happens when it exists."""
    from bloop.platform.demo import data

    if await service.repo.get_tenant(data.TENANT_ID) is not None:
        return
    try:
        await service.create_tenant(NewTenant(id=data.TENANT_ID, name=data.TENANT_NAME))
    except Conflict:
        return  # another process seeded it a moment ago
    for person in data.PEOPLE:
        await service.register_user(data.TENANT_ID, NewUser(
            email=person.email, display_name=person.display_name, roles=list(person.roles)))
    log.info("seeded the demo tenant", extra={"tenant": data.TENANT_ID})


def routers() -> Sequence[APIRouter]:
    from bloop.platform.identity.api import router

    return (router,)


SERVICE = Service(name="identity", mount=mount, routers=routers)
