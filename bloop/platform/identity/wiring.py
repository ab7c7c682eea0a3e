"""Mounts identity in a process: picks its store, sets it up, and registers its outbox."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from fastapi import APIRouter
from pydantic import SecretStr

from bloop.platform.identity import events as _events  # noqa: F401  (registers the event types)
from bloop.platform.identity.consumers import subscriptions
from bloop.platform.identity.keys import KeyRing
from bloop.platform.identity.model import NewTenant, NewUser, TenantSettings
from bloop.platform.identity.oidc.ports import OidcProviderStore
from bloop.platform.identity.oidc.service import OidcService
from bloop.platform.identity.ports import ApiKeyStore, IdentityRepository, SigningKeyStore
from bloop.platform.identity.service import ApiKeyService, AuthService, IdentityService
from bloop.platform.kit.errors import Conflict
from bloop.platform.kit.every import Every
from bloop.platform.kit.waiting import stopped
from bloop.platform.kit.wiring import Platform
from bloop.platform.services import Mounted, Service

log = logging.getLogger("bloop.identity")
PRUNE_INVITATIONS_S = 3600  # how often expired invitations, and their invitees' emails, go
ANNOUNCE_RETRY_S = 60  # after a failed announcement of the time zones identity had not announced


def repository(platform: Platform) -> tuple[IdentityRepository, SigningKeyStore]:
    if platform.settings.mode("mongo") == "real":
        from bloop.platform.identity.stores.mongo import MongoIdentityStore, MongoSigningKeys

        return (MongoIdentityStore(platform.require_mongo(), platform.events),
                MongoSigningKeys(platform.require_mongo()))
    from bloop.platform.identity.stores.embedded import EmbeddedIdentityStore, EmbeddedSigningKeys

    db = platform.sqlite("identity")
    return EmbeddedIdentityStore(db, platform.events), EmbeddedSigningKeys(db)


def api_keys_store(platform: Platform) -> ApiKeyStore:
    if platform.settings.mode("mongo") == "real":
        from bloop.platform.identity.stores.mongo import MongoApiKeys

        return MongoApiKeys(platform.require_mongo())
    from bloop.platform.identity.stores.embedded import EmbeddedApiKeys

    return EmbeddedApiKeys(platform.sqlite("identity"))


def oidc_providers_store(platform: Platform) -> OidcProviderStore:
    if platform.settings.mode("mongo") == "real":
        from bloop.platform.identity.stores.oidc_mongo import MongoOidcProviders

        return MongoOidcProviders(platform.require_mongo())
    from bloop.platform.identity.stores.oidc_embedded import EmbeddedOidcProviders

    return EmbeddedOidcProviders(platform.sqlite("identity"))


async def mount(platform: Platform) -> Mounted:
    repo, key_store = repository(platform)
    relay = platform.add_outbox(repo.outbox)
    settings = platform.settings.auth
    service = IdentityService(repo, on_write=relay.wake, settings=settings,
                              verifier=platform.auth.verifier)
    keys = KeyRing(key_store, settings)
    platform.auth.verifier.use_keys(keys)
    auth = AuthService(service, keys, platform.auth.verifier, platform.cache, settings)
    oidc_store = oidc_providers_store(platform)
    oidc = OidcService(oidc_store, service, auth, platform.cache, platform.settings.oidc)
    api_key_store = api_keys_store(platform)
    api_keys = ApiKeyService(service, api_key_store, platform.cache, settings,
                             revocations=platform.auth.revocations)
    platform.auth.use_api_keys(api_keys)
    expiry = Every("identity:invitations", service.prune_invitations, PRUNE_INVITATIONS_S,
                   log=log, failed="could not delete the expired invitations")

    announcing: list[asyncio.Task[None]] = []

    async def announce_time_zones() -> None:
        while True:
            try:
                announced = await service.announce_time_zones()
            except Exception as exc:
                log.warning("could not announce the time zones identity had not announced; "
                            "trying again", extra={"error": repr(exc)})
                await asyncio.sleep(ANNOUNCE_RETRY_S)
                continue
            if announced:
                log.info("announced the time zones identity had not announced",
                         extra={"users": announced})
            return

    async def setup() -> None:
        await repo.setup()
        await key_store.setup()
        await oidc_store.setup()
        await api_key_store.setup()
        expiry.start()
        if not announcing:  # in the background: a tenant of many users does not hold start-up
            announcing.append(asyncio.create_task(announce_time_zones(),
                                                  name="identity:time-zones"))

    async def close() -> None:
        await expiry.stop()
        for task in announcing:
            await stopped(task)

    async def seed() -> None:
        await seed_demo(service)

    async def personal_data(tenant: str, user_id: str) -> dict[str, object]:
        user = await service.user(tenant, user_id)
        keys = await api_keys.created_by(tenant, user_id)
        return {"profile": user.model_dump(mode="json"),
                "api_keys_created": [k.model_dump(mode="json", exclude={"secret_hash"})
                                     for k in keys],
                "sign_ins": [t.model_dump(mode="json", exclude={"token_hash"})
                             for t in await service.sign_ins(tenant, user_id)],
                "invitations_sent": [{"id": i.id, **i.model_dump(mode="json",
                                                                 exclude={"token_hash"})}
                                     for i in await service.invitations_sent(tenant, user_id)],
                "invitations_received": [
                    {"id": i.id, **i.model_dump(mode="json", exclude={"token_hash"})}
                    for i in await service.invitations_received(tenant, user.email)],
                "sign_in_links": [link.model_dump(mode="json")
                                  for link in await oidc.links(tenant, user_id)]}

    return Mounted(setup=setup, seed=seed, close=close, personal_data=personal_data,
                   subscriptions=subscriptions(platform.idempotency),
                   state={"service": service, "auth": auth, "oidc": oidc, "api_keys": api_keys})


async def seed_demo(service: IdentityService) -> None:
    """The demo tenant and its people, on first start only: nothing happens when it exists,
    except that demo people seeded before sign-in existed get their demo password."""
    from bloop.platform.demo import data

    if await service.repo.get_tenant(data.TENANT_ID) is not None:
        for person in data.PEOPLE:
            found = await service.repo.get_login(data.TENANT_ID, person.email)
            if found is not None and found[1] is None:
                await service.repo.set_password_hash(data.TENANT_ID, found[0].id,
                                                     await service.hasher.hash(person.password))
        return
    try:
        await service.create_tenant(NewTenant(
            id=data.TENANT_ID, name=data.TENANT_NAME,
            settings=TenantSettings(allowed_signup_domains=[data.SIGNUP_DOMAIN])))
    except Conflict:
        return  # another process seeded it a moment ago
    for person in data.PEOPLE:
        await service.register_user(data.TENANT_ID, NewUser(
            email=person.email, display_name=person.display_name, roles=list(person.roles),
            password=SecretStr(person.password)))
    log.info("seeded the demo tenant", extra={"tenant": data.TENANT_ID})


def routers() -> Sequence[APIRouter]:
    from bloop.platform.identity.api import auth_router, router
    from bloop.platform.identity.oidc.api import oidc_router

    return (auth_router, router, oidc_router)


SERVICE = Service(name="identity", mount=mount, routers=routers)
